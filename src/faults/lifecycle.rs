//! The fault lifecycle: when each planned fault is applied and reverted, what the history
//! records about it, and the counter readings its effect is computed from — a synchronous state
//! machine with no clock and no I/O of its own, so both the simulation's step loop (which holds
//! `&mut turmoil::Sim`) and the async driver (`drive.rs`) run the same decisions.
//!
//! A fault's life: *pending* until the clock reaches [`Lifecycle::applies_at`]; then its hosts
//! are resolved, the counters read, `fault_start` recorded and the fault applied (skipped when
//! it resolved to no host: vacuous, not an error); *in force* until
//! [`Lifecycle::reverts_at`] — its end, or the end of the run if that comes first, so every fault
//! is healed before the drain; then the counters are read again, the fault reverted and
//! `fault_stop` recorded with the counted effect; *ended*.

use std::sync::Mutex;
use std::time::Duration;

use super::effect::{Counters, counted, record_event};
use super::{FaultEffect, Plan, PlannedFault};
use crate::history::{EntryOp, History};

/// The simulation's side of a fault: the same contract as [`super::Actuator`] (see `faults/`),
/// synchronous and infallible, because the simulation applies a fault between two steps of its
/// clock.
pub trait SyncActuator {
    /// The hosts `fault` hits, resolved as it starts; empty: vacuous (recorded, not applied).
    fn targets(&mut self, fault: &PlannedFault) -> Vec<String>;
    /// Apply `fault` to `hosts`.
    fn apply(&mut self, fault: &PlannedFault, hosts: &[String]);
    /// Undo what [`SyncActuator::apply`] did.
    fn revert(&mut self, fault: &PlannedFault, hosts: &[String]);
    /// The backend's counters over what `fault` touches.
    fn counters(&self, fault: &PlannedFault, hosts: &[String]) -> Counters;
}

/// Where one fault is in its life.
#[derive(Clone, Debug, PartialEq)]
enum Life {
    /// Not started.
    Pending,
    /// Started on `hosts`, with the counters read just before.
    InForce { hosts: Vec<String>, before: Counters },
    /// Reverted; what it hit.
    Ended(FaultEffect),
}

/// Every fault of a plan and where each is in its life.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// The plan's faults, in start order.
    faults: Vec<PlannedFault>,
    /// The run's length: every fault still in force then is reverted.
    duration: Duration,
    /// By `PlannedFault::index`.
    lives: Vec<Life>,
}

impl Lifecycle {
    /// Every fault of `plan`, pending.
    pub fn new(plan: &Plan) -> Lifecycle {
        let count = plan.faults.iter().map(|f| f.index + 1).max().unwrap_or(0);
        Lifecycle { faults: plan.faults.clone(), duration: plan.duration, lives: vec![Life::Pending; count] }
    }

    /// The plan's faults, in start order.
    pub fn faults(&self) -> &[PlannedFault] {
        &self.faults
    }

    /// When `fault` is applied, from the start of the run.
    pub fn applies_at(&self, fault: &PlannedFault) -> Duration {
        fault.start
    }

    /// When `fault` is reverted: its end, or the end of the run if it has none or ends later
    /// (nothing stays broken into the drain).
    pub fn reverts_at(&self, fault: &PlannedFault) -> Duration {
        fault.end.unwrap_or(self.duration).min(self.duration)
    }

    /// `fault` started at `now` on `hosts` (empty: vacuous), with the counters read just before
    /// it was applied: records `fault_start`. Panics (a harness bug) unless it was pending.
    pub fn begin(
        &mut self,
        fault: &PlannedFault,
        now: Duration,
        hosts: Vec<String>,
        before: Counters,
        history: &mut History,
    ) {
        let life = &mut self.lives[fault.index];
        assert_eq!(*life, Life::Pending, "fault #{} started twice", fault.index);
        tracing::info!(fault = fault.index, kind = fault.kind.name(), ?hosts, "fault starts");
        record_event(history, now, EntryOp::FaultStart, fault, &hosts, None);
        *life = Life::InForce { hosts, before };
    }

    /// The hosts `fault` was started on, while it is in force.
    pub fn hosts(&self, fault: &PlannedFault) -> Option<&[String]> {
        match &self.lives[fault.index] {
            Life::InForce { hosts, .. } => Some(hosts),
            Life::Pending | Life::Ended(_) => None,
        }
    }

    /// `fault` was reverted at `now`, with the counters read just before: records `fault_stop`
    /// with the counted effect and returns it. Panics (a harness bug) unless it was in force.
    pub fn end(
        &mut self,
        fault: &PlannedFault,
        now: Duration,
        during: Counters,
        history: &mut History,
    ) -> FaultEffect {
        let life = std::mem::replace(&mut self.lives[fault.index], Life::Pending);
        let Life::InForce { hosts, before } = life else {
            panic!("fault #{} ended while not in force ({life:?})", fault.index)
        };
        let effect = counted(before, during);
        tracing::info!(fault = fault.index, kind = fault.kind.name(), ?effect, "fault ends");
        record_event(history, now, EntryOp::FaultStop, fault, &hosts, Some(effect.clone()));
        self.lives[fault.index] = Life::Ended(effect.clone());
        effect
    }

    /// The faults in force now, with their hosts, in start order.
    pub fn in_force(&self) -> Vec<(PlannedFault, Vec<String>)> {
        let hosts = |f: &PlannedFault| self.hosts(f).map(|h| (f.clone(), h.to_vec()));
        self.faults.iter().filter_map(hosts).collect()
    }

    /// Start and stop, through `actuator`, whatever is due at `now`: fault by fault in start
    /// order, each started if due and then stopped if due (an instant fault does both in one
    /// call). The simulation calls it after every step of its clock.
    pub fn advance(&mut self, now: Duration, actuator: &mut impl SyncActuator, history: &Mutex<History>) {
        for index in 0..self.faults.len() {
            let fault = &self.faults[index];
            if self.lives[fault.index] == Life::Pending && now >= self.applies_at(fault) {
                let fault = fault.clone();
                let hosts = actuator.targets(&fault);
                let before =
                    if hosts.is_empty() { Counters::default() } else { actuator.counters(&fault, &hosts) };
                if !hosts.is_empty() {
                    actuator.apply(&fault, &hosts);
                }
                self.begin(&fault, now, hosts, before, &mut history.lock().expect("history lock"));
            }
            let fault = &self.faults[index];
            if let Some(hosts) = self.hosts(fault)
                && now >= self.reverts_at(fault)
            {
                let (fault, hosts) = (fault.clone(), hosts.to_vec());
                let during =
                    if hosts.is_empty() { Counters::default() } else { actuator.counters(&fault, &hosts) };
                if !hosts.is_empty() {
                    actuator.revert(&fault, &hosts);
                }
                self.end(&fault, now, during, &mut history.lock().expect("history lock"));
            }
        }
    }

    /// What each fault hit as counted, indexed by `PlannedFault::index` (a fault that never
    /// started: zeros). The fields only the finished history can tell are filled in later
    /// ([`super::complete_effects`]). Panics (a harness bug) if a fault is still in force.
    pub fn effects(&self) -> Vec<FaultEffect> {
        let effect = |(index, life): (usize, &Life)| match life {
            Life::Pending => FaultEffect::default(),
            Life::Ended(effect) => effect.clone(),
            Life::InForce { .. } => panic!("fault #{index} is still in force at the end of the run"),
        };
        self.lives.iter().enumerate().map(effect).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultKind;
    use crate::history::Entry;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn pause(index: usize, start: u64, end: Option<u64>, host: &str) -> PlannedFault {
        PlannedFault {
            index,
            start: s(start),
            end: end.map(s),
            kind: FaultKind::Pause { hosts: vec![host.into()] },
        }
    }

    /// A scripted backend: every call logged; its counter grows by 3 per call to `counters`;
    /// a fault on `nobody` resolves to no host.
    #[derive(Default)]
    struct Script {
        calls: Vec<String>,
        resets: std::cell::Cell<u64>,
    }

    impl SyncActuator for Script {
        fn targets(&mut self, fault: &PlannedFault) -> Vec<String> {
            fault.kind.hosts().into_iter().filter(|h| h != "nobody").collect()
        }
        fn apply(&mut self, fault: &PlannedFault, hosts: &[String]) {
            self.calls.push(format!("apply #{} {}", fault.index, hosts.join(",")));
        }
        fn revert(&mut self, fault: &PlannedFault, hosts: &[String]) {
            self.calls.push(format!("revert #{} {}", fault.index, hosts.join(",")));
        }
        fn counters(&self, _: &PlannedFault, _: &[String]) -> Counters {
            self.resets.set(self.resets.get() + 3);
            Counters { connections_reset: self.resets.get(), messages_held: 1 }
        }
    }

    fn events(history: &Mutex<History>) -> Vec<(u64, EntryOp, usize)> {
        let history = history.lock().unwrap();
        let event = |e: &Entry| (e.time_ns / 1_000_000_000, e.op, e.value.fault.unwrap());
        history.entries().iter().map(event).collect()
    }

    /// Goal: faults start and stop at their times, one that outlasts the run is healed at its
    /// end, an instant one starts and stops in one call, and a vacuous one is recorded but never
    /// applied. Method: advance a scripted backend second by second over a 10 s plan.
    #[test]
    fn each_fault_lives_from_its_start_to_its_end_or_the_runs() {
        let plan = Plan {
            duration: s(10),
            faults: vec![
                pause(0, 2, Some(5), "lb"),
                pause(1, 4, Some(4), "api-1"),
                pause(2, 6, None, "broker"),
                pause(3, 7, Some(8), "nobody"),
            ],
            phases: Vec::new(),
        };
        let (mut lifecycle, mut script, history) =
            (Lifecycle::new(&plan), Script::default(), Mutex::default());
        for now in 0..=12 {
            lifecycle.advance(s(now), &mut script, &history);
        }
        assert_eq!(
            script.calls,
            [
                "apply #0 lb",
                "apply #1 api-1",
                "revert #1 api-1",
                "revert #0 lb",
                "apply #2 broker",
                "revert #2 broker"
            ]
        );
        use EntryOp::{FaultStart as Start, FaultStop as Stop};
        let expected = [
            (2, Start, 0),
            (4, Start, 1),
            (4, Stop, 1),
            (5, Stop, 0),
            (6, Start, 2),
            (7, Start, 3),
            (8, Stop, 3),
            (10, Stop, 2),
        ];
        assert_eq!(events(&history), expected);
        let effects = lifecycle.effects();
        // The counter read 3 when #0 started and 12 when it stopped (#1 read 6 and 9 between).
        assert_eq!(effects[0].connections_reset_count, 12 - 3);
        assert_eq!(effects[1].connections_reset_count, 9 - 6);
        assert_eq!(effects[0].messages_held_count, 0, "a counter that did not grow counts nothing");
        assert!(effects[3].is_vacuous(), "a fault that resolved to no host hit nothing");
        let stop = history.lock().unwrap().entries()[3].clone();
        assert_eq!(stop.value.effect, Some(effects[0].clone()), "fault_stop carries the counted effect");
        assert_eq!(stop.value.hosts, Some(vec!["lb".to_string()]));
    }

    #[test]
    #[should_panic(expected = "still in force")]
    fn effects_before_every_fault_ended_is_a_harness_bug() {
        let plan = Plan { duration: s(10), faults: vec![pause(0, 1, Some(5), "lb")], phases: Vec::new() };
        let (mut lifecycle, history) = (Lifecycle::new(&plan), Mutex::default());
        lifecycle.advance(s(2), &mut Script::default(), &history);
        lifecycle.effects();
    }
}
