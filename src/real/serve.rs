//! `shakedown serve SERVICE`: run one host of the stack for real — the same `src/stack/` code the
//! simulation runs, wired by the same composition (`stack::host::compose`) — on the real
//! adapters: PostgreSQL (`SHAKEDOWN_PG_PRIMARY_URL`, `SHAKEDOWN_PG_STANDBY_URL`), RabbitMQ
//! (`SHAKEDOWN_AMQP_URL`), object storage (`SHAKEDOWN_S3_URL`), peers by `--peer`.
//!
//! Every service is configured as the simulation configures its host: from the scenario's
//! `stack` section, passed as JSON in `SHAKEDOWN_STACK` (default `StackConfig::default()`),
//! through the same `for_stack` constructors; `--bug` adds switches.
//!
//! | service | host it plays | needs |
//! |---|---|---|
//! | `api` | `api-N`: investments, orders saga middleware, query gateway, files, `/health` | PostgreSQL, RabbitMQ, peers `pricefeed:80`, `inventory:80`, `ordersvc:80`, `reports:80` |
//! | `pricefeed`, `inventory`, `ordersvc`, `reports` | the host of that name | PostgreSQL (not `pricefeed`) |
//! | `balancer` | `lb` over `api-1:80` … `api-N:80` (or `--upstream`) | peers `api-N:80` |
//! | `worker` | `worker-M`, plus `GET /health` and its mode switch on `--listen` | PostgreSQL, RabbitMQ |
//! | `watchdog` | `watchdog`, plus `GET /health` and its control routes on `--listen` | both nodes directly, their data directories, the db-router's admin |
//! | `backup` | `backup`: the backup agent (`real::agent`: WAL archive, base backups, catalogue, restores) | the writer (`SHAKEDOWN_BACKUP_CONNINFO`), Redis (`SHAKEDOWN_REDIS_URL`), the backup volume and both data volumes |
//! | `db-router` | `db-router`: TCP proxy on `--listen` to the node that takes writes, admin on `--admin` | both nodes directly |
//! | `invest`, `orders`, `gateway` | one api service alone (kept for the loopback tests) | as `api` |
//!
//! Services with tables run the migrations at startup through the writer endpoint, retried for up
//! to [`DB_WAIT_MAX`] (the db-router may still be choosing a route), and put the workload's
//! catalogue on the shelf where a SKU is missing. The watchdog and the db-router never migrate.
//! The fault switches the simulation flips in memory are taken over HTTP here
//! (`stack::control::routes`, on the same `--listen`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;

use super::PgCluster;
use super::http::RealHttp;
use super::objects::{S3Config, S3Objects};
use super::rabbit::{Fanout, RabbitConfig, RabbitConsumers, RabbitPublisher};
use super::router::{self as db_router, RouterNodes};
use crate::scenario::model::{Bug, StackConfig};
use crate::stack::host::{Controls, HostPorts, Needs, Serve, Service, compose, with_health};
use crate::stack::ports::{PublishError, Publisher, QueryMessage};
use crate::stack::{control, gateway, invest, orders};
use crate::workload::CATALOG;

/// How long a service waits for the database at startup (first connection and migrations).
pub const DB_WAIT_MAX: Duration = Duration::from_secs(30);
/// Pause between two startup attempts (database, broker).
const STARTUP_RETRY_EVERY: Duration = Duration::from_millis(500);
/// The environment variable holding the scenario's `stack` section as JSON.
const STACK_ENV: &str = "SHAKEDOWN_STACK";

/// The services `serve` runs besides the stack's hosts ([`Service`]).
const EXTRAS: [&str; 5] = ["backup", "db-router", "invest", "orders", "gateway"];

/// What `shakedown serve` was asked to run (the command line's `serve` arguments).
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// The service's name (a [`Service`] or one of the extras in the module doc).
    pub service: String,
    /// Its address (for `db-router`: the PostgreSQL proxy's).
    pub listen: String,
    /// This host's name in the stack (`api-1`): the saga orchestrator's name in the saga log.
    pub host_name: String,
    /// For `db-router`: its admin HTTP address.
    pub admin: Option<String>,
    /// `NAME=ADDR`: where a peer named in the topology really is.
    pub peers: Vec<String>,
    /// For `balancer`: its upstreams, when not the stack's `api-1:80` … `api-N:80`.
    pub upstreams: Vec<String>,
    /// Bug-zoo switches added to the stack's, by name.
    pub bugs: Vec<String>,
    /// The RabbitMQ queue's name.
    pub queue: String,
    /// The queue's capacity (default: the stack's `queue.capacity`).
    pub queue_capacity: Option<u32>,
}

/// Why `serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad input (exit 254): an unknown service, a bad peer, stack or bug.
    #[error("{0}")]
    BadInput(String),
    /// The service could not start or stopped with an error (exit 255).
    #[error("{0}")]
    Failed(String),
}

/// Whether `service` is one `serve` runs here.
pub fn is_service(service: &str) -> bool {
    Service::named(service).is_some() || EXTRAS.contains(&service)
}

/// Every service name `serve` runs here, for messages.
pub fn service_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = Service::ALL.iter().map(|s| s.name()).chain(EXTRAS).collect();
    names.sort();
    names
}

/// Serve until interrupted (or until the service fails).
pub fn run(options: &ServeOptions) -> Result<(), ServeError> {
    let (peers, stack) = inputs(options).map_err(ServeError::BadInput)?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| ServeError::Failed(format!("a tokio runtime: {e}")))?;
    runtime.block_on(serve(options, &stack, RealHttp::new(peers))).map_err(ServeError::Failed)
}

/// Check the service name and parse the peer table, the stack and the bugs (all bad input).
fn inputs(options: &ServeOptions) -> Result<(BTreeMap<String, String>, StackConfig), String> {
    if !is_service(&options.service) {
        return Err(format!(
            "no service `{}`; expected one of: {}",
            options.service,
            service_names().join(", ")
        ));
    }
    if options.service == "db-router" && options.admin.is_none() {
        return Err("db-router needs --admin ADDR (its admin HTTP address, e.g. 0.0.0.0:80)".into());
    }
    let mut peers = BTreeMap::new();
    for peer in &options.peers {
        let Some((name, address)) = peer.split_once('=') else {
            return Err(format!("--peer {peer}: expected NAME=ADDR, e.g. pricefeed:80=127.0.0.1:7001"));
        };
        peers.insert(name.to_owned(), address.to_owned());
    }
    let mut stack = match std::env::var(STACK_ENV) {
        Ok(json) => stack_from_json(&json)?,
        Err(std::env::VarError::NotPresent) => StackConfig::default(),
        Err(error) => return Err(format!("{STACK_ENV}: {error}")),
    };
    for name in &options.bugs {
        let bug = serde_json::from_value::<Bug>(serde_json::json!(name))
            .map_err(|_| format!("--bug {name}: not a bug-zoo switch (see README, \"The bug zoo\")"))?;
        stack.bugs.push(bug);
    }
    stack.bugs.sort();
    stack.bugs.dedup();
    Ok((peers, stack))
}

/// Parse `SHAKEDOWN_STACK`; an error names the variable and the path to the bad field.
pub fn stack_from_json(json: &str) -> Result<StackConfig, String> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let at = if path == "." { String::new() } else { format!(" at `{path}`") };
        format!("{STACK_ENV}{at}: {} (expected the scenario's `stack` section as JSON)", error.inner())
    })
}

async fn serve(options: &ServeOptions, stack: &StackConfig, http: RealHttp) -> Result<(), String> {
    let queue =
        RabbitConfig::from_env(&options.queue, options.queue_capacity.unwrap_or(stack.queue.capacity));
    let service = options.service.as_str();
    if let Some(service) = Service::named(service) {
        return serve_host(options, service, stack, http, &queue).await;
    }
    match service {
        "backup" => serve_backup(options, stack).await,
        "db-router" => serve_db_router(options).await,
        _ => {
            let router = extra_router(options, stack, http, &queue).await?;
            axum::serve(bind(&options.listen).await?, router).await.map_err(|e| e.to_string())
        }
    }
}

async fn bind(address: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| format!("listen on {address}: {e}"))
}

/// A host of the stack: its ports connected, then `stack::host::compose` on them, its router
/// (or none: a worker, the watchdog) served on `--listen` with its control routes.
///
/// The address is bound first, so a bad `--listen` fails at once rather than after the
/// database wait; requests that arrive before the database is ready wait in the listen
/// backlog, so a worker's `GET /health` answering means its consumer loop has started.
async fn serve_host(
    options: &ServeOptions,
    service: Service,
    stack: &StackConfig,
    http: RealHttp,
    queue: &RabbitConfig,
) -> Result<(), String> {
    let listener = bind(&options.listen).await?;
    let mut ports = ports(service.needs(), http, queue).await?;
    if !options.upstreams.is_empty() {
        ports.upstreams = Some(options.upstreams.clone());
    }
    let controls = Controls::default();
    let control = control::routes(service, &controls);
    let listen = options.listen.clone();
    eprintln!("{} listening on http://{listen}", options.service);
    let serve: Serve = Box::new(move |router: Option<Router>| {
        let router = router.unwrap_or_default().merge(control);
        Box::pin(async move {
            axum::serve(listener, router).await.map_err(|e| format!("serving on {listen}: {e}"))
        })
    });
    compose(service, &options.host_name, stack, ports, &controls, serve).await
}

/// The ports `needs` asks for, on the real adapters (each retried at startup).
async fn ports(needs: Needs, http: RealHttp, queue: &RabbitConfig) -> Result<HostPorts, String> {
    let mut ports = HostPorts::new(Arc::new(http));
    if needs.admin {
        ports.admin = Some(Arc::new(PgCluster::from_env().map_err(|e| e.to_string())?));
    }
    if !needs.database {
        return Ok(ports);
    }
    let cluster = db().await?;
    ports.database = Some(cluster.clone());
    if needs.queries {
        ports.queries = Some(publisher(queue).await?);
    }
    if needs.consumers {
        eprintln!("consuming {} (capacity {}) at {}", queue.queue, queue.capacity, queue.uri);
        ports.consumers = Some(Arc::new(RabbitConsumers::new(queue.clone())));
    }
    if needs.files
        && let Some(objects) = object_store().await?
    {
        ports.objects = Some(objects);
        if needs.queries {
            ports.file_events = Some(Arc::new(file_events(queue).await?));
        }
        if needs.consumers {
            let queue = queue.clone();
            ports.subscriptions = Some(Arc::new(move |group| {
                Arc::new(RabbitConsumers::group(queue.clone(), &Fanout::files(), group))
            }));
        }
    }
    Ok(ports)
}

/// Object storage, when `SHAKEDOWN_S3_URL` names a store (a containers run whose scenario
/// uploads): `None` when it is unset or empty.
async fn object_store() -> Result<Option<Arc<S3Objects>>, String> {
    if std::env::var("SHAKEDOWN_S3_URL").unwrap_or_default().is_empty() {
        return Ok(None);
    }
    let config = S3Config::from_env();
    let objects = retry_startup("the object store", async || S3Objects::connect(&config).await).await?;
    eprintln!("files: objects at {}", config.url);
    Ok(Some(Arc::new(objects)))
}

/// The files' fanout exchange's publisher: uploads need the broker.
async fn file_events(
    queue: &RabbitConfig,
) -> Result<RabbitPublisher<crate::stack::ports::FileEvent>, String> {
    if queue.uri.is_empty() {
        return Err(
            "SHAKEDOWN_S3_URL is set but SHAKEDOWN_AMQP_URL is empty: the files' events need the broker"
                .into(),
        );
    }
    let events =
        retry_startup("RabbitMQ", async || RabbitPublisher::fanout(queue, &Fanout::files()).await).await?;
    eprintln!("files: events on the `{}` fanout", Fanout::files().exchange);
    Ok(events)
}

/// The cluster through the writer endpoint, migrated and with the catalogue on the shelf.
async fn db() -> Result<Arc<PgCluster>, String> {
    let cluster = PgCluster::from_env().map_err(|e| e.to_string())?;
    retry_startup("PostgreSQL", async || {
        cluster.migrate().await?;
        cluster.seed_stock(CATALOG).await
    })
    .await?;
    Ok(Arc::new(cluster))
}

/// RabbitMQ's publisher; with `SHAKEDOWN_AMQP_URL` set empty (a containers run whose
/// scenario sends no queries starts no broker), one that refuses every publish at once.
async fn publisher(queue: &RabbitConfig) -> Result<Arc<dyn Publisher>, String> {
    if queue.uri.is_empty() {
        return Ok(Arc::new(NoBroker));
    }
    Ok(Arc::new(retry_startup("RabbitMQ", async || RabbitPublisher::connect(queue).await).await?))
}

/// The publisher of a run without a broker: nothing is queued, so nothing is confirmed.
struct NoBroker;

#[async_trait::async_trait]
impl Publisher for NoBroker {
    async fn publish(&self, _: QueryMessage, _: Duration) -> Result<(), PublishError> {
        Err(PublishError::Unconfirmed("this run started no broker".into()))
    }
}

/// Try `attempt` until it succeeds, for at most [`DB_WAIT_MAX`], logging each failure.
async fn retry_startup<T, E: std::fmt::Display>(
    what: &str,
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, String> {
    let deadline = Instant::now() + DB_WAIT_MAX;
    for tries in 1.. {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() < deadline => {
                eprintln!("{what}: not ready ({error}); attempt {tries}, retrying");
                tokio::time::sleep(STARTUP_RETRY_EVERY).await;
            }
            Err(error) => {
                return Err(format!("{what}: {error} (gave up after {} s)", DB_WAIT_MAX.as_secs()));
            }
        }
    }
    unreachable!("the loop returns")
}

/// One api service alone, for the loopback tests (`invest`, `orders`, `gateway`), with
/// `GET /health`.
async fn extra_router(
    options: &ServeOptions,
    stack: &StackConfig,
    http: RealHttp,
    queue: &RabbitConfig,
) -> Result<Router, String> {
    let database = db().await?;
    Ok(match options.service.as_str() {
        "invest" => {
            let config = invest::InvestConfig::for_stack(stack);
            with_health(invest::router(invest::InvestState::new(database, Arc::new(http), config)))
        }
        "orders" => {
            let config = orders::OrdersConfig::for_stack(stack, &options.host_name);
            let state = orders::OrdersState::new(Arc::new(http), database, config);
            crate::stack::spawn(orders::recover(state.clone()));
            with_health(orders::router(state))
        }
        "gateway" => {
            let config = gateway::GatewayConfig::for_stack(stack);
            with_health(gateway::router(gateway::GatewayState::new(
                database,
                publisher(queue).await?,
                config,
            )))
        }
        other => unreachable!("`{other}` is not an extra api service"),
    })
}

/// The backup agent (`real::agent`): its routes on `--listen`, WAL streaming and cataloguing,
/// base backups. Needs `SHAKEDOWN_BACKUP_CONNINFO` (the writer, libpq form) and
/// `SHAKEDOWN_REDIS_URL` (the catalogue).
async fn serve_backup(options: &ServeOptions, stack: &StackConfig) -> Result<(), String> {
    use super::agent::{Agent, AgentConfig};
    use super::catalogue::RedisCatalogue;
    let conninfo = std::env::var("SHAKEDOWN_BACKUP_CONNINFO").map_err(|_| {
        "SHAKEDOWN_BACKUP_CONNINFO must name the writer, e.g. `host=db-router port=5432 user=postgres`"
            .to_string()
    })?;
    let catalogue = Arc::new(RedisCatalogue::from_env().map_err(|e| e.to_string())?);
    let agent = Agent::new(AgentConfig::for_stack(stack, conninfo), catalogue)?;
    let listener = bind(&options.listen).await?;
    eprintln!("backup agent listening on http://{}", options.listen);
    tokio::select! {
        biased;
        served = axum::serve(listener, agent.router()) => served.map_err(|e| format!("backup agent on {}: {e}", options.listen)),
        () = agent.clone().catalogue_loop() => Ok(()),
        () = agent.clone().base_backup_loop() => Ok(()),
        () = agent.clone().stream_loop() => Ok(()),
    }
}

async fn serve_db_router(options: &ServeOptions) -> Result<(), String> {
    let admin = options.admin.as_deref().expect("checked in inputs()");
    let (proxy, admin_listener) = (bind(&options.listen).await?, bind(admin).await?);
    let nodes = RouterNodes::from_env();
    eprintln!(
        "db-router proxying {} to whichever of {} / {} takes writes; admin on http://{admin}",
        options.listen, nodes.primary.url, nodes.replica.url
    );
    db_router::serve(proxy, admin_listener, nodes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bad stack names the variable and the path to the field; a good one round-trips.
    #[test]
    fn the_stack_comes_from_json_with_path_errors() {
        let stack = StackConfig { api_replicas: 3, bugs: vec![Bug::NoFencing], ..StackConfig::default() };
        let parsed = stack_from_json(&serde_json::to_string(&stack).unwrap()).unwrap();
        assert_eq!((parsed.api_replicas, parsed.bugs), (3, vec![Bug::NoFencing]));
        let error = stack_from_json(r#"{"watchdog": {"failures_to_promote": "x"}}"#).unwrap_err();
        assert!(error.starts_with("SHAKEDOWN_STACK at `watchdog.failures_to_promote`: "), "{error}");
        let error = stack_from_json(r#"{"queue": {"size": 1}}"#).unwrap_err();
        assert!(error.contains("`queue.size`") && error.contains("unknown field"), "{error}");
    }

    /// Every service a containers run starts is one `serve` knows, and an unknown one is bad
    /// input that lists them.
    #[test]
    fn services_are_the_hosts_and_the_extras() {
        for name in [
            "api",
            "pricefeed",
            "inventory",
            "ordersvc",
            "reports",
            "balancer",
            "worker",
            "watchdog",
            "backup",
            "db-router",
        ] {
            assert!(is_service(name), "{name}");
        }
        let options = ServeOptions { service: "nope".into(), ..ServeOptions::default() };
        let error = inputs(&options).unwrap_err();
        assert!(error.starts_with("no service `nope`; expected one of: api, backup, balancer,"), "{error}");
    }
}
