//! The real adapters (`--features real`): the ports of `stack::ports` on real servers.
//!
//! **Partial.** Done: PostgreSQL through sqlx for the investments API (`InvestStore`) and the
//! watchdog's control plane (`DbAdmin`), with a writer endpoint that follows the watchdog, and
//! storage-level fencing. Not yet: the saga participants' and the query pipeline's stores, the
//! RabbitMQ broker (lapin), an `HttpClient` over real sockets, and `shakedown serve`. The tests
//! are `tests/real.rs` and `tests/real_failover.rs`, run by `make test-real` against the servers
//! `scripts/real-services.sh` starts.

pub mod pg;
pub mod saga;

pub use pg::{NodeConfig, PgCluster};
