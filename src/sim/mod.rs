//! The deterministic simulation backend (turmoil): the whole stack in one process, on a
//! simulated network and clock, reproducible bit for bit from the scenario seed.
//!
//! | file | owns |
//! |---|---|
//! | `runner.rs` | the turmoil simulation: hosts, the client, the step loop, snapshots |
//! | `world.rs` | the state that outlives every host (cluster, queues, objects, switches, history) |
//! | `faults.rs` | the fault actuator: each fault kind applied and reverted; the counter its effect reads |
//! | `net.rs` | axum listener and `HttpClient` over turmoil TCP |
//! | `db_model.rs` | the simulated PostgreSQL: WAL, LSNs, roles, fencing (pure logic) |
//! | `db.rs` | database servers (the durable cluster state) and replication |
//! | `db_router.rs` | `db-router`: the writer endpoint |
//! | `db_client.rs` | the store, saga-log and admin ports over the simulated database |
//! | `broker.rs` | the bounded durable queues, the files' fanout exchange, confirms, prefetch, acks, redelivery |
//! | `objects.rs` | the object store (`objects`): S3's semantics, durable across crashes |
//! | `redis.rs` | the backup catalogue's store (`redis`) |
//! | `backup.rs` | the backup agent (`backup`): base backups, WAL archive, restores |
//! | `state.rs` | reading the final state from the final primary |
//! | `logs.rs` | log lines stamped with simulated time (turmoil's span names the host) |
//!
//! Durable state (database nodes, the queues, the objects) lives in memory created before the hosts, so it
//! survives `sim.crash`; everything a host holds in its tasks dies with it.

mod backup;
mod broker;
mod db;
mod db_client;
mod db_model;
mod db_router;
mod faults;
mod logs;
mod net;
mod objects;
mod redis;
mod runner;
mod state;
mod world;

pub use logs::SimClock;
pub use runner::TICK;

/// The simulation backend for `run::run_file`.
pub struct Sim;

impl crate::run::Backend for Sim {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn run(
        &self,
        loaded: &crate::scenario::Loaded,
        seed: u64,
    ) -> Result<crate::run::Observed, crate::run::BackendError> {
        runner::run(loaded, seed)
    }
}
