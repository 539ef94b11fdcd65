//! The simulation run: one turmoil host per topology entry running the stack's real service code
//! over simulated sockets, the workload on the `client` host, and the fault scheduler in the outer
//! step loop. Every random choice comes from the scenario seed; every turmoil option is set
//! explicitly (its defaults are a random seed and the wall-clock epoch).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::backup;
use super::broker::{self, SimBroker};
use super::db::{self, Cluster};
use super::db_client::SimDb;
use super::db_router;
use super::faults::Scheduler;
use super::net::{NetCounters, SimHttp};
use super::objects::{self, SimObjects};
use super::redis;
use super::state::read_final_state;
use super::world::{LATENCY_MAX, LATENCY_MIN, World, world};
use crate::check::StockSnapshot;
use crate::run::{BackendError, DRAIN, Observed};
use crate::scenario::Loaded;
use crate::scenario::model::StackConfig;
use crate::scenario::topology::Topology;
use crate::stack::host::{Controls, HostPorts, Serve, Service, compose};
use crate::stack::ports::DbNode;
use crate::workload::{Recorder, Schedule};

/// The simulation's clock step. turmoil polls every running host once per tick, whether or not
/// it has work, and walks every link for every host: at 17 hosts that bookkeeping is about two
/// thirds of a run's CPU time (profile in the README, "Simulation speed"). 2 ms is the largest
/// network latency, so message timing keeps its resolution; halving the ticks took primary-crash
/// from 22x to 37x real time. Timers and latencies are multiples of the tick.
pub const TICK: Duration = Duration::from_millis(2);
/// Connections a listening socket may hold before they are accepted (and segments a connection
/// may hold unread). A paused host receives, when it thaws, every connection attempt held for
/// the whole pause at once — about 2,000 for the balancer after 12 s at 150 ops/s, more for the
/// database hosts — and turmoil panics when a listener's queue overflows, where a kernel would
/// drop the SYN. Set far above what a run can open (a semaphore bound, not an allocation).
const TCP_CAPACITY: usize = 1 << 16;
/// A fixed epoch, so nothing in a run depends on the wall clock.
const EPOCH_SECS: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Run a validated scenario on the simulation.
pub fn run(loaded: &Loaded, seed: u64) -> Result<Observed, BackendError> {
    let scenario = &loaded.scenario;
    let duration = scenario.duration.get();
    let longest_timeout = scenario.workload.iter().map(|l| l.timeout.get()).max().unwrap_or_default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(crate::seed::derive(seed, "net"))
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .tick_duration(TICK)
        .min_message_latency(LATENCY_MIN)
        .max_message_latency(LATENCY_MAX)
        .simulation_duration(duration + longest_timeout + DRAIN + Duration::from_secs(30))
        .tcp_capacity(TCP_CAPACITY)
        .build();
    let world = world(loaded);
    let topology = loaded.topology();
    hosts(&mut sim, loaded, &topology, &world);
    client(&mut sim, loaded, seed, &world);
    let hosts: Vec<String> = topology.hosts().iter().map(|h| h.name.clone()).collect();
    let mut scheduler = Scheduler::new(&loaded.plan, hosts, scenario.stack.queue.capacity as usize);
    let mut snapshots = Vec::new();
    let mut next_snapshot = Duration::ZERO;
    loop {
        let done = sim.step().map_err(|e| BackendError { backend: "sim", message: e.to_string() })?;
        let now = sim.elapsed();
        scheduler.advance(&mut sim, now, &world);
        if now >= next_snapshot && now <= duration {
            snapshots.push(snapshot(&world.cluster, now));
            next_snapshot += Duration::from_secs(1);
        }
        if done {
            break;
        }
    }
    let simulated_ms = sim.elapsed().as_millis() as u64;
    let fault_effects = scheduler.effects();
    let mut final_state = read_final_state(&world, &loaded.plan);
    final_state.stock_snapshots = snapshots;
    let history = std::mem::take(&mut *world.history.lock().expect("history lock"));
    let generator = world.generator.lock().expect("generator lock").take().unwrap_or_default();
    Ok(Observed { history, final_state, fault_effects, generator, simulated_ms, startup_ms: None })
}

fn snapshot(cluster: &Cluster, now: Duration) -> StockSnapshot {
    let cluster = cluster.lock().expect("cluster lock");
    let tables = &cluster.nodes[&cluster.writer].tables;
    let mut reserved = std::collections::BTreeMap::new();
    for r in tables.reservations.values().filter(|r| !r.restocked) {
        *reserved.entry(r.sku.clone()).or_insert(0) += r.qty;
    }
    StockSnapshot { time_ns: now.as_nanos() as u64, on_hand: tables.stock.clone(), reserved }
}

/// Store calls give up after this long; the services' own timeouts are shorter or equal.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// One turmoil host per entry of `topology` (the hosts the scenario uses): the stack's services
/// composed as on every backend (`stack::host`), the infrastructure simulated here.
fn hosts(sim: &mut turmoil::Sim<'_>, loaded: &Loaded, topology: &Topology, world: &World) {
    let stack = &loaded.scenario.stack;
    // Uploads need object storage; only then do the api hosts serve files and the workers run
    // the subscriber groups.
    let with_files = topology.hosts().iter().any(|h| h.name == "objects");
    for entry in topology.hosts() {
        let name = entry.name.clone();
        match Service::of_host(&name) {
            Some(service) => service_host(sim, service, name, stack, world, with_files),
            None => infrastructure_host(sim, name, stack, world),
        }
    }
}

/// A host running one of the stack's services, booted through [`compose`]. Every boot gets its
/// own connection pool (`for_host`) and database client.
fn service_host(
    sim: &mut turmoil::Sim<'_>,
    service: Service,
    name: String,
    stack: &StackConfig,
    world: &World,
    with_files: bool,
) {
    let (http, cluster, stack) = (SimHttp::new(world.counters.clone()), world.cluster.clone(), stack.clone());
    let worker = name.strip_prefix("worker-").map(|n| n.parse::<usize>().expect("worker-N"));
    let controls = Controls {
        pricefeed: world.pricefeed.clone(),
        worker: worker.map(|n| world.workers[n - 1].clone()).unwrap_or_default(),
        watchdog: world.watchdog.clone(),
    };
    let host = name.clone();
    sim.host(name, move || {
        let ports = ports(&http.for_host(), &cluster, &host, with_files);
        let serve: Serve = Box::new(|router: Option<axum::Router>| match router {
            Some(router) => {
                Box::pin(async move { super::net::serve(router).await.map_err(|e| e.to_string()) })
            }
            // A worker or the watchdog has no routes of its own: nothing listens on the host.
            None => Box::pin(std::future::pending()),
        });
        let life = compose(service, &host, &stack, ports, &controls, serve);
        async move { life.await.map_err(Into::into) }
    });
}

/// The simulation's ports for the services on `host`, all over one connection pool.
fn ports(http: &SimHttp, cluster: &Cluster, host: &str, with_files: bool) -> HostPorts {
    let db = Arc::new(SimDb::new(http.clone(), cluster.clone(), STORE_TIMEOUT));
    let mut ports = HostPorts::new(Arc::new(http.clone()));
    ports.database = Some(db.clone());
    ports.admin = Some(db);
    ports.queries = Some(Arc::new(SimBroker::new(http.clone(), host)));
    ports.consumers = Some(Arc::new(SimBroker::new(http.clone(), host)));
    if with_files {
        ports.objects = Some(Arc::new(SimObjects::new(http.clone(), STORE_TIMEOUT)));
        ports.file_events = Some(Arc::new(SimBroker::files(http.clone(), host)));
        let (http, host) = (http.clone(), host.to_string());
        ports.subscriptions =
            Some(Arc::new(move |group| Arc::new(SimBroker::group(http.clone(), &host, group))));
    }
    ports
}

/// A simulated server the services reach through their ports: the database nodes and
/// `db-router`, the broker, the object store, Redis, the backup agent. The client host is
/// `client`'s.
fn infrastructure_host(sim: &mut turmoil::Sim<'_>, name: String, stack: &StackConfig, world: &World) {
    let http = SimHttp::new(world.counters.clone());
    match name.as_str() {
        "broker" => {
            let state = world.broker.clone();
            sim.host(name, move || broker::broker_host(state.clone()));
        }
        "objects" => {
            let state = world.objects.clone();
            sim.host(name, move || objects::objects_host(state.clone()));
        }
        "redis" => {
            let data = world.redis.clone();
            sim.host(name, move || redis::redis_host(data.clone()));
        }
        "backup" => {
            let (backups, cluster) = (world.backups.clone(), world.cluster.clone());
            let config = stack.backup.clone().unwrap_or_default();
            let bugs = crate::stack::bugs::Bugs::from_list(&stack.bugs);
            sim.host(name, move || {
                backup::backup_host(backups.clone(), cluster.clone(), http.for_host(), config.clone(), bugs)
            });
        }
        "pg-primary" | "pg-replica" => {
            let node = DbNode::named(&name);
            let cluster = world.cluster.clone();
            sim.host(name, move || db::node_host(cluster.clone(), node, http.for_host()));
        }
        "db-router" => {
            let cluster = world.cluster.clone();
            sim.host(name, move || db_router::router_host(cluster.clone(), http.for_host()));
        }
        "client" => {}
        other => panic!("no simulated host `{other}`"),
    }
}

fn client(sim: &mut turmoil::Sim<'_>, loaded: &Loaded, seed: u64, world: &World) {
    let schedule = Schedule::new(&loaded.scenario, seed);
    let http = SimHttp::new(Arc::new(NetCounters::default()));
    let history = world.history.clone();
    let generator = world.generator.clone();
    sim.client("client", async move {
        let recorder = Recorder::new(history);
        let stats = crate::workload::drive(&schedule, Arc::new(http), "lb:80".into(), recorder).await;
        *generator.lock().expect("generator lock") = Some(stats);
        // Give accepted queries and in-flight sagas time to settle before the final state is read.
        tokio::time::sleep(DRAIN).await;
        Ok(())
    });
}
