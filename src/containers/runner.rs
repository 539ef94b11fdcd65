//! One run on containers, as numbered steps:
//!
//! 1. sweep what dead runs left (their owner process is gone);
//! 2. create the run's labelled network and database volumes;
//! 3. start the containers stage by stage (`layout::containers`), each stage ready — by the
//!    server's own health: PostgreSQL answering (the standby streaming), the broker's ping,
//!    `GET /health` — before the next starts; migrate and stock the database once the standby
//!    streams; `startup_ms` is this step;
//! 4. drive the workload from this host through the balancer's port on 127.0.0.1, with the
//!    faults driven on the same clock (`faults::drive` over `ContainerFaults`), a stock
//!    snapshot every second, and the progress line;
//! 5. heal, drain, and read the final state from the node `db-router` routes writes to;
//! 6. remove everything of the run — also on error, panic, Ctrl-C or SIGTERM.
//!
//! Nothing here is deterministic the way the simulation is: the seed fixes the load schedule
//! and the fault plan, not the interleaving of real processes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use sqlx::postgres::PgPool;
use tokio::time::Instant;

use super::backups::Backups;
use super::engine::{Engine, Running};
use super::error;
use super::faults::ContainerFaults;
use super::image::NodeImage;
use super::layout::{ContainerSpec, LINKS_HOST, Links, Readiness, RunNames, containers};
use super::{cleanup, progress};
use crate::check::StockSnapshot;
use crate::history::History;
use crate::real::http::RealHttp;
use crate::real::{NodeConfig, PgCluster};
use crate::run::{BackendError, DRAIN, Observed};
use crate::scenario::Loaded;
use crate::stack::ports::{DbNode, HttpClient, HttpRequest};
use crate::workload::{CATALOG, Recorder, Schedule};

/// The longest one start stage may take to become ready.
const STAGE_READY_MAX: Duration = Duration::from_secs(120);
/// How often readiness is polled.
const READY_POLL_EVERY: Duration = Duration::from_millis(100);
/// How often the broker's readiness is polled (each check is a process in its container).
const BROKER_POLL_EVERY: Duration = Duration::from_millis(500);
/// How often stock is snapshotted for the conservation check.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Run a validated scenario on containers started from `image`.
pub(super) async fn run(loaded: &Loaded, seed: u64, image: NodeImage) -> Result<Observed, BackendError> {
    let engine = start_run(seed, image).await?;
    match guarded(&engine, run_stack(loaded, seed, engine.clone())).await {
        Ended::Finished(outcome) => outcome,
        Ended::Interrupted(signal) => {
            Err(error(format!("interrupted by {signal}; the run's containers were removed")))
        }
    }
}

/// Step 1: a new run on the engine (its id from `seed`, pid and clock), once what dead runs
/// left is swept.
pub(super) async fn start_run(seed: u64, image: NodeImage) -> Result<Arc<Engine>, BackendError> {
    let names = RunNames { run: run_id(seed) };
    let engine = Arc::new(Engine::connect(names, image).await.map_err(error)?);
    for run in cleanup::sweep_dead_runs(&engine.docker).await {
        eprintln!("removed what the dead run {run} left behind");
    }
    Ok(engine)
}

/// How the work [`guarded`] ran ended.
pub(super) enum Ended<T> {
    /// It finished: its outcome, or an error (a panic is one).
    Finished(Result<T, BackendError>),
    /// SIGINT or SIGTERM arrived first (named).
    Interrupted(&'static str),
}

/// Step 6 around any work on the run's containers (`run`'s load and faults, `up`'s wait): run
/// `work` until it ends, panics, or SIGINT / SIGTERM arrives, then remove everything of the
/// run — whichever came first.
pub(super) async fn guarded<T>(
    engine: &Engine,
    work: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Ended<T> {
    let ended = {
        let running = std::panic::AssertUnwindSafe(work).catch_unwind();
        let interrupted = interrupted();
        tokio::select! {
            biased;
            signal = interrupted => Ended::Interrupted(signal),
            outcome = running => Ended::Finished(outcome.unwrap_or_else(|panic| {
                let what = panic.downcast_ref::<String>().cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(error(format!("the run panicked: {what}")))
            })),
        }
    };
    let removed = cleanup::remove_run(&engine.docker, &engine.names.run).await;
    tracing::info!(run = engine.names.run, removed, "run removed");
    ended
}

/// A short id unique enough among the runs on one engine: pid and clock, hashed.
fn run_id(seed: u64) -> String {
    use sha2::{Digest, Sha256};
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let digest = Sha256::digest(format!("{}/{}/{seed}", std::process::id(), clock.as_nanos()));
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Resolves when SIGINT or SIGTERM arrives; names it.
pub(super) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => "SIGINT (Ctrl-C)",
        _ = term.recv() => "SIGTERM",
    }
}

/// The stack's containers and the host ports they publish.
pub(super) struct Stack {
    running: BTreeMap<String, Running>,
    /// Each host's port published on 127.0.0.1 (hosts with no port are absent).
    pub(super) ports: BTreeMap<String, u16>,
    /// The links its proxy carries.
    links: Links,
}

impl Stack {
    fn port(&self, host: &str) -> u16 {
        self.ports[host]
    }

    /// PostgreSQL on `node`'s published port.
    fn pg(&self, node: DbNode) -> NodeConfig {
        NodeConfig {
            url: format!("postgres://postgres@127.0.0.1:{}/postgres", self.port(node.host())),
            data_dir: Default::default(),
        }
    }
}

async fn run_stack(loaded: &Loaded, seed: u64, engine: Arc<Engine>) -> Result<Observed, BackendError> {
    let (stack, startup_ms) = bring_up(loaded, &engine).await?;
    eprintln!(
        "  {} containers healthy in {:.1} s; running the scenario…",
        stack.running.len(),
        startup_ms as f64 / 1000.0
    );
    let mut observed = drive(loaded, seed, &engine, &stack).await?;
    observed.startup_ms = Some(startup_ms);
    Ok(observed)
}

/// Steps 2 and 3, shared by `run` and `up`: the run's network and volumes, then every stage
/// started and ready; the stack and `startup_ms`.
pub(super) async fn bring_up(loaded: &Loaded, engine: &Engine) -> Result<(Stack, u64), BackendError> {
    let scenario = &loaded.scenario;
    let topology = loaded.topology();
    let links = Links::for_plan(&topology, &loaded.plan);
    let specs = containers(&scenario.stack, &topology, &links, &engine.names);
    let volumes: std::collections::BTreeSet<String> =
        specs.iter().flat_map(|s| s.volumes.iter().map(|(v, _)| v.clone())).collect();
    let startup = Instant::now();
    engine.create_network_and_volumes(&volumes.into_iter().collect::<Vec<_>>()).await.map_err(error)?;
    let stack = start_stages(engine, &specs, links).await?;
    Ok((stack, startup.elapsed().as_millis() as u64))
}

/// Start every stage and wait for it; between the standby's stage and the router's, create the
/// tables and stock the shelves once.
async fn start_stages(engine: &Engine, specs: &[ContainerSpec], links: Links) -> Result<Stack, BackendError> {
    let mut stack = Stack { running: BTreeMap::new(), ports: BTreeMap::new(), links };
    for spec in specs.iter().filter(|s| s.port.is_some()) {
        stack.ports.insert(spec.host.clone(), free_port().map_err(error)?);
    }
    let last = specs.iter().map(|s| s.stage.max(s.ready_stage)).max().unwrap_or(0);
    for stage in 0..=last {
        let members: Vec<&ContainerSpec> = specs.iter().filter(|s| s.stage == stage).collect();
        if !members.is_empty() {
            let hosts: Vec<&str> = members.iter().map(|s| s.host.as_str()).collect();
            eprintln!("  starting {}", hosts.join(", "));
        }
        let started = futures::future::join_all(
            members.iter().map(|s| engine.start(s, stack.ports.get(&s.host).copied())),
        )
        .await;
        for (spec, running) in members.iter().zip(started) {
            stack.running.insert(spec.host.clone(), running.map_err(error)?);
        }
        let due: Vec<&ContainerSpec> = specs.iter().filter(|s| s.ready_stage == stage).collect();
        futures::future::try_join_all(due.iter().map(|s| wait_ready(&stack, s))).await?;
        if due.iter().any(|s| s.host == "pg-replica") {
            prepare_database(&stack).await?;
        }
    }
    Ok(stack)
}

/// Where [`free_port`] looks first: below this, down to it, ports no connection is given as its
/// source port when the kernel's ephemeral range starts above.
const PUBLISHED_PORTS_FROM: u16 = 20_000;

/// A free loopback port for a container to publish. Ports are chosen for every host before the
/// first stage starts, and a container of the last stage binds its port seconds later: a port
/// of the kernel's ephemeral range (`ip_local_port_range`) may meanwhile become the source port
/// of one of our own connections (seen: `Bind for 127.0.0.1:42749 failed: port is already
/// allocated`). So the port is taken below that range when there is room, each pick after the
/// last one of this process; else the kernel picks one.
pub(super) fn free_port() -> Result<u16, String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_from > PUBLISHED_PORTS_FROM + 1_000 {
        let span = u32::from(ephemeral_from - PUBLISHED_PORTS_FROM);
        let first = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span {
            let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = PUBLISHED_PORTS_FROM + ((first + step) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Poll `spec`'s readiness until it holds or [`STAGE_READY_MAX`] passes.
async fn wait_ready(stack: &Stack, spec: &ContainerSpec) -> Result<(), BackendError> {
    let deadline = Instant::now() + STAGE_READY_MAX;
    let mut last = String::from("not checked yet");
    while Instant::now() < deadline {
        match ready(stack, spec).await {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        // A broker check starts a process in the container: poll it less often.
        let every = if spec.readiness == Readiness::Broker { BROKER_POLL_EVERY } else { READY_POLL_EVERY };
        tokio::time::sleep(every).await;
    }
    let tail = Engine::log_tail(&stack.running[&spec.host], 20).await;
    Err(error(format!(
        "{} was not ready within {} s (STAGE_READY_MAX): {last}\n--- last lines of {}:\n{tail}",
        spec.host,
        STAGE_READY_MAX.as_secs(),
        spec.name
    )))
}

async fn ready(stack: &Stack, spec: &ContainerSpec) -> Result<(), String> {
    let running = &stack.running[&spec.host];
    match spec.readiness {
        Readiness::Redis => {
            use crate::stack::ports::Catalogue as _;
            let url = format!("redis://127.0.0.1:{}", stack.port(&spec.host));
            let catalogue = crate::real::catalogue::RedisCatalogue::new(&url).map_err(|e| e.to_string())?;
            catalogue.list().await.map(|_| ()).map_err(|e| e.to_string())
        }
        Readiness::Broker => {
            match Engine::exec(running, &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5672"]).await? {
                0 => Ok(()),
                _ => Err("the broker's AMQP port 5672 does not accept connections yet".into()),
            }
        }
        Readiness::Http => {
            let status = get(stack.port(&spec.host), "/health", Duration::from_secs(1)).await?.status;
            if status == 200 { Ok(()) } else { Err(format!("GET /health answered {status}")) }
        }
        Readiness::ObjectStore => get(stack.port(&spec.host), "/", Duration::from_secs(1)).await.map(|_| ()),
        Readiness::Postgres if spec.host == "pg-replica" => {
            let primary = connect(&stack.pg(DbNode::PgPrimary)).await?;
            let streaming: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                    .fetch_one(&primary)
                    .await
                    .map_err(|e| e.to_string())?;
            primary.close().await;
            if streaming > 0 {
                Ok(())
            } else {
                Err("the standby does not stream from the primary yet".into())
            }
        }
        Readiness::Postgres => {
            let pool = connect(&stack.pg(DbNode::PgPrimary)).await?;
            pool.close().await;
            Ok(())
        }
    }
}

async fn connect(node: &NodeConfig) -> Result<PgPool, String> {
    use sqlx::postgres::PgPoolOptions;
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&node.url)
        .await
        .map_err(|e| e.to_string())
}

/// `GET path` on a port published on 127.0.0.1, bounded by `timeout`.
async fn get(port: u16, path: &str, timeout: Duration) -> Result<crate::stack::ports::HttpResponse, String> {
    let request = HttpRequest {
        method: http::Method::GET,
        authority: format!("127.0.0.1:{port}"),
        path: path.into(),
        body: None,
        headers: Vec::new(),
    };
    RealHttp::new(BTreeMap::new()).send(request, timeout).await.map_err(|e| e.to_string())
}

/// Create the tables and put the catalogue's stock on the shelves, once, on the primary.
async fn prepare_database(stack: &Stack) -> Result<(), BackendError> {
    let cluster = PgCluster::new(stack.pg(DbNode::PgPrimary), stack.pg(DbNode::PgReplica))
        .map_err(|e| error(e.to_string()))?;
    cluster.migrate().await.map_err(|e| error(format!("migrations: {e}")))?;
    cluster.set_stock(CATALOG).await.map_err(|e| error(format!("stocking the catalogue: {e}")))?;
    Ok(())
}

/// Step 4 and 5: load, faults, snapshots and progress on one clock; then drain and read.
async fn drive(
    loaded: &Loaded,
    seed: u64,
    engine: &Arc<Engine>,
    stack: &Stack,
) -> Result<Observed, BackendError> {
    let scenario = &loaded.scenario;
    let duration = scenario.duration.get();
    let schedule = Schedule::new(scenario, seed);
    let history = Arc::new(Mutex::new(History::new()));
    let peers = BTreeMap::from([("lb:80".to_string(), format!("127.0.0.1:{}", stack.port("lb")))]);
    let client: Arc<dyn HttpClient> = Arc::new(RealHttp::new(peers));
    let recorder = Recorder::new(history.clone());
    let start = recorder.start();
    let backups = Backups::new(&stack.ports, std::time::SystemTime::now()).map(Arc::new);
    if let Some(backups) = &backups {
        backups.start().await.map_err(|e| error(format!("starting the backup agent's clock: {e}")))?;
    }
    let links_admin = format!("127.0.0.1:{}", stack.port(LINKS_HOST));
    let actuator = ContainerFaults::new(
        engine.clone(),
        start,
        stack.links.clone(),
        links_admin,
        stack.ports.clone(),
        backups.clone(),
    );
    let faults = crate::faults::drive(Arc::new(actuator), &loaded.plan, start, history.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let snapshots = tokio::spawn(snapshot_loop(
        stack.pg(DbNode::PgPrimary),
        stack.pg(DbNode::PgReplica),
        stack.port("db-router"),
        start,
        duration,
        stopped.clone(),
    ));
    let shown =
        tokio::spawn(progress::show(loaded.plan.clone(), duration + DRAIN, start, history.clone(), stopped));
    let workload = crate::workload::drive(&schedule, client, "lb:80".into(), recorder);
    let (generator, fault_effects) = tokio::join!(workload, faults);
    let fault_effects = fault_effects.map_err(error)?;
    tokio::time::sleep_until(start + duration.max(start.elapsed()) + DRAIN).await;
    let _ = stop.send(true);
    let stock_snapshots = snapshots.await.unwrap_or_default();
    let _ = shown.await;
    let simulated_ms = start.elapsed().as_millis() as u64;
    let mut final_state = final_state(stack).await?;
    final_state.stock_snapshots = stock_snapshots;
    if let Some(backups) = &backups {
        let state = backups.state().await.map_err(|e| error(format!("reading the backups: {e}")))?;
        final_state.backups = Some(state);
    }
    let history = std::mem::take(&mut *history.lock().expect("history lock"));
    Ok(Observed { history, final_state, fault_effects, generator, simulated_ms, startup_ms: None })
}

/// Where writes go now, as `db-router` says (`GET /route` on its admin port).
async fn route(router_port: u16) -> Result<Option<DbNode>, String> {
    let response = get(router_port, "/route", Duration::from_secs(2)).await?;
    #[derive(serde::Deserialize)]
    struct Route {
        route: Option<DbNode>,
    }
    let route: Route = serde_json::from_slice(&response.body).map_err(|e| format!("GET /route: {e}"))?;
    Ok(route.route)
}

/// A stock snapshot every second of the run from the node writes go to; a second in which no
/// node answers has no snapshot.
async fn snapshot_loop(
    primary: NodeConfig,
    replica: NodeConfig,
    router_port: u16,
    start: Instant,
    duration: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<StockSnapshot> {
    let mut out = Vec::new();
    let mut next = Duration::ZERO;
    let Ok(pools) = PgCluster::new(primary, replica) else { return out };
    while next <= duration && !*stop.borrow() {
        tokio::time::sleep_until(start + next).await;
        let time_ns = start.elapsed().as_nanos() as u64;
        if let Ok(Some(node)) = route(router_port).await
            && let Ok(snapshot) = crate::real::state::stock_snapshot(pools.pool(node), time_ns).await
        {
            out.push(snapshot);
        }
        next += SNAPSHOT_EVERY;
    }
    out
}

/// The final state from the node `db-router` routes writes to, compared with the other node.
async fn final_state(stack: &Stack) -> Result<crate::check::FinalState, BackendError> {
    let node = route(stack.port("db-router"))
        .await
        .map_err(|e| error(format!("asking db-router for the final primary: {e}")))?
        .ok_or_else(|| {
            error("no database node takes writes at the end of the run (db-router has no route)")
        })?;
    let cluster = PgCluster::new(stack.pg(DbNode::PgPrimary), stack.pg(DbNode::PgReplica))
        .map_err(|e| error(e.to_string()))?;
    let mut state =
        crate::real::state::read_final_state(cluster.pool(node), node, Some(cluster.pool(node.peer())))
            .await
            .map_err(|e| error(format!("reading the final state from {}: {e}", node.host())))?;
    if stack.running.contains_key("objects") {
        use crate::real::objects::{S3Config, S3Objects};
        use crate::stack::ports::ObjectStore;
        let config =
            S3Config { url: format!("http://127.0.0.1:{}", stack.port("objects")), ..S3Config::from_env() };
        let listed = async { S3Objects::new(&config)?.list().await };
        for info in listed.await.map_err(|e| error(format!("listing the object store: {e}")))? {
            state
                .objects
                .insert(info.key, crate::check::StoredObject { size: info.size, checksum: info.checksum });
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the ports of one bring-up are distinct (none is held between picks) and, where the
    // kernel's ephemeral range leaves room below it, outside that range.
    #[test]
    fn published_ports_are_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok());
        if let Some(from) = ephemeral_from.filter(|from| *from > PUBLISHED_PORTS_FROM + 1_000) {
            assert!(ports.iter().all(|p| (PUBLISHED_PORTS_FROM..from).contains(p)), "{ports:?}");
        }
    }
}
