//! The investments store and the database control plane, in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::stack::ports::{
    DbAdmin, DbNode, HistoryPage, InvestStore, Investment, Lsn, NewInvestment, NodeStatus, PortError,
    StandbyView,
};

#[derive(Default)]
struct InvestInner {
    rows: Vec<Investment>,
    by_key: BTreeMap<String, usize>,
    replica_lsn: Lsn,
    fail_record: Option<PortError>,
    replica_down: bool,
    record_calls: u32,
}

/// Investments on a primary plus a replica whose replayed LSN the test sets by hand.
#[derive(Default)]
pub struct MemInvestStore {
    inner: Mutex<InvestInner>,
}

impl MemInvestStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, InvestInner> {
        self.inner.lock().expect("store poisoned")
    }

    /// Set the LSN the replica has replayed.
    pub fn set_replica_lsn(&self, lsn: Lsn) {
        self.lock().replica_lsn = lsn;
    }

    /// Make every `record` fail with `err` (None: succeed again). The row is not written.
    pub fn fail_record(&self, err: Option<PortError>) {
        self.lock().fail_record = err;
    }

    /// Make every replica call answer `Unavailable`.
    pub fn set_replica_down(&self, down: bool) {
        self.lock().replica_down = down;
    }

    /// Every stored row, oldest first.
    pub fn rows(&self) -> Vec<Investment> {
        self.lock().rows.clone()
    }

    /// How many times `record` was called.
    pub fn record_calls(&self) -> u32 {
        self.lock().record_calls
    }

    fn page(inner: &InvestInner, node: DbNode, applied_lsn: Lsn, min_lsn: Lsn, limit: u32) -> HistoryPage {
        let visible = inner.rows.iter().rev().filter(|r| r.lsn <= applied_lsn && r.lsn >= min_lsn);
        HistoryPage { applied_lsn, node, investments: visible.take(limit as usize).cloned().collect() }
    }
}

#[async_trait]
impl InvestStore for MemInvestStore {
    async fn record(&self, investment: NewInvestment) -> Result<(Investment, bool), PortError> {
        let mut inner = self.lock();
        inner.record_calls += 1;
        if let Some(err) = inner.fail_record.clone() {
            return Err(err);
        }
        if let Some(&index) = inner.by_key.get(&investment.key) {
            return Ok((inner.rows[index].clone(), true));
        }
        let id = inner.rows.len() as u64 + 1;
        let row = Investment { id, lsn: id * 10, data: investment };
        let index = inner.rows.len();
        inner.by_key.insert(row.data.key.clone(), index);
        inner.rows.push(row.clone());
        Ok((row, false))
    }

    async fn applied_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        let inner = self.lock();
        match node {
            DbNode::PgPrimary => Ok(inner.rows.last().map_or(0, |r| r.lsn)),
            DbNode::PgReplica if inner.replica_down => Err(PortError::Unavailable("replica down".into())),
            DbNode::PgReplica => Ok(inner.replica_lsn),
        }
    }

    async fn history(&self, node: DbNode, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        let applied = self.applied_lsn(node).await?;
        Ok(Self::page(&self.lock(), node, applied, min_lsn, limit))
    }

    async fn history_from_writer(&self, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        self.history(DbNode::PgPrimary, min_lsn, limit).await
    }
}

/// A node's role in [`MemDbAdmin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Takes writes.
    Primary,
    /// Streams from the primary.
    Standby,
    /// Fenced: never takes writes again.
    Fenced,
}

#[derive(Debug)]
struct AdminInner {
    roles: BTreeMap<DbNode, Role>,
    down: BTreeMap<DbNode, bool>,
    writer: DbNode,
    calls: Vec<String>,
    standby_sync: bool,
    standby_lag_bytes: u64,
    lost_probes: BTreeMap<DbNode, u32>,
    failing_sync_calls: u32,
    sync_released: bool,
    lsns: BTreeMap<DbNode, u64>,
}

/// Two database nodes whose liveness the test sets; records every control-plane call. A primary
/// reports its peer as its standby, streaming, synchronous with no lag unless the test says
/// otherwise ([`MemDbAdmin::set_standby`]); a standby that is down, or one the primary was told
/// not to wait for ([`DbAdmin::release_sync`]), is not synchronous, as in `pg_stat_replication`.
pub struct MemDbAdmin {
    inner: Mutex<AdminInner>,
}

impl Default for MemDbAdmin {
    fn default() -> Self {
        let roles = BTreeMap::from([(DbNode::PgPrimary, Role::Primary), (DbNode::PgReplica, Role::Standby)]);
        let down = BTreeMap::from([(DbNode::PgPrimary, false), (DbNode::PgReplica, false)]);
        let inner = AdminInner {
            roles,
            down,
            writer: DbNode::PgPrimary,
            calls: vec![],
            standby_sync: true,
            standby_lag_bytes: 0,
            lost_probes: BTreeMap::new(),
            failing_sync_calls: 0,
            sync_released: false,
            lsns: BTreeMap::new(),
        };
        MemDbAdmin { inner: Mutex::new(inner) }
    }
}

impl MemDbAdmin {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdminInner> {
        self.inner.lock().expect("admin poisoned")
    }

    /// Crash (`true`) or restart (`false`) a node.
    pub fn set_down(&self, node: DbNode, down: bool) {
        self.lock().down.insert(node, down);
    }

    /// The next `count` probes of `node` get no answer although it is up (the watchdog's own
    /// links were held, say).
    pub fn lose_probes(&self, node: DbNode, count: u32) {
        self.lock().lost_probes.insert(node, count);
    }

    /// What a primary reports about its standby from now on: synchronous or not, and its WAL
    /// lag in bytes (flushed and replayed alike).
    pub fn set_standby(&self, sync: bool, lag_bytes: u64) {
        let mut inner = self.lock();
        inner.standby_sync = sync;
        inner.standby_lag_bytes = lag_bytes;
    }

    /// Fail the next `count` release-sync / require-sync calls (they are still recorded).
    pub fn fail_sync_calls(&self, count: u32) {
        self.lock().failing_sync_calls = count;
    }

    /// Did the last successful call ask the primary to commit without its standby?
    pub fn sync_released(&self) -> bool {
        self.lock().sync_released
    }

    /// A node's role.
    pub fn role(&self, node: DbNode) -> Role {
        self.lock().roles[&node]
    }

    /// A fenced old primary rewound into a standby of the current primary (what the simulation's
    /// node does by itself, and `pg_rewind` does for real).
    pub fn resync(&self, node: DbNode) {
        self.lock().roles.insert(node, Role::Standby);
    }

    /// The WAL position `node` reports from now on (0 until set).
    pub fn set_lsn(&self, node: DbNode, lsn: u64) {
        self.lock().lsns.insert(node, lsn);
    }

    /// Where the writer endpoint points.
    pub fn writer(&self) -> DbNode {
        self.lock().writer
    }

    /// Every fence / promote / set-writer / release-sync / require-sync call, in order
    /// (`fence pg-primary`, `release-sync pg-primary`, …).
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Nodes that would take a write now: up and primary (two means split brain).
    pub fn writable(&self) -> Vec<DbNode> {
        let inner = self.lock();
        inner.roles.iter().filter(|(n, r)| **r == Role::Primary && !inner.down[n]).map(|(n, _)| *n).collect()
    }
}

#[async_trait]
impl DbAdmin for MemDbAdmin {
    async fn probe(&self, node: DbNode, _timeout: std::time::Duration) -> Result<NodeStatus, PortError> {
        let mut inner = self.lock();
        if inner.down[&node] {
            return Err(PortError::Unavailable(format!("{} is down", node.host())));
        }
        if let Some(lost) = inner.lost_probes.get_mut(&node).filter(|n| **n > 0) {
            *lost -= 1;
            return Err(PortError::Unavailable(format!("no answer from {}", node.host())));
        }
        let writable = inner.roles[&node] == Role::Primary;
        let peer_follows = inner.roles[&node.peer()] == Role::Standby;
        // As pg_stat_replication: synchronous only while streaming and named in the list.
        let streaming = !inner.down[&node.peer()];
        let standby = (writable && peer_follows).then(|| StandbyView {
            node: node.peer(),
            sync: inner.standby_sync && streaming && !inner.sync_released,
            streaming,
            flush_lag_bytes: inner.standby_lag_bytes,
            replay_lag_bytes: inner.standby_lag_bytes,
        });
        Ok(NodeStatus { writable, standby })
    }

    async fn promote(&self, node: DbNode) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.calls.push(format!("promote {}", node.host()));
        if inner.down[&node] {
            return Err(PortError::Unavailable(format!("{} is down", node.host())));
        }
        if inner.roles[&node] == Role::Fenced {
            return Err(PortError::Rejected(format!("{} is fenced", node.host())));
        }
        inner.roles.insert(node, Role::Primary);
        Ok(())
    }

    async fn fence(&self, node: DbNode) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.calls.push(format!("fence {}", node.host()));
        inner.roles.insert(node, Role::Fenced);
        Ok(())
    }

    async fn set_writer(&self, node: DbNode) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.calls.push(format!("set-writer {}", node.host()));
        inner.writer = node;
        Ok(())
    }

    async fn release_sync(&self, primary: DbNode) -> Result<(), PortError> {
        self.sync_call("release-sync", primary)
    }

    async fn require_sync(&self, primary: DbNode) -> Result<(), PortError> {
        self.sync_call("require-sync", primary)
    }

    async fn wal_lsn(&self, node: DbNode) -> Result<u64, PortError> {
        let inner = self.lock();
        if inner.down[&node] {
            return Err(PortError::Unavailable(format!("{} is down", node.host())));
        }
        Ok(inner.lsns.get(&node).copied().unwrap_or(0))
    }

    async fn unfence(&self, node: DbNode) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.calls.push(format!("unfence {}", node.host()));
        match (inner.roles[&node], inner.roles[&node.peer()]) {
            (Role::Fenced, Role::Primary) => {
                Err(PortError::Rejected(format!("{} is not resynchronised yet", node.host())))
            }
            // A switchover's own fence on the primary, lifted: it takes writes again.
            (Role::Fenced, _) => {
                inner.roles.insert(node, Role::Primary);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl MemDbAdmin {
    /// Record a release-sync / require-sync call; fail it if the test asked for that.
    fn sync_call(&self, what: &str, primary: DbNode) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.calls.push(format!("{what} {}", primary.host()));
        if let Some(failing) = inner.failing_sync_calls.checked_sub(1) {
            inner.failing_sync_calls = failing;
            return Err(PortError::Unavailable(format!("{what}: {} did not answer", primary.host())));
        }
        if inner.down[&primary] {
            return Err(PortError::Unavailable(format!("{} is down", primary.host())));
        }
        inner.sync_released = what == "release-sync";
        Ok(())
    }
}
