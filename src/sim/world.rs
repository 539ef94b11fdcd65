//! The state of a simulated run that outlives every host (created before any host, so it
//! survives crashes): the database cluster, the queues, the objects, the backups, the control
//! switches of the fault actuator, the history — and the network's normal latency.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backup::Backups;
use super::broker::{self, Broker};
use super::db::{Archiving, Cluster, ClusterState};
use super::db_model::{Node, Role, Tables};
use super::net::NetCounters;
use super::objects::Objects;
use super::redis::RedisData;
use crate::history::History;
use crate::scenario::Loaded;
use crate::stack::ports::DbNode;
use crate::stack::pricefeed::PricefeedControl;
use crate::stack::watchdog::WatchdogState;
use crate::stack::worker::WorkerControl;
use crate::workload::{CATALOG, GeneratorStats};

/// Network latency between any two hosts, uniform-ish in `[min, max]` (turmoil's exponential
/// curve), as in one datacentre.
pub(super) const LATENCY_MIN: Duration = Duration::from_micros(200);
/// See [`LATENCY_MIN`].
pub(super) const LATENCY_MAX: Duration = Duration::from_millis(2);

/// State shared between the hosts and the fault actuator, created before any host so that it
/// survives host crashes.
pub(super) struct World {
    pub(super) cluster: Cluster,
    pub(super) broker: Broker,
    pub(super) objects: Objects,
    pub(super) backups: Backups,
    pub(super) redis: RedisData,
    pub(super) counters: Arc<NetCounters>,
    pub(super) pricefeed: PricefeedControl,
    pub(super) workers: Vec<WorkerControl>,
    pub(super) watchdog: WatchdogState,
    pub(super) history: Arc<Mutex<History>>,
    pub(super) generator: Arc<Mutex<Option<GeneratorStats>>>,
}

/// The world of a run of `loaded`: seeded tables, empty queues, the switches at rest.
pub(super) fn world(loaded: &Loaded) -> World {
    let stack = &loaded.scenario.stack;
    let nodes = [
        (DbNode::PgPrimary, Node::new(DbNode::PgPrimary, Role::Primary, Tables::seeded(CATALOG))),
        (DbNode::PgReplica, Node::new(DbNode::PgReplica, Role::Standby, Tables::seeded(CATALOG))),
    ];
    World {
        cluster: Arc::new(Mutex::new(ClusterState {
            nodes: nodes.into_iter().collect(),
            writer: DbNode::PgPrimary,
            replication: stack.replication,
            archiving: stack.backup.as_ref().map(|_| Archiving {
                ignore_failures: crate::stack::bugs::Bugs::from_list(&stack.bugs).wal_archive_gap,
            }),
            changed: Arc::default(),
        })),
        broker: broker::broker(stack.queue.capacity as usize),
        objects: Objects::default(),
        backups: Backups::default(),
        redis: RedisData::default(),
        counters: Arc::new(NetCounters::default()),
        pricefeed: PricefeedControl::default(),
        workers: (0..stack.workers).map(|_| WorkerControl::default()).collect(),
        watchdog: WatchdogState::default(),
        history: Arc::new(Mutex::new(History::new())),
        generator: Arc::new(Mutex::new(None)),
    }
}
