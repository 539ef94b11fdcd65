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
//! | `worker` | `worker-M`, plus `GET /health` and its mode switch on `--listen` | PostgreSQL, RabbitMQ |
//! | `watchdog` | `watchdog`, plus `GET /health` and `POST /control/reset` (after a restore) on `--listen` | both nodes directly, their data directories, the db-router's admin |
//! | `backup` | `backup`: the backup agent (`real::agent`: WAL archive, base backups, catalogue, restores) | the writer (`SHAKEDOWN_BACKUP_CONNINFO`), Redis (`SHAKEDOWN_REDIS_URL`), the backup volume and both data volumes |
//! | `db-router` | `db-router`: TCP proxy on `--listen` to the node that takes writes, admin on `--admin` | both nodes directly |
//! | `invest`, `orders`, `gateway` | one api service alone (kept for the loopback tests) | as `api` |
//!
//! Services with tables run the migrations at startup through the writer endpoint, retried for up
//! to [`DB_WAIT_MAX`] (the db-router may still be choosing a route), and put the workload's
//! catalogue on the shelf where a SKU is missing. The watchdog and the db-router never migrate.
//!
//! Two services also take their fault switch over HTTP, as the simulation flips it in memory
//! (`stack::control` has the bodies): `pricefeed` answers `POST /control/outage` and `worker`
//! `POST /control/mode`. Nothing authenticates these routes: they are for the containers
//! backend's private network, never for an exposed port.

use super::args::ServeArgs;
#[cfg(not(feature = "real"))]
use crate::exit;

/// `shakedown wal-push`: send one WAL file to the backup agent.
pub(super) fn wal_push(args: &super::args::WalPushArgs) -> u8 {
    #[cfg(feature = "real")]
    {
        real::wal_push(args)
    }
    #[cfg(not(feature = "real"))]
    {
        eprintln!("shakedown wal-push {}: this binary was built without the real adapters", args.name);
        exit::BAD_INPUT
    }
}

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

    use axum::extract::State;
    use axum::extract::rejection::JsonRejection;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};

    use super::{DB_WAIT_MAX, ServeArgs};
    use crate::exit;
    use crate::real::PgCluster;
    use crate::real::http::RealHttp;
    use crate::real::objects::{S3Config, S3Objects};
    use crate::real::rabbit::{Fanout, RabbitConfig, RabbitConsumers, RabbitPublisher};
    use crate::real::router::{self as db_router, RouterNodes};
    use crate::scenario::model::{Bug, StackConfig};
    use crate::stack::control::{
        OUTAGE_PATH, OutageRequest, WATCHDOG_HOLD_PATH, WATCHDOG_RESET_PATH, WATCHDOG_STATE_PATH,
        WORKER_MODE_PATH, WatchdogResetRequest, WorkerModeRequest,
    };
    use crate::stack::files::{self as stack_files, FilesPorts};
    use crate::stack::ports::{PublishError, Publisher, QueryMessage, SubscriberGroup};
    use crate::stack::wire::{self, ParticipantConfig};
    use crate::stack::{
        api_host, balancer, gateway, inventory, invest, orders, ordersvc, pricefeed, reports, watchdog,
        worker,
    };
    use crate::workload::CATALOG;

    const SERVICES: [&str; 14] = [
        "api",
        "backup",
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
            "worker" => return serve_worker(args, stack, queue).await,
            "watchdog" => return serve_watchdog(args, stack).await,
            "backup" => return serve_backup(args, stack).await,
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

    /// The watchdog, probing both nodes directly (no migrations: the primary may be down at
    /// startup), and its control routes on `--listen`: `GET /health`, `GET /control/state`,
    /// `POST /control/hold`, `POST /control/reset`.
    async fn serve_watchdog(args: &ServeArgs, stack: &StackConfig) -> Result<(), String> {
        let cluster = PgCluster::from_env().map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("listen on {}: {e}", args.listen))?;
        eprintln!("watchdog probing the PostgreSQL primary; control on http://{}", args.listen);
        let settings = watchdog::Settings::for_stack(stack);
        let state = watchdog::WatchdogState::default();
        let control = with_health(
            Router::new()
                .route(WATCHDOG_RESET_PATH, post(reset_watchdog))
                .route(WATCHDOG_HOLD_PATH, post(hold_watchdog))
                .route(
                    WATCHDOG_STATE_PATH,
                    get(|State(state): State<watchdog::WatchdogState>| async move { Json(state.view()) }),
                )
                .with_state(state.clone()),
        );
        tokio::select! {
            biased;
            () = watchdog::run(Arc::new(cluster), settings, state) => Ok(()),
            served = axum::serve(listener, control) => served.map_err(|e| format!("watchdog control on {}: {e}", args.listen)),
        }
    }

    async fn reset_watchdog(
        State(state): State<watchdog::WatchdogState>,
        body: Result<Json<WatchdogResetRequest>, JsonRejection>,
    ) -> Response {
        match body {
            Ok(Json(request)) => {
                state.reset(request.primary, request.switchover);
                tracing::info!(primary = request.primary.host(), request.switchover, "watchdog reset");
                Json(request).into_response()
            }
            Err(rejection) => wire::error(rejection.status(), rejection.body_text()),
        }
    }

    async fn hold_watchdog(State(state): State<watchdog::WatchdogState>) -> Response {
        state.hold().await;
        tracing::info!("watchdog held: no probe, no action until reset");
        Json(serde_json::json!({ "held": true })).into_response()
    }

    /// The backup agent (`real::agent`): its routes on `--listen`, WAL cataloguing and base
    /// backups. Needs `SHAKEDOWN_BACKUP_CONNINFO` (the writer, libpq form) and
    /// `SHAKEDOWN_REDIS_URL` (the catalogue).
    async fn serve_backup(args: &ServeArgs, stack: &StackConfig) -> Result<(), String> {
        use crate::real::agent::{Agent, AgentConfig};
        use crate::real::catalogue::RedisCatalogue;
        let conninfo = std::env::var("SHAKEDOWN_BACKUP_CONNINFO").map_err(|_| {
            "SHAKEDOWN_BACKUP_CONNINFO must name the writer, e.g. `host=db-router port=5432 user=postgres`"
                .to_string()
        })?;
        let catalogue = Arc::new(RedisCatalogue::from_env().map_err(|e| e.to_string())?);
        let agent = Agent::new(AgentConfig::for_stack(stack, conninfo), catalogue)?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("listen on {}: {e}", args.listen))?;
        eprintln!("backup agent listening on http://{}", args.listen);
        tokio::select! {
            biased;
            served = axum::serve(listener, agent.router()) => served.map_err(|e| format!("backup agent on {}: {e}", args.listen)),
            () = agent.clone().catalogue_loop() => Ok(()),
            () = agent.clone().base_backup_loop() => Ok(()),
        }
    }

    /// How long one `wal-push` waits for the agent: a 1 MB segment takes milliseconds on the run's
    /// network, and a push that hangs (a partition drops its packets) must fail before the
    /// partition ends, or PostgreSQL's archiver, which pushes one file at a time, would just wait.
    const WAL_PUSH_TIMEOUT: Duration = Duration::from_secs(2);

    /// `shakedown wal-push`: exit 0 once the agent stored the file; otherwise 1, and PostgreSQL
    /// retries — unless `SHAKEDOWN_ARCHIVE_IGNORE_FAILURES=1` (the `wal-archive-gap` bug), which
    /// reports success and so loses the segment to the archive.
    pub(super) fn wal_push(args: &super::super::args::WalPushArgs) -> u8 {
        let ignore = std::env::var("SHAKEDOWN_ARCHIVE_IGNORE_FAILURES").is_ok_and(|v| v == "1");
        match push_wal(args) {
            Ok(()) => exit::PASS,
            Err(error) if ignore => {
                eprintln!(
                    "shakedown wal-push {}: {error}; ignored (the wal-archive-gap bug): the archive will miss it",
                    args.name
                );
                exit::PASS
            }
            Err(error) => {
                eprintln!("shakedown wal-push {}: {error}; PostgreSQL retries", args.name);
                exit::FAIL
            }
        }
    }

    fn push_wal(args: &super::super::args::WalPushArgs) -> Result<(), String> {
        use crate::stack::ports::{HttpClient as _, HttpRequest};
        let url = std::env::var("SHAKEDOWN_ARCHIVE_URL").map_err(|_| {
            "SHAKEDOWN_ARCHIVE_URL is not set (the backup agent's http://HOST:PORT)".to_string()
        })?;
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("SHAKEDOWN_ARCHIVE_URL={url}: expected http://HOST:PORT"))?
            .trim_end_matches('/')
            .to_string();
        let body = std::fs::read(&args.path).map_err(|e| format!("reading {}: {e}", args.path.display()))?;
        let request = HttpRequest {
            method: http::Method::PUT,
            authority,
            path: format!("{}{}", crate::real::agent::WAL_PATH, args.name),
            body: Some(body),
            headers: Vec::new(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a tokio runtime: {e}"))?;
        let response = runtime
            .block_on(RealHttp::new(BTreeMap::new()).send(request, WAL_PUSH_TIMEOUT))
            .map_err(|e| format!("PUT to {url}: {e}"))?;
        if response.status == 200 {
            Ok(())
        } else {
            Err(format!("{url} answered {}: {}", response.status, String::from_utf8_lossy(&response.body)))
        }
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
                    publisher: publisher(queue).await?,
                    saga_log: cluster.clone(),
                    files: files_ports(cluster, queue).await?,
                };
                let state = api_host::ApiHostState::for_stack(stack, &args.host_name(), ports);
                api_host::spawn_background(&state);
                api_host::router(state)
            }
            "pricefeed" => pricefeed_router(pricefeed::PricefeedControl::default()),
            "inventory" => inventory::router(inventory::InventoryState::new(db().await?, pc())),
            "ordersvc" => ordersvc::router(ordersvc::OrderSvcState::new(db().await?, pc())),
            "reports" => reports::router(reports::ReportsState::new(db().await?, pc())),
            "invest" => {
                let config = invest::InvestConfig::for_stack(stack);
                with_health(invest::router(invest::InvestState::new(db().await?, Arc::new(http), config)))
            }
            "orders" => {
                let config = orders::OrdersConfig::for_stack(stack, &args.host_name());
                let state = orders::OrdersState::new(Arc::new(http), db().await?, config);
                crate::stack::spawn(orders::recover(state.clone()));
                with_health(orders::router(state))
            }
            "gateway" => {
                let publisher = publisher(queue).await?;
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

    /// The worker: the consumer loop, and `GET /health` plus `POST /control/mode` on `--listen`.
    ///
    /// The address is bound first, so a bad `--listen` fails at once rather than after the
    /// database wait; requests that arrive before the database is ready wait in the listen
    /// backlog, so `GET /health` answering means the database is ready and the consumer loop
    /// has started (it connects to the broker, and reconnects, on its own).
    async fn serve_worker(args: &ServeArgs, stack: &StackConfig, queue: RabbitConfig) -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("listen on {}: {e}", args.listen))?;
        let store = db().await?;
        eprintln!("worker consuming {} (capacity {}) at {}", queue.queue, queue.capacity, queue.uri);
        eprintln!("worker admin listening on http://{}", args.listen);
        let config = worker::WorkerConfig::for_stack(stack);
        let control = worker::WorkerControl::default();
        let admin = axum::serve(listener, worker_admin_router(control.clone()));
        // `biased;` polls in the written order instead of drawing a random start on every
        // wake-up: both branches yield at each await, so neither can starve the other and the
        // fairness would buy nothing. Either one ending ends the process, the consumer loop's end
        // (it has none today) as before, the admin server's with its error.
        if let Some(files) = files_ports(store.clone(), &queue).await? {
            spawn_subscribers(files, &queue, &config, &control);
        }
        tokio::select! {
            biased;
            () = worker::run(Arc::new(RabbitConsumers::new(queue)), store, config, control) => Ok(()),
            served = admin => served.map_err(|e| format!("worker admin on {}: {e}", args.listen)),
        }
    }

    /// The price feed's routes plus `POST /control/outage`, which sets `control`.
    fn pricefeed_router(control: pricefeed::PricefeedControl) -> Router {
        let switch = Router::new().route(OUTAGE_PATH, post(set_outage)).with_state(control.clone());
        pricefeed::router(pricefeed::PricefeedState::new(control)).merge(switch)
    }

    /// Set the price feed's outage; answers the outage now set, as an [`OutageRequest`].
    async fn set_outage(
        State(control): State<pricefeed::PricefeedControl>,
        body: Result<Json<OutageRequest>, JsonRejection>,
    ) -> Response {
        match body {
            Ok(Json(request)) => {
                let outage = request.to_outage();
                control.set(outage);
                tracing::info!(?outage, "price feed outage set");
                Json(OutageRequest::from_outage(outage)).into_response()
            }
            Err(rejection) => wire::error(rejection.status(), rejection.body_text()),
        }
    }

    /// A worker's admin routes: `GET /health` and `POST /control/mode`, which sets `control`.
    fn worker_admin_router(control: worker::WorkerControl) -> Router {
        let switch = Router::new().route(WORKER_MODE_PATH, post(set_worker_mode)).with_state(control);
        with_health(switch)
    }

    /// Set the worker's mode; answers the mode now set, as a [`WorkerModeRequest`].
    async fn set_worker_mode(
        State(control): State<worker::WorkerControl>,
        body: Result<Json<WorkerModeRequest>, JsonRejection>,
    ) -> Response {
        match body {
            Ok(Json(request)) => {
                let mode = request.to_mode();
                control.set(mode);
                tracing::info!(?mode, "worker mode set");
                Json(WorkerModeRequest::from_mode(mode)).into_response()
            }
            Err(rejection) => wire::error(rejection.status(), rejection.body_text()),
        }
    }

    fn with_health(router: Router) -> Router {
        Router::new().route("/health", get(|| async { "ok" })).merge(router)
    }

    /// Object storage, the file rows and the files' fanout, when `SHAKEDOWN_S3_URL` names an
    /// object store (a containers run whose scenario uploads): `None` when it is unset or empty.
    async fn files_ports(
        cluster: Arc<PgCluster>,
        queue: &RabbitConfig,
    ) -> Result<Option<FilesPorts>, String> {
        if std::env::var("SHAKEDOWN_S3_URL").unwrap_or_default().is_empty() {
            return Ok(None);
        }
        let config = S3Config::from_env();
        let objects = retry_startup("the object store", async || S3Objects::connect(&config).await).await?;
        if queue.uri.is_empty() {
            return Err(
                "SHAKEDOWN_S3_URL is set but SHAKEDOWN_AMQP_URL is empty: the files' events need the broker"
                    .into(),
            );
        }
        let events =
            retry_startup("RabbitMQ", async || RabbitPublisher::fanout(queue, &Fanout::files()).await)
                .await?;
        eprintln!("files: objects at {}, events on the `{}` fanout", config.url, Fanout::files().exchange);
        Ok(Some(FilesPorts { objects: Arc::new(objects), files: cluster, events: Arc::new(events) }))
    }

    /// A worker's subscriber groups (thumbnails and audit), each on its own queue of the files'
    /// fanout, under the same control as the query consumer.
    fn spawn_subscribers(
        files: FilesPorts,
        queue: &RabbitConfig,
        config: &worker::WorkerConfig,
        control: &worker::WorkerControl,
    ) {
        for (group, handler) in stack_files::subscribers(files.objects, files.files, config) {
            let consumers = Arc::new(RabbitConsumers::group(queue.clone(), &Fanout::files(), group));
            tokio::spawn(worker::run_handler(consumers, handler, config.clone(), control.clone()));
        }
        eprintln!(
            "worker subscribing to {} and {}",
            SubscriberGroup::Thumbnails.queue(),
            SubscriberGroup::Audit.queue()
        );
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
        use crate::stack::pricefeed::Outage;
        use crate::stack::testkit::{body_json, json_request, oneshot};
        use crate::stack::worker::WorkerMode;
        use http::Method;
        use serde_json::json;

        const PRICE: &str = "/simple/price?ids=bitcoin&vs_currencies=usd";

        /// Goal: the containers backend can start and end a price-feed outage from outside.
        /// Method: POST the switch to the router `serve pricefeed` serves, then GET a price.
        #[tokio::test]
        async fn the_pricefeed_outage_is_switched_over_http() {
            let control = pricefeed::PricefeedControl::default();
            let app = pricefeed_router(control.clone());
            let get_price = || oneshot(app.clone(), json_request(Method::GET, PRICE, None));
            let set = |body| oneshot(app.clone(), json_request(Method::POST, OUTAGE_PATH, Some(body)));
            assert_eq!(get_price().await.status, 200);
            let resp = set(json!({"mode": "errors"})).await;
            assert_eq!((resp.status, body_json(&resp)), (200, json!({"mode": "errors", "delay_ms": 0})));
            assert_eq!(control.get(), Outage::Errors);
            assert_eq!(get_price().await.status, 503);
            assert_eq!(set(json!({"mode": "none"})).await.status, 200);
            assert_eq!(get_price().await.status, 200);
            let resp = set(json!({"mode": "slow", "delay_ms": 1500})).await;
            assert_eq!(body_json(&resp), json!({"mode": "slow", "delay_ms": 1500}));
            assert_eq!(control.get(), Outage::Slow(Duration::from_millis(1500)));
            let health = oneshot(app.clone(), json_request(Method::GET, "/health", None)).await;
            assert_eq!(health.status, 200);
        }

        /// A bad body answers 4xx with a message naming the problem and leaves the switch alone.
        #[tokio::test]
        async fn a_bad_control_body_is_refused_with_a_message() {
            let control = pricefeed::PricefeedControl::default();
            let app = pricefeed_router(control.clone());
            let body = json!({"mode": "errors", "delay": 5});
            let resp = oneshot(app.clone(), json_request(Method::POST, OUTAGE_PATH, Some(body))).await;
            assert_eq!(resp.status, 422);
            let message = body_json(&resp)["error"].as_str().unwrap_or_default().to_owned();
            assert!(message.contains("unknown field `delay`"), "{message}");
            let mut request = json_request(Method::POST, OUTAGE_PATH, None);
            request.body = Some(b"{not json".to_vec());
            assert_eq!(oneshot(app, request).await.status, 400);
            assert_eq!(control.get(), Outage::None);
        }

        /// Goal: the containers backend can pause and resume a worker from outside. Method: POST
        /// the mode to the worker's admin router and read it back through its `WorkerControl`.
        #[tokio::test]
        async fn the_worker_mode_is_switched_over_http() {
            let control = worker::WorkerControl::default();
            let app = worker_admin_router(control.clone());
            let set = |body| oneshot(app.clone(), json_request(Method::POST, WORKER_MODE_PATH, Some(body)));
            let resp = set(json!({"mode": "paused"})).await;
            assert_eq!((resp.status, body_json(&resp)), (200, json!({"mode": "paused", "slow_by_ms": 0})));
            assert_eq!(control.get(), WorkerMode::Paused);
            assert_eq!(set(json!({"mode": "slow", "slow_by_ms": 100})).await.status, 200);
            assert_eq!(control.get(), WorkerMode::Slow(Duration::from_millis(100)));
            assert_eq!(set(json!({"mode": "pause"})).await.status, 422);
            assert_eq!(set(json!({"mode": "running"})).await.status, 200);
            assert_eq!(control.get(), WorkerMode::Running);
            let health = oneshot(app, json_request(Method::GET, "/health", None)).await;
            assert_eq!(health.status, 200);
        }

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
