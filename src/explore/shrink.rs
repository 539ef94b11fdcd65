//! Shrinking a failing scenario: greedy, one simplification at a time, keeping each that still
//! fails the same checks, until none does or the run budget is spent.
//!
//! Simplifications, biggest first: drop a fault; drop a workload stream; halve a fault's window
//! (`for`, `restart_after`); drop a host from a partition or latency side; halve a stream's rate;
//! end the run sooner (ten seconds after the last fault heals, or half as long). Every candidate is
//! validated before it runs, so an invalid simplification costs nothing. The seed stays fixed: a
//! shrunk scenario is a concrete schedule that replays on its own.

use std::time::Duration;

use crate::scenario::model::Scenario;
use crate::scenario::units::Span;

/// The outcome of a shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest scenario found that still fails.
    pub scenario: Scenario,
    /// Candidate runs spent.
    pub runs: usize,
}

/// Shrink `failing` with `still_fails` (which runs a candidate and answers whether the same
/// checks still fail; `None` when the candidate is invalid and was not run), spending at most
/// `runs_max` runs. Candidates are tried `jobs` at a time, and of a batch the first in candidate
/// order that still fails is kept, so the result does not depend on which thread finished first.
pub fn shrink(
    failing: &Scenario,
    runs_max: usize,
    jobs: usize,
    still_fails: impl Fn(&Scenario) -> Option<bool> + Sync,
) -> Shrunk {
    let mut current = failing.clone();
    let mut runs = 0;
    'improve: while runs < runs_max {
        let all = candidates(&current);
        let mut rest = all.as_slice();
        while !rest.is_empty() && runs < runs_max {
            let (batch, later) = rest.split_at(jobs.max(1).min(runs_max - runs).min(rest.len()));
            rest = later;
            let answers: Vec<Option<bool>> = if batch.len() == 1 {
                vec![still_fails(&batch[0])]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        batch.iter().map(|candidate| scope.spawn(|| still_fails(candidate))).collect();
                    handles.into_iter().map(|h| h.join().expect("a shrink run panicked")).collect()
                })
            };
            runs += answers.iter().filter(|a| a.is_some()).count();
            if let Some(kept) = answers.iter().position(|a| *a == Some(true)) {
                current = batch[kept].clone();
                continue 'improve;
            }
        }
        break;
    }
    Shrunk { scenario: current, runs }
}

/// Every one-step simplification of `scenario`, biggest first.
pub fn candidates(scenario: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let with = |change: &dyn Fn(&mut Scenario)| {
        let mut next = scenario.clone();
        change(&mut next);
        next
    };
    for i in 0..scenario.faults.len() {
        out.push(with(&|s| {
            s.faults.remove(i);
        }));
    }
    if scenario.workload.len() > 1 {
        for i in 0..scenario.workload.len() {
            out.push(with(&|s| {
                s.workload.remove(i);
            }));
        }
    }
    for (i, fault) in scenario.faults.iter().enumerate() {
        if let Some(window) = fault.for_.filter(|w| w.get() >= Duration::from_millis(400)) {
            out.push(with(&|s| s.faults[i].for_ = Some(half(window))));
        }
        if let Some(window) = fault.restart_after.filter(|w| w.get() >= Duration::from_millis(400)) {
            out.push(with(&|s| s.faults[i].restart_after = Some(half(window))));
        }
        let sides = fault.partition.as_ref().or(fault.latency.as_ref().map(|l| &l.between));
        for (side, hosts) in sides.into_iter().flatten().enumerate() {
            for host in 0..hosts.len() {
                if hosts.len() > 1 {
                    out.push(with(&|s| {
                        let f = &mut s.faults[i];
                        let sides = match (&mut f.partition, &mut f.latency) {
                            (Some(p), _) => p,
                            (None, Some(l)) => &mut l.between,
                            _ => return,
                        };
                        sides[side].remove(host);
                    }));
                }
            }
        }
    }
    for (i, load) in scenario.workload.iter().enumerate() {
        if load.rate.per_second() >= 2.0 {
            out.push(with(&|s| s.workload[i].rate.count = (load.rate.count / 2.0).floor()));
        }
    }
    let last_heal = scenario
        .faults
        .iter()
        .map(|f| f.at.get() + f.for_.or(f.restart_after).map_or(Duration::ZERO, Span::get))
        .max()
        .unwrap_or_default();
    let sooner = (last_heal + Duration::from_secs(10)).max(scenario.duration.get() / 2);
    if sooner + Duration::from_secs(1) < scenario.duration.get() {
        let sooner = Duration::from_secs(sooner.as_secs().max(1));
        out.push(with(&|s| s.duration = Span(sooner)));
    }
    out
}

fn half(window: Span) -> Span {
    Span(Duration::from_millis((window.get().as_millis() as u64 / 2 / 100).max(1) * 100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    fn scenario() -> Scenario {
        let text = "name: t\nduration: 60s\nworkload: [ { op: invest, rate: 8/s }, { op: history, rate: 4/s } ]\nfaults:\n  - { at: 5s, for: 4s, partition: [[api-1, api-2], [pg-replica]] }\n  - { at: 20s, crash: pg-primary, restart_after: 16s }\n  - { at: 40s, for: 2s, pause: broker }\n";
        load_str(text, "t.yaml", &[]).unwrap().scenario
    }

    #[test]
    fn shrinks_to_the_one_fault_that_matters_with_a_shorter_window_and_less_load() {
        // A stand-in for a run: it "fails" while pg-primary is crashed for at least 2 s and some
        // invest load remains.
        let fails = |s: &Scenario| {
            let crash = s.faults.iter().any(|f| {
                f.crash.as_deref() == Some("pg-primary")
                    && f.restart_after.is_some_and(|r| r.get() >= Duration::from_secs(2))
            });
            Some(crash && s.workload.iter().any(|l| l.op == crate::scenario::model::Op::Invest))
        };
        let shrunk = shrink(&scenario(), 200, 1, fails);
        let in_parallel = shrink(&scenario(), 200, 3, fails);
        assert_eq!(format!("{:?}", in_parallel.scenario), format!("{:?}", shrunk.scenario));
        let s = &shrunk.scenario;
        assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
        assert_eq!(s.faults[0].restart_after, Some(Span(Duration::from_secs(2))));
        assert_eq!(s.workload.len(), 1);
        assert_eq!(s.workload[0].rate.count, 1.0);
        assert!(s.duration.get() <= Duration::from_secs(32), "{:?}", s.duration);
        assert!(fails(s).unwrap());
    }

    #[test]
    fn the_run_budget_is_respected_and_invalid_candidates_are_free() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let shrunk = shrink(&scenario(), 3, 2, |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(false)
        });
        assert_eq!((shrunk.runs, calls.into_inner()), (3, 3));
        let shrunk = shrink(&scenario(), 3, 2, |_| None);
        assert_eq!(shrunk.runs, 0);
        assert_eq!(shrunk.scenario.faults.len(), 3);
    }

    #[test]
    fn a_partition_side_loses_one_host_at_a_time() {
        let sides: Vec<_> = candidates(&scenario())
            .into_iter()
            .filter_map(|s| s.faults.first().and_then(|f| f.partition.clone()))
            .filter(|p| p[0].len() == 1)
            .collect();
        assert_eq!(
            sides,
            vec![
                vec![vec!["api-2".to_owned()], vec!["pg-replica".to_owned()]],
                vec![vec!["api-1".to_owned()], vec!["pg-replica".to_owned()]]
            ]
        );
    }
}
