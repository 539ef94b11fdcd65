//! `delivery`: every query the gateway accepted (answered 202) is completed in the final state,
//! and its effect was applied exactly once. Redeliveries are allowed; duplicate *effects* are not.

use serde_json::json;

use super::{CheckResult, FinalState, Status, evidence};
use crate::history::{EntryOp, EntryType, History};

/// Check the query pipeline's delivery.
pub fn check(history: &History, state: &FinalState) -> CheckResult {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::QueryRecord;
    use crate::check::tests::query;

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
