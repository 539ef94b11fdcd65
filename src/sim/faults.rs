//! The fault scheduler: applies each planned fault when the simulated clock reaches its start,
//! reverts it at its end (or when the run's duration is up: every fault is healed before the
//! drain), records `fault_start` / `fault_stop` history entries, and counts what each fault hit.
//!
//! | fault | applied as | reverted as |
//! |---|---|---|
//! | crash | `sim.crash(host)`: every task on it dies; durable state survives | `sim.bounce(host)` |
//! | pause | `sim.hold` on every link of the host: messages wait, nothing is lost | `sim.release` |
//! | partition | `sim.partition` (or `partition_oneway`) for every pair | `sim.repair` (or `repair_oneway`) |
//! | latency | fixed link latency `delay + jitter/2` for every pair (jitter is approximated) | the normal latency range |
//! | backpressure | workers paused or slowed; queue capacity lowered | workers running; capacity restored |
//! | pricefeed outage | the price feed answers 503 or late | the price feed answers normally |
//! | disaster | the nodes crash and their storage is emptied | — (a restore restarts them) |
//! | restore | the backup agent is asked to restore; when it has rebuilt the storage, both nodes restart on it and the watchdog starts over | — |
//! | failback | the watchdog is asked for a planned switchover | — |

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backup::RestoreRequest;
use super::db_model::{Node, Role, Tables};
use super::runner::{LATENCY_MAX, LATENCY_MIN, World};
use crate::faults::{FaultEffect, FaultKind, Plan, PlannedFault, ops_failed_count, record_event};
use crate::history::EntryOp;
use crate::stack::ports::DbNode;
use crate::stack::pricefeed::Outage;
use crate::stack::worker::WorkerMode;

/// The database nodes, restarted after a restore.
const DATABASE_NODES: [&str; 2] = ["pg-primary", "pg-replica"];

/// Counter readings when a fault started.
#[derive(Clone, Copy, Default)]
struct Baseline {
    unavailable: u64,
    rejected: u64,
}

/// Where each fault is in its life.
pub(super) struct Scheduler {
    faults: Vec<PlannedFault>,
    duration: Duration,
    started: Vec<Option<Baseline>>,
    effects: Vec<Option<FaultEffect>>,
    everyone: Vec<String>,
    capacity: usize,
}

impl Scheduler {
    pub(super) fn new(plan: &Plan, hosts: Vec<String>, capacity: usize) -> Scheduler {
        let count = plan.faults.iter().map(|f| f.index + 1).max().unwrap_or(0);
        Scheduler {
            faults: plan.faults.clone(),
            duration: plan.duration,
            started: vec![None; count],
            effects: vec![None; count],
            everyone: hosts,
            capacity,
        }
    }

    /// Start and stop whatever is due at `now`.
    pub(super) fn advance(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, world: &World) {
        // A restore rebuilt the database nodes' storage: start them on it.
        if std::mem::take(&mut world.backups.lock().expect("backups lock").rebuilt) {
            tracing::info!("restore done: restarting the database nodes");
            for node in DATABASE_NODES {
                sim.bounce(node);
            }
            world.watchdog.reset(DbNode::PgPrimary, false);
        }
        for fault in self.faults.clone() {
            let i = fault.index;
            if self.started[i].is_none() && self.effects[i].is_none() && now >= fault.start {
                self.apply(sim, &fault, world);
                self.started[i] = Some(self.reading(world));
                record(world, now, EntryOp::FaultStart, &fault, None);
            }
            let due = fault.end.is_some_and(|end| now >= end) || now >= self.duration;
            if let Some(baseline) = self.started[i]
                && due
            {
                self.revert(sim, &fault, world);
                let now_reading = self.reading(world);
                let effect = FaultEffect {
                    connections_reset_count: now_reading.unavailable - baseline.unavailable,
                    publishes_rejected_count: now_reading.rejected - baseline.rejected,
                    ..FaultEffect::default()
                };
                record(world, now, EntryOp::FaultStop, &fault, Some(effect.clone()));
                self.effects[i] = Some(effect);
                self.started[i] = None;
            }
        }
    }

    fn reading(&self, world: &World) -> Baseline {
        Baseline {
            unavailable: world.counters.unavailable.load(Ordering::Relaxed),
            rejected: world.broker.lock().expect("broker lock").rejected_count,
        }
    }

    fn apply(&self, sim: &mut turmoil::Sim<'_>, fault: &PlannedFault, world: &World) {
        tracing::info!(fault = fault.index, kind = fault.kind.name(), hosts = ?fault.kind.hosts(), "fault starts");
        match &fault.kind {
            FaultKind::Crash { hosts } => hosts.iter().for_each(|h| sim.crash(h.as_str())),
            FaultKind::Pause { hosts } => self.each_link(hosts, |a, b| sim.hold(a, b)),
            FaultKind::Partition { a, b, one_way } => {
                pairs(a, b, |x, y| if *one_way { sim.partition_oneway(x, y) } else { sim.partition(x, y) })
            }
            FaultKind::Latency { a, b, delay, jitter } => {
                pairs(a, b, |x, y| sim.set_link_latency(x, y, *delay + *jitter / 2))
            }
            FaultKind::Backpressure { consumers, slow_by, capacity } => {
                world.workers.iter().for_each(|w| w.set(WorkerMode::from_fault(*consumers, *slow_by)));
                if let Some(capacity) = capacity {
                    world.broker.lock().expect("broker lock").capacity = *capacity as usize;
                }
            }
            FaultKind::PricefeedOutage { mode, delay } => {
                world.pricefeed.set(Outage::from_fault(*mode, *delay))
            }
            FaultKind::Disaster { hosts } => {
                let mut cluster = world.cluster.lock().expect("cluster lock");
                for host in hosts {
                    sim.crash(host.as_str());
                    let node = DbNode::named(host);
                    // The storage is gone: an empty node that takes no writes until a restore.
                    cluster.nodes.insert(node, Node::new(node, Role::Standby, Tables::default()));
                }
                let at = sim.elapsed().as_nanos() as u64;
                world.backups.lock().expect("backups lock").last_disaster_ns = Some(at);
            }
            FaultKind::Restore { to } => {
                let requested_ns = sim.elapsed().as_nanos() as u64;
                let target_ns = to.map(|t| t.as_nanos() as u64);
                world.backups.lock().expect("backups lock").request =
                    Some(RestoreRequest { requested_ns, target_ns });
            }
            FaultKind::Failback { node } => {
                let node = DbNode::named(node);
                world.watchdog.request_switchover(node);
            }
            FaultKind::Stop { .. } | FaultKind::Exec { .. } => {
                unreachable!("validation keeps compose-only faults off the built-in stack")
            }
        }
    }

    fn revert(&self, sim: &mut turmoil::Sim<'_>, fault: &PlannedFault, world: &World) {
        tracing::info!(fault = fault.index, kind = fault.kind.name(), "fault ends");
        match &fault.kind {
            FaultKind::Crash { hosts } => hosts.iter().for_each(|h| sim.bounce(h.as_str())),
            FaultKind::Pause { hosts } => self.each_link(hosts, |a, b| sim.release(a, b)),
            FaultKind::Partition { a, b, one_way } => {
                pairs(a, b, |x, y| if *one_way { sim.repair_oneway(x, y) } else { sim.repair(x, y) })
            }
            FaultKind::Latency { a, b, .. } => pairs(a, b, |x, y| {
                sim.set_link_latency(x, y, LATENCY_MIN);
                sim.set_link_max_message_latency(x, y, LATENCY_MAX);
            }),
            FaultKind::Backpressure { .. } => {
                world.workers.iter().for_each(|w| w.set(WorkerMode::Running));
                world.broker.lock().expect("broker lock").capacity = self.capacity;
            }
            FaultKind::PricefeedOutage { .. } => world.pricefeed.set(Outage::None),
            // A disaster ends with a restore (which restarts the nodes); the others are instants.
            FaultKind::Disaster { .. } | FaultKind::Restore { .. } | FaultKind::Failback { .. } => {}
            FaultKind::Stop { .. } | FaultKind::Exec { .. } => {}
        }
    }

    /// `f(host, other)` for every link between a paused host and every other host.
    fn each_link(&self, hosts: &[String], mut f: impl FnMut(&str, &str)) {
        for host in hosts {
            for other in self.everyone.iter().filter(|o| *o != host) {
                f(host, other);
            }
        }
    }

    /// The effects of every fault, completed with what only the finished history can tell:
    /// the ops that failed during each window. (The writes each fault lost are charged after the
    /// checks, for both backends: `faults::attribute_lost_writes`.)
    pub(super) fn effects(&self, world: &World) -> Vec<FaultEffect> {
        let history = world.history.lock().expect("history lock");
        let mut out = vec![FaultEffect::default(); self.effects.len()];
        for fault in &self.faults {
            let mut effect = self.effects[fault.index].clone().unwrap_or_default();
            effect.ops_failed_count = ops_failed_count(&history, fault, self.duration);
            out[fault.index] = effect;
        }
        out
    }
}

fn pairs(a: &[String], b: &[String], mut f: impl FnMut(&str, &str)) {
    for x in a {
        for y in b {
            f(x, y);
        }
    }
}

fn record(world: &World, now: Duration, op: EntryOp, fault: &PlannedFault, effect: Option<FaultEffect>) {
    record_event(&mut world.history.lock().expect("history lock"), now, op, fault, effect);
}
