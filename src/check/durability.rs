//! `durability`: every acknowledged write is present on the final primary (Jepsen's set-full,
//! for investments). Counts lost, recovered (unknown writes that did land), unexpected (present
//! but never attempted, or definitely failed), duplicated and split-brain writes; each lost write
//! is listed with its acknowledgement time against the fault windows.

use serde_json::json;

use super::{CheckResult, FinalState, Status, evidence, fault_context};
use crate::faults::Plan;
use crate::history::{EntryOp, EntryType, History};

/// An acknowledged write the final primary does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostWrite {
    /// The investment's idempotency key.
    pub key: String,
    /// When the client got the acknowledgement, ns from the start of the run.
    pub ack_ns: u64,
}

/// What the history and the final state say about each attempted write, before any judgement.
pub struct Tally<'h> {
    /// Distinct keys attempted.
    attempted: usize,
    /// Keys whose last attempt was acknowledged.
    acknowledged: usize,
    /// Keys whose last attempt definitely failed.
    failed: usize,
    /// Keys whose last attempt has no known outcome.
    unknown: usize,
    /// Acknowledged, absent from the final primary: (key, ack time), sorted by key.
    lost: Vec<(&'h str, u64)>,
    /// Acknowledged, absent, and rolled back by a restore (see `restore::rolled_back`).
    rolled_back: Vec<(&'h str, u64)>,
    /// Present but never attempted, or definitely failed.
    unexpected: Vec<&'h str>,
    /// Unknown outcome, yet present.
    recovered: usize,
}

impl Tally<'_> {
    /// The lost writes, owned: what the run attributes to faults (`faults::attribute_lost_writes`).
    pub fn lost_writes(&self) -> Vec<LostWrite> {
        self.lost.iter().map(|&(key, ack_ns)| LostWrite { key: key.to_owned(), ack_ns }).collect()
    }
}

/// Check acknowledged-write durability.
pub fn check(history: &History, state: &FinalState, plan: &Plan) -> CheckResult {
    judge(&tally(history, state), state, plan)
}

/// Walk every write's last outcome beside the final primary's investments.
pub fn tally<'h>(history: &'h History, state: &'h FinalState) -> Tally<'h> {
    // (key, outcome, completion time), sorted by key so it can be walked beside the final
    // state's (also sorted) investments in one merge pass instead of a lookup per key.
    let mut outcomes: Vec<(&str, EntryType, u64)> = Vec::new();
    for (invoke, done) in history.ops() {
        if invoke.op != EntryOp::Invest {
            continue;
        }
        let Some(key) = invoke.value.key.as_deref() else { continue };
        let (kind, time_ns) = done.map_or((EntryType::Info, invoke.time_ns), |d| (d.kind, d.time_ns));
        outcomes.push((key, kind, time_ns));
    }
    // Stable: of several attempts with one key, the last one counts.
    outcomes.sort_by_key(|(key, _, _)| *key);
    outcomes.reverse();
    outcomes.dedup_by_key(|(key, _, _)| *key);
    outcomes.reverse();
    let count = |kind: EntryType| outcomes.iter().filter(|(_, k, _)| *k == kind).count();
    let (mut lost, mut rolled_back, mut unexpected, mut recovered) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let restores = state.backups.as_ref().map_or(&[][..], |b| &b.restores[..]);
    let mut present = state.investments.iter().map(|(k, n)| (k.as_str(), *n)).peekable();
    for &(key, kind, time_ns) in &outcomes {
        while let Some(&(stored, _)) = present.peek().filter(|(stored, _)| *stored < key) {
            unexpected.push(stored); // stored, never attempted
            present.next();
        }
        let landed = present.next_if(|(stored, _)| *stored == key).is_some_and(|(_, n)| n > 0);
        match (kind, landed) {
            (EntryType::Ok, false) if super::restore::rolled_back(restores, time_ns) => {
                rolled_back.push((key, time_ns))
            }
            (EntryType::Ok, false) => lost.push((key, time_ns)),
            (EntryType::Info, true) => recovered += 1,
            (EntryType::Fail, true) => unexpected.push(key), // stored, though it definitely failed
            _ => {}
        }
    }
    unexpected.extend(present.map(|(stored, _)| stored));
    Tally {
        attempted: outcomes.len(),
        acknowledged: count(EntryType::Ok),
        failed: count(EntryType::Fail),
        unknown: count(EntryType::Info),
        lost,
        rolled_back,
        unexpected,
        recovered,
    }
}

/// The verdict on a tally.
pub fn judge(tally: &Tally<'_>, state: &FinalState, plan: &Plan) -> CheckResult {
    let Tally {
        attempted,
        acknowledged,
        failed,
        unknown,
        ref lost,
        ref rolled_back,
        ref unexpected,
        recovered,
    } = *tally;
    let duplicated: Vec<&str> =
        state.investments.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.as_str()).collect();
    let lost_list: Vec<serde_json::Value> = lost
        .iter()
        .map(|(key, ack_ns)| json!({ "key": key, "ack_ms": ack_ns / 1_000_000, "context": fault_context(plan, *ack_ns) }))
        .collect();
    let details = json!({
        "attempted_count": attempted,
        "acknowledged_count": acknowledged,
        "failed_count": failed,
        "unknown_count": unknown,
        "lost_count": lost.len(),
        "rolled_back_count": rolled_back.len(),
        "recovered_count": recovered,
        "unexpected_count": unexpected.len(),
        "duplicated_count": duplicated.len(),
        "diverged_count": state.diverged_investments.len(),
        "final_primary": state.primary,
        "lost": evidence(lost_list),
        "unexpected": evidence(unexpected.iter().map(|k| json!(k)).collect()),
        "duplicated": evidence(duplicated.iter().map(|k| json!(k)).collect()),
        "diverged": evidence(state.diverged_investments.iter().map(|k| json!(k)).collect()),
    });
    let broken = !lost.is_empty()
        || !unexpected.is_empty()
        || !duplicated.is_empty()
        || !state.diverged_investments.is_empty();
    let (status, summary) = if broken {
        let mut parts = Vec::new();
        if !lost.is_empty() {
            parts.push(format!("{} of {acknowledged} acknowledged writes lost", lost.len()));
        }
        if !state.diverged_investments.is_empty() {
            parts.push(format!(
                "{} writes accepted by a node that is not the final primary (split brain)",
                state.diverged_investments.len()
            ));
        }
        if !duplicated.is_empty() {
            parts.push(format!("{} writes applied twice", duplicated.len()));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "{} writes present that were never acknowledged or definitely failed",
                unexpected.len()
            ));
        }
        (Status::Fail, parts.join("; "))
    } else if acknowledged == 0 {
        (Status::Unknown, "no write was acknowledged: nothing to check".to_owned())
    } else if !rolled_back.is_empty() {
        let kept = acknowledged - rolled_back.len();
        (
            Status::Pass,
            format!(
                "all {kept} acknowledged writes a restore kept present on {}; {} acknowledged after its recovery point were rolled back (judged by `restore`)",
                state.primary,
                rolled_back.len()
            ),
        )
    } else {
        (
            Status::Pass,
            format!(
                "all {acknowledged} acknowledged writes present on {} ({recovered} unknown writes landed)",
                state.primary
            ),
        )
    };
    CheckResult { name: "durability".into(), status, summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{invest, plan_with_crash};

    #[test]
    fn passes_when_every_ack_is_present_and_fails_on_a_lost_one() {
        let mut history = History::new();
        invest(&mut history, 1, "a", EntryType::Ok, 10);
        invest(&mut history, 2, "b", EntryType::Info, 20);
        invest(&mut history, 3, "c", EntryType::Fail, 30);
        let mut state = FinalState { primary: "pg-replica".into(), ..Default::default() };
        state.investments.insert("a".into(), 1);
        state.investments.insert("b".into(), 1);
        let plan = plan_with_crash();
        let result = check(&history, &state, &plan);
        assert_eq!(result.status, Status::Pass, "{}", result.summary);
        assert_eq!(result.details["recovered_count"], 1);

        state.investments.remove("a");
        let result = check(&history, &state, &plan);
        assert_eq!(result.status, Status::Fail);
        assert_eq!(result.details["lost_count"], 1);
        assert_eq!(result.details["lost"]["items"][0]["key"], "a");
        assert!(result.summary.contains("1 of 1 acknowledged writes lost"), "{}", result.summary);
    }

    #[test]
    fn duplicates_unexpected_and_split_brain_fail() {
        let mut history = History::new();
        invest(&mut history, 1, "a", EntryType::Ok, 10);
        invest(&mut history, 2, "c", EntryType::Fail, 30);
        let plan = plan_with_crash();
        let base = FinalState { investments: [("a".to_string(), 1)].into(), ..Default::default() };
        let mut twice = base.clone();
        twice.investments.insert("a".into(), 2);
        assert_eq!(check(&history, &twice, &plan).details["duplicated_count"], 1);
        let mut failed_but_present = base.clone();
        failed_but_present.investments.insert("c".into(), 1);
        assert_eq!(check(&history, &failed_but_present, &plan).status, Status::Fail);
        let mut split = base.clone();
        split.diverged_investments.push("z".into());
        let result = check(&history, &split, &plan);
        assert_eq!(result.status, Status::Fail);
        assert!(result.summary.contains("split brain"));
    }
}
