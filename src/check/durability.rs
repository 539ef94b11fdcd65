//! `durability`: every acknowledged write is present on the final primary (Jepsen's set-full,
//! for investments). Counts lost, recovered (unknown writes that did land), unexpected (present
//! but never attempted, or definitely failed), duplicated and split-brain writes; each lost write
//! is listed with its acknowledgement time against the fault windows.

use std::collections::BTreeMap;

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

/// One set of writes to judge: the built-in `invest` op against the final primary's
/// investments, or a declared `write` op against its final read.
struct WriteSet<'h> {
    op: EntryOp,
    present: &'h BTreeMap<String, u32>,
    /// Keys some node held that the node accepting writes did not.
    diverged: Vec<&'h str>,
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
    /// Present more than once.
    duplicated: Vec<&'h str>,
    /// Held by a node that is not the final primary, and not by it, and acknowledged (or never
    /// attempted): a split brain.
    diverged: Vec<&'h str>,
    /// Held only by a node that is not the final primary, of unknown or failed outcome: a
    /// demoted node's local commit its clients never saw acknowledged (a rewind discards it).
    stranded: Vec<&'h str>,
    /// Writes whose key only the server knew, of unknown outcome: as many unexpected keys may be
    /// theirs (`key_from`), so that many are not judged.
    unkeyed_unknown: usize,
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

/// The sets to judge: the declared write ops' when the final state has them, else `invest`'s.
fn sets(state: &FinalState) -> Vec<WriteSet<'_>> {
    if state.sets.is_empty() {
        let diverged = state.diverged_investments.iter().map(String::as_str).collect();
        return vec![WriteSet { op: EntryOp::Invest, present: &state.investments, diverged }];
    }
    state
        .sets
        .iter()
        .map(|(name, set)| WriteSet {
            op: EntryOp::named(name),
            present: &set.present,
            diverged: diverged(set),
        })
        .collect()
}

/// Keys some node read directly held that the node accepting writes did not.
fn diverged(set: &crate::check::KeySet) -> Vec<&str> {
    let mut keys: Vec<&str> = set
        .nodes
        .values()
        .filter_map(|n| n.keys.as_ref())
        .flatten()
        .map(String::as_str)
        .filter(|k| !set.present.contains_key(*k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Walk every write's last outcome beside the final primary's keys, for every write set.
pub fn tally<'h>(history: &'h History, state: &'h FinalState) -> Tally<'h> {
    let mut total = Tally {
        attempted: 0,
        acknowledged: 0,
        failed: 0,
        unknown: 0,
        lost: Vec::new(),
        rolled_back: Vec::new(),
        unexpected: Vec::new(),
        recovered: 0,
        duplicated: Vec::new(),
        diverged: Vec::new(),
        stranded: Vec::new(),
        unkeyed_unknown: 0,
    };
    let restores = state.backups.as_ref().map_or(&[][..], |b| &b.restores[..]);
    for set in sets(state) {
        tally_set(history, &set, restores, &mut total);
    }
    total
}

fn tally_set<'h>(
    history: &'h History,
    set: &WriteSet<'h>,
    restores: &[crate::check::RestoreRecord],
    total: &mut Tally<'h>,
) {
    // (key, outcome, completion time), sorted by key so it can be walked beside the final
    // state's (also sorted) keys in one merge pass instead of a lookup per key.
    let mut outcomes: Vec<(&str, EntryType, u64)> = Vec::new();
    for (invoke, done) in history.ops() {
        if invoke.op != set.op {
            continue;
        }
        let (kind, time_ns) = done.map_or((EntryType::Info, invoke.time_ns), |d| (d.kind, d.time_ns));
        // A key the server makes (`key_from`) is known only from an answer.
        let key = invoke.value.key.as_deref().or_else(|| done.and_then(|d| d.value.key.as_deref()));
        match key {
            Some(key) => outcomes.push((key, kind, time_ns)),
            None if kind != EntryType::Fail => total.unkeyed_unknown += 1,
            None => {}
        }
    }
    // Stable: of several attempts with one key, the last one counts.
    outcomes.sort_by_key(|(key, _, _)| *key);
    outcomes.reverse();
    outcomes.dedup_by_key(|(key, _, _)| *key);
    outcomes.reverse();
    let count = |kind: EntryType| outcomes.iter().filter(|(_, k, _)| *k == kind).count();
    let mut present = set.present.iter().map(|(k, n)| (k.as_str(), *n)).peekable();
    for &(key, kind, time_ns) in &outcomes {
        while let Some(&(stored, _)) = present.peek().filter(|(stored, _)| *stored < key) {
            total.unexpected.push(stored); // stored, never attempted
            present.next();
        }
        let landed = present.next_if(|(stored, _)| *stored == key).is_some_and(|(_, n)| n > 0);
        match (kind, landed) {
            (EntryType::Ok, false) if super::restore::rolled_back(restores, time_ns) => {
                total.rolled_back.push((key, time_ns))
            }
            (EntryType::Ok, false) => total.lost.push((key, time_ns)),
            (EntryType::Info, true) => total.recovered += 1,
            (EntryType::Fail, true) => total.unexpected.push(key), // stored, though it definitely failed
            _ => {}
        }
    }
    total.unexpected.extend(present.map(|(stored, _)| stored));
    total.attempted += outcomes.len();
    total.acknowledged += count(EntryType::Ok);
    total.failed += count(EntryType::Fail);
    total.unknown += count(EntryType::Info);
    total.duplicated.extend(set.present.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.as_str()));
    for key in &set.diverged {
        let outcome = outcomes.binary_search_by_key(key, |(k, _, _)| *k).ok().map(|i| outcomes[i].1);
        match outcome {
            Some(EntryType::Info | EntryType::Fail) => total.stranded.push(key),
            _ => total.diverged.push(key),
        }
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
        ref duplicated,
        ref diverged,
        ref stranded,
        unkeyed_unknown,
    } = *tally;
    // Keys the server made for writes whose answer was lost may be any of the unexpected ones.
    let unattributed = unexpected.len().min(unkeyed_unknown);
    let unexpected = &unexpected[..unexpected.len() - unattributed];
    let lost_list: Vec<serde_json::Value> = lost
        .iter()
        .map(|(key, ack_ns)| json!({ "key": key, "ack_ms": ack_ns / 1_000_000, "context": fault_context(plan, *ack_ns) }))
        .collect();
    let details = json!({
        "attempted_count": attempted,
        "acknowledged_count": acknowledged,
        "failed_count": failed,
        "unknown_count": unknown + unkeyed_unknown,
        "lost_count": lost.len(),
        "rolled_back_count": rolled_back.len(),
        "recovered_count": recovered + unattributed,
        "unexpected_count": unexpected.len(),
        "duplicated_count": duplicated.len(),
        "diverged_count": diverged.len(),
        "stranded_unacknowledged_count": stranded.len(),
        "final_primary": state.primary,
        "lost": evidence(lost_list),
        "unexpected": evidence(unexpected.iter().map(|k| json!(k)).collect()),
        "duplicated": evidence(duplicated.iter().map(|k| json!(k)).collect()),
        "diverged": evidence(diverged.iter().map(|k| json!(k)).collect()),
        "stranded_unacknowledged": evidence(stranded.iter().map(|k| json!(k)).collect()),
    });
    let broken = !lost.is_empty() || !unexpected.is_empty() || !duplicated.is_empty() || !diverged.is_empty();
    let primary =
        if state.primary.is_empty() { "the node that accepts writes" } else { state.primary.as_str() };
    let (status, summary) = if broken {
        let mut parts = Vec::new();
        if !lost.is_empty() {
            parts.push(format!("{} of {acknowledged} acknowledged writes lost", lost.len()));
        }
        if !diverged.is_empty() {
            parts.push(format!(
                "{} writes held by a node that is not the final primary (split brain)",
                diverged.len()
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
                "all {kept} acknowledged writes a restore kept present on {primary}; {} acknowledged after its recovery point were rolled back (judged by `restore`)",
                rolled_back.len()
            ),
        )
    } else {
        (
            Status::Pass,
            format!(
                "all {acknowledged} acknowledged writes present on {primary} ({} unknown writes landed)",
                recovered + unattributed
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

    /// A declared write op: one acknowledged key lost but still on another node (split brain
    /// evidence), and a server-keyed write of unknown outcome whose key turns up.
    #[test]
    fn declared_write_sets_are_judged_per_op_with_keys_from_answers() {
        use crate::check::{KeySet, NodeKeys};
        use crate::history::{Process, Value};
        let put = EntryOp::named("put");
        let mut history = History::new();
        let mut write = |p: u32, invoke_key: Option<&str>, done_key: Option<&str>, kind: EntryType| {
            let key = |k: Option<&str>| Value { key: k.map(String::from), ..Value::default() };
            history.push(10, EntryType::Invoke, Process::Client(p), put, key(invoke_key), None);
            history.push(20, kind, Process::Client(p), put, key(done_key), None);
        };
        write(1, Some("put-1"), Some("put-1"), EntryType::Ok);
        write(2, Some("put-2"), Some("put-2"), EntryType::Ok);
        write(3, None, None, EntryType::Info); // the server made a key; the answer was lost
        write(4, Some("put-4"), Some("put-4"), EntryType::Info); // committed only on a demoted node
        let mut state = FinalState::default();
        let set = KeySet {
            present: [("put-1".to_string(), 1), ("srv-9".to_string(), 1)].into(),
            nodes: [(
                "pg2".to_string(),
                NodeKeys { keys: Some(["put-1".into(), "put-2".into(), "put-4".into()].into()), error: None },
            )]
            .into(),
        };
        state.sets.insert("put".into(), set);
        let result = check(&history, &state, &plan_with_crash());
        assert_eq!(result.status, Status::Fail);
        assert_eq!(result.details["lost"]["items"][0]["key"], "put-2");
        assert_eq!(result.details["diverged_count"], 1, "put-2 is still on pg2");
        assert_eq!(result.details["unexpected_count"], 0, "srv-9 may be the unknown write's");
        state.sets.get_mut("put").unwrap().present.insert("put-2".into(), 1);
        let result = check(&history, &state, &plan_with_crash());
        assert_eq!(result.status, Status::Pass, "{}", result.summary);
        assert_eq!(result.details["stranded_unacknowledged_count"], 1, "put-4 was never acknowledged");
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
