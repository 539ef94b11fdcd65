//! `staleness`: reads from the replica. A read-your-writes violation is a `history` read that
//! presented its session's last acknowledged write (by LSN) and did not see it. Visibility lag is,
//! for each acknowledged write, the time from its acknowledgement to the first later replica read
//! whose applied LSN covers it; quantiles are given per phase (of the acknowledgement). That
//! figure is an upper bound — between two reads the write may have arrived at any moment — so
//! the `max` bound is judged on evidence instead: it is exceeded when a replica read answered more
//! than `max` after a write's acknowledgement still did not cover it. Sparse reads then cannot
//! fail the bound by themselves.

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckResult, Status, evidence, quantiles_ms};
use crate::faults::Plan;
use crate::history::{EntryOp, EntryType, History};
use crate::scenario::model::{Phase, StalenessCheck};

/// Check read-your-writes and visibility lag.
pub fn check(history: &History, plan: &Plan, config: &StalenessCheck) -> CheckResult {
    let mut violations = Vec::new();
    let mut presented = 0u64;
    let mut writes: Vec<(u64, u64)> = Vec::new(); // (ack time, lsn)
    let mut reads: Vec<(u64, u64)> = Vec::new(); // (answer time, replica lsn), replica answers only
    for (invoke, done) in history.ops() {
        let Some(done) = done.filter(|d| d.kind == EntryType::Ok) else { continue };
        match invoke.op {
            EntryOp::Invest => writes.extend(done.value.lsn.map(|lsn| (done.time_ns, lsn))),
            // A declared read: read-your-writes only (no LSNs, so no visibility lag).
            EntryOp::Declared(_) => {
                if done.value.seen.is_some() {
                    presented += 1;
                }
                if done.value.seen == Some(false) {
                    violations.push(json!({
                        "read_at_ms": done.time_ns / 1_000_000,
                        "op": invoke.op.name(),
                        "key": invoke.value.read_key,
                    }));
                }
            }
            EntryOp::History => {
                if done.value.seen.is_some() {
                    presented += 1;
                }
                if done.value.seen == Some(false) {
                    violations.push(json!({
                        "read_at_ms": done.time_ns / 1_000_000,
                        "key": invoke.value.read_key,
                        "presented_lsn": invoke.value.lsn,
                        "replica_lsn": done.value.replica_lsn,
                        "served_by": done.value.served_by,
                    }));
                }
                if done.value.served_by.as_deref() == Some("pg-replica")
                    && let Some(lsn) = done.value.replica_lsn
                {
                    reads.push((done.time_ns, lsn));
                }
            }
            _ => {}
        }
    }
    let lags = visibility_lags(&mut writes, &mut reads, plan);
    let mut by_phase = serde_json::Map::new();
    let mut worst_in_bound_phase: Option<u64> = None;
    let mut missed_in_bound_phase: Option<u64> = None;
    for (phase, lags) in &lags {
        let upper: Vec<u64> = lags.iter().map(|l| l.first_seen_ns).collect();
        by_phase.insert(phase.name().into(), quantiles_ms(&upper));
        if config.phase == Phase::All || config.phase == *phase {
            worst_in_bound_phase = worst_in_bound_phase.max(upper.iter().copied().max());
            missed_in_bound_phase = missed_in_bound_phase.max(lags.iter().map(|l| l.last_missed_ns).max());
        }
    }
    let observed: usize = lags.values().map(Vec::len).sum();
    let bound_ms = config.max.map(|m| m.get().as_millis() as u64);
    let missed_ms = missed_in_bound_phase.map_or(0, |ns| ns / 1_000_000);
    let over = bound_ms.is_some_and(|bound| missed_ms > bound);
    let details = json!({
        "reads_presenting_a_write_count": presented,
        "read_your_writes_violation_count": violations.len(),
        "read_your_writes_violations": evidence(violations.clone()),
        "writes_observed_count": observed,
        "writes_never_observed_count": writes.len() - observed,
        "visibility_lag_ms": by_phase,
        "max_lag_ms_bound": bound_ms,
        "missed_after_ms_max": missed_ms,
        "bound_phase": config.phase.name(),
    });
    let worst_ms = worst_in_bound_phase.map_or(0, |ns| ns / 1_000_000);
    let (status, summary) = if !violations.is_empty() {
        (
            Status::Fail,
            format!(
                "{} of {presented} reads missed their session's own acknowledged write",
                violations.len()
            ),
        )
    } else if over {
        let bound = bound_ms.unwrap_or(0);
        (
            Status::Fail,
            format!(
                "a replica read {missed_ms} ms after a write's acknowledgement still missed it (phase {}), over the {bound} ms bound",
                config.phase.name()
            ),
        )
    } else if presented == 0 && observed == 0 {
        (Status::Unknown, "no replica read presented or observed a write: nothing to judge".to_owned())
    } else {
        (
            Status::Pass,
            format!(
                "{presented} read-your-writes reads all saw their write; worst visibility lag {worst_ms} ms"
            ),
        )
    };
    CheckResult { name: "staleness".into(), status, summary, details }
}

/// One write's visibility on the replica, ns after its acknowledgement.
struct Lag {
    /// The first replica read that covered it (an upper bound on the lag).
    first_seen_ns: u64,
    /// The last replica read before that which did not (a lower bound; 0 if none).
    last_missed_ns: u64,
}

/// Lags grouped by the phase of the write's acknowledgement. Assumes a node's applied LSN never
/// goes backwards, so the first read after the ack whose running-maximum LSN covers the write is
/// the first to show it.
fn visibility_lags(
    writes: &mut [(u64, u64)],
    reads: &mut [(u64, u64)],
    plan: &Plan,
) -> BTreeMap<Phase, Vec<Lag>> {
    writes.sort_unstable();
    reads.sort_unstable();
    let mut running_max = Vec::with_capacity(reads.len());
    let mut max = 0;
    for &(_, lsn) in reads.iter() {
        max = max.max(lsn);
        running_max.push(max);
    }
    let mut lags: BTreeMap<Phase, Vec<Lag>> = BTreeMap::new();
    for &(ack_ns, lsn) in writes.iter() {
        let from = reads.partition_point(|&(t, _)| t < ack_ns);
        let seen = from + running_max[from..].partition_point(|&m| m < lsn);
        if let Some(&(read_ns, _)) = reads.get(seen) {
            // A lag that spans a fault window is the fault's doing, whatever phase the write was
            // acknowledged in. An instant action (a restore, a failback) has no window: the run
            // has no `fault` phase for it, so its lags stay in the phase they were acknowledged in.
            let spans_fault = plan.faults.iter().any(|f| {
                let (start, end) =
                    (f.start.as_nanos() as u64, f.end.unwrap_or(plan.duration).as_nanos() as u64);
                start < end && start < read_ns && ack_ns < end
            });
            let phase = if spans_fault {
                Phase::Fault
            } else {
                plan.phase_at(std::time::Duration::from_nanos(ack_ns))
            };
            let last_missed_ns = if seen > from { reads[seen - 1].0 - ack_ns } else { 0 };
            lags.entry(phase).or_default().push(Lag { first_seen_ns: read_ns - ack_ns, last_missed_ns });
        }
    }
    lags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{invest_lsn, plan_with_crash, read};

    fn config(max_ms: Option<u64>) -> StalenessCheck {
        StalenessCheck {
            max: max_ms.map(|m| crate::scenario::units::Span(std::time::Duration::from_millis(m))),
            phase: Phase::All,
        }
    }

    #[test]
    fn a_read_missing_its_own_write_fails() {
        let mut history = History::new();
        invest_lsn(&mut history, 1, "a", 10, 5);
        read(&mut history, 1, Some(("a", 5)), 20, Some(false), 4);
        let result = check(&history, &plan_with_crash(), &config(None));
        assert_eq!(result.status, Status::Fail);
        assert_eq!(result.details["read_your_writes_violation_count"], 1);
    }

    #[test]
    fn lag_is_measured_to_the_first_covering_read_and_bounded() {
        let mut history = History::new();
        invest_lsn(&mut history, 1, "a", 10, 5);
        read(&mut history, 2, None, 100, None, 4); // does not cover lsn 5
        read(&mut history, 2, None, 400, None, 6); // covers: lag 390 ms
        read(&mut history, 1, Some(("a", 5)), 500, Some(true), 6);
        let ok = check(&history, &plan_with_crash(), &config(Some(1000)));
        assert_eq!(ok.status, Status::Pass, "{}", ok.summary);
        assert_eq!(ok.details["visibility_lag_ms"]["steady"]["max"], 390.0);
        // The read at 100 ms missed the write 90 ms after its ack: a 50 ms bound is exceeded on
        // evidence; a 100 ms one is not (the write may have arrived at 101 ms).
        let too_slow = check(&history, &plan_with_crash(), &config(Some(50)));
        assert_eq!(too_slow.status, Status::Fail);
        assert_eq!(too_slow.details["missed_after_ms_max"], 90);
        let unproven = check(&history, &plan_with_crash(), &config(Some(100)));
        assert_eq!(unproven.status, Status::Pass, "{}", unproven.summary);
    }

    /// Sparse reads alone never fail the bound: the first read after a write, 2 s later, covers
    /// it; nothing shows the write arrived late.
    #[test]
    fn sparse_reads_do_not_fail_the_bound() {
        let mut history = History::new();
        invest_lsn(&mut history, 1, "a", 10, 5);
        read(&mut history, 2, None, 2010, None, 6);
        let result = check(&history, &plan_with_crash(), &config(Some(1000)));
        assert_eq!(result.status, Status::Pass, "{}", result.summary);
        assert_eq!(result.details["visibility_lag_ms"]["steady"]["max"], 2000.0);
    }

    #[test]
    fn no_reads_is_unknown() {
        let mut history = History::new();
        invest_lsn(&mut history, 1, "a", 10, 5);
        assert_eq!(check(&history, &plan_with_crash(), &config(None)).status, Status::Unknown);
    }

    /// Goal: lags are grouped only under phases the run had. Method: a plan whose one fault is
    /// an instant action (no fault window, so no `fault` phase), with a write acknowledged
    /// before it and first seen after it.
    #[test]
    fn lags_are_grouped_under_phases_the_run_had() {
        use crate::faults::{FaultKind, PhaseWindow, Plan, PlannedFault};
        let s = std::time::Duration::from_secs;
        let plan = Plan {
            duration: s(60),
            faults: vec![PlannedFault {
                index: 0,
                start: s(20),
                end: Some(s(20)),
                kind: FaultKind::Failback { node: "pg-primary".into() },
            }],
            phases: vec![PhaseWindow { phase: Phase::Steady, start: s(0), end: s(60) }],
        };
        let mut history = History::new();
        invest_lsn(&mut history, 1, "a", 19_900, 5);
        read(&mut history, 2, None, 20_100, None, 5);
        let result = check(&history, &plan, &config(None));
        let phases: Vec<&String> = result.details["visibility_lag_ms"].as_object().unwrap().keys().collect();
        assert_eq!(phases, ["steady"], "{}", result.details);
    }
}
