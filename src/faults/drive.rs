//! The async driver of the fault lifecycle for real backends: one task per fault on the run's
//! clock, each applying and reverting through an [`Actuator`], all deciding through one
//! [`Lifecycle`]. The contract an actuator meets is in the module doc of `faults/`.
//!
//! Each fault lives concurrently (a restore takes seconds to apply; it must not delay the
//! faults after it). When one fails — resolving, applying or reverting — every other is told to
//! stop: a pending fault is never applied, a fault in force is reverted at once, and the first
//! error is returned once nothing is left in force.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::effect::Counters;
use super::lifecycle::Lifecycle;
use super::{FaultEffect, Plan, PlannedFault};
use crate::history::History;

/// A backend's hands on its stack: what a fault hits, applying it, reverting it, and the
/// counters its effect is computed from. See the contract in the module doc of `faults/`.
#[async_trait]
pub trait Actuator: Send + Sync {
    /// The hosts `fault` hits, resolved when it starts (a role such as "the current leader" is
    /// resolved then). Empty: the fault is vacuous — recorded, not applied, not an error.
    async fn targets(&self, fault: &PlannedFault) -> Result<Vec<String>, String>;
    /// Apply `fault` to `hosts`. On error it may be partly applied: `revert` follows at once.
    async fn apply(&self, fault: &PlannedFault, hosts: &[String]) -> Result<(), String>;
    /// Undo `apply` (also a partial one); tolerate what is already undone (a restarted
    /// container lost its packet filter).
    async fn revert(&self, fault: &PlannedFault, hosts: &[String]) -> Result<(), String>;
    /// The backend's counters over what `fault` touches, read just before it is applied and
    /// just before it is reverted. A counter it cannot read counts 0 (say why in the log).
    async fn counters(&self, fault: &PlannedFault, hosts: &[String]) -> Counters;
}

/// What every fault's task shares.
struct Shared {
    actuator: Arc<dyn Actuator>,
    lifecycle: Mutex<Lifecycle>,
    /// t = 0 of the run.
    start: Instant,
    history: Arc<Mutex<History>>,
    /// Fired by the first fault that fails.
    abort: CancellationToken,
}

/// Run every fault of `plan` through `actuator` on the run's clock (`start` is t = 0),
/// recording `fault_start` / `fault_stop` in `history`. Returns once every fault has been
/// reverted — at the end of the run at the latest, before the drain — with the counted effects
/// (indexed by `PlannedFault::index`; the history's part is filled in after the drain,
/// [`super::complete_effects`]). On error, every fault applied is reverted first.
pub async fn drive(
    actuator: Arc<dyn Actuator>,
    plan: &Plan,
    start: Instant,
    history: Arc<Mutex<History>>,
) -> Result<Vec<FaultEffect>, String> {
    let lifecycle = Mutex::new(Lifecycle::new(plan));
    let abort = CancellationToken::new();
    let shared = Arc::new(Shared { actuator, lifecycle, start, history, abort });
    let mut lives = tokio::task::JoinSet::new();
    for fault in plan.faults.clone() {
        lives.spawn(life(shared.clone(), fault));
    }
    let mut first_error = None;
    while let Some(joined) = lives.join_next().await {
        let outcome = joined.map_err(|e| format!("a fault's task died: {e}")).and_then(|lived| lived);
        if let Err(error) = outcome {
            tracing::warn!(%error, "a fault failed; reverting every fault in force");
            shared.abort.cancel();
            first_error.get_or_insert(error);
        }
    }
    // A task that died (a panic) may have left its fault in force.
    let left = shared.lifecycle.lock().expect("lifecycle lock").in_force();
    for (fault, _) in left {
        if let Err(error) = shared.stop(&fault).await {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(shared.lifecycle.lock().expect("lifecycle lock").effects()),
    }
}

/// One fault's life (the lifecycle's module doc), cut short when another fault fails.
async fn life(shared: Arc<Shared>, fault: PlannedFault) -> Result<(), String> {
    let (applies_at, reverts_at) = {
        let lifecycle = shared.lifecycle.lock().expect("lifecycle lock");
        (lifecycle.applies_at(&fault), lifecycle.reverts_at(&fault))
    };
    if !shared.sleep_until(applies_at).await {
        return Ok(());
    }
    let what = |doing: &str, error: String| {
        format!("fault #{} ({}) {doing}: {error}", fault.index, fault.kind.name())
    };
    let hosts = shared.actuator.targets(&fault).await.map_err(|e| what("resolving its targets", e))?;
    let before = shared.counters(&fault, &hosts).await;
    {
        let now = shared.start.elapsed();
        let mut lifecycle = shared.lifecycle.lock().expect("lifecycle lock");
        lifecycle.begin(
            &fault,
            now,
            hosts.clone(),
            before,
            &mut shared.history.lock().expect("history lock"),
        );
    }
    if !hosts.is_empty()
        && let Err(error) = shared.actuator.apply(&fault, &hosts).await
    {
        if let Err(also) = shared.stop(&fault).await {
            tracing::warn!(fault = fault.index, %also, "reverting a fault that failed to apply");
        }
        return Err(what("applying", error));
    }
    shared.sleep_until(reverts_at).await;
    shared.stop(&fault).await
}

impl Shared {
    /// Sleep until `at` on the run's clock; false if the run was aborted first.
    async fn sleep_until(&self, at: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.abort.cancelled() => false,
            () = tokio::time::sleep_until(self.start + at) => true,
        }
    }

    /// The actuator's counters, or zeros for a vacuous fault.
    async fn counters(&self, fault: &PlannedFault, hosts: &[String]) -> Counters {
        if hosts.is_empty() { Counters::default() } else { self.actuator.counters(fault, hosts).await }
    }

    /// Read the counters, revert `fault` (in force), record its stop.
    async fn stop(&self, fault: &PlannedFault) -> Result<(), String> {
        let hosts = self.lifecycle.lock().expect("lifecycle lock").hosts(fault).map(<[String]>::to_vec);
        let hosts = hosts.unwrap_or_else(|| panic!("fault #{} stopped while not in force", fault.index));
        let during = self.counters(fault, &hosts).await;
        let reverted = if hosts.is_empty() { Ok(()) } else { self.actuator.revert(fault, &hosts).await };
        let now = self.start.elapsed();
        let mut lifecycle = self.lifecycle.lock().expect("lifecycle lock");
        lifecycle.end(fault, now, during, &mut self.history.lock().expect("history lock"));
        reverted.map_err(|e| format!("fault #{} ({}) reverting: {e}", fault.index, fault.kind.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultKind;
    use crate::history::EntryOp;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn crash(index: usize, start: u64, end: Option<u64>, host: &str) -> PlannedFault {
        PlannedFault {
            index,
            start: s(start),
            end: end.map(s),
            kind: FaultKind::Crash { hosts: vec![host.into()] },
        }
    }

    /// A scripted backend on tokio's paused clock: applying `slow` takes 5 s, applying `broken`
    /// fails, `nobody` resolves to no host; every call is logged with the second it began.
    #[derive(Default)]
    struct Script {
        start: Option<Instant>,
        calls: Mutex<Vec<String>>,
    }

    impl Script {
        fn log(&self, what: String) {
            let at = self.start.expect("started").elapsed().as_secs();
            self.calls.lock().unwrap().push(format!("{at} {what}"));
        }
    }

    #[async_trait]
    impl Actuator for Script {
        async fn targets(&self, fault: &PlannedFault) -> Result<Vec<String>, String> {
            Ok(fault.kind.hosts().into_iter().filter(|h| h != "nobody").collect())
        }
        async fn apply(&self, fault: &PlannedFault, hosts: &[String]) -> Result<(), String> {
            self.log(format!("apply {}", hosts.join(",")));
            match hosts[0].as_str() {
                "slow" => {
                    tokio::time::sleep(s(5)).await;
                    Ok(())
                }
                "broken" => Err(format!("fault #{} cannot be applied", fault.index)),
                _ => Ok(()),
            }
        }
        async fn revert(&self, _: &PlannedFault, hosts: &[String]) -> Result<(), String> {
            self.log(format!("revert {}", hosts.join(",")));
            Ok(())
        }
        async fn counters(&self, _: &PlannedFault, _: &[String]) -> Counters {
            Counters { connections_reset: self.start.expect("started").elapsed().as_secs(), messages_held: 0 }
        }
    }

    fn plan(faults: Vec<PlannedFault>) -> Plan {
        Plan { duration: s(30), faults, phases: Vec::new() }
    }

    async fn run(faults: Vec<PlannedFault>) -> (Result<Vec<FaultEffect>, String>, Vec<String>, History) {
        let start = Instant::now();
        let script = Arc::new(Script { start: Some(start), ..Script::default() });
        let history = Arc::new(Mutex::new(History::new()));
        let outcome = drive(script.clone(), &plan(faults), start, history.clone()).await;
        let calls = script.calls.lock().unwrap().clone();
        let history = history.lock().unwrap().clone();
        (outcome, calls, history)
    }

    /// Goal: a slow application does not delay the next fault, a fault without an end is
    /// healed when the run ends, a vacuous one is recorded and never applied, and the effects
    /// are the counters' growth. Method: three faults on a scripted backend, paused clock.
    #[tokio::test(start_paused = true)]
    async fn faults_live_concurrently_and_are_healed_by_the_end() {
        let faults =
            vec![crash(0, 2, Some(10), "slow"), crash(1, 3, None, "api-1"), crash(2, 4, Some(6), "nobody")];
        let (outcome, calls, history) = run(faults).await;
        let effects = outcome.unwrap();
        assert_eq!(calls, ["2 apply slow", "3 apply api-1", "10 revert slow", "30 revert api-1"]);
        assert_eq!(effects[0].connections_reset_count, 10 - 2);
        assert_eq!(effects[1].connections_reset_count, 30 - 3);
        assert!(effects[2].is_vacuous());
        let events: Vec<(u64, EntryOp, usize)> = history
            .entries()
            .iter()
            .map(|e| (e.time_ns / 1_000_000_000, e.op, e.value.fault.unwrap()))
            .collect();
        use EntryOp::{FaultStart as Start, FaultStop as Stop};
        let expected =
            [(2, Start, 0), (3, Start, 1), (4, Start, 2), (6, Stop, 2), (10, Stop, 0), (30, Stop, 1)];
        assert_eq!(events, expected);
    }

    /// Goal: a fault that fails leaves nothing broken behind. Method: the fault at 5 s fails to
    /// apply while one is in force and another is pending; the one in force and the failed one
    /// are reverted at once, the pending one never starts, and the error names the fault.
    #[tokio::test(start_paused = true)]
    async fn a_failure_reverts_everything_applied_and_is_returned() {
        let faults =
            vec![crash(0, 2, Some(20), "api-1"), crash(1, 5, Some(8), "broken"), crash(2, 9, None, "api-2")];
        let (outcome, calls, history) = run(faults).await;
        let error = outcome.unwrap_err();
        assert!(error.starts_with("fault #1 (crash) applying: fault #1 cannot be applied"), "{error}");
        let mut calls = calls;
        calls.sort();
        assert_eq!(calls, ["2 apply api-1", "5 apply broken", "5 revert api-1", "5 revert broken"]);
        let stops = history.entries().iter().filter(|e| e.op == EntryOp::FaultStop).count();
        assert_eq!(stops, 2, "every fault that started has stopped");
    }
}
