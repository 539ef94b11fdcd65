//! The simulated database on the network: a server per node (`pg-primary`, `pg-replica`) over the
//! durable [`Cluster`] state, the standby's replication loop, the `db-router` writer endpoint, and
//! the store and admin ports the services use to reach them.
//!
//! Wire (framed, bodies in postcard: see `net`): `POST /write` (a [`Write`]; only a writable node
//! commits it), `POST /read` (a [`Read`], any node), `GET /wal?from=L` (a primary streams its
//! WAL; the `from` its standby asks for confirms everything before it; the request waits until a
//! commit or a role change wakes it), `POST /promote`. With `sync`/`remote_apply` replication a
//! commit is acknowledged only once the standby has confirmed it; a primary whose standby is gone
//! waits until it has told the watchdog, then commits alone (Patroni's non-strict synchronous
//! mode; see `db_model`): it decides by itself, so `DbAdmin::release_sync` and `require_sync`
//! are no-ops here. The watchdog's probe (`Read::Probe`) returns the primary's view of its
//! standby (`pg_stat_replication`); the db-router's health check asks only whether a node takes
//! writes (`Read::Writable`), which tells the watchdog nothing. Fencing is out-of-band (the
//! watchdog flips the node's durable state directly, as a STONITH power switch would), so it
//! works against a dead or frozen node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use http::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::db_model::{Node, Outcome, Role, Write};
use super::net::{Postcard, SimHttp, from_postcard, to_postcard};
use crate::scenario::model::Replication;
use crate::stack::ports::*;

/// Both nodes' durable state, the writer endpoint's setting, and the replication mode. Created
/// outside the turmoil hosts, so it survives their crashes.
#[derive(Debug)]
pub struct ClusterState {
    /// The nodes.
    pub nodes: BTreeMap<DbNode, Node>,
    /// The node the watchdog last declared primary (`DbAdmin::set_writer`): where the final
    /// state is read from.
    pub writer: DbNode,
    /// When commits are acknowledged.
    pub replication: Replication,
    /// WAL archiving to the `backup` host, when the stack takes backups.
    pub archiving: Option<Archiving>,
    /// Wakes what waits on a node's state — WAL long polls and synchronous commits — instead of
    /// their polling it: notified by everything they wait for (a commit, the standby's
    /// confirmation, a probe's report, fencing and unfencing, promotion, a rewind). A waiter
    /// registers before it checks, so no change slips between the two; the one change no
    /// notification marks, a silent standby ceasing to count as streaming, is a timer.
    pub changed: Arc<Notify>,
}

/// How a primary archives its WAL.
#[derive(Clone, Copy, Debug)]
pub struct Archiving {
    /// The `wal-archive-gap` bug: a failed archive push is treated as done.
    pub ignore_failures: bool,
}

/// Shared handle to the cluster.
pub type Cluster = Arc<Mutex<ClusterState>>;

/// Simulated time now, ns (the global clock, identical on every host).
pub fn now_ns() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_nanos() as u64)
}

/// Reads any node answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Read {
    /// The node's LSN.
    AppliedLsn,
    /// Investments with `lsn >= min_lsn`, newest first.
    History { min_lsn: Lsn, limit: u32 },
    /// Stock on hand.
    Stock,
    /// One query.
    QueryGet { id: u64 },
    /// One file's row.
    FileGet { id: u64 },
    /// The statistics a worker computes for a product.
    QueryCompute { sku: String },
    /// An order's saga trace.
    SagaTrace { order_id: String },
    /// How many unfinished sagas' leases ended before `now_ns`.
    SagaClaimable { now_ns: u64 },
    /// The watchdog's probe: is the node writable, and how does its standby replicate?
    Probe,
    /// A base backup: the node's whole durable state (`pg_basebackup`).
    BaseBackup,
    /// The db-router's health check: is the node writable?
    Writable,
}

/// Answers to [`Read`]s.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ReadAnswer {
    /// An LSN.
    Lsn(Lsn),
    /// A history page.
    History(HistoryPage),
    /// Stock.
    Stock(BTreeMap<String, u64>),
    /// A query row.
    Query(Option<QueryRow>),
    /// A file's row.
    File(Option<FileRow>),
    /// A computed answer.
    Text(String),
    /// A trace.
    Trace(Vec<String>),
    /// Writable or not.
    Writable(bool),
    /// A count.
    Count(u64),
    /// The watchdog's probe.
    Status(NodeStatus),
    /// A base backup.
    Base(Box<Node>),
}

#[derive(Clone)]
struct NodeHost {
    cluster: Cluster,
    me: DbNode,
    /// The cluster's [`ClusterState::changed`].
    changed: Arc<Notify>,
}

/// How long one commit's fsync takes.
const COMMIT_COST: Duration = Duration::from_millis(1);
/// How soon a standby asks for WAL again after an answer.
const REPLICATION_POLL: Duration = Duration::from_millis(1);
/// How often a node that is not a standby checks whether it must rejoin as one (a fenced old
/// primary once its peer is the primary: the HA manager's pg_rewind, which takes far longer).
const REJOIN_CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long a standby's WAL request waits on the primary for new commits (a long poll, so
/// replication streams: a commit reaches the standby one network round trip after it is made).
const WAL_WAIT_MAX: Duration = Duration::from_millis(500);
/// Pause between a standby's WAL requests after a failed one.
const STANDBY_RETRY_EVERY: Duration = Duration::from_millis(20);
/// A standby silent for this long is no longer streaming: once the watchdog has been told, it no
/// longer holds up synchronous commits.
const STANDBY_GONE: Duration = Duration::from_secs(1);
/// Longest a commit waits for its standby before the primary gives up on answering (the commit
/// stays on the primary, its outcome unknown to the client, as when PostgreSQL's wait for a
/// synchronous standby is cancelled). The db-router stops waiting after as long.
const SYNC_WAIT_MAX: Duration = Duration::from_secs(10);
/// Most WAL entries sent in one replication answer.
const WAL_BATCH_MAX: usize = 512;

/// The server of one database node, plus (when it is a standby) its replication loop.
pub async fn node_host(cluster: Cluster, me: DbNode, http: SimHttp) -> turmoil::Result {
    let (archiving, changed) = {
        let cluster = cluster.lock().expect("cluster lock");
        (cluster.archiving, cluster.changed.clone())
    };
    let state = NodeHost { cluster: cluster.clone(), me, changed };
    if let Some(archiving) = archiving {
        crate::stack::spawn(archive(cluster.clone(), me, http.clone(), archiving));
    }
    crate::stack::spawn(replicate(state.clone(), http));
    let router = Router::new()
        .route("/write", post(write))
        .route("/read", post(read))
        .route("/wal", get(wal))
        .route("/promote", post(promote))
        .with_state(state);
    super::net::serve_framed(router).await
}

async fn write(
    State(host): State<NodeHost>,
    Postcard(command): Postcard<Write>,
) -> Result<Postcard<(Outcome, Lsn)>, (StatusCode, String)> {
    tokio::time::sleep(COMMIT_COST).await;
    let (outcome, lsn, wait) = {
        let mut cluster = host.cluster.lock().expect("cluster lock");
        let replication = cluster.replication;
        let node = cluster.nodes.get_mut(&host.me).expect("node exists");
        let (outcome, lsn) = node.commit(command, now_ns()).map_err(|e| (StatusCode::CONFLICT, e))?;
        (outcome, lsn, replication != Replication::Async)
    };
    host.changed.notify_waiters();
    // Non-strict synchronous replication (Patroni's synchronous_mode): wait for the standby
    // while one is streaming; a primary with no standby streaming commits alone once the watchdog
    // knows, so a failover leaves a writable stack rather than one that blocks until an operator
    // steps in.
    if !wait {
        return Ok(Postcard((outcome, lsn)));
    }
    let deadline = tokio::time::Instant::now() + SYNC_WAIT_MAX;
    loop {
        // Registered before the check, so a change made after it wakes this commit.
        let changed = host.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let why = match acknowledge(&host, lsn) {
            Ack::Now => break,
            Ack::Later { standby_gone_in } if tokio::time::Instant::now() < deadline => {
                let until =
                    standby_gone_in.map_or(deadline, |gone| deadline.min(tokio::time::Instant::now() + gone));
                tokio::select! {
                    biased;
                    _ = changed => {}
                    _ = tokio::time::sleep_until(until) => {}
                }
                continue;
            }
            Ack::Later { .. } => {
                format!("no standby confirmed LSN {lsn} within {SYNC_WAIT_MAX:?}: outcome unknown")
            }
            Ack::Never => {
                format!("{} stopped being a writable primary while LSN {lsn} waited", host.me.host())
            }
        };
        return Err((StatusCode::SERVICE_UNAVAILABLE, why));
    }
    Ok(Postcard((outcome, lsn)))
}

/// When a synchronous commit may be acknowledged.
enum Ack {
    Now,
    /// Not yet; if the standby streams, it stops counting as streaming in `standby_gone_in`
    /// unless it asks for WAL again (the one change nothing notifies).
    Later {
        standby_gone_in: Option<Duration>,
    },
    /// Not confirmed, and the node was fenced or rewound while it waited: as when PostgreSQL's
    /// backend dies under a client, the outcome is unknown to it.
    Never,
}

/// May the synchronous commit at `lsn` be acknowledged now?
fn acknowledge(host: &NodeHost, lsn: Lsn) -> Ack {
    let mut cluster = host.cluster.lock().expect("cluster lock");
    let node = cluster.nodes.get_mut(&host.me).expect("node exists");
    let standby_gone_in = standby_gone_in(node);
    if node.standby_lsn >= lsn {
        Ack::Now
    } else if !node.writable() {
        Ack::Never
    } else if node.may_acknowledge(lsn, standby_gone_in.is_some()) {
        Ack::Now
    } else {
        Ack::Later { standby_gone_in }
    }
}

/// Has a standby asked this node for WAL within [`STANDBY_GONE`]?
fn standby_streaming(node: &Node) -> bool {
    standby_gone_in(node).is_some()
}

/// While a standby counts as streaming (it asked for WAL within [`STANDBY_GONE`]), how long
/// until it stops counting if it does not ask again.
fn standby_gone_in(node: &Node) -> Option<Duration> {
    let since = now_ns().saturating_sub(node.standby_seen_ns?);
    STANDBY_GONE.checked_sub(Duration::from_nanos(since)).filter(|left| !left.is_zero())
}

async fn read(State(host): State<NodeHost>, Postcard(request): Postcard<Read>) -> Postcard<ReadAnswer> {
    let mut cluster = host.cluster.lock().expect("cluster lock");
    if let Read::Probe = request {
        let replication = cluster.replication;
        let node = cluster.nodes.get_mut(&host.me).expect("node exists");
        let status = probe_status(node, replication);
        // What it told the watchdog decides whether waiting commits may go alone.
        host.changed.notify_waiters();
        return Postcard(ReadAnswer::Status(status));
    }
    let node = &cluster.nodes[&host.me];
    let tables = &node.tables;
    Postcard(match request {
        Read::AppliedLsn => ReadAnswer::Lsn(node.lsn()),
        Read::History { min_lsn, limit } => {
            let investments = tables
                .investments
                .iter()
                .rev()
                .filter(|i| i.lsn >= min_lsn)
                .take(limit as usize)
                .cloned()
                .collect();
            ReadAnswer::History(HistoryPage { applied_lsn: node.lsn(), node: host.me, investments })
        }
        Read::Stock => ReadAnswer::Stock(tables.stock.clone()),
        Read::QueryGet { id } => {
            ReadAnswer::Query(tables.queries.get((id as usize).wrapping_sub(1)).cloned())
        }
        Read::FileGet { id } => ReadAnswer::File(tables.files.get((id as usize).wrapping_sub(1)).cloned()),
        Read::QueryCompute { sku } => {
            let on_hand = tables.stock.get(&sku).copied().unwrap_or(0);
            let orders = tables.orders.values().filter(|o| o.sku == sku && !o.cancelled).count();
            ReadAnswer::Text(format!("{sku}: {on_hand} on hand, {orders} orders"))
        }
        Read::SagaTrace { order_id } => {
            ReadAnswer::Trace(tables.saga.get(&order_id).cloned().unwrap_or_default())
        }
        Read::SagaClaimable { now_ns } => ReadAnswer::Count(tables.claimable(now_ns).count() as u64),
        Read::Writable => ReadAnswer::Writable(node.writable()),
        Read::BaseBackup => ReadAnswer::Base(Box::new(node.clone())),
        Read::Probe => unreachable!("answered above"),
    })
}

/// The watchdog's probe of `node`: writable, and if so its standby as it sees it.
fn probe_status(node: &mut Node, replication: Replication) -> NodeStatus {
    if !node.writable() {
        return NodeStatus { writable: false, standby: None };
    }
    let streaming = standby_streaming(node);
    NodeStatus { writable: true, standby: node.report_standby(streaming, replication) }
}

#[derive(Deserialize)]
struct WalFrom {
    from: Lsn,
}

async fn wal(
    State(host): State<NodeHost>,
    Query(at): Query<WalFrom>,
) -> Result<Postcard<Vec<(Write, u64)>>, StatusCode> {
    let deadline = tokio::time::Instant::now() + WAL_WAIT_MAX;
    loop {
        // Registered before the check, so a commit made after it wakes this poll.
        let changed = host.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        {
            let mut cluster = host.cluster.lock().expect("cluster lock");
            let node = cluster.nodes.get_mut(&host.me).expect("node exists");
            if node.role != Role::Primary {
                return Err(StatusCode::CONFLICT);
            }
            // Asking from L confirms everything before L: waiting commits may go.
            if at.from.saturating_sub(1) > node.standby_lsn {
                node.standby_lsn = at.from - 1;
                host.changed.notify_waiters();
            }
            node.standby_seen_ns = Some(now_ns());
            let start = (at.from.saturating_sub(1) as usize).min(node.wal.len());
            if start < node.wal.len() || tokio::time::Instant::now() >= deadline {
                let end = (start + WAL_BATCH_MAX).min(node.wal.len());
                return Ok(Postcard(node.wal[start..end].to_vec()));
            }
        }
        tokio::select! {
            biased;
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn promote(State(host): State<NodeHost>) -> StatusCode {
    let mut cluster = host.cluster.lock().expect("cluster lock");
    let node = cluster.nodes.get_mut(&host.me).expect("node exists");
    if node.role == Role::Standby {
        node.role = Role::Primary;
        node.promoted_at_ns = Some(now_ns());
        // A new timeline: archive it whole; the backup host keeps what it already has.
        node.archived_lsn = 0;
        tracing::info!(node = host.me.host(), lsn = node.lsn(), "promoted");
        host.changed.notify_waiters();
    }
    StatusCode::OK
}

/// A standby pulls its primary's WAL every few milliseconds over the network, so a partition,
/// pause or crash between them stops replication.
async fn replicate(host: NodeHost, http: SimHttp) {
    let (cluster, me) = (&host.cluster, host.me);
    let mut pause = REPLICATION_POLL;
    loop {
        tokio::time::sleep(pause).await;
        let from = {
            let mut cluster = cluster.lock().expect("cluster lock");
            if rejoin_if_fenced(&mut cluster, me) {
                host.changed.notify_waiters();
            }
            let node = &cluster.nodes[&me];
            if node.role != Role::Standby {
                pause = REJOIN_CHECK_EVERY;
                continue;
            }
            pause = REPLICATION_POLL;
            node.lsn() + 1
        };
        let request = HttpRequest {
            method: Method::GET,
            authority: format!("{}:80", me.peer().host()),
            path: format!("/wal?from={from}"),
            body: None,
            headers: Vec::new(),
        };
        let Ok(response) = http.send(request, WAL_WAIT_MAX + Duration::from_millis(200)).await else {
            tokio::time::sleep(STANDBY_RETRY_EVERY).await;
            continue;
        };
        if response.status != 200 {
            tokio::time::sleep(STANDBY_RETRY_EVERY).await;
            continue;
        }
        let Ok(entries) = from_postcard::<Vec<(Write, u64)>>(&response.body) else { continue };
        let mut cluster = cluster.lock().expect("cluster lock");
        let node = cluster.nodes.get_mut(&me).expect("node exists");
        if node.role == Role::Standby && node.lsn() + 1 == from {
            node.replay(&entries);
        }
    }
}

/// How often a primary pushes its new WAL to the backup host (`archive_timeout`): at most this
/// much committed WAL is only on the database nodes.
pub const ARCHIVE_EVERY: Duration = Duration::from_millis(250);
/// Most WAL entries in one archive push.
const ARCHIVE_BATCH_MAX: usize = 2048;

/// What a primary sends the backup host: its WAL entries from LSN `from` on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchivePush {
    /// The LSN of the first entry.
    pub from: Lsn,
    /// The entries, with their commit times.
    pub entries: Vec<(Write, u64)>,
}

/// A writable primary's `archive_command`: every [`ARCHIVE_EVERY`], the WAL past what the backup
/// host has stored is pushed to it over the network, and counted archived once it answers 200.
/// A failed push is retried from the same LSN — unless the `wal-archive-gap` bug ignores the
/// failure and moves on, leaving a hole in the archive.
async fn archive(cluster: Cluster, me: DbNode, http: SimHttp, archiving: Archiving) {
    loop {
        tokio::time::sleep(ARCHIVE_EVERY).await;
        let push = {
            let cluster = cluster.lock().expect("cluster lock");
            let node = &cluster.nodes[&me];
            if !node.writable() || node.archived_lsn >= node.lsn() {
                continue;
            }
            let start = node.archived_lsn as usize;
            let end = (start + ARCHIVE_BATCH_MAX).min(node.wal.len());
            ArchivePush { from: start as Lsn + 1, entries: node.wal[start..end].to_vec() }
        };
        let last = push.from + push.entries.len() as Lsn - 1;
        let request = HttpRequest {
            method: Method::POST,
            authority: "backup:80".into(),
            path: "/archive".into(),
            body: Some(serde_json::to_vec(&push).expect("WAL serialises")),
            headers: Vec::new(),
        };
        let stored = matches!(http.send(request, Duration::from_secs(2)).await, Ok(r) if r.status == 200);
        if !stored && !archiving.ignore_failures {
            continue;
        }
        if !stored {
            tracing::warn!(
                node = me.host(),
                from = push.from,
                last,
                "archive push failed; moving on anyway (wal-archive-gap bug)"
            );
        }
        let mut cluster = cluster.lock().expect("cluster lock");
        let node = cluster.nodes.get_mut(&me).expect("node exists");
        // Unless the node was rewound or promoted meanwhile.
        if node.archived_lsn + 1 == push.from {
            node.archived_lsn = last;
        }
    }
}

/// A fenced old primary, once the other node is primary, is rewound and rejoins as its standby
/// (what an HA manager does with pg_rewind), so synchronous replication has a standby again.
/// Whether it was.
fn rejoin_if_fenced(cluster: &mut ClusterState, me: DbNode) -> bool {
    let is_fenced_primary = |n: &Node| n.fenced && n.role == Role::Primary;
    let peer_is_live_primary = |n: &Node| n.role == Role::Primary && !n.fenced;
    if !cluster.nodes.get(&me).is_some_and(is_fenced_primary)
        || !cluster.nodes.get(&me.peer()).is_some_and(peer_is_live_primary)
    {
        return false;
    }
    // Only now copy the peer's WAL: this runs on every replication poll.
    let peer_wal = cluster.nodes[&me.peer()].wal.clone();
    let node = cluster.nodes.get_mut(&me).expect("node exists");
    let discarded = node.rewind_to(&peer_wal);
    tracing::info!(node = me.host(), discarded, "fenced old primary rewound; rejoining as a standby");
    true
}

#[derive(Clone)]
struct RouterHost {
    cluster: Cluster,
    http: SimHttp,
    /// The node writes go to: the first writable node by the last health check.
    route: Arc<Mutex<Option<DbNode>>>,
}

/// How long the router waits for a node before answering 504.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the router health-checks both nodes.
const ROUTER_CHECK_EVERY: Duration = Duration::from_millis(100);

/// `db-router`, HAProxy's role: every 100 ms it asks both nodes whether they take writes and
/// sends writes to the first that does, in the order `pg-primary`, `pg-replica`. The watchdog
/// steers it only through the nodes themselves — promoting one and fencing the other. An old
/// primary that nobody fenced and that comes back writable wins the health check again: split
/// brain, which is exactly what fencing exists to prevent.
pub async fn router_host(cluster: Cluster, http: SimHttp) -> turmoil::Result {
    let state = RouterHost { cluster, http, route: Arc::new(Mutex::new(None)) };
    crate::stack::spawn(health_checks(state.clone()));
    let router = Router::new()
        .route("/write", post(forward_write))
        .route("/read", post(forward_read))
        .route("/set_writer", post(set_writer))
        .with_state(state);
    super::net::serve_framed(router).await
}

async fn health_checks(host: RouterHost) {
    let probe = SimDb::new(host.http.clone(), host.cluster.clone(), ROUTER_CHECK_EVERY);
    loop {
        let mut route = None;
        for node in [DbNode::PgPrimary, DbNode::PgReplica] {
            if matches!(probe.writable(node, ROUTER_CHECK_EVERY).await, Ok(true)) {
                route = Some(node);
                break;
            }
        }
        let previous = std::mem::replace(&mut *host.route.lock().expect("route lock"), route);
        if previous != route {
            tracing::info!(route = ?route.map(DbNode::host), "db-router: writes now go to");
        }
        tokio::time::sleep(ROUTER_CHECK_EVERY).await;
    }
}

async fn forward(host: &RouterHost, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let Some(writer) = *host.route.lock().expect("route lock") else {
        return (StatusCode::SERVICE_UNAVAILABLE, b"no database node takes writes".to_vec());
    };
    let request = HttpRequest {
        method: Method::POST,
        authority: format!("{}:80", writer.host()),
        path: path.into(),
        body: Some(body),
        headers: Vec::new(),
    };
    match host.http.send(request, ROUTER_TIMEOUT).await {
        Ok(r) => (StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY), r.body),
        Err(e) => (StatusCode::GATEWAY_TIMEOUT, e.to_string().into_bytes()),
    }
}

async fn forward_write(State(host): State<RouterHost>, body: axum::body::Bytes) -> (StatusCode, Vec<u8>) {
    forward(&host, "/write", body.to_vec()).await
}

async fn forward_read(State(host): State<RouterHost>, body: axum::body::Bytes) -> (StatusCode, Vec<u8>) {
    forward(&host, "/read", body.to_vec()).await
}

/// The watchdog's declaration of the primary: recorded (the final state is read from it), not
/// used for routing.
async fn set_writer(State(host): State<RouterHost>, Postcard(node): Postcard<DbNode>) -> StatusCode {
    host.cluster.lock().expect("cluster lock").writer = node;
    tracing::info!(writer = node.host(), "db-router repointed");
    StatusCode::OK
}

/// Every store port, the saga log and the admin port, over the simulated network.
#[derive(Clone)]
pub struct SimDb {
    http: SimHttp,
    cluster: Cluster,
    timeout: Duration,
}

impl SimDb {
    /// Store clients with calls bounded by `timeout`.
    pub fn new(http: SimHttp, cluster: Cluster, timeout: Duration) -> SimDb {
        SimDb { http, cluster, timeout }
    }

    async fn call(&self, authority: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, PortError> {
        let request = HttpRequest {
            method: Method::POST,
            authority: authority.into(),
            path: path.into(),
            body: Some(body),
            headers: Vec::new(),
        };
        let response = self.http.send(request, self.timeout).await?;
        match response.status {
            200 => Ok(response.body),
            409 => Err(PortError::ReadOnly(String::from_utf8_lossy(&response.body).into_owned())),
            status => Err(PortError::Unavailable(format!("{authority} answered {status}"))),
        }
    }

    async fn write(&self, command: Write) -> Result<(Outcome, Lsn), PortError> {
        let body = self.call("db-router:80", "/write", to_postcard(&command)).await?;
        from_postcard(&body)
    }

    async fn read_at(&self, authority: &str, request: Read) -> Result<ReadAnswer, PortError> {
        let body = self.call(authority, "/read", to_postcard(&request)).await?;
        from_postcard(&body)
    }

    async fn read(&self, node: Option<DbNode>, request: Read) -> Result<ReadAnswer, PortError> {
        match node {
            Some(node) => self.read_at(&format!("{}:80", node.host()), request).await,
            None => self.read_at("db-router:80", request).await,
        }
    }

    /// `request` to `node`, bounded by `timeout`.
    async fn ask(&self, node: DbNode, request: Read, timeout: Duration) -> Result<ReadAnswer, PortError> {
        match tokio::time::timeout(timeout, self.read(Some(node), request)).await {
            Ok(answer) => answer,
            Err(_) => {
                Err(PortError::Unavailable(format!("{} did not answer the probe in time", node.host())))
            }
        }
    }

    /// The db-router's health check: does `node` take writes? Unlike [`DbAdmin::probe`], it
    /// leaves the node's report to the watchdog alone.
    pub async fn writable(&self, node: DbNode, timeout: Duration) -> Result<bool, PortError> {
        match self.ask(node, Read::Writable, timeout).await? {
            ReadAnswer::Writable(writable) => Ok(writable),
            _ => unexpected("writable"),
        }
    }
}

fn unexpected<T>(what: &str) -> Result<T, PortError> {
    Err(PortError::Unavailable(format!("unexpected answer to {what}")))
}

fn row(outcome: Outcome) -> Result<bool, PortError> {
    match outcome {
        Outcome::Row(Ok(changed)) => Ok(changed),
        Outcome::Row(Err(why)) => Err(PortError::Rejected(why)),
        _ => unexpected("a row write"),
    }
}

#[async_trait]
impl InvestStore for SimDb {
    async fn record(&self, investment: NewInvestment) -> Result<(Investment, bool), PortError> {
        match self.write(Write::Invest(investment)).await? {
            (Outcome::Invest(row, existed), _) => Ok((row, existed)),
            _ => unexpected("invest"),
        }
    }
    async fn applied_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        match self.read(Some(node), Read::AppliedLsn).await? {
            ReadAnswer::Lsn(lsn) => Ok(lsn),
            _ => unexpected("applied_lsn"),
        }
    }
    async fn history(&self, node: DbNode, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        match self.read(Some(node), Read::History { min_lsn, limit }).await? {
            ReadAnswer::History(page) => Ok(page),
            _ => unexpected("history"),
        }
    }
    async fn history_from_writer(&self, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        match self.read(None, Read::History { min_lsn, limit }).await? {
            ReadAnswer::History(page) => Ok(page),
            _ => unexpected("history"),
        }
    }
}

#[async_trait]
impl InventoryStore for SimDb {
    async fn reserve(&self, order_id: &str, sku: &str, qty: u64) -> Result<Reserved, PortError> {
        match self.write(Write::Reserve { order_id: order_id.into(), sku: sku.into(), qty }).await?.0 {
            Outcome::Reserved(r) => Ok(r),
            _ => unexpected("reserve"),
        }
    }
    async fn restock(&self, order_id: &str) -> Result<Restocked, PortError> {
        match self.write(Write::Restock { order_id: order_id.into() }).await?.0 {
            Outcome::Restocked(r) => Ok(r),
            _ => unexpected("restock"),
        }
    }
    async fn stock(&self) -> Result<BTreeMap<String, u64>, PortError> {
        match self.read(None, Read::Stock).await? {
            ReadAnswer::Stock(stock) => Ok(stock),
            _ => unexpected("stock"),
        }
    }
}

#[async_trait]
impl OrderStore for SimDb {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        row(self.write(Write::OrderCreate { order_id: order_id.into(), sku: sku.into(), qty }).await?.0)
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        row(self.write(Write::OrderCancel { order_id: order_id.into() }).await?.0)
    }
}

#[async_trait]
impl ReportStore for SimDb {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        row(self.write(Write::ReportCreate { order_id: order_id.into(), sku: sku.into(), qty }).await?.0)
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        row(self.write(Write::ReportCancel { order_id: order_id.into() }).await?.0)
    }
}

/// Simulated time `lease` from now, ns.
fn lease_until(lease: Duration) -> u64 {
    now_ns() + lease.as_nanos() as u64
}

#[async_trait]
impl SagaLog for SimDb {
    async fn begin(&self, request: &SagaRequest, owner: &str, lease: Duration) -> Result<(), PortError> {
        let write = Write::SagaBegin {
            request: request.clone(),
            owner: owner.into(),
            lease_until_ns: lease_until(lease),
        };
        self.write(write).await.map(|_| ())
    }
    async fn append(
        &self,
        order_id: &str,
        owner: &str,
        step: &str,
        lease: Duration,
    ) -> Result<(), PortError> {
        let write = Write::SagaAppend {
            order_id: order_id.into(),
            owner: owner.into(),
            step: step.into(),
            lease_until_ns: lease_until(lease),
        };
        self.write(write).await.map(|_| ())
    }
    async fn finish(&self, order_id: &str, owner: &str, outcome: &str) -> Result<bool, PortError> {
        let write =
            Write::SagaFinish { order_id: order_id.into(), owner: owner.into(), outcome: outcome.into() };
        match self.write(write).await?.0 {
            Outcome::Completed(finished) => Ok(finished),
            _ => unexpected("finish"),
        }
    }
    async fn claim(&self, owner: &str, lease: Duration, limit: u32) -> Result<Vec<SagaRequest>, PortError> {
        // Look before writing: a claim with nothing to take adds nothing to the WAL.
        match self.read(None, Read::SagaClaimable { now_ns: now_ns() }).await? {
            ReadAnswer::Count(0) => return Ok(Vec::new()),
            ReadAnswer::Count(_) => {}
            _ => return unexpected("claimable"),
        }
        let write = Write::SagaClaim {
            owner: owner.into(),
            now_ns: now_ns(),
            lease_until_ns: lease_until(lease),
            limit,
        };
        match self.write(write).await?.0 {
            Outcome::Claimed(claimed) => Ok(claimed),
            _ => unexpected("claim"),
        }
    }
    async fn trace(&self, order_id: &str) -> Result<Vec<String>, PortError> {
        match self.read(None, Read::SagaTrace { order_id: order_id.into() }).await? {
            ReadAnswer::Trace(trace) => Ok(trace),
            _ => unexpected("trace"),
        }
    }
}

#[async_trait]
impl QueryStore for SimDb {
    async fn create_pending(&self, key: &str, sku: &str) -> Result<(QueryRow, bool), PortError> {
        match self.write(Write::QueryCreate { key: key.into(), sku: sku.into() }).await?.0 {
            Outcome::Query(row, existed) => Ok((row, existed)),
            _ => unexpected("create_pending"),
        }
    }
    async fn get(&self, id: u64) -> Result<Option<QueryRow>, PortError> {
        match self.read(None, Read::QueryGet { id }).await? {
            ReadAnswer::Query(row) => Ok(row),
            _ => unexpected("get"),
        }
    }
    async fn compute(&self, sku: &str) -> Result<String, PortError> {
        match self.read(None, Read::QueryCompute { sku: sku.into() }).await? {
            ReadAnswer::Text(text) => Ok(text),
            _ => unexpected("compute"),
        }
    }
    async fn complete(&self, id: u64, result: &str, once: bool) -> Result<bool, PortError> {
        match self.write(Write::QueryComplete { id, result: result.into(), once }).await?.0 {
            Outcome::Completed(applied) => Ok(applied),
            _ => unexpected("complete"),
        }
    }
}

#[async_trait]
impl FileStore for SimDb {
    async fn create(&self, file: &NewFile) -> Result<(FileRow, bool), PortError> {
        match self.write(Write::FileCreate(file.clone())).await?.0 {
            Outcome::File(row, existed) => Ok((row, existed)),
            _ => unexpected("create file"),
        }
    }
    async fn get(&self, id: u64) -> Result<Option<FileRow>, PortError> {
        match self.read(None, Read::FileGet { id }).await? {
            ReadAnswer::File(row) => Ok(row),
            _ => unexpected("get file"),
        }
    }
    async fn set_thumbnail(&self, id: u64, thumbnail_key: &str) -> Result<bool, PortError> {
        row(self.write(Write::FileThumbnail { id, thumbnail: thumbnail_key.into() }).await?.0)
    }
    async fn audit(&self, id: u64, event: &str, once: bool) -> Result<bool, PortError> {
        match self.write(Write::FileAudit { id, event: event.into(), once }).await?.0 {
            Outcome::Completed(applied) => Ok(applied),
            _ => unexpected("audit"),
        }
    }
}

#[async_trait]
impl DbAdmin for SimDb {
    async fn probe(&self, node: DbNode, timeout: Duration) -> Result<NodeStatus, PortError> {
        match self.ask(node, Read::Probe, timeout).await? {
            ReadAnswer::Status(status) => Ok(status),
            _ => unexpected("probe"),
        }
    }
    async fn promote(&self, node: DbNode) -> Result<(), PortError> {
        self.call(&format!("{}:80", node.host()), "/promote", Vec::new()).await.map(|_| ())
    }
    async fn fence(&self, node: DbNode) -> Result<(), PortError> {
        // Out-of-band, like a STONITH switch: works whether the node is up, frozen or dead.
        let mut cluster = self.cluster.lock().expect("cluster lock");
        cluster.nodes.get_mut(&node).expect("node exists").fenced = true;
        cluster.changed.notify_waiters();
        tracing::info!(node = node.host(), "fenced");
        Ok(())
    }
    async fn set_writer(&self, node: DbNode) -> Result<(), PortError> {
        self.call("db-router:80", "/set_writer", to_postcard(&node)).await.map(|_| ())
    }
    /// A no-op: the simulated primary already runs Patroni's non-strict mode by itself. It
    /// commits alone only once a probe answer has told the watchdog its standby is not
    /// synchronous (`Node::may_acknowledge`), which is the order this call enforces on a real
    /// primary (the watchdog calls it after recording that answer). Obeying the call instead
    /// would add a network round trip per decision and change every `sync` run's history.
    async fn release_sync(&self, _primary: DbNode) -> Result<(), PortError> {
        Ok(())
    }
    /// A no-op, as [`DbAdmin::release_sync`] here: the simulated primary waits for its standby
    /// again by itself once it streams and has every commit acknowledged alone.
    async fn require_sync(&self, _primary: DbNode) -> Result<(), PortError> {
        Ok(())
    }
    async fn wal_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        match self.read(Some(node), Read::AppliedLsn).await? {
            ReadAnswer::Lsn(lsn) => Ok(lsn),
            _ => unexpected("wal_lsn"),
        }
    }
    /// Out-of-band like [`DbAdmin::fence`]; refused for an old primary not yet rewound.
    async fn unfence(&self, node: DbNode) -> Result<(), PortError> {
        let mut cluster = self.cluster.lock().expect("cluster lock");
        // A fenced old primary beside a live one has not been rewound yet: unfencing it would
        // let both take writes. (Lifting a switchover's own fence, with no other primary, is fine.)
        if cluster.nodes[&node].role == Role::Primary && cluster.nodes[&node.peer()].writable() {
            return Err(PortError::Rejected(format!("{} has not rejoined as a standby yet", node.host())));
        }
        cluster.nodes.get_mut(&node).expect("node exists").fenced = false;
        cluster.changed.notify_waiters();
        tracing::info!(node = node.host(), "unfenced");
        Ok(())
    }
}
