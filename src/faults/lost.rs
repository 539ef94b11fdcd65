//! Which fault lost each acknowledged write: the `writes_lost_count` of every fault's effect.
//!
//! The durability check finds the acknowledged writes the final primary lacks; this file charges
//! each to at most one fault of the plan, by the moment the client got its acknowledgement:
//!
//! 1. a fault that could lose a write and was in force then (of several, the one that started
//!    last): the write was acknowledged by a stack already broken (the API acknowledged before
//!    committing, and the primary it was about to commit on had died);
//! 2. else the first fault that could lose a write starting after it: the write was acknowledged
//!    in calm and that fault took it (an asynchronous standby had not caught up when the primary
//!    crashed, or a latency fault on the replication link had made it trail);
//! 3. else the last such fault before it: the fault's aftermath took the write (an old primary
//!    paused past the failover and not fenced goes on acknowledging writes after it thaws);
//! 4. else any fault in force then (the one that started last);
//! 5. else none: the loss has no fault to answer for, and the durability check's list stands
//!    alone.
//!
//! A fault *could lose a write* when it is a crash of any host (a crashed API loses a write it
//! acknowledged before committing, a crashed primary what it had not passed on), or a pause or a
//! partition of a database node — what makes the watchdog promote the standby.
//!
//! The run computes this once for both backends, after the checks and before the report
//! (`run::run_loaded`): it reads the plan and the durability check's list, never a backend.

use std::time::Duration;

use super::{FaultEffect, FaultKind, Plan, PlannedFault};

/// The database nodes: a pause or partition of one can make the watchdog promote.
const DATABASE_NODES: [&str; 2] = ["pg-primary", "pg-replica"];

/// Set each fault's `writes_lost_count` (indexed by `PlannedFault::index`, as the backends
/// return effects) from the acknowledgement times of the lost writes. A count a backend put there
/// is replaced: this is the one place it is computed.
pub fn attribute_lost_writes(
    effects: &mut [FaultEffect],
    plan: &Plan,
    acks_ns: impl IntoIterator<Item = u64>,
) {
    for effect in effects.iter_mut() {
        effect.writes_lost_count = 0;
    }
    for ack_ns in acks_ns {
        if let Some(fault) = culprit(plan, Duration::from_nanos(ack_ns)) {
            let effect = effects.get_mut(fault.index);
            let effect = effect.unwrap_or_else(|| panic!("no effect for fault #{}", fault.index));
            effect.writes_lost_count += 1;
        }
    }
}

/// The fault a write acknowledged at `ack` is charged to (the rules in the module doc).
pub fn culprit(plan: &Plan, ack: Duration) -> Option<&PlannedFault> {
    let in_force = |f: &&PlannedFault| f.start <= ack && f.end.is_none_or(|end| ack < end);
    // `plan.faults` is in start order, so the last match started last.
    let lossy = || plan.faults.iter().filter(|f| could_lose_writes(f));
    lossy()
        .rfind(in_force)
        .or_else(|| lossy().find(|f| f.start > ack))
        .or_else(|| lossy().rfind(|f| f.start <= ack))
        .or_else(|| plan.faults.iter().rfind(in_force))
}

/// True for a crash of anything, and a pause or partition of a database node.
fn could_lose_writes(fault: &PlannedFault) -> bool {
    let touches_database = || fault.kind.hosts().iter().any(|h| DATABASE_NODES.contains(&h.as_str()));
    match fault.kind {
        FaultKind::Crash { .. } | FaultKind::Disaster { .. } | FaultKind::Failback { .. } => true,
        // A compose stack's stop or command (a switchover, say) may end in a failover.
        FaultKind::Stop { .. } | FaultKind::Exec { .. } => true,
        FaultKind::Restore { .. } => false,
        FaultKind::Pause { .. } | FaultKind::Partition { .. } => touches_database(),
        FaultKind::Latency { .. } | FaultKind::Backpressure { .. } | FaultKind::PricefeedOutage { .. } => {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::OutageMode;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn fault(index: usize, start: u64, end: Option<u64>, kind: FaultKind) -> PlannedFault {
        PlannedFault { index, start: s(start), end: end.map(s), kind }
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|h| h.to_string()).collect()
    }

    /// 0: latency on the replication link 17–22 s; 1: crash of the primary 20–35 s; 2: a price
    /// feed outage 40–45 s; 3: a pause of the replica 50–52 s. The plan of an async
    /// primary-crash run with two harmless faults around it.
    fn plan() -> Plan {
        let latency = FaultKind::Latency {
            a: hosts(&["pg-primary"]),
            b: hosts(&["pg-replica"]),
            delay: Duration::from_millis(150),
            jitter: Duration::ZERO,
        };
        let outage = FaultKind::PricefeedOutage { mode: OutageMode::Errors, delay: Duration::ZERO };
        Plan {
            duration: s(60),
            faults: vec![
                fault(0, 17, Some(22), latency),
                fault(1, 20, Some(35), FaultKind::Crash { hosts: hosts(&["pg-primary"]) }),
                fault(2, 40, Some(45), outage),
                fault(3, 50, Some(52), FaultKind::Pause { hosts: hosts(&["pg-replica"]) }),
            ],
            phases: Vec::new(),
        }
    }

    /// Goal: each rule of the module doc picks the fault it names. Method: acknowledgement times
    /// chosen to fall under one rule each, on the plan above.
    #[test]
    fn each_lost_write_goes_to_the_fault_that_explains_it() {
        let plan = plan();
        let index = |secs: f64| culprit(&plan, Duration::from_secs_f64(secs)).map(|f| f.index);
        assert_eq!(index(21.0), Some(1), "in force: the crash, not the latency that started earlier");
        assert_eq!(index(18.0), Some(1), "only latency in force: the crash that follows");
        assert_eq!(index(5.0), Some(1), "calm: the next crash");
        assert_eq!(index(36.0), Some(3), "after the crash: the next fault that can lose writes");
        assert_eq!(index(42.0), Some(3), "an outage cannot lose writes: the pause that follows");
        assert_eq!(index(55.0), Some(3), "after every fault: the last that can lose writes");
        let harmless = Plan { faults: plan.faults[2..3].to_vec(), ..plan.clone() };
        assert_eq!(culprit(&harmless, s(41)).map(|f| f.index), Some(2), "in force, though harmless");
        assert_eq!(culprit(&harmless, s(30)), None, "no fault can answer for it");
    }

    /// Goal: the counts add up per fault and replace what a backend put there.
    #[test]
    fn counts_are_per_fault_and_replace_a_backends_figure() {
        let plan = plan();
        let mut effects = vec![FaultEffect { writes_lost_count: 7, ..FaultEffect::default() }; 4];
        let acks = [19_000_000_000, 21_000_000_000, 51_000_000_000];
        attribute_lost_writes(&mut effects, &plan, acks);
        let counts: Vec<u64> = effects.iter().map(|e| e.writes_lost_count).collect();
        assert_eq!(counts, [0, 2, 0, 1]);
    }
}
