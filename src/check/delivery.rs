//! `delivery`: every query the gateway accepted (answered 202) is completed in the final state,
//! and its effect was applied exactly once. Redeliveries are allowed; duplicate *effects* are not.

use serde_json::json;

use super::{CheckResult, FinalState, Status, evidence};
use crate::history::{EntryOp, EntryType, History};

/// Check the query pipeline's delivery (the built-in stack), or every declared `submit` op's
/// jobs (a compose stack: `state.jobs`).
pub fn check(history: &History, state: &FinalState) -> CheckResult {
    if !state.jobs.is_empty() {
        return check_jobs(history, state);
    }
    let mut accepted = Vec::new();
    let mut attempted = std::collections::BTreeSet::new();
    let mut completed_ok = 0;
    for (invoke, done) in history.ops() {
        if invoke.op != EntryOp::Query {
            continue;
        }
        let Some(key) = invoke.value.key.as_deref() else { continue };
        attempted.insert(key);
        if let Some(done) = done
            && done.value.id.is_some()
        {
            accepted.push(key);
            completed_ok += usize::from(done.kind == EntryType::Ok);
        }
    }
    let lost: Vec<&str> = accepted
        .iter()
        .copied()
        .filter(|key| state.queries.get(*key).is_none_or(|q| q.status != "completed"))
        .collect();
    let duplicate_effects: Vec<serde_json::Value> = state
        .queries
        .iter()
        .filter(|(_, q)| q.effects > 1)
        .map(|(key, q)| json!({ "key": key, "id": q.id, "effects": q.effects }))
        .collect();
    let unexpected: Vec<&str> =
        state.queries.keys().map(String::as_str).filter(|key| !attempted.contains(key)).collect();
    let details = json!({
        "attempted_count": attempted.len(),
        "accepted_count": accepted.len(),
        "completed_in_time_count": completed_ok,
        "lost_count": lost.len(),
        "duplicate_effect_count": duplicate_effects.len(),
        "unexpected_count": unexpected.len(),
        "lost": evidence(lost.iter().map(|k| json!(k)).collect()),
        "duplicate_effects": evidence(duplicate_effects.clone()),
    });
    let (status, summary) = if !lost.is_empty() || !duplicate_effects.is_empty() || !unexpected.is_empty() {
        let mut parts = Vec::new();
        if !lost.is_empty() {
            parts.push(format!("{} of {} accepted queries never completed", lost.len(), accepted.len()));
        }
        if !duplicate_effects.is_empty() {
            parts
                .push(format!("{} queries had their effect applied more than once", duplicate_effects.len()));
        }
        if !unexpected.is_empty() {
            parts.push(format!("{} queries in the store were never submitted", unexpected.len()));
        }
        (Status::Fail, parts.join("; "))
    } else if accepted.is_empty() {
        (Status::Unknown, "no query was accepted: nothing to check".to_owned())
    } else {
        (Status::Pass, format!("all {} accepted queries completed, each effect applied once", accepted.len()))
    };
    CheckResult { name: "delivery".into(), status, summary, details }
}

/// Every job a declared `submit` op got accepted (an id came back) is done at the end: either
/// its polls saw it done, or one last poll after the drain did. A job's effects are the stack's
/// business: state them as an invariant.
fn check_jobs(history: &History, state: &FinalState) -> CheckResult {
    let mut accepted: Vec<(&str, &str, u64)> = Vec::new(); // (op, job, accepted at)
    let mut completed_in_time = 0;
    for (invoke, done) in history.ops() {
        let Some(done) = done else { continue };
        let Some(job) = done.value.job.as_deref() else { continue };
        if !state.jobs.contains_key(invoke.op.name()) {
            continue;
        }
        accepted.push((invoke.op.name(), job, done.time_ns));
        completed_in_time += usize::from(done.kind == EntryType::Ok);
    }
    let lost: Vec<serde_json::Value> = accepted
        .iter()
        .filter(|(op, job, _)| state.jobs.get(*op).and_then(|jobs| jobs.get(*job)) != Some(&true))
        .map(|(op, job, at)| json!({ "op": op, "job": job, "accepted_ms": at / 1_000_000 }))
        .collect();
    let details = json!({
        "accepted_count": accepted.len(),
        "completed_in_time_count": completed_in_time,
        "lost_count": lost.len(),
        "lost": evidence(lost.clone()),
    });
    let (status, summary) = if !lost.is_empty() {
        (Status::Fail, format!("{} of {} accepted jobs never completed", lost.len(), accepted.len()))
    } else if accepted.is_empty() {
        (Status::Unknown, "no job was accepted: nothing to check".to_owned())
    } else {
        (
            Status::Pass,
            format!(
                "all {} accepted jobs completed ({completed_in_time} while their op waited)",
                accepted.len()
            ),
        )
    };
    CheckResult { name: "delivery".into(), status, summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::QueryRecord;
    use crate::check::tests::query;

    /// Two accepted jobs (one done in time, one only at the end), one refused: a job never done
    /// at the end fails the check.
    #[test]
    fn every_accepted_job_of_a_declared_op_must_be_done_at_the_end() {
        use crate::history::{EntryOp, Process, Value};
        let op = EntryOp::named("consult");
        let mut history = History::new();
        for (p, job, kind) in
            [(1, Some("a"), EntryType::Ok), (2, Some("b"), EntryType::Info), (3, None, EntryType::Fail)]
        {
            history.push(1, EntryType::Invoke, Process::Client(p), op, Value::default(), None);
            let value = Value { job: job.map(String::from), ..Value::default() };
            history.push(2, kind, Process::Client(p), op, value, None);
        }
        let mut state = FinalState::default();
        state.jobs.insert("consult".into(), [("a".to_string(), true), ("b".to_string(), true)].into());
        assert_eq!(check(&history, &state).status, Status::Pass);
        state.jobs.get_mut("consult").unwrap().insert("b".into(), false);
        let lost = check(&history, &state);
        assert_eq!((lost.status, lost.details["lost_count"].as_u64()), (Status::Fail, Some(1)));
    }

    #[test]
    fn lost_and_duplicated_effects_fail() {
        let mut history = History::new();
        query(&mut history, 1, "q1", Some(1), EntryType::Ok);
        query(&mut history, 2, "q2", Some(2), EntryType::Info);
        query(&mut history, 3, "q3", None, EntryType::Fail); // 503: never accepted
        let done = |id, effects| QueryRecord { id, status: "completed".into(), effects };
        let mut state = FinalState::default();
        state.queries.insert("q1".into(), done(1, 1));
        state.queries.insert("q2".into(), done(2, 1));
        assert_eq!(check(&history, &state).status, Status::Pass);
        state.queries.insert("q2".into(), QueryRecord { id: 2, status: "pending".into(), effects: 0 });
        let lost = check(&history, &state);
        assert_eq!((lost.status, lost.details["lost_count"].as_u64()), (Status::Fail, Some(1)));
        state.queries.insert("q2".into(), done(2, 2));
        let twice = check(&history, &state);
        assert_eq!((twice.status, twice.details["duplicate_effect_count"].as_u64()), (Status::Fail, Some(1)));
    }
}
