//! The real adapters (`--features real`): the ports of `stack::ports` on real servers, so the
//! same service code that runs in the simulation runs against PostgreSQL 15 and RabbitMQ 3.10.
//!
//! | module | ports | server |
//! |---|---|---|
//! | `pg` | `InvestStore`, `DbAdmin` (probe, `pg_promote()`, storage fencing, writer endpoint) | PostgreSQL primary + streaming hot standby |
//! | `saga` | `InventoryStore`, `OrderStore`, `ReportStore`, `SagaLog` | the primary, through the writer endpoint |
//! | `queries` | `QueryStore` | the primary |
//! | `files` | `FileStore`, and `read_files` for the final state | the primary |
//! | `objects` | `ObjectStore` (S3 through `object_store`, one bucket) | `s3s-fs`, or any S3 endpoint |
//! | `rabbit` | `Publisher` (confirms, reject-publish, reconnects), `ConsumerFactory`/`Consumer` (manual acks, prefetch), for the query queue and the files' fanout exchange | RabbitMQ |
//! | `http` | `HttpClient` (pooled hyper client, peer table) | the other services |
//! | `catalogue` | `Catalogue` (one Redis hash of entries as JSON) | Redis |
//! | `backup` | — (the backup agent's steps: `pg_basebackup`, cataloguing archived WAL, verifying) | the primary, its WAL archive |
//! | `agent` | — (the `backup` host of a containers run: WAL archive over HTTP, base backups on the run's grid, pruning, restores laid out in the nodes' volumes) | the writer, Redis, the volumes |
//! | `stream` | — (`pg_receivewal` on the backup agent: the WAL tail the archive has not received yet, for a restore to the latest) | the writer |
//! | `restore` | — (a base backup + archived WAL to the latest or a point in time, on a fresh data directory and port) | `pg_ctl` |
//! | `router` | — (the `db-router` host: a TCP proxy to whichever node takes writes, admin HTTP) | both nodes |
//! | `state` | — (the final state and stock snapshots, read for the checkers) | the final primary, the other node |
//! | `serve` | — (`shakedown serve`: one host of the stack, composed as on the simulation, on these adapters; the backup agent; db-router) | as the host needs |
//! | `wal_push` | — (`shakedown wal-push`, the database nodes' `archive_command`) | the backup agent |
//!
//! Migrations are `migrations/*.sql`, applied by [`PgCluster::migrate`]. The tests are
//! `tests/real.rs`, `tests/real_failover.rs`, `tests/real_files.rs` and `tests/real_backup.rs`; `make test-real` starts
//! the servers with `scripts/real-services.sh`, runs them and stops the servers.

pub mod agent;
pub mod backup;
pub mod catalogue;
pub mod files;
pub mod http;
pub mod objects;
pub mod pg;
pub mod queries;
pub mod rabbit;
pub mod restore;
pub mod router;
pub mod saga;
pub mod serve;
pub mod state;
pub mod stream;
pub mod wal_push;

pub use pg::{NodeConfig, PgCluster};
