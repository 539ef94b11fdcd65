//! The simulated database on the network: a server per node (`pg-primary`, `pg-replica`) over the
//! durable [`Cluster`] state and the standby's replication loop. The `db-router` writer endpoint
//! is `db_router.rs`; the store and admin ports the services use are `db_client.rs`.
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

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use http::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::db_model::{Node, Outcome, Role, Write};
use super::net::{Postcard, SimHttp, from_postcard};
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
