//! `db-router` for real PostgreSQL: HAProxy's role, with the simulation's `router_host`
//! semantics (`sim::db`), as a TCP proxy in front of the two nodes.
//!
//! - Every [`CHECK_EVERY`] it asks each node, in the order `pg-primary`, `pg-replica`, whether it
//!   takes writes (`NOT pg_is_in_recovery() AND default_transaction_read_only = off`, answered
//!   within [`CHECK_TIMEOUT`]) and routes to the first that does; none: no route.
//! - Each new client connection is forwarded to the routed node (`copy_bidirectional`); with no
//!   route, or with [`CONNECTIONS_MAX`] connections already proxied, it is closed at once.
//! - When the route changes, every proxied connection is cut: each went to the old node (a
//!   connection is tied to the route it was opened under), and a pooled connection must not keep
//!   writing to a node that stopped being the writer. Clients reconnect and land on the new one.
//! - The watchdog steers the router through the nodes (promote one, fence the other), as in
//!   the simulation; its `set_writer` declaration is recorded, not used for routing. Its fence
//!   has a network half too (`POST /fence`, HAProxy's `disable server`): a fenced node is never
//!   routed to again, even if it comes back writable — a frozen (`pause`d) or partitioned old
//!   primary cannot be made read-only on the spot, and must not win the next check when it thaws.
//!
//! Admin HTTP (`--admin`): `GET /health` → 200; `GET /route` →
//! `{"route": "pg-primary" | "pg-replica" | null, "changes": N, "writer": "pg-…" | null}` where
//! `changes` counts route changes since start (the first, from none to a node, included) and
//! `writer` is the last `POST /set_writer` (a JSON `DbNode`), null before any; `fenced` lists the
//! nodes `POST /fence` (a JSON `DbNode`) took out of service, until `POST /unfence` (the node
//! was rewound and streams as the standby) or `POST /reset` (a restore or a failback rebuilt or
//! rejoined both nodes).
//!
//! Unlike HAProxy, a single failed check changes the route (no `fall`/`rise` counts): the
//! simulation's router does the same, and the two backends must agree.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::pg::NodeConfig;
use crate::stack::ports::DbNode;

/// How often both nodes are health-checked (HAProxy `inter`, and the simulation's router).
pub const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long one node's check (connect if needed, then the query) may take.
pub const CHECK_TIMEOUT: Duration = CHECK_EVERY;
/// Most client connections proxied at once; more are closed on accept.
pub const CONNECTIONS_MAX: usize = 512;
/// How long connecting to the routed node may take before the client connection is closed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The health-check query: does this node take writes?
const TAKES_WRITES: &str =
    "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'";

/// Where writes go now, and how many times that changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Route {
    node: Option<DbNode>,
    changes: u64,
}

/// The two nodes the router fronts, in routing order.
#[derive(Clone, Debug)]
pub struct RouterNodes {
    /// `pg-primary`: how to check it and where to forward.
    pub primary: NodeConfig,
    /// `pg-replica`.
    pub replica: NodeConfig,
}

impl RouterNodes {
    /// `SHAKEDOWN_PG_PRIMARY_URL` and `SHAKEDOWN_PG_STANDBY_URL` ([`NodeConfig::from_env`]).
    pub fn from_env() -> RouterNodes {
        RouterNodes {
            primary: NodeConfig::from_env(DbNode::PgPrimary),
            replica: NodeConfig::from_env(DbNode::PgReplica),
        }
    }
}

/// One node as the router sees it: its check connection and its forwarding address.
struct Backend {
    node: DbNode,
    options: PgConnectOptions,
    address: String,
}

impl Backend {
    fn new(node: DbNode, config: &NodeConfig) -> Result<Backend, String> {
        let options: PgConnectOptions =
            config.url.parse().map_err(|e| format!("{} URL {}: {e}", node.host(), config.url))?;
        let options = options.application_name("shakedown-db-router").disable_statement_logging();
        let address = format!("{}:{}", options.get_host(), options.get_port());
        Ok(Backend { node, options, address })
    }
}

#[derive(Clone)]
struct Shared {
    route: watch::Sender<Route>,
    writer: Arc<Mutex<Option<DbNode>>>,
    fenced: Fenced,
    addresses: Arc<[(DbNode, String); 2]>,
}

/// Run the router on `proxy` (client connections) and `admin` (HTTP) until either fails.
pub async fn serve(proxy: TcpListener, admin: TcpListener, nodes: RouterNodes) -> Result<(), String> {
    let backends =
        [Backend::new(DbNode::PgPrimary, &nodes.primary)?, Backend::new(DbNode::PgReplica, &nodes.replica)?];
    let shared = Shared {
        route: watch::Sender::new(Route::default()),
        writer: Arc::new(Mutex::new(None)),
        fenced: Fenced::default(),
        addresses: Arc::new([
            (DbNode::PgPrimary, backends[0].address.clone()),
            (DbNode::PgReplica, backends[1].address.clone()),
        ]),
    };
    tokio::spawn(health_checks(backends, shared.route.clone(), shared.fenced.clone()));
    let admin_app = admin_router(shared.clone());
    tokio::select! {
        result = accept_loop(proxy, shared) => result,
        result = axum::serve(admin, admin_app) => result.map_err(|e| format!("admin server: {e}")),
    }
}

/// Check both nodes every [`CHECK_EVERY`]; publish the route when it changes.
async fn health_checks(backends: [Backend; 2], route: watch::Sender<Route>, fenced: Fenced) {
    let mut connections: [Option<PgConnection>; 2] = [None, None];
    loop {
        let mut next = None;
        for (backend, connection) in backends.iter().zip(connections.iter_mut()) {
            let out_of_service = fenced.lock().expect("fenced lock").contains(&backend.node);
            if !out_of_service && check(backend, connection).await {
                next = Some(backend.node);
                break;
            }
        }
        let changed = route.send_if_modified(|current| {
            if current.node == next {
                return false;
            }
            current.node = next;
            current.changes += 1;
            true
        });
        if changed {
            let now = *route.borrow();
            tracing::info!(
                route = now.node.map_or("none", DbNode::host),
                changes = now.changes,
                "db-router: writes now go to (proxied connections cut)"
            );
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Does `backend` take writes? The check connection is kept between checks (a check is then one
/// round trip) and dropped on any error or timeout, so the next check reconnects.
async fn check(backend: &Backend, connection: &mut Option<PgConnection>) -> bool {
    let ask = async {
        if connection.is_none() {
            *connection = Some(backend.options.connect().await?);
        }
        let conn = connection.as_mut().expect("connected above");
        sqlx::query_scalar::<_, bool>(TAKES_WRITES).fetch_one(conn).await
    };
    let answer = tokio::time::timeout(CHECK_TIMEOUT, ask).await;
    match answer {
        Ok(Ok(takes_writes)) => takes_writes,
        Ok(Err(error)) => {
            tracing::debug!(node = backend.node.host(), %error, "db-router: check failed");
            drop_quietly(connection.take());
            false
        }
        Err(_) => {
            tracing::debug!(node = backend.node.host(), "db-router: check timed out");
            drop_quietly(connection.take());
            false
        }
    }
}

/// Drop a check connection without waiting on a node that may not answer.
fn drop_quietly(connection: Option<PgConnection>) {
    if let Some(connection) = connection {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CHECK_TIMEOUT, connection.close()).await;
        });
    }
}

async fn accept_loop(listener: TcpListener, shared: Shared) -> Result<(), String> {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Per-connection errors (reset before accept, out of descriptors): keep serving.
            Err(error) => {
                tracing::warn!(%error, "db-router: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = CONNECTIONS_MAX, "db-router: CONNECTIONS_MAX reached; closing");
            continue;
        };
        let (route, addresses) = (shared.route.subscribe(), shared.addresses.clone());
        tokio::spawn(async move {
            proxy(client, route, &addresses).await;
            drop(slot);
        });
    }
}

/// Forward one client connection to the node routed now, until either side closes or the
/// route changes.
async fn proxy(mut client: TcpStream, mut route: watch::Receiver<Route>, addresses: &[(DbNode, String); 2]) {
    let Some(node) = route.borrow_and_update().node else {
        return; // no node takes writes: refuse
    };
    let address = &addresses.iter().find(|(n, _)| *n == node).expect("both nodes have addresses").1;
    let forward = async {
        let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(server)) => server,
            Ok(Err(error)) => {
                tracing::debug!(node = node.host(), %error, "db-router: connect failed");
                return;
            }
            Err(_) => {
                tracing::debug!(node = node.host(), "db-router: connect timed out");
                return;
            }
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    };
    // Any change cuts: the connection was opened under the route that is now the old one.
    tokio::select! {
        () = forward => {}
        _ = route.changed() => {}
    }
}

#[derive(Serialize)]
struct RouteAnswer {
    route: Option<&'static str>,
    changes: u64,
    writer: Option<&'static str>,
    fenced: Vec<&'static str>,
}

/// The nodes the watchdog fenced: out of service for good.
type Fenced = Arc<Mutex<Vec<DbNode>>>;

fn admin_router(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/route", get(route))
        .route("/set_writer", post(set_writer))
        .route("/fence", post(fence))
        .route("/unfence", post(unfence))
        .route(RESET_PATH, post(reset))
        .with_state(shared)
}

async fn route(State(shared): State<Shared>) -> Json<RouteAnswer> {
    let now = *shared.route.borrow();
    let writer = *shared.writer.lock().expect("writer lock");
    Json(RouteAnswer {
        route: now.node.map(DbNode::host),
        changes: now.changes,
        writer: writer.map(DbNode::host),
        fenced: shared.fenced.lock().expect("fenced lock").iter().map(|n| n.host()).collect(),
    })
}

/// The watchdog fenced `node`: never route to it again (the next check moves the route off it,
/// and cuts its connections).
async fn fence(State(shared): State<Shared>, Json(node): Json<DbNode>) -> StatusCode {
    let mut fenced = shared.fenced.lock().expect("fenced lock");
    if !fenced.contains(&node) {
        fenced.push(node);
    }
    tracing::info!(node = node.host(), "db-router: fenced node taken out of service");
    StatusCode::OK
}

/// The watchdog lifted `node`'s fence (it streams as the primary's standby): back in service,
/// routed to again once a check finds it writable (after a promotion).
async fn unfence(State(shared): State<Shared>, Json(node): Json<DbNode>) -> StatusCode {
    shared.fenced.lock().expect("fenced lock").retain(|n| *n != node);
    tracing::info!(node = node.host(), "db-router: unfenced node back in service");
    StatusCode::OK
}

/// Where a restore tells the router both nodes were rebuilt: nothing is fenced any more.
pub const RESET_PATH: &str = "/reset";

/// Both nodes were rebuilt by a restore: they are new nodes, and none is fenced.
async fn reset(State(shared): State<Shared>) -> StatusCode {
    shared.fenced.lock().expect("fenced lock").clear();
    tracing::info!("db-router: both nodes rebuilt by a restore; nothing fenced");
    StatusCode::OK
}

/// The watchdog's declaration of the primary: recorded, not used for routing.
async fn set_writer(State(shared): State<Shared>, Json(node): Json<DbNode>) -> StatusCode {
    *shared.writer.lock().expect("writer lock") = Some(node);
    tracing::info!(writer = node.host(), "db-router: the watchdog declared the primary");
    StatusCode::OK
}
