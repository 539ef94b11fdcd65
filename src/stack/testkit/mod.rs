//! In-memory implementations of every port, for unit tests, benches and (where it helps) the
//! sim backend's bookkeeping. They keep the ports' contracts (idempotency, tombstones,
//! redelivery, `Unavailable` vs definite errors) and add failure injection for tests.
//!
//! Not a simulation: no latency, no replication stream (the test sets the replica's LSN), no
//! crash durability. Use `sim/` for that.

mod broker;
mod db;
mod files;
mod http;
mod stores;

pub use broker::MemBroker;
pub use db::{MemDbAdmin, MemInvestStore, Role};
pub use files::{MemFiles, MemObjects};
pub use http::{MemHttp, body_json, json_request, oneshot};
pub use stores::{MemInventory, MemQueries, MemRows, MemSagaLog, RowState};
