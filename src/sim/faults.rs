//! The simulation's fault actuator: how each fault kind is applied to and reverted from the
//! turmoil world, and the counter its effect reads. When (timing, healing before the drain),
//! the history events and the effects are `faults::Lifecycle`'s, run after every step of the
//! clock; `Scheduler` adds the one thing only the simulation does between steps — restarting
//! the database nodes once a restore has rebuilt their storage.
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
use super::world::{LATENCY_MAX, LATENCY_MIN, World};
use crate::faults::{Counters, FaultEffect, FaultKind, Lifecycle, Plan, PlannedFault, SyncActuator};
use crate::stack::ports::DbNode;
use crate::stack::pricefeed::Outage;
use crate::stack::worker::WorkerMode;

/// The database nodes, restarted after a restore.
const DATABASE_NODES: [&str; 2] = ["pg-primary", "pg-replica"];

/// The plan's lifecycle and what the simulation's actuator needs besides the world.
pub(super) struct Scheduler {
    lifecycle: Lifecycle,
    everyone: Vec<String>,
    capacity: usize,
}

impl Scheduler {
    pub(super) fn new(plan: &Plan, hosts: Vec<String>, capacity: usize) -> Scheduler {
        Scheduler { lifecycle: Lifecycle::new(plan), everyone: hosts, capacity }
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
        let mut actuator = SimActuator { sim, world, everyone: &self.everyone, capacity: self.capacity };
        self.lifecycle.advance(now, &mut actuator, &world.history);
    }

    /// What each fault hit, as counted (the history's part comes after the drain, for both
    /// backends: `faults::complete_effects`).
    pub(super) fn effects(&self) -> Vec<FaultEffect> {
        self.lifecycle.effects()
    }
}

/// The simulation's hands on the stack for one step of the clock.
struct SimActuator<'a, 'sim> {
    sim: &'a mut turmoil::Sim<'sim>,
    world: &'a World,
    /// Every host of the run (a pause holds each of its links).
    everyone: &'a [String],
    /// The queue's capacity outside a backpressure fault.
    capacity: usize,
}

impl SyncActuator for SimActuator<'_, '_> {
    fn targets(&mut self, fault: &PlannedFault) -> Vec<String> {
        fault.kind.hosts()
    }

    /// The connections refused or timed out anywhere on the simulated network (turmoil does not
    /// count the messages a hold or a partition keeps back: `messages_held` stays 0).
    fn counters(&self, _fault: &PlannedFault, _hosts: &[String]) -> Counters {
        Counters {
            connections_reset: self.world.counters.unavailable.load(Ordering::Relaxed),
            messages_held: 0,
        }
    }

    fn apply(&mut self, fault: &PlannedFault, _hosts: &[String]) {
        let (sim, world) = (&mut *self.sim, self.world);
        match &fault.kind {
            FaultKind::Crash { hosts } => hosts.iter().for_each(|h| sim.crash(h.as_str())),
            FaultKind::Pause { hosts } => each_link(self.everyone, hosts, |a, b| sim.hold(a, b)),
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

    fn revert(&mut self, fault: &PlannedFault, _hosts: &[String]) {
        let (sim, world) = (&mut *self.sim, self.world);
        match &fault.kind {
            FaultKind::Crash { hosts } => hosts.iter().for_each(|h| sim.bounce(h.as_str())),
            FaultKind::Pause { hosts } => each_link(self.everyone, hosts, |a, b| sim.release(a, b)),
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
}

/// `f(host, other)` for every link between a paused host and every other host.
fn each_link(everyone: &[String], hosts: &[String], mut f: impl FnMut(&str, &str)) {
    for host in hosts {
        for other in everyone.iter().filter(|o| *o != host) {
            f(host, other);
        }
    }
}

fn pairs(a: &[String], b: &[String], mut f: impl FnMut(&str, &str)) {
    for x in a {
        for y in b {
            f(x, y);
        }
    }
}
