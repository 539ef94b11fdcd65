//! The system under test: the services of the investment / orders / replication stack, the
//! ports (traits) they use to reach the outside, and the bug zoo. (Which hosts there are, and
//! the groups a scenario names them by, is the scenario's vocabulary: `scenario::topology`.)
//!
//! Service code never knows which backend runs it: `sim/` and the real adapters implement the
//! same ports. Each service is one file: a config struct (defaults documented on it), a state
//! built from `Arc<dyn Port>`s, and `router(state)` (HTTP services) or `run(..)` (loops).
//!
//! | file | host | entry point |
//! |---|---|---|
//! | `host.rs` | every service host | `host::compose(Service, ..)`: which services a host runs and how they are wired, for both backends |
//! | `pricefeed.rs` | `pricefeed` | `pricefeed::router(PricefeedState)` + `PricefeedControl` |
//! | `invest.rs` | `api-N` | `invest::router(InvestState)` |
//! | `orders.rs` | `api-N` | `orders::router(OrdersState)` (the saga middleware) |
//! | `gateway.rs` | `api-N` | `gateway::router(GatewayState)` |
//! | `api_host.rs` | `api-N` | `api_host::router(ApiHostState)`: the above + files + `/health` |
//! | `inventory.rs`, `ordersvc.rs`, `reports.rs` | same names | the saga participants' routers |
//! | `participant.rs` | `inventory`, `ordersvc`, `reports` | `Participant<Store>`: the participants' shared state and router scaffold |
//! | `files.rs` | `api-N`, `worker-M` | `files::router(FilesState)`; subscribers `Thumbnails`, `Audit` |
//! | `worker.rs` | `worker-M` | `worker::run(..)`, `worker::run_handler(..)` + `WorkerControl` |
//! | `balancer.rs` | `lb` | `balancer::router(BalancerState)` + `balancer::run_health_checks` |
//! | `watchdog.rs` | `watchdog` | `watchdog::run(..)` + `WatchdogState` (tests in `watchdog/tests.rs`) |
//! | `bugs.rs` | — | `Bugs`, the bug-zoo switches |
//! | `control.rs` | — | the JSON a backend outside the process sends to flip the switches above, and the routes that take it |
//! | `api.rs` | — | the public HTTP API's routes and bodies (the workload uses them too) |
//! | `ports.rs` | — | the ports (traits) and their error contract |
//! | `backup_policy.rs` | `backup` | the backup agent's decisions for both backends: the base backup a restore starts from, the WAL chain after it, what a prune drops |
//! | `wire.rs` | — | participant bodies, status convention |
//! | `testkit/` | — | in-memory ports for tests, benches and the sim backend's bookkeeping |

pub mod api;
pub mod api_host;
pub mod backup_policy;
pub mod balancer;
pub mod bugs;
pub mod control;
pub mod files;
pub mod gateway;
pub mod host;
pub mod inventory;
pub mod invest;
pub mod orders;
pub mod ordersvc;
pub mod participant;
pub mod ports;
pub mod pricefeed;
pub mod reports;
pub mod testkit;
pub mod watchdog;
pub mod wire;
pub mod worker;

/// Start a background task on the current host.
///
/// Under the simulation this spawns onto the host's `LocalSet` rather than the runtime's own task
/// list. tokio shards that list by a process-wide task id, so the order in which a crashed host's
/// tasks are dropped (and its sockets closed, each close drawing latency from the simulation's
/// RNG) would depend on other simulations running on other threads of the same process; the
/// `LocalSet` drops its tasks in a fixed order. Outside the simulation it is `tokio::spawn`.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if turmoil::in_simulation() { tokio::task::spawn_local(future) } else { tokio::spawn(future) }
}
