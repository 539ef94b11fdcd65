//! `shakedown serve SERVICE`: run one host of the stack for real — the same `src/stack/` code the
//! simulation runs — on the real adapters: PostgreSQL (`SHAKEDOWN_PG_PRIMARY_URL`,
//! `SHAKEDOWN_PG_STANDBY_URL`), RabbitMQ (`SHAKEDOWN_AMQP_URL`), peers by `--peer`. Needs a
//! binary built with `--features real`.
//!
//! Every service is configured as the simulation configures its host (`sim::runner::hosts`):
//! from the scenario's `stack` section, passed as JSON in `SHAKEDOWN_STACK` (default
//! `StackConfig::default()`), through the same `for_stack` constructors; `--bug` adds switches.
//!
//! | service | host it plays | needs |
//! |---|---|---|
//! | `api` | `api-N`: investments, orders saga middleware, query gateway, `/health` | PostgreSQL, RabbitMQ, peers `pricefeed:80`, `inventory:80`, `ordersvc:80`, `reports:80` |
//! | `pricefeed`, `inventory`, `ordersvc`, `reports` | the host of that name | PostgreSQL (not `pricefeed`) |
//! | `balancer` | `lb` over `api-1:80` … `api-N:80` (or `--upstream`) | peers `api-N:80` |
//! | `worker` | `worker-M` | PostgreSQL, RabbitMQ |
//! | `watchdog` | `watchdog` | both nodes directly, their data directories, the db-router's admin |
//! | `db-router` | `db-router`: TCP proxy on `--listen` to the node that takes writes, admin on `--admin` | both nodes directly |
//! | `invest`, `orders`, `gateway` | one api service alone (kept for the loopback tests) | as `api` |
//!
//! Services with tables run the migrations at startup through the writer endpoint, retried for up
//! to [`DB_WAIT_MAX`] (the db-router may still be choosing a route), and put the workload's
//! catalogue on the shelf where a SKU is missing. The watchdog and the db-router never migrate.

use super::args::ServeArgs;
#[cfg(not(feature = "real"))]
use crate::exit;

/// Serve until interrupted.
pub(super) fn run(args: &ServeArgs) -> u8 {
    #[cfg(feature = "real")]
    {
        real::run(args)
    }
    #[cfg(not(feature = "real"))]
    {
        eprintln!(
            "shakedown serve {}: this binary was built without the real adapters; rebuild with `cargo build --release --features real` (PostgreSQL and RabbitMQ: `make real-up` starts them on loopback)",
            args.service
        );
        exit::BAD_INPUT
    }
}

/// How long a service waits for the database at startup (first connection and migrations).
#[cfg(feature = "real")]
pub const DB_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(feature = "real")]
mod real {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::routing::get;

    use super::{DB_WAIT_MAX, ServeArgs};
    use crate::exit;
    use crate::real::PgCluster;
    use crate::real::http::RealHttp;
    use crate::real::rabbit::{RabbitConfig, RabbitConsumers, RabbitPublisher};
    use crate::real::router::{self as db_router, RouterNodes};
    use crate::scenario::model::{Bug, StackConfig};
    use crate::stack::bugs::Bugs;
    use crate::stack::wire::ParticipantConfig;
    use crate::stack::{
        api_host, balancer, gateway, inventory, invest, orders, ordersvc, pricefeed, reports, watchdog,
        worker,
    };
    use crate::workload::CATALOG;

    const SERVICES: [&str; 13] = [
        "api",
        "pricefeed",
        "invest",
        "inventory",
        "ordersvc",
        "reports",
        "orders",
        "gateway",
        "worker",
        "balancer",
        "watchdog",
        "db-router",
        "links",
    ];

    /// The environment variable holding the scenario's `stack` section as JSON.
    const STACK_ENV: &str = "SHAKEDOWN_STACK";
    /// Pause between two startup attempts (database, broker).
    const STARTUP_RETRY_EVERY: Duration = Duration::from_millis(500);

    pub(super) fn run(args: &ServeArgs) -> u8 {
        let (peers, stack) = match inputs(args) {
            Ok(inputs) => inputs,
            Err(message) => {
                eprintln!("shakedown serve {}: {message}", args.service);
                return exit::BAD_INPUT;
            }
        };
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        match runtime.block_on(serve(args, &stack, RealHttp::new(peers))) {
            Ok(()) => exit::PASS,
            Err(error) => {
                eprintln!("shakedown serve {}: {error}", args.service);
                exit::HARNESS_ERROR
            }
        }
    }

    /// Check the service name and parse the peer table, the stack and the bugs (all bad input).
    fn inputs(args: &ServeArgs) -> Result<(BTreeMap<String, String>, StackConfig), String> {
        if !SERVICES.contains(&args.service.as_str()) {
            return Err(format!("no service `{}`; expected one of: {}", args.service, SERVICES.join(", ")));
        }
        if args.service == "db-router" && args.admin.is_none() {
            return Err("db-router needs --admin ADDR (its admin HTTP address, e.g. 0.0.0.0:80)".into());
        }
        let mut peers = BTreeMap::new();
        for peer in &args.peers {
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
        for name in &args.bugs {
            let bug = serde_json::from_value::<Bug>(serde_json::json!(name))
                .map_err(|_| format!("--bug {name}: not a bug-zoo switch (see README, \"The bug zoo\")"))?;
            stack.bugs.push(bug);
        }
        stack.bugs.sort();
        stack.bugs.dedup();
        Ok((peers, stack))
    }

    /// Parse `SHAKEDOWN_STACK`; an error names the variable and the path to the bad field.
    pub(super) fn stack_from_json(json: &str) -> Result<StackConfig, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let at = if path == "." { String::new() } else { format!(" at `{path}`") };
            format!("{STACK_ENV}{at}: {} (expected the scenario's `stack` section as JSON)", error.inner())
        })
    }

    async fn serve(args: &ServeArgs, stack: &StackConfig, http: RealHttp) -> Result<(), String> {
        let queue = RabbitConfig::from_env(&args.queue, args.queue_capacity.unwrap_or(stack.queue.capacity));
        let router = match args.service.as_str() {
            "worker" => {
                eprintln!("worker consuming {} (capacity {}) at {}", queue.queue, queue.capacity, queue.uri);
                let config = worker::WorkerConfig::for_stack(stack);
                let control = worker::WorkerControl::default();
                worker::run(Arc::new(RabbitConsumers::new(queue)), db().await?, config, control).await;
                return Ok(());
            }
            "watchdog" => {
                // Straight to both nodes (no migrations: the primary may be down at startup).
                let cluster = PgCluster::from_env().map_err(|e| e.to_string())?;
                eprintln!("watchdog probing the PostgreSQL primary");
                let (config, bugs) = (stack.watchdog.clone(), Bugs::from_list(&stack.bugs));
                watchdog::run(Arc::new(cluster), config, bugs, watchdog::WatchdogState::default()).await;
                return Ok(());
            }
            "db-router" => return serve_db_router(args).await,
            "links" => return serve_links(args).await,
            _ => http_router(args, stack, http, &queue).await?,
        };
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("listen on {}: {e}", args.listen))?;
        eprintln!("{} listening on http://{}", args.service, args.listen);
        axum::serve(listener, router).await.map_err(|e| e.to_string())
    }

    /// The router of an HTTP service, every one answering `GET /health` with 200.
    async fn http_router(
        args: &ServeArgs,
        stack: &StackConfig,
        http: RealHttp,
        queue: &RabbitConfig,
    ) -> Result<Router, String> {
        let pc = ParticipantConfig::default;
        Ok(match args.service.as_str() {
            "api" => {
                let cluster = db().await?;
                let ports = api_host::ApiPorts {
                    http: Arc::new(http),
                    invest: cluster.clone(),
                    queries: cluster.clone(),
                    publisher: Arc::new(publisher(queue).await?),
                    saga_log: cluster,
                };
                api_host::router(api_host::ApiHostState::for_stack(stack, ports))
            }
            "pricefeed" => {
                pricefeed::router(pricefeed::PricefeedState::new(pricefeed::PricefeedControl::default()))
            }
            "inventory" => inventory::router(inventory::InventoryState::new(db().await?, pc())),
            "ordersvc" => ordersvc::router(ordersvc::OrderSvcState::new(db().await?, pc())),
            "reports" => reports::router(reports::ReportsState::new(db().await?, pc())),
            "invest" => {
                let config = invest::InvestConfig::for_stack(stack);
                with_health(invest::router(invest::InvestState::new(db().await?, Arc::new(http), config)))
            }
            "orders" => {
                let config = orders::OrdersConfig::for_stack(stack);
                with_health(orders::router(orders::OrdersState::new(Arc::new(http), db().await?, config)))
            }
            "gateway" => {
                let publisher = Arc::new(publisher(queue).await?);
                let config = gateway::GatewayConfig::for_stack(stack);
                with_health(gateway::router(gateway::GatewayState::new(db().await?, publisher, config)))
            }
            _ => {
                let mut config = balancer::LbConfig::for_stack(stack);
                if !args.upstreams.is_empty() {
                    config.upstreams = args.upstreams.clone();
                }
                eprintln!("balancer over {}", config.upstreams.join(", "));
                let state = balancer::BalancerState::new(Arc::new(http), config);
                tokio::spawn(balancer::run_health_checks(state.clone()));
                // The balancer's own health, answered here rather than forwarded.
                with_health(balancer::router(state))
            }
        })
    }

    fn with_health(router: Router) -> Router {
        Router::new().route("/health", get(|| async { "ok" })).merge(router)
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

    async fn publisher(queue: &RabbitConfig) -> Result<RabbitPublisher, String> {
        retry_startup("RabbitMQ", async || RabbitPublisher::connect(queue).await).await
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

    /// The link proxy of a containers run: `--link NAME=PORT:HOST:PORT` each, steered on
    /// `--listen` (needs the `containers` feature, which every node image's binary has).
    async fn serve_links(args: &ServeArgs) -> Result<(), String> {
        #[cfg(feature = "containers")]
        {
            use crate::containers::proxy::{LinkSpec, serve};
            let links = args.links.iter().map(|l| LinkSpec::parse(l)).collect::<Result<Vec<_>, _>>()?;
            eprintln!("links: {} proxied, admin on http://{}", links.len(), args.listen);
            serve(links, &args.listen).await
        }
        #[cfg(not(feature = "containers"))]
        {
            let _ = args;
            Err("the link proxy needs a binary built with `--features containers`".into())
        }
    }

    async fn serve_db_router(args: &ServeArgs) -> Result<(), String> {
        let admin = args.admin.as_deref().expect("checked in inputs()");
        let bind = |address: &str| {
            let address = address.to_owned();
            async move {
                tokio::net::TcpListener::bind(&address).await.map_err(|e| format!("listen on {address}: {e}"))
            }
        };
        let (proxy, admin_listener) = (bind(&args.listen).await?, bind(admin).await?);
        let nodes = RouterNodes::from_env();
        eprintln!(
            "db-router proxying {} to whichever of {} / {} takes writes; admin on http://{admin}",
            args.listen, nodes.primary.url, nodes.replica.url
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
    }
}
