//! PostgreSQL: a primary and a streaming hot standby (two clusters on loopback, as
//! `scripts/real-services.sh` makes them), reached through one sqlx pool per node.
//!
//! - Writes go to the *writer endpoint*: the node the watchdog last pointed it at
//!   ([`DbAdmin::set_writer`]); this process holds it. Across processes (containers), every
//!   service's primary URL points at the `db-router` ([`super::router`], HAProxy's role), which
//!   follows whichever node takes writes; `set_writer` also tells the router's admin endpoint
//!   (`SHAKEDOWN_DB_ROUTER_ADMIN`) which node the watchdog declared primary.
//! - LSNs are `pg_lsn` as a byte offset. A write returns `pg_current_wal_lsn()` read right after
//!   its commit, which is at or after the commit record, so a standby that has replayed it has the
//!   row. `applied_lsn` is `pg_current_wal_lsn()` on a primary, `pg_last_wal_replay_lsn()` on a
//!   standby. Rows keep the WAL insert position at insert time; on real PostgreSQL `history`
//!   treats `min_lsn` as the read-your-writes wait condition only and returns the newest rows.
//! - The watchdog's probe asks a node whether it takes writes and, when it does, how its standby
//!   replicates, in one query ([`PROBE`]): the standby's row of `pg_stat_replication`
//!   (`sync_state`, and `pg_current_wal_lsn()` minus its `flush_lsn` and `replay_lsn` as lags in
//!   bytes), or, while no standby is connected, the lag of the physical replication slot it
//!   streams through (`restart_lsn`, which follows the standby's reported flush position).
//! - Fencing acts on the node's storage, like a STONITH switch, so it works on a dead node: it
//!   kills the postmaster if it runs (SIGKILL, from `postmaster.pid`) and writes `standby.signal`
//!   plus `default_transaction_read_only = on` into its data directory. Restarted, the old
//!   primary comes up as a read-only standby and refuses writes. Before that, if the node still
//!   answers, it is also made read-only online (`ALTER SYSTEM` + `pg_reload_conf()`, bounded by
//!   [`FENCE_ONLINE_TIMEOUT`]), so a live old primary stops passing the db-router's health check
//!   at once, as a fenced node in the simulation does.
//! - Non-strict synchronous replication (Patroni's synchronous mode): the watchdog decides, and
//!   [`DbAdmin::release_sync`] / [`DbAdmin::require_sync`] carry it out with `ALTER SYSTEM SET
//!   synchronous_standby_names` (`''`, or [`SYNC_STANDBY_NAME`]) and `pg_reload_conf()`, each on
//!   a connection of its own. An empty list releases every commit waiting for the standby.
//! - In containers the watchdog runs in its own pid namespace and reaches the nodes' data
//!   directories as mounted volumes (`SHAKEDOWN_REAL_DIR/primary`, `/standby`). The pid in a
//!   node's `postmaster.pid` is then a pid of the node's namespace, which is never a `postgres`
//!   process in the watchdog's, so nothing is killed: fencing writes the files on the volume
//!   (and tries the online step). That is enough: the node, once restarted (the faults restart a
//!   crashed container), comes up read-only in recovery.
//!
//! Errors follow the port contract: no answer (connection refused, reset, timed out) is
//! `Unavailable`, and so is an error of SQLSTATE class 08, 57 or XX — the connection went, an
//! operator or a shutdown ended the session, the server failed — since a commit may have
//! happened before it (a fast shutdown during a switchover ends a commit that is waiting for the
//! synchronous standby after it was written locally); SQLSTATE 25006 (read-only transaction) or
//! a node in recovery is `ReadOnly`; any other database error is `Rejected`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use crate::stack::ports::{
    DbAdmin, DbNode, HistoryPage, InvestStore, Investment, Lsn, NewInvestment, NodeStatus, PortError,
    StandbyView,
};

/// How to reach one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `postgres://postgres@127.0.0.1:55432/postgres`.
    pub url: String,
    /// Its data directory, for storage-level fencing.
    pub data_dir: PathBuf,
}

impl NodeConfig {
    /// The defaults of `scripts/real-services.sh`, overridable with `SHAKEDOWN_PG_PRIMARY_URL`,
    /// `SHAKEDOWN_PG_STANDBY_URL` and `SHAKEDOWN_REAL_DIR`.
    pub fn from_env(node: DbNode) -> NodeConfig {
        let dir = std::env::var("SHAKEDOWN_REAL_DIR").unwrap_or_else(|_| "/tmp/shakedown-real".into());
        let (var, port, sub) = match node {
            DbNode::PgPrimary => ("SHAKEDOWN_PG_PRIMARY_URL", 55432, "primary"),
            DbNode::PgReplica => ("SHAKEDOWN_PG_STANDBY_URL", 55433, "standby"),
        };
        NodeConfig {
            url: std::env::var(var)
                .unwrap_or_else(|_| format!("postgres://postgres@127.0.0.1:{port}/postgres")),
            data_dir: PathBuf::from(dir).join(sub),
        }
    }
}

/// Both nodes, the writer endpoint, and the stores and admin port over them. Cheap to clone.
#[derive(Clone)]
pub struct PgCluster {
    primary: PgPool,
    replica: PgPool,
    configs: [NodeConfig; 2],
    writer: Arc<RwLock<DbNode>>,
    /// The db-router's admin authority (`host:port`), told about every `set_writer`.
    router_admin: Option<String>,
}

/// Longest wait for a pooled connection: a dead node must fail fast, not hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for the db-router's admin to take a `set_writer` (the watchdog bounds the whole
/// call by its own `ADMIN_TIMEOUT`, 2 s).
pub const ROUTER_ADMIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for the online part of a fence (connect, `ALTER SYSTEM`, reload) on a node that
/// may be dead or frozen; the storage part follows either way.
pub const FENCE_ONLINE_TIMEOUT: Duration = Duration::from_millis(500);

impl PgCluster {
    /// Pools for both nodes (connected lazily: a node that is down is not an error yet), the
    /// writer pointing at `pg-primary`.
    pub fn new(primary: NodeConfig, replica: NodeConfig) -> Result<PgCluster, PortError> {
        let pool = |config: &NodeConfig| -> Result<PgPool, PortError> {
            let options: PgConnectOptions =
                config.url.parse().map_err(|e| PortError::Rejected(format!("{}: {e}", config.url)))?;
            let options = options.disable_statement_logging();
            Ok(PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(true)
                .connect_lazy_with(options))
        };
        Ok(PgCluster {
            primary: pool(&primary)?,
            replica: pool(&replica)?,
            configs: [primary, replica],
            writer: Arc::new(RwLock::new(DbNode::PgPrimary)),
            router_admin: None,
        })
    }

    /// From the environment ([`NodeConfig::from_env`]); with `SHAKEDOWN_DB_ROUTER_ADMIN` set
    /// (`http://sd-x-db-router:80`), [`PgCluster::with_router_admin`] that address.
    pub fn from_env() -> Result<PgCluster, PortError> {
        let cluster =
            PgCluster::new(NodeConfig::from_env(DbNode::PgPrimary), NodeConfig::from_env(DbNode::PgReplica))?;
        Ok(match std::env::var("SHAKEDOWN_DB_ROUTER_ADMIN") {
            Ok(url) if !url.trim().is_empty() => cluster.with_router_admin(&url),
            _ => cluster,
        })
    }

    /// Also tell the db-router's admin endpoint (`http://host:port` or `host:port`) about every
    /// [`DbAdmin::set_writer`] (`POST /set_writer`).
    pub fn with_router_admin(mut self, url: &str) -> PgCluster {
        let authority = url.trim().trim_start_matches("http://").trim_end_matches('/');
        self.router_admin = Some(authority.to_owned());
        self
    }

    /// Create the tables on the primary (the standby gets them by replication).
    pub async fn migrate(&self) -> Result<(), PortError> {
        sqlx::migrate!("./migrations")
            .run(&self.primary)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))
    }

    /// The pool of `node`.
    pub fn pool(&self, node: DbNode) -> &PgPool {
        match node {
            DbNode::PgPrimary => &self.primary,
            DbNode::PgReplica => &self.replica,
        }
    }

    /// Where writes go now.
    pub fn writer(&self) -> DbNode {
        *self.writer.read().expect("writer lock")
    }

    fn config(&self, node: DbNode) -> &NodeConfig {
        &self.configs[usize::from(node == DbNode::PgReplica)]
    }
}

/// SQLSTATE classes after which a statement may or may not have taken effect: a connection
/// exception (08), operator intervention (57: admin shutdown, crash shutdown, a cancelled wait
/// for the synchronous standby), an internal error (XX).
const AMBIGUOUS_CLASSES: [&str; 3] = ["08", "57", "XX"];

/// Whether an error with SQLSTATE `code` leaves the statement's outcome unknown.
fn ambiguous(code: &str) -> bool {
    AMBIGUOUS_CLASSES.iter().any(|class| code.starts_with(class))
}

/// Map a sqlx error onto the port contract.
pub(super) fn port_error(error: sqlx::Error) -> PortError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("25006") => {
            PortError::ReadOnly(db.to_string())
        }
        sqlx::Error::Database(db) if db.code().as_deref().is_some_and(ambiguous) => {
            PortError::Unavailable(db.to_string())
        }
        sqlx::Error::Database(db) => PortError::Rejected(db.to_string()),
        sqlx::Error::RowNotFound | sqlx::Error::ColumnNotFound(_) | sqlx::Error::Decode(_) => {
            PortError::Rejected(error.to_string())
        }
        _ => PortError::Unavailable(error.to_string()),
    }
}

const LSN: &str = "(pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint";

fn investment(row: &sqlx::postgres::PgRow) -> Result<Investment, sqlx::Error> {
    Ok(Investment {
        id: row.try_get::<i64, _>("id")? as u64,
        lsn: row.try_get::<i64, _>("lsn")? as u64,
        data: NewInvestment {
            key: row.try_get("key")?,
            coin: row.try_get("coin")?,
            amount_usd_cents: row.try_get::<i64, _>("amount_usd_cents")? as u64,
            price_usd_micros: row.try_get::<i64, _>("price_usd_micros")? as u64,
        },
    })
}

#[async_trait]
impl InvestStore for PgCluster {
    async fn record(&self, new: NewInvestment) -> Result<(Investment, bool), PortError> {
        let pool = self.pool(self.writer());
        let mut conn = pool.acquire().await.map_err(port_error)?;
        let inserted = sqlx::query(
            "INSERT INTO investments (key, coin, amount_usd_cents, price_usd_micros, lsn)
             VALUES ($1, $2, $3, $4, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint)
             ON CONFLICT (key) DO NOTHING
             RETURNING id, key, coin, amount_usd_cents, price_usd_micros, lsn",
        )
        .bind(&new.key)
        .bind(&new.coin)
        .bind(new.amount_usd_cents as i64)
        .bind(new.price_usd_micros as i64)
        .fetch_optional(&mut *conn)
        .await
        .map_err(port_error)?;
        let (row, replayed) = match inserted {
            Some(row) => (row, false),
            None => {
                let row = sqlx::query(
                    "SELECT id, key, coin, amount_usd_cents, price_usd_micros, lsn FROM investments WHERE key = $1",
                )
                .bind(&new.key)
                .fetch_one(&mut *conn)
                .await
                .map_err(port_error)?;
                (row, true)
            }
        };
        let mut stored = investment(&row).map_err(port_error)?;
        // Autocommit: the insert has committed; the WAL position now is at or past its record.
        let committed: i64 =
            sqlx::query_scalar(&format!("SELECT {LSN}")).fetch_one(&mut *conn).await.map_err(port_error)?;
        stored.lsn = committed as u64;
        Ok((stored, replayed))
    }

    async fn applied_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        let lsn: Option<i64> = sqlx::query_scalar(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint",
        )
        .fetch_one(self.pool(node))
        .await
        .map_err(port_error)?;
        Ok(lsn.unwrap_or(0) as u64)
    }

    async fn history(&self, node: DbNode, _min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        let mut tx = self.pool(node).begin().await.map_err(port_error)?;
        // The applied LSN first: every row read after it is at least that new.
        let applied: Option<i64> = sqlx::query_scalar(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(port_error)?;
        let rows = sqlx::query(
            "SELECT id, key, coin, amount_usd_cents, price_usd_micros, lsn FROM investments ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(port_error)?;
        let investments = rows.iter().map(investment).collect::<Result<_, _>>().map_err(port_error)?;
        Ok(HistoryPage { applied_lsn: applied.unwrap_or(0) as u64, node, investments })
    }

    async fn history_from_writer(&self, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        self.history(self.writer(), min_lsn, limit).await
    }
}

/// The watchdog's probe, one row: `writable`; then, on a primary, its best standby's
/// `pg_stat_replication` row (a `sync` one first, then the most advanced) — `sync_state`, `state`,
/// flush and replay lag in bytes — and the lag of its most advanced physical slot, for when no
/// standby is connected. On a standby every other column is NULL: `pg_current_wal_lsn()` cannot be
/// called during recovery, and the `WHERE` clauses keep it from being evaluated.
pub const PROBE: &str = "
WITH me AS (SELECT pg_is_in_recovery() AS recovering)
SELECT NOT me.recovering AND current_setting('default_transaction_read_only') = 'off' AS writable,
       r.sync_state, r.state, r.flush_lag, r.replay_lag, slot.slot_lag
FROM me
LEFT JOIN LATERAL (
    SELECT s.sync_state::text AS sync_state, s.state::text AS state,
           (pg_current_wal_lsn() - s.flush_lsn)::bigint AS flush_lag,
           (pg_current_wal_lsn() - s.replay_lsn)::bigint AS replay_lag
    FROM pg_stat_replication s
    WHERE NOT me.recovering AND s.state <> 'backup'
    ORDER BY s.sync_state = 'sync' DESC, s.flush_lsn DESC NULLS LAST
    LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT (pg_current_wal_lsn() - sl.restart_lsn)::bigint AS slot_lag
    FROM pg_replication_slots sl
    WHERE NOT me.recovering AND sl.slot_type = 'physical' AND sl.restart_lsn IS NOT NULL
    ORDER BY sl.restart_lsn DESC
    LIMIT 1
) slot ON true";

/// One row of [`PROBE`].
type ProbeRow = (bool, Option<String>, Option<String>, Option<i64>, Option<i64>, Option<i64>);

/// What a [`PROBE`] row says about `node` (whose standby can only be its peer).
pub fn node_status(node: DbNode, row: ProbeRow) -> NodeStatus {
    let (writable, sync_state, state, flush_lag, replay_lag, slot_lag) = row;
    if !writable {
        return NodeStatus { writable, standby: None };
    }
    let bytes = |lag: i64| lag.max(0) as u64;
    let standby = match state {
        // Connected: its row of pg_stat_replication. A lag is NULL until the standby reports it;
        // then the slot's, or, with neither, "everything".
        Some(state) => {
            let flush_lag_bytes = flush_lag.or(slot_lag).map_or(u64::MAX, bytes);
            Some(StandbyView {
                node: node.peer(),
                sync: sync_state.as_deref() == Some("sync"),
                streaming: state == "streaming",
                flush_lag_bytes,
                replay_lag_bytes: replay_lag.map_or(flush_lag_bytes, bytes),
            })
        }
        // Disconnected: what its slot last heard from it.
        None => slot_lag.map(|lag| StandbyView {
            node: node.peer(),
            sync: false,
            streaming: false,
            flush_lag_bytes: bytes(lag),
            replay_lag_bytes: bytes(lag),
        }),
    };
    NodeStatus { writable, standby }
}

#[async_trait]
impl DbAdmin for PgCluster {
    async fn probe(&self, node: DbNode, timeout: Duration) -> Result<NodeStatus, PortError> {
        let query = sqlx::query_as::<_, ProbeRow>(PROBE).fetch_one(self.pool(node));
        match tokio::time::timeout(timeout, query).await {
            Ok(answer) => answer.map(|row| node_status(node, row)).map_err(port_error),
            Err(_) => {
                Err(PortError::Unavailable(format!("{} did not answer the probe in time", node.host())))
            }
        }
    }

    async fn promote(&self, node: DbNode) -> Result<(), PortError> {
        let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, 10)")
            .fetch_one(self.pool(node))
            .await
            .map_err(port_error)?;
        if promoted {
            Ok(())
        } else {
            Err(PortError::Unavailable(format!("{} did not promote in 10 s", node.host())))
        }
    }

    async fn fence(&self, node: DbNode) -> Result<(), PortError> {
        // Online first, while the node may still answer: a live old primary stops taking writes
        // (and passing the db-router's check) now, not only once it restarts.
        let online = tokio::time::timeout(FENCE_ONLINE_TIMEOUT, set_read_only(&self.config(node).url, true));
        match online.await {
            Ok(Ok(())) => tracing::info!(node = node.host(), "fence: made read-only online"),
            Ok(Err(e)) => tracing::info!(node = node.host(), %e, "fence: not reachable online"),
            Err(_) => tracing::info!(node = node.host(), "fence: no online answer in time"),
        }
        let dir = &self.config(node).data_dir;
        let io = |what: &str, e: std::io::Error| {
            PortError::Unavailable(format!("fencing {}: {what}: {e}", node.host()))
        };
        // STONITH: stop the postmaster if it is running at all.
        // (Only if that pid is still a postgres process: a stale file's pid may be reused.)
        if let Ok(pid_file) = std::fs::read_to_string(dir.join("postmaster.pid"))
            && let Some(pid) = pid_file.lines().next().and_then(|l| l.trim().parse::<i32>().ok())
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        // On its storage: never a writable primary again, even after a restart.
        std::fs::write(dir.join("standby.signal"), "").map_err(|e| io("standby.signal", e))?;
        let auto = dir.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
        text.push_str("\n# fenced by the shakedown watchdog\ndefault_transaction_read_only = on\n");
        std::fs::write(&auto, text).map_err(|e| io("postgresql.auto.conf", e))?;
        // The network half: the db-router never routes to it again.
        self.tell_router("/fence", node).await?;
        // The pool stays open (its connections are tested before use): a fenced node may be
        // rejoined and made primary again (a failback on containers), and a closed sqlx pool
        // never reopens, which left the watchdog blind to the node it was reset to watch.
        tracing::info!(
            node = node.host(),
            "fenced (postmaster killed, standby.signal and read-only on its storage)"
        );
        Ok(())
    }

    /// Repoint this process's writer endpoint, then (when configured) the db-router's record.
    /// The local writer changes whatever the router says; a router that does not take the
    /// declaration within [`ROUTER_ADMIN_TIMEOUT`] makes the call fail, so the watchdog retries
    /// it on its next tick, as it does in the simulation when `db-router` is unreachable.
    async fn set_writer(&self, node: DbNode) -> Result<(), PortError> {
        *self.writer.write().expect("writer lock") = node;
        self.tell_router("/set_writer", node).await
    }

    /// `synchronous_standby_names = ''` and a reload: PostgreSQL releases every commit waiting
    /// for the standby once the list is empty.
    async fn release_sync(&self, primary: DbNode) -> Result<(), PortError> {
        set_sync_names(&self.config(primary).url, RELEASE_SYNC).await.map_err(port_error)?;
        tracing::info!(primary = primary.host(), "synchronous_standby_names = '' (commits no longer wait)");
        Ok(())
    }

    /// `synchronous_standby_names = 'standby'` (the standby's `cluster_name`, hence its
    /// `application_name`, in `docker/node.sh` and `scripts/real-services.sh`) and a reload.
    async fn require_sync(&self, primary: DbNode) -> Result<(), PortError> {
        set_sync_names(&self.config(primary).url, REQUIRE_SYNC).await.map_err(port_error)?;
        tracing::info!(
            primary = primary.host(),
            "synchronous_standby_names = '{SYNC_STANDBY_NAME}' (commits wait for it again)"
        );
        Ok(())
    }

    /// `pg_current_wal_lsn()` on a primary, `pg_last_wal_replay_lsn()` on a standby, in bytes.
    async fn wal_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        let lsn: i64 = sqlx::query_scalar(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint",
        )
        .fetch_one(self.pool(node))
        .await
        .map_err(port_error)?;
        Ok(lsn.max(0) as Lsn)
    }

    /// Lift the fence of a node that streams as a standby (in recovery, its WAL receiver
    /// `streaming`): PostgreSQL itself refuses to stream a node that diverged from the new
    /// timeline, so a streaming standby was rewound (or never diverged). Its storage's
    /// `default_transaction_read_only` is turned off (`ALTER SYSTEM`, on a connection of its own,
    /// so a later promotion takes writes; `standby.signal` goes with the promotion) and the
    /// db-router takes it back (`POST /unfence`). Anything else is `Rejected`: unfencing a
    /// diverged old primary would let it take writes beside the current one. (The simulation
    /// also lifts a switchover's own fence on a primary; the real stack's switchover is the
    /// containers harness's failback, which never asks that.)
    async fn unfence(&self, node: DbNode) -> Result<(), PortError> {
        let (in_recovery, streaming): (bool, bool) = sqlx::query_as(
            "SELECT pg_is_in_recovery(), \
             EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
        )
        .fetch_one(self.pool(node))
        .await
        .map_err(port_error)?;
        if !(in_recovery && streaming) {
            return Err(PortError::Rejected(format!(
                "{} is not a streaming standby (in recovery: {in_recovery}, streaming: {streaming})",
                node.host()
            )));
        }
        set_read_only(&self.config(node).url, false).await.map_err(port_error)?;
        self.tell_router("/unfence", node).await?;
        tracing::info!(node = node.host(), "unfenced: a streaming standby, writable once promoted");
        Ok(())
    }
}

/// The `application_name` a standby streams under (its `cluster_name`): what
/// [`DbAdmin::require_sync`] puts in `synchronous_standby_names`.
pub const SYNC_STANDBY_NAME: &str = "standby";

/// [`DbAdmin::release_sync`]'s statement.
const RELEASE_SYNC: &str = "ALTER SYSTEM SET synchronous_standby_names = ''";
/// [`DbAdmin::require_sync`]'s statement (names [`SYNC_STANDBY_NAME`]).
const REQUIRE_SYNC: &str = "ALTER SYSTEM SET synchronous_standby_names = 'standby'";

/// Run `alter` (one of the two above) on the node at `url` and reload its configuration, on a
/// connection of its own: the pool's may all be held by commits waiting for the standby, which
/// are exactly what this releases.
async fn set_sync_names(url: &str, alter: &'static str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let options: PgConnectOptions = url.parse()?;
    let mut conn = options.disable_statement_logging().connect().await?;
    sqlx::query(alter).execute(&mut conn).await?;
    sqlx::query("SELECT pg_reload_conf()").execute(&mut conn).await?;
    conn.close().await
}

impl PgCluster {
    /// `POST path` with `node` to the db-router's admin, when one is configured
    /// (`SHAKEDOWN_DB_ROUTER_ADMIN`); an unreachable router fails the call, so the watchdog
    /// retries it.
    async fn tell_router(&self, path: &str, node: DbNode) -> Result<(), PortError> {
        let Some(authority) = &self.router_admin else { return Ok(()) };
        use crate::stack::ports::{HttpClient, HttpRequest};
        let request = HttpRequest {
            method: http::Method::POST,
            authority: authority.clone(),
            path: path.into(),
            body: Some(serde_json::to_vec(&node).expect("a DbNode serialises")),
            headers: Vec::new(),
        };
        let http = super::http::RealHttp::new(Default::default());
        match http.send(request, ROUTER_ADMIN_TIMEOUT).await {
            Ok(response) if response.status == 200 => Ok(()),
            Ok(response) => Err(PortError::Unavailable(format!(
                "db-router admin {authority}: {path} answered {}",
                response.status
            ))),
            Err(e) => Err(PortError::Unavailable(format!("db-router admin {authority}: {e}"))),
        }
    }
}

/// Make the node at `url` refuse writes from now on (`on`), or take them again (`off`), if it
/// answers: `default_transaction_read_only` in its `postgresql.auto.conf`, reloaded. Existing
/// sessions pick it up at their next transaction.
async fn set_read_only(url: &str, on: bool) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let options: PgConnectOptions = url.parse()?;
    let mut conn = options.disable_statement_logging().connect().await?;
    let alter = if on {
        "ALTER SYSTEM SET default_transaction_read_only = on"
    } else {
        "ALTER SYSTEM SET default_transaction_read_only = off"
    };
    sqlx::query(alter).execute(&mut conn).await?;
    sqlx::query("SELECT pg_reload_conf()").execute(&mut conn).await?;
    conn.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_require_sync_statement_names_the_standby() {
        assert!(REQUIRE_SYNC.ends_with(&format!("'{SYNC_STANDBY_NAME}'")));
    }

    #[test]
    fn a_probe_row_becomes_the_primarys_view_of_its_standby() {
        let row = |state: Option<&str>, sync: &str, flush, replay, slot| {
            (true, Some(sync.to_owned()), state.map(str::to_owned), flush, replay, slot)
        };
        let streaming =
            node_status(DbNode::PgPrimary, row(Some("streaming"), "sync", Some(0), Some(120), Some(0)));
        let view = streaming.standby.unwrap();
        assert!(streaming.writable && view.sync && view.streaming);
        assert_eq!((view.node, view.flush_lag_bytes, view.replay_lag_bytes), (DbNode::PgReplica, 0, 120));
        let catching_up =
            node_status(DbNode::PgPrimary, row(Some("catchup"), "potential", Some(9000), None, None));
        let view = catching_up.standby.unwrap();
        assert!(!view.sync && !view.streaming);
        assert_eq!((view.flush_lag_bytes, view.replay_lag_bytes), (9000, 9000));
        // Disconnected: no row, the slot remembers; neither: nothing known.
        let gone = (true, None, None, None, None, Some(4096));
        let view = node_status(DbNode::PgReplica, gone).standby.unwrap();
        assert_eq!((view.node, view.sync, view.flush_lag_bytes), (DbNode::PgPrimary, false, 4096));
        assert_eq!(node_status(DbNode::PgPrimary, (true, None, None, None, None, None)).standby, None);
        let standby = node_status(DbNode::PgReplica, (false, None, None, None, None, None));
        assert_eq!(standby, NodeStatus { writable: false, standby: None });
    }

    // Goal: an error that may follow a commit (the session ended by a shutdown, a lost
    // connection, a crash) is ambiguous, never a refusal; a constraint or a syntax error is a
    // refusal. The failback caught the difference: a fast shutdown during the switchover ended
    // a commit that waited for the standby (57P01), the API answered 422, and the row was there.
    #[test]
    fn errors_that_may_follow_a_commit_are_ambiguous() {
        for code in ["57P01", "57P02", "57P03", "57014", "08006", "08003", "XX000"] {
            assert!(ambiguous(code), "{code}");
        }
        for code in ["23505", "42601", "25006", "40001", "22P02"] {
            assert!(!ambiguous(code), "{code}");
        }
    }
}
