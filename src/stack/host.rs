//! Which of the stack's services a host runs and how they are wired — from a bundle of ports
//! ([`HostPorts`]) the backend fills — in one place for both backends: the simulation boots each
//! service host through [`compose`] (`sim/runner.rs`), and `shakedown serve` runs one through it
//! on the real adapters (`real/serve.rs`).
//!
//! | host | [`Service`] | runs | ports it takes |
//! |---|---|---|---|
//! | `lb` | `Balancer` | the balancer's router (+ `GET /health`) and its health checks | `http` (`upstreams` to override `api-1..N`) |
//! | `api-N` | `Api` | investments, the saga middleware, the query gateway, files (`api_host.rs`), the saga recovery | `http`, `database`, `queries`, and `objects` + `file_events` if the stack stores files |
//! | `pricefeed` | `Pricefeed` | the price feed, its outage switched by [`Controls::pricefeed`] | — |
//! | `inventory`, `ordersvc`, `reports` | `Inventory`, `OrderSvc`, `Reports` | the saga participants (`participant.rs`) | `database` |
//! | `worker-M` | `Worker` | the query consumer, and with `objects` the files' subscriber groups, under [`Controls::worker`] | `database`, `consumers`, `objects` + `subscriptions` |
//! | `watchdog` | `Watchdog` | the failover watchdog, its state in [`Controls::watchdog`] | `admin` |
//!
//! The infrastructure hosts (database nodes, `db-router`, broker, object store, Redis, the
//! backup agent) are each backend's own: simulated servers, or real servers and agents.
//! The switches in [`Controls`] are what a backend's fault actuator flips: in memory on the
//! simulation, through the host's control routes on real nodes (`real/serve.rs`).
//!
//! [`compose`] builds everything synchronously and spawns (with [`crate::stack::spawn`]) at
//! the same points on both backends: a worker's subscriber groups as the host boots, the
//! balancer's health checks and the saga recovery when the returned future first runs. On the
//! simulation that order is part of the deterministic interleaving.

use std::sync::Arc;

use axum::Router;
use futures::future::BoxFuture;

use super::files::{self, FilesPorts};
use super::ports::{
    ConsumerFactory, DbAdmin, FileEvent, FileStore, HttpClient, InventoryStore, InvestStore, ObjectStore,
    OrderStore, Publisher, QueryStore, ReportStore, SagaLog, SubscriberGroup,
};
use super::pricefeed::{PricefeedControl, PricefeedState};
use super::watchdog::WatchdogState;
use super::wire::ParticipantConfig;
use super::worker::{WorkerConfig, WorkerControl};
use super::{api_host, balancer, inventory, ordersvc, pricefeed, reports, watchdog, worker};
use crate::scenario::model::StackConfig;

/// A service of the stack, by the host that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// `api-N`.
    Api,
    /// `pricefeed`.
    Pricefeed,
    /// `inventory`.
    Inventory,
    /// `ordersvc`.
    OrderSvc,
    /// `reports`.
    Reports,
    /// `lb`.
    Balancer,
    /// `worker-M`.
    Worker,
    /// `watchdog`.
    Watchdog,
}

impl Service {
    /// Every service, in the order of their names.
    pub const ALL: [Service; 8] = [
        Service::Api,
        Service::Pricefeed,
        Service::Inventory,
        Service::OrderSvc,
        Service::Reports,
        Service::Balancer,
        Service::Worker,
        Service::Watchdog,
    ];

    /// Its name for `shakedown serve`: `api`, `pricefeed`, …, `balancer`, `worker`, `watchdog`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Api => "api",
            Service::Pricefeed => "pricefeed",
            Service::Inventory => "inventory",
            Service::OrderSvc => "ordersvc",
            Service::Reports => "reports",
            Service::Balancer => "balancer",
            Service::Worker => "worker",
            Service::Watchdog => "watchdog",
        }
    }

    /// The service of that name.
    pub fn named(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The service a topology host runs (`api-2`: `Api`); `None` for the infrastructure hosts
    /// and the client.
    pub fn of_host(host: &str) -> Option<Service> {
        match host {
            "lb" => Some(Service::Balancer),
            "pricefeed" => Some(Service::Pricefeed),
            "inventory" => Some(Service::Inventory),
            "ordersvc" => Some(Service::OrderSvc),
            "reports" => Some(Service::Reports),
            "watchdog" => Some(Service::Watchdog),
            api if api.starts_with("api-") => Some(Service::Api),
            worker if worker.starts_with("worker-") => Some(Service::Worker),
            _ => None,
        }
    }

    /// The ports it takes besides `http` (the table in the module doc).
    pub fn needs(self) -> Needs {
        let none = Needs::default();
        match self {
            Service::Api => Needs { database: true, queries: true, files: true, ..none },
            Service::Inventory | Service::OrderSvc | Service::Reports => Needs { database: true, ..none },
            Service::Worker => Needs { database: true, consumers: true, files: true, ..none },
            Service::Watchdog => Needs { admin: true, ..none },
            Service::Pricefeed | Service::Balancer => none,
        }
    }
}

/// Which ports a service takes, so a real node connects only to what it uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// [`HostPorts::database`].
    pub database: bool,
    /// [`HostPorts::admin`].
    pub admin: bool,
    /// [`HostPorts::queries`].
    pub queries: bool,
    /// [`HostPorts::consumers`].
    pub consumers: bool,
    /// [`HostPorts::objects`] and, with it, `file_events` (api) or `subscriptions` (worker).
    pub files: bool,
}

/// Every table the services keep, behind one client: the simulated database's or PostgreSQL's.
pub trait Database:
    InvestStore + QueryStore + SagaLog + InventoryStore + OrderStore + ReportStore + FileStore
{
}

impl<T> Database for T where
    T: InvestStore + QueryStore + SagaLog + InventoryStore + OrderStore + ReportStore + FileStore + ?Sized
{
}

/// Makes the consumers of a subscriber group's queue.
pub type Subscriptions = Arc<dyn Fn(SubscriberGroup) -> Arc<dyn ConsumerFactory<FileEvent>> + Send + Sync>;

/// The ports a host's services are built on. A backend fills what [`Service::needs`] asks for
/// (it may fill more); [`compose`] panics on a missing one (a harness bug).
#[derive(Clone)]
pub struct HostPorts {
    /// Calls to other services (the price feed, the saga participants, the api replicas).
    pub http: Arc<dyn HttpClient>,
    /// The services' tables.
    pub database: Option<Arc<dyn Database>>,
    /// The database nodes' admin side (the watchdog's).
    pub admin: Option<Arc<dyn DbAdmin>>,
    /// Publishing to the query queue.
    pub queries: Option<Arc<dyn Publisher>>,
    /// Consuming the query queue.
    pub consumers: Option<Arc<dyn ConsumerFactory>>,
    /// Object storage; `None` when the stack stores no files (api: `POST /files` answers 503;
    /// worker: no subscriber groups).
    pub objects: Option<Arc<dyn ObjectStore>>,
    /// Publishing `file.uploaded` on the files' fanout (api, with `objects`).
    pub file_events: Option<Arc<dyn Publisher<FileEvent>>>,
    /// The subscriber groups' consumers (worker, with `objects`).
    pub subscriptions: Option<Subscriptions>,
    /// The balancer's upstreams, when not the stack's `api-1:80` … `api-N:80`.
    pub upstreams: Option<Vec<String>>,
}

impl HostPorts {
    /// Only `http`; fill the rest by field.
    pub fn new(http: Arc<dyn HttpClient>) -> HostPorts {
        HostPorts {
            http,
            database: None,
            admin: None,
            queries: None,
            consumers: None,
            objects: None,
            file_events: None,
            subscriptions: None,
            upstreams: None,
        }
    }
}

/// The switches a backend's fault actuator flips on a host.
#[derive(Clone, Default)]
pub struct Controls {
    /// The price feed's outage.
    pub pricefeed: PricefeedControl,
    /// A worker's mode (paused, slowed).
    pub worker: WorkerControl,
    /// The watchdog's state (read by the harness; reset after a restore, held for a failback).
    pub watchdog: WatchdogState,
}

/// Serves a host's router until it stops: a turmoil listener on the simulation, a TCP listener
/// (with the host's control routes merged) on a real node. `None`: the host has no routes of
/// its own (a worker, the watchdog) — the simulation then serves nothing, a real node only its
/// control routes.
pub type Serve = Box<dyn FnOnce(Option<Router>) -> BoxFuture<'static, Result<(), String>> + Send>;

/// Wire `service` (the host `name`, configured from `stack`) on `ports` and `controls`: spawns
/// what runs as the host boots and returns the host's life — its router served through `serve`,
/// or its loop beside `serve(None)` — which ends only with an error.
pub fn compose(
    service: Service,
    name: &str,
    stack: &StackConfig,
    ports: HostPorts,
    controls: &Controls,
    serve: Serve,
) -> BoxFuture<'static, Result<(), String>> {
    let participant = ParticipantConfig::default;
    match service {
        Service::Api => api(name, stack, ports, serve),
        Service::Balancer => {
            let mut config = balancer::LbConfig::for_stack(stack);
            config.upstreams = ports.upstreams.unwrap_or(config.upstreams);
            let state = balancer::BalancerState::new(ports.http, config);
            Box::pin(async move {
                crate::stack::spawn(balancer::run_health_checks(state.clone()));
                // The balancer's own health, answered here rather than forwarded.
                serve(Some(with_health(balancer::router(state)))).await
            })
        }
        Service::Pricefeed => serve(Some(pricefeed::router(PricefeedState::new(controls.pricefeed.clone())))),
        Service::Inventory => {
            serve(Some(inventory::router(inventory::InventoryState::new(database(&ports), participant()))))
        }
        Service::OrderSvc => {
            serve(Some(ordersvc::router(ordersvc::OrderSvcState::new(database(&ports), participant()))))
        }
        Service::Reports => {
            serve(Some(reports::router(reports::ReportsState::new(database(&ports), participant()))))
        }
        Service::Worker => worker(stack, ports, controls.worker.clone(), serve),
        Service::Watchdog => {
            let admin = ports.admin.expect("the watchdog's admin port");
            let (settings, state) = (watchdog::Settings::for_stack(stack), controls.watchdog.clone());
            beside(watchdog::run(admin, settings, state), serve)
        }
    }
}

/// An api host: its four services on one router, the saga recovery beside it.
fn api(
    name: &str,
    stack: &StackConfig,
    ports: HostPorts,
    serve: Serve,
) -> BoxFuture<'static, Result<(), String>> {
    let database = database(&ports);
    let files = ports.objects.map(|objects| FilesPorts {
        objects,
        files: database.clone(),
        events: ports.file_events.expect("with object storage, the files' event publisher"),
    });
    let api_ports = api_host::ApiPorts {
        http: ports.http,
        invest: database.clone(),
        queries: database.clone(),
        publisher: ports.queries.expect("the api's query publisher"),
        saga_log: database,
        files,
    };
    let state = api_host::ApiHostState::for_stack(stack, name, api_ports);
    Box::pin(async move {
        api_host::spawn_background(&state);
        serve(Some(api_host::router(state))).await
    })
}

/// A worker: the files' subscriber groups spawned now (with object storage), the query
/// consumer as the host's loop; all under one control.
fn worker(
    stack: &StackConfig,
    ports: HostPorts,
    control: WorkerControl,
    serve: Serve,
) -> BoxFuture<'static, Result<(), String>> {
    let database = database(&ports);
    let consumers = ports.consumers.expect("the worker's query consumers");
    let config = WorkerConfig::for_stack(stack);
    if let Some(objects) = ports.objects {
        let subscriptions =
            ports.subscriptions.expect("with object storage, the subscriber groups' consumers");
        let tables: Arc<dyn FileStore> = database.clone();
        for (group, handler) in files::subscribers(objects, tables, &config) {
            let run = worker::run_handler(subscriptions(group), handler, config.clone(), control.clone());
            crate::stack::spawn(run);
        }
    }
    beside(worker::run(consumers, database, config, control), serve)
}

/// A host's loop (which never ends) with `serve(None)` beside it; either ending ends the host.
/// `biased;` polls in the written order rather than drawing a random start on every wake-up:
/// both yield at each await, so neither starves the other, and the simulation's interleaving
/// stays a function of its seed.
fn beside(
    run: impl std::future::Future<Output = ()> + Send + 'static,
    serve: Serve,
) -> BoxFuture<'static, Result<(), String>> {
    let served = serve(None);
    Box::pin(async move {
        tokio::select! {
            biased;
            () = run => Ok(()),
            served = served => served,
        }
    })
}

fn database(ports: &HostPorts) -> Arc<dyn Database> {
    ports.database.clone().expect("the service's database port")
}

/// `router` plus `GET /health` answering 200.
pub fn with_health(router: Router) -> Router {
    Router::new().route("/health", axum::routing::get(|| async { "ok" })).merge(router)
}
