//! Shrinking a failing scenario to a small reproduction: greedy, one reduction at a time, each
//! candidate judged on several seeds, until a full pass over every reduction finds none that still
//! fails (the result is then *1-minimal*) or the run budget is spent.
//!
//! Why several seeds: a bug that needs an operation in flight at the moment of a crash fails on
//! some seeds and not others. Judged on the failing seed alone, almost every reduction (a fault
//! fewer, a stream fewer, a lower rate) changes the interleaving and looks like it "fixed" the bug,
//! so nothing shrinks. Each candidate is judged on the failing seed and a few more
//! ([`seeds`], deterministically derived from it); a candidate that fails the same checks on any
//! of them is kept, with the seed it failed on, the original seed tried first so that it is kept
//! whenever it still fails. The shrunk scenario carries that seed: it replays on its own.
//!
//! Reductions ([`candidates`]), those that remove the most and make runs cheapest first: drop a
//! fault; drop a check that is not failing; drop a workload stream; end the run sooner; fewer API
//! replicas, fewer workers; drop a host from a partition or latency side; halve a fault's window;
//! move a fault earlier; halve a stream's rate. Every candidate is validated before it runs, so an
//! invalid reduction costs nothing.
//!
//! The search walks the candidate list round and round: after a reduction is kept it carries on
//! from the same place in the new scenario's list rather than from the top, so reductions that
//! were just refused are not retried at once. When as many candidates in a row as the list holds
//! were refused, every single reduction of the current scenario has been tried on every seed and
//! none still fails: that is the final pass, and the scenario is 1-minimal.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::model::{CheckName, Scenario};
use crate::scenario::units::Span;

/// How a candidate fared on one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trial {
    /// The candidate does not validate; it did not run (and costs nothing).
    Invalid,
    /// It ran and did not fail the same checks.
    Passed,
    /// It ran and failed the same checks.
    Failed,
    /// It did not run: the exploration's time budget is spent.
    OutOfTime,
}

/// Why a shrink stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// A final pass found no single reduction that still fails on any shrink seed.
    Minimal,
    /// `--shrink-runs` runs were spent first.
    RunBudget,
    /// The exploration's `--time-budget` was spent first.
    TimeBudget,
}

impl Stop {
    /// How the console says it.
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Minimal => "1-minimal",
            Stop::RunBudget => "not 1-minimal: the run budget (--shrink-runs) was spent",
            Stop::TimeBudget => "not 1-minimal: the time budget was spent",
        }
    }
}

/// The outcome of a shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest scenario found that still fails, its `seed` one it fails on.
    pub scenario: Scenario,
    /// Candidate runs spent.
    pub runs: usize,
    /// Why the shrink stopped.
    pub stop: Stop,
}

/// Shrink seeds are drawn below this, so that a shrunk file's `seed:` stays short.
pub const SHRINK_SEED_MAX: u64 = 1_000_000;

/// The seeds every candidate is judged on: `seed` (the failing one) first, then `count - 1` more
/// from its `shrink/N` streams, distinct. The same `seed` gives the same list on every run.
pub fn seeds(seed: u64, count: usize) -> Vec<u64> {
    let mut out = vec![seed];
    // Collisions below SHRINK_SEED_MAX are rare; four times the count bounds the search.
    for stream in 1..=count.max(1) * 4 {
        if out.len() >= count.max(1) {
            break;
        }
        let next = crate::seed::derive(seed, &format!("shrink/{stream}")) % SHRINK_SEED_MAX;
        if !out.contains(&next) {
            out.push(next);
        }
    }
    out
}

/// A candidate's judgement over the seeds.
struct Judged {
    /// The first seed (in trial order) it failed on.
    failed_at: Option<u64>,
    /// Runs spent.
    runs: usize,
    out_of_time: bool,
    /// Judged on fewer seeds than all for want of budget, and failed on none of them.
    partial: bool,
}

/// Try `candidate` on `order`'s seeds, at most `runs_cap` runs, stopping at the first failure.
fn judge(
    candidate: &Scenario,
    order: &[u64],
    runs_cap: usize,
    trial: &(impl Fn(&Scenario) -> Trial + Sync),
) -> Judged {
    let mut judged = Judged { failed_at: None, runs: 0, out_of_time: false, partial: runs_cap < order.len() };
    for &seed in order.iter().take(runs_cap) {
        let mut at_seed = candidate.clone();
        at_seed.seed = seed;
        match trial(&at_seed) {
            Trial::Invalid => {
                judged.partial = false;
                break;
            }
            Trial::OutOfTime => {
                judged.out_of_time = true;
                break;
            }
            Trial::Passed => judged.runs += 1,
            Trial::Failed => {
                judged.runs += 1;
                judged.failed_at = Some(seed);
                judged.partial = false;
                break;
            }
        }
    }
    judged
}

/// The order a candidate of `current` is tried in: the original seed first (kept whenever it
/// still fails), then the seed `current` fails on (the likeliest to fail again), then the rest.
fn seed_order(seeds: &[u64], current: u64) -> Vec<u64> {
    let mut order = vec![seeds[0]];
    if current != seeds[0] {
        order.push(current);
    }
    order.extend(seeds[1..].iter().filter(|&&s| s != current));
    order
}

/// Shrink `failing` (whose `seed` is `seeds[0]`, on which it fails): `trial` runs one candidate
/// on the seed it carries and says whether it fails the same checks. Checks named in
/// `keep_checks` are never dropped. At most `runs_max` runs; candidates are judged `jobs` at a
/// time, and of a batch the first in candidate order that still fails is kept, so the result
/// does not depend on which thread finished first (nor, budget apart, on `jobs`).
pub fn shrink(
    failing: &Scenario,
    seeds: &[u64],
    keep_checks: &[&str],
    runs_max: usize,
    jobs: usize,
    trial: impl Fn(&Scenario) -> Trial + Sync,
) -> Shrunk {
    assert!(!seeds.is_empty() && failing.seed == seeds[0], "the failing seed comes first");
    let mut current = failing.clone();
    let (mut runs, mut position, mut refused_in_row) = (0, 0, 0);
    let stop = loop {
        let all = candidates(&current, keep_checks);
        if refused_in_row >= all.len() {
            break Stop::Minimal;
        }
        let left = runs_max.saturating_sub(runs);
        if left == 0 {
            break Stop::RunBudget;
        }
        // Never start more candidates than the budget can judge in full; the last one may be
        // judged on fewer seeds, and is then kept only if it fails on them.
        let runs_cap = left.min(seeds.len());
        let count = jobs.max(1).min(all.len() - refused_in_row).min((left / seeds.len()).max(1));
        position %= all.len();
        let batch: Vec<&Scenario> = (0..count).map(|k| &all[(position + k) % all.len()]).collect();
        let order = seed_order(seeds, current.seed);
        let judged: Vec<Judged> = if batch.len() == 1 {
            vec![judge(batch[0], &order, runs_cap, &trial)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|candidate| scope.spawn(|| judge(candidate, &order, runs_cap, &trial)))
                    .collect();
                handles.into_iter().map(|h| h.join().expect("a shrink run panicked")).collect()
            })
        };
        runs += judged.iter().map(|j| j.runs).sum::<usize>();
        let kept = judged.iter().position(|j| j.failed_at.is_some());
        let out_of_time = judged.iter().position(|j| j.out_of_time);
        match (kept, out_of_time) {
            (Some(k), None) => keep(&mut current, batch[k], judged[k].failed_at, &mut position, k),
            (Some(k), Some(t)) if k < t => {
                keep(&mut current, batch[k], judged[k].failed_at, &mut position, k)
            }
            (_, Some(_)) => break Stop::TimeBudget,
            (None, None) if judged.iter().any(|j| j.partial) => break Stop::RunBudget,
            (None, None) => {
                position += count;
                refused_in_row += count;
                continue;
            }
        }
        refused_in_row = 0;
    };
    Shrunk { scenario: current, runs, stop }
}

fn keep(
    current: &mut Scenario,
    candidate: &Scenario,
    seed: Option<u64>,
    position: &mut usize,
    offset: usize,
) {
    *current = candidate.clone();
    current.seed = seed.expect("a kept candidate failed on a seed");
    *position += offset;
}

/// Every one-step reduction of `scenario`, in the order they are tried (see the module doc).
/// Checks named in `keep_checks` are never dropped.
pub fn candidates(scenario: &Scenario, keep_checks: &[&str]) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut with = |change: &dyn Fn(&mut Scenario)| {
        let mut next = scenario.clone();
        change(&mut next);
        out.push(next);
    };
    for i in 0..scenario.faults.len() {
        with(&|s| {
            s.faults.remove(i);
        });
    }
    for name in CheckName::ALL {
        if crate::scenario::configured(scenario, name) && !keep_checks.contains(&name.name()) {
            with(&|s| drop_check(s, name));
        }
    }
    if scenario.workload.len() > 1 {
        for i in 0..scenario.workload.len() {
            with(&|s| drop_stream(s, i, keep_checks));
        }
    }
    let (tight, duration) = (tight_duration(scenario), scenario.duration.get());
    if tight < duration {
        with(&|s| s.duration = Span(tight));
    }
    let half_duration = whole_seconds(duration / 2);
    if half_duration > tight && half_duration < duration {
        with(&|s| s.duration = Span(half_duration));
    }
    if scenario.stack.api_replicas > 1 {
        with(&|s| s.stack.api_replicas -= 1);
    }
    if scenario.stack.workers > 1 {
        with(&|s| s.stack.workers -= 1);
    }
    for (i, fault) in scenario.faults.iter().enumerate() {
        let sides = fault.partition.as_ref().or(fault.latency.as_ref().map(|l| &l.between));
        for (side, hosts) in sides.into_iter().flatten().enumerate() {
            for host in (0..hosts.len()).filter(|_| hosts.len() > 1) {
                with(&|s| drop_host(s, i, side, host));
            }
        }
    }
    for (i, fault) in scenario.faults.iter().enumerate() {
        if let Some(window) = fault.for_.filter(|w| w.get() >= WINDOW_MIN * 2) {
            with(&|s| s.faults[i].for_ = Some(half(window)));
        }
        if let Some(window) = fault.restart_after.filter(|w| w.get() >= WINDOW_MIN * 2) {
            with(&|s| s.faults[i].restart_after = Some(half(window)));
        }
    }
    for (i, fault) in scenario.faults.iter().enumerate() {
        if fault.at.get() > Duration::ZERO {
            with(&|s| s.faults[i].at = Span(round_down(fault.at.get() / 2)));
        }
    }
    for (i, load) in scenario.workload.iter().enumerate() {
        if load.rate.count >= 2.0 {
            with(&|s| s.workload[i].rate.count = (load.rate.count / 2.0).floor());
        }
    }
    out
}

/// Windows are not halved below this, and every time a reduction writes is a multiple of it.
const WINDOW_MIN: Duration = Duration::from_millis(100);

fn drop_check(scenario: &mut Scenario, name: CheckName) {
    let checks = &mut scenario.checks;
    match name {
        CheckName::Durability => checks.durability = None,
        CheckName::Staleness => checks.staleness = None,
        CheckName::Saga => checks.saga = None,
        CheckName::Delivery => checks.delivery = None,
        CheckName::Files => checks.files = None,
        CheckName::Slo => checks.slo.clear(),
        CheckName::Recovery => checks.recovery = None,
        CheckName::Restore => checks.restore = None,
        CheckName::Invariants => checks.invariants.clear(),
        CheckName::Conservation => checks.conservation.clear(),
    }
}

/// Drop a stream, and when no other stream issues its op, the SLO rows on it and the checks
/// that judge only it, unless they are kept (either would make the scenario invalid).
fn drop_stream(scenario: &mut Scenario, index: usize, keep_checks: &[&str]) {
    let dropped = scenario.workload.remove(index);
    let name = dropped.op_name().to_owned();
    if scenario.workload.iter().any(|l| l.op_name() == name) {
        return;
    }
    scenario.checks.slo.retain(|row| row.op.name() != name);
    let Some(op) = dropped.op else { return };
    for check in CheckName::ALL {
        if crate::scenario::ops_needed(check).contains(&op) && !keep_checks.contains(&check.name()) {
            drop_check(scenario, check);
        }
    }
}

fn drop_host(scenario: &mut Scenario, fault: usize, side: usize, host: usize) {
    let f = &mut scenario.faults[fault];
    let sides = match (&mut f.partition, &mut f.latency) {
        (Some(p), _) => p,
        (None, Some(l)) => &mut l.between,
        _ => return,
    };
    sides[side].remove(host);
}

/// The shortest run that still holds every fault: one second past the last heal (a crash that
/// is never restarted "heals" when it starts), in whole seconds.
fn tight_duration(scenario: &Scenario) -> Duration {
    let last_heal = scenario
        .faults
        .iter()
        .map(|f| f.at.get() + f.for_.or(f.restart_after).map_or(Duration::ZERO, Span::get))
        .max()
        .unwrap_or_default();
    whole_seconds(last_heal + Duration::from_secs(1))
}

/// Rounded up to whole seconds, at least one.
fn whole_seconds(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
        .max(Duration::from_secs(1))
}

/// Rounded down to a multiple of [`WINDOW_MIN`].
fn round_down(duration: Duration) -> Duration {
    let step = WINDOW_MIN.as_millis() as u64;
    Duration::from_millis(duration.as_millis() as u64 / step * step)
}

fn half(window: Span) -> Span {
    Span(round_down(window.get() / 2).max(WINDOW_MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    fn scenario() -> Scenario {
        let text = "name: t\nseed: 5\nduration: 60s\nworkload: [ { op: invest, rate: 8/s }, { op: history, rate: 4/s } ]\nfaults:\n  - { at: 5s, for: 4s, partition: [[api-1, api-2], [pg-replica]] }\n  - { at: 20s, crash: pg-primary, restart_after: 16s }\n  - { at: 40s, for: 2s, pause: pricefeed }\nchecks: { durability: {}, staleness: {} }\n";
        load_str(text, "t.yaml", &[]).unwrap().scenario
    }

    /// A stand-in for a run: it "fails" while pg-primary is crashed for at least 2 s and some
    /// invest load remains — on seed 5 only while the crash starts at 10 s or later, and on the
    /// other shrink seeds whatever the start (a timing-sensitive bug that one seed cannot shrink).
    fn fails(s: &Scenario) -> Trial {
        if crate::explore::reload(s, "candidate").is_err() {
            return Trial::Invalid;
        }
        let crash = s.faults.iter().any(|f| {
            f.crash.as_deref() == Some("pg-primary")
                && f.restart_after.is_some_and(|r| r.get() >= Duration::from_secs(2))
                && (s.seed != 5 || f.at.get() >= Duration::from_secs(10))
        });
        let invest = s.workload.iter().any(|l| l.op == Some(crate::scenario::model::Op::Invest));
        if crash && invest { Trial::Failed } else { Trial::Passed }
    }

    #[test]
    fn shrinks_to_the_one_fault_that_matters_on_the_seed_that_still_fails() {
        let seeds = seeds(5, 4);
        let shrunk = shrink(&scenario(), &seeds, &["durability"], 1000, 1, fails);
        let in_parallel = shrink(&scenario(), &seeds, &["durability"], 1000, 3, fails);
        assert_eq!(format!("{:?}", in_parallel.scenario), format!("{:?}", shrunk.scenario));
        assert_eq!(shrunk.stop, Stop::Minimal);
        let s = &shrunk.scenario;
        assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
        assert_eq!(s.faults[0].restart_after, Some(Span(Duration::from_secs(2))));
        assert_eq!(s.faults[0].at, Span(Duration::ZERO), "moved as early as a seed still fails");
        assert_ne!(s.seed, 5, "seed 5 no longer fails once the crash moved before 10 s");
        assert!(seeds.contains(&s.seed));
        assert_eq!(s.workload.len(), 1);
        assert_eq!(s.workload[0].rate.count, 1.0);
        assert!(s.checks.staleness.is_none() && s.checks.durability.is_some());
        assert_eq!(s.duration.get(), Duration::from_secs(3));
        assert_eq!(fails(s), Trial::Failed);
        // 1-minimal: no single reduction fails on any seed.
        for candidate in candidates(s, &["durability"]) {
            for &seed in &seeds {
                let mut at_seed = candidate.clone();
                at_seed.seed = seed;
                assert_ne!(fails(&at_seed), Trial::Failed, "{candidate:?}");
            }
        }
    }

    #[test]
    fn the_original_seed_is_kept_while_it_still_fails() {
        // Fails on every seed: every reduction is kept on the first seed tried, the original.
        let shrunk = shrink(&scenario(), &seeds(5, 4), &[], 1000, 2, |s| {
            if crate::explore::reload(s, "candidate").is_err() { Trial::Invalid } else { Trial::Failed }
        });
        assert_eq!(shrunk.scenario.seed, 5);
        assert_eq!(shrunk.stop, Stop::Minimal);
        assert!(shrunk.scenario.faults.is_empty());
    }

    #[test]
    fn the_run_budget_is_respected_and_invalid_candidates_are_free() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let shrunk = shrink(&scenario(), &seeds(5, 4), &[], 10, 2, |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Trial::Passed
        });
        assert_eq!((shrunk.runs, calls.into_inner(), shrunk.stop), (10, 10, Stop::RunBudget));
        let shrunk = shrink(&scenario(), &seeds(5, 4), &[], 3, 2, |_| Trial::Invalid);
        assert_eq!((shrunk.runs, shrunk.stop), (0, Stop::Minimal));
        assert_eq!(shrunk.scenario.faults.len(), 3);
        let shrunk = shrink(&scenario(), &seeds(5, 4), &[], 30, 2, |_| Trial::OutOfTime);
        assert_eq!((shrunk.runs, shrunk.stop), (0, Stop::TimeBudget));
    }

    #[test]
    fn shrink_seeds_are_distinct_derived_and_start_with_the_failing_one() {
        let four = seeds(42, 4);
        assert_eq!(four.len(), 4);
        assert_eq!(four[0], 42);
        assert_eq!(four, seeds(42, 4));
        assert_ne!(four[1..], seeds(43, 4)[1..]);
        assert!(four.iter().all(|&s| s == 42 || s < SHRINK_SEED_MAX));
        assert_eq!(seeds(42, 1), vec![42]);
    }

    #[test]
    fn a_partition_side_loses_one_host_at_a_time() {
        let sides: Vec<_> = candidates(&scenario(), &[])
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
