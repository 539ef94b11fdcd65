//! The checkers: each turns the history and the final state into a verdict.
//!
//! One file per checker, each a pure function of the history, the final state and the plan,
//! returning a [`CheckResult`]. `check/` reads only those: it never imports from `sim/`,
//! `stack/` services or `report/`. A checker that cannot decide returns `Unknown` with the reason;
//! none aborts the run. Results combine by precedence Fail > Unknown > Pass (`verdict`).
//!
//! | file | checks |
//! |---|---|
//! | `durability.rs` | every acknowledged write is on the final primary |
//! | `staleness.rs` | read-your-writes; visibility lag per phase |
//! | `saga.rs` | stock conservation; every order completed or compensated, once |
//! | `delivery.rs` | every accepted query completed; effects once |
//! | `files.rs` | every acknowledged upload stored, recorded, thumbnailed and audited once |
//! | `slo.rs` | latency / error rate / availability per op per phase (HdrHistogram) |
//! | `recovery.rs` | time to sustained success after each fault |
//! | `conservation.rs` | compose stacks: parts read from several clients after the drain add up to a constant |
//! | `verdict.rs` | running the configured checks; `expect`; the verdict |

pub mod conservation;
pub mod delivery;
pub mod durability;
pub mod files;
pub mod invariants;
pub mod recovery;
pub mod restore;
mod result;
pub mod saga;
pub mod slo;
pub mod staleness;
mod state;
mod verdict;

pub use result::{CheckResult, Status};
pub use slo::{LatencyRow, SloEntry};
pub use state::{
    BackupsState, FileRecord, FinalState, InvariantSample, KeySet, NodeKeys, OrderRecord, PartReading,
    QueryRecord, RestoreRecord, StockSnapshot, StoredObject,
};
pub use verdict::{Checked, GENERATOR_LAG_MS_MAX, Verdict, expectation, judged, run_all, verdict};

use crate::faults::Plan;

/// Longest evidence list kept in a result's details; the counts are always complete.
pub const EVIDENCE_MAX: usize = 20;

/// A capped list of evidence: `{ "items": [...first EVIDENCE_MAX], "total": n }`.
pub(crate) fn evidence(mut items: Vec<serde_json::Value>) -> serde_json::Value {
    let total = items.len();
    items.truncate(EVIDENCE_MAX);
    serde_json::json!({ "items": items, "total": total })
}

/// Where a moment falls against the fault timeline, in words: "during crash #0 (pg-primary,
/// from 20s)" or "1.2s before crash #0".
pub(crate) fn fault_context(plan: &Plan, time_ns: u64) -> String {
    let t = std::time::Duration::from_nanos(time_ns);
    let describe = |f: &crate::faults::PlannedFault| {
        let hosts = match &f.kind {
            crate::faults::FaultKind::Crash { hosts } | crate::faults::FaultKind::Pause { hosts } => {
                hosts.join(", ")
            }
            _ => String::new(),
        };
        format!("{} #{} {}", f.kind.name(), f.index, hosts).trim_end().to_owned()
    };
    let during: Vec<String> = plan
        .faults
        .iter()
        .filter(|f| f.start <= t && f.end.is_none_or(|e| t < e))
        .map(|f| format!("during {} (from {:.3}s)", describe(f), f.start.as_secs_f64()))
        .collect();
    let next = plan.faults.iter().find(|f| f.start > t);
    let before = next.map(|f| format!("{:.3}s before {}", (f.start - t).as_secs_f64(), describe(f)));
    match (during.is_empty(), before) {
        (false, Some(before)) => return format!("{}; {before}", during.join("; ")),
        (false, None) => return during.join("; "),
        (true, Some(before)) => return before,
        (true, None) => {}
    }
    match plan.faults.last() {
        Some(f) => format!("after {}", describe(f)),
        None => "no fault in the run".to_owned(),
    }
}

/// A count and its noun, singular or plural: `1 check`, `3 checks`, `0 faults`.
pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// Quantiles of durations given in ns, in ms: `{count, p50, p90, p99, max}`.
pub(crate) fn quantiles_ms(values_ns: &[u64]) -> serde_json::Value {
    let mut sorted = values_ns.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index] as f64 / 1e6
    };
    serde_json::json!({ "count": sorted.len(), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0) })
}

#[cfg(test)]
pub(crate) mod tests {
    //! Builders for hand-made histories used by every checker's tests.

    use std::time::Duration;

    use crate::faults::{FaultKind, Plan, PlannedFault};
    use crate::history::{EntryOp, EntryType, History, Process, Value};
    use crate::scenario::model::Phase;

    const MS: u64 = 1_000_000;

    /// A 60 s run with a pg-primary crash from 20 s to 35 s and a 10 s recovery window.
    pub(crate) fn plan_with_crash() -> Plan {
        let s = Duration::from_secs;
        let window = |phase, a, b| crate::faults::PhaseWindow { phase, start: s(a), end: s(b) };
        Plan {
            duration: s(60),
            faults: vec![PlannedFault {
                index: 0,
                start: s(20),
                end: Some(s(35)),
                kind: FaultKind::Crash { hosts: vec!["pg-primary".into()] },
            }],
            phases: vec![
                window(Phase::Steady, 0, 20),
                window(Phase::Fault, 20, 35),
                window(Phase::Recovery, 35, 45),
                window(Phase::Post, 45, 60),
            ],
        }
    }

    #[allow(clippy::too_many_arguments)] // a test builder: named positions read better than a struct here
    fn pair(
        h: &mut History,
        p: u32,
        op: EntryOp,
        at_ns: u64,
        done_ns: u64,
        invoke: Value,
        done: Value,
        kind: EntryType,
    ) {
        h.push(at_ns, EntryType::Invoke, Process::Client(p), op, invoke, None);
        h.push(done_ns, kind, Process::Client(p), op, done, None);
    }

    fn keyed(key: &str) -> Value {
        Value { key: Some(key.into()), ..Value::default() }
    }

    /// An invest invoked at 1 s that completed `latency_ms` later.
    pub(crate) fn invest(h: &mut History, p: u32, key: &str, kind: EntryType, latency_ms: u64) {
        pair(h, p, EntryOp::Invest, 1000 * MS, (1000 + latency_ms) * MS, keyed(key), keyed(key), kind);
    }

    /// An invest invoked at `at_ms`, answered 1 ms later.
    pub(crate) fn invest_at(h: &mut History, key: &str, at_ms: u64, kind: EntryType) {
        pair(h, 1, EntryOp::Invest, at_ms * MS, (at_ms + 1) * MS, keyed(key), keyed(key), kind);
    }

    /// An invest acknowledged at `ack_ms` with `lsn`.
    pub(crate) fn invest_lsn(h: &mut History, p: u32, key: &str, ack_ms: u64, lsn: u64) {
        let done = Value { lsn: Some(lsn), ..keyed(key) };
        pair(h, p, EntryOp::Invest, (ack_ms - 1) * MS, ack_ms * MS, keyed(key), done, EntryType::Ok);
    }

    /// A replica read answered at `at_ms`, presenting `(key, lsn)` if given.
    pub(crate) fn read(
        h: &mut History,
        p: u32,
        presented: Option<(&str, u64)>,
        at_ms: u64,
        seen: Option<bool>,
        replica_lsn: u64,
    ) {
        let invoke = Value {
            read_key: presented.map(|(k, _)| k.to_owned()),
            lsn: presented.map(|(_, l)| l),
            ..Value::default()
        };
        let done = Value {
            read_key: invoke.read_key.clone(),
            seen,
            replica_lsn: Some(replica_lsn),
            served_by: Some("pg-replica".into()),
            ..Value::default()
        };
        pair(h, p, EntryOp::History, (at_ms - 1) * MS, at_ms * MS, invoke, done, EntryType::Ok);
    }

    /// A query that was accepted with `id` (or refused: `None`) and ended `kind`.
    pub(crate) fn query(h: &mut History, p: u32, key: &str, id: Option<u64>, kind: EntryType) {
        let done = Value { id, ..keyed(key) };
        pair(h, p, EntryOp::Query, 1000 * MS, 1100 * MS, keyed(key), done, kind);
    }

    /// An order answered `kind`.
    pub(crate) fn order(h: &mut History, p: u32, key: &str, kind: EntryType) {
        pair(h, p, EntryOp::Order, 1000 * MS, 1100 * MS, keyed(key), keyed(key), kind);
    }

    #[test]
    fn fault_context_places_moments_against_the_timeline() {
        let plan = plan_with_crash();
        assert_eq!(super::fault_context(&plan, 19_500 * MS), "0.500s before crash #0 pg-primary");
        assert_eq!(super::fault_context(&plan, 21_000 * MS), "during crash #0 pg-primary (from 20.000s)");
    }
}
