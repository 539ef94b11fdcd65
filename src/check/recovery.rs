//! `recovery`: for each fault, the time from its start to the first *sustained* success — a
//! window of `sustained` length in which every operation succeeded — counted from the first
//! failure the fault caused (a fault that caused no failure recovered at once); and the longest
//! gap in the run without any successful operation.

use std::time::Duration;

use serde_json::json;

use super::{CheckResult, Status};
use crate::faults::Plan;
use crate::history::{EntryType, History};
use crate::scenario::model::{RecoverFrom, RecoveryCheck};

/// Check recovery times against the RTO.
pub fn check(history: &History, plan: &Plan, config: &RecoveryCheck) -> CheckResult {
    // (intended start, ok?) for every client op, in start order.
    let mut ops: Vec<(u64, bool)> = history
        .ops()
        .into_iter()
        .filter(|(invoke, _)| invoke.op.is_client_op())
        .map(|(invoke, done)| (invoke.time_ns, done.is_some_and(|d| d.kind == EntryType::Ok)))
        .collect();
    ops.sort_unstable();
    let sustained_ns = config.sustained.get().as_nanos() as u64;
    let rto_ns = config.rto.get().as_nanos() as u64;
    let end_ns = plan.duration.as_nanos() as u64;
    let mut faults = Vec::new();
    let mut worst: Option<Option<u64>> = None;
    for fault in &plan.faults {
        let start_ns = match config.from {
            RecoverFrom::Start => fault.start,
            RecoverFrom::End => fault.end.unwrap_or(plan.duration),
        }
        .as_nanos() as u64;
        let rto = recovery_ns(&ops, start_ns, sustained_ns, end_ns);
        worst = Some(match (worst, rto) {
            (None, r) => r,
            (Some(None), _) | (_, None) => None,
            (Some(Some(a)), Some(b)) => Some(a.max(b)),
        });
        faults.push(json!({
            "fault": fault.index,
            "kind": fault.kind.name(),
            "start_ms": start_ns / 1_000_000,
            "rto_ms": rto.map(|r| r / 1_000_000),
            "recovered": rto.is_some(),
        }));
    }
    let gap_ns = longest_gap(&ops, end_ns);
    let details = json!({
        "rto_ms_bound": rto_ns / 1_000_000,
        "measured_from": if config.from == RecoverFrom::End { "fault end" } else { "fault start" },
        "sustained_ms": sustained_ns / 1_000_000,
        "faults": faults,
        "longest_gap_without_success_ms": gap_ns / 1_000_000,
    });
    let bound = Duration::from_nanos(rto_ns).as_millis();
    let (status, summary) = match worst {
        None => (Status::Unknown, "no fault to recover from".to_owned()),
        Some(None) => (Status::Fail, "a fault was never recovered from before the run ended".to_owned()),
        Some(Some(w)) if w > rto_ns => {
            (Status::Fail, format!("slowest recovery took {} ms, over the {bound} ms RTO", w / 1_000_000))
        }
        Some(Some(w)) => (
            Status::Pass,
            format!(
                "every fault recovered within {} ms (RTO {bound} ms); longest gap without success {} ms",
                w / 1_000_000,
                gap_ns / 1_000_000
            ),
        ),
    };
    CheckResult { name: "recovery".into(), status, summary, details }
}

/// Time from `start` to the first sustained success after the first failure at or after `start`;
/// `None` if the run ends first.
fn recovery_ns(ops: &[(u64, bool)], start: u64, sustained: u64, end: u64) -> Option<u64> {
    let from = ops.partition_point(|&(t, _)| t < start);
    let Some(first_failure) = ops[from..].iter().position(|&(_, ok)| !ok).map(|i| from + i) else {
        return Some(0);
    };
    let mut candidate: Option<usize> = None;
    for i in first_failure..ops.len() {
        let (t, ok) = ops[i];
        if !ok {
            candidate = None;
            continue;
        }
        let begin = *candidate.get_or_insert(i);
        let window_start = ops[begin].0;
        if t >= window_start + sustained || (t + sustained >= end && i + 1 == ops.len()) {
            return Some(window_start - start);
        }
    }
    None
}

/// Longest stretch without a successful op, including the start and end of the run.
fn longest_gap(ops: &[(u64, bool)], end: u64) -> u64 {
    let mut last = 0;
    let mut gap = 0;
    for &(t, ok) in ops {
        if ok {
            gap = gap.max(t.saturating_sub(last));
            last = t;
        }
    }
    gap.max(end.saturating_sub(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{invest_at, plan_with_crash};
    use crate::scenario::units::Span;

    fn config(rto_s: u64) -> RecoveryCheck {
        RecoveryCheck {
            rto: Span(Duration::from_secs(rto_s)),
            sustained: Span(Duration::from_secs(1)),
            from: RecoverFrom::Start,
        }
    }

    #[test]
    fn rto_counts_to_the_first_sustained_success() {
        let mut history = History::new();
        // ok every 100 ms, except failures from 20 s to 23 s (the crash is at 20 s).
        for ms in (0..60_000).step_by(100) {
            let ok = !(20_000..23_000).contains(&ms);
            invest_at(&mut history, &format!("k{ms}"), ms, if ok { EntryType::Ok } else { EntryType::Fail });
        }
        let result = check(&history, &plan_with_crash(), &config(5));
        assert_eq!(result.status, Status::Pass, "{}", result.summary);
        assert_eq!(result.details["faults"][0]["rto_ms"], 3000);
        assert_eq!(result.details["longest_gap_without_success_ms"], 3100);
        assert_eq!(check(&history, &plan_with_crash(), &config(2)).status, Status::Fail);
    }

    #[test]
    fn never_recovering_fails() {
        let mut history = History::new();
        for ms in (0..60_000).step_by(100) {
            invest_at(
                &mut history,
                &format!("k{ms}"),
                ms,
                if ms < 20_000 { EntryType::Ok } else { EntryType::Fail },
            );
        }
        assert_eq!(check(&history, &plan_with_crash(), &config(5)).status, Status::Fail);
    }
}
