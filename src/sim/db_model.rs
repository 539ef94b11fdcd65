//! The simulated PostgreSQL: pure logic, no I/O. Each node keeps its durable state here — in
//! memory created outside the turmoil host, so it survives a crash of the host, as data on disk
//! survives a crash of the server.
//!
//! A commit appends one [`Write`] to the node's WAL; its LSN is the WAL length. A standby applies
//! its primary's WAL in order (replaying the same commands gives the same tables). Roles:
//! a primary takes writes unless fenced; a standby refuses them; promotion turns a standby into
//! a primary. A fenced node refuses writes forever, even after a restart. An unfenced old primary
//! that comes back keeps taking writes: split brain, as real PostgreSQL does.
//!
//! Synchronous replication is Patroni's non-strict synchronous mode, in Patroni's order. A
//! commit is acknowledged once the standby confirms it; a primary whose standby stopped
//! streaming acknowledges commits alone, but only after it has told the watchdog (the DCS in
//! Patroni's terms) in a probe answer that its standby is no longer synchronous — Patroni removes
//! a standby from the `/sync` key before it empties `synchronous_standby_names`, "so we only
//! consider promoting standbys that were guaranteed to be replicating synchronously". The
//! standby is reported synchronous again only once it streams and has every commit acknowledged
//! without it ([`Node::report_standby`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::model::Replication;
use crate::stack::ports::{
    DbNode, FileRow, Investment, Lsn, NewFile, NewInvestment, QueryRow, Reserved, Restocked, SagaRequest,
    StandbyView,
};

/// WAL bytes the model counts per commit, to express replication lag in bytes as PostgreSQL does
/// (`max_lag` is in bytes). A small transaction of this stack — a heap insert, an index insert and
/// the commit record — writes a few hundred bytes of WAL; the model takes 256 for every commit.
pub const WAL_BYTES_PER_COMMIT: u64 = 256;

/// One committed write: the command, replayed on the standby.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Insert an investment (idempotent on its key).
    Invest(NewInvestment),
    /// Take stock for an order.
    Reserve { order_id: String, sku: String, qty: u64 },
    /// Put an order's stock back.
    Restock { order_id: String },
    /// Create an order row.
    OrderCreate { order_id: String, sku: String, qty: u64 },
    /// Cancel an order row (leaves a tombstone).
    OrderCancel { order_id: String },
    /// Create a report row.
    ReportCreate { order_id: String, sku: String, qty: u64 },
    /// Cancel a report row.
    ReportCancel { order_id: String },
    /// Insert a pending query.
    QueryCreate { key: String, sku: String },
    /// Complete a query and apply its effect.
    QueryComplete { id: u64, result: String, once: bool },
    /// Record a saga held by `owner` until `lease_until_ns` (re-opens a finished one).
    SagaBegin { request: SagaRequest, owner: String, lease_until_ns: u64 },
    /// Append a saga step; renews the lease if `owner` holds the saga.
    SagaAppend { order_id: String, owner: String, step: String, lease_until_ns: u64 },
    /// Record a saga's outcome if `owner` holds it.
    SagaFinish { order_id: String, owner: String, outcome: String },
    /// Take over at most `limit` unfinished sagas whose lease ended before `now_ns`.
    SagaClaim { owner: String, now_ns: u64, lease_until_ns: u64, limit: u32 },
    /// Insert a file's row (idempotent on its key).
    FileCreate(NewFile),
    /// Record a file's derived object, once.
    FileThumbnail { id: u64, thumbnail: String },
    /// Append an event to the audit table; at most once per file and event when `once`.
    FileAudit { id: u64, event: String, once: bool },
}

/// What a write returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// An investment and whether it already existed.
    Invest(Investment, bool),
    /// A reservation's outcome.
    Reserved(Reserved),
    /// A restock's outcome.
    Restocked(Restocked),
    /// A row write: true if it changed something; `Err` text when refused (a cancelled row).
    Row(Result<bool, String>),
    /// A query row and whether it existed.
    Query(QueryRow, bool),
    /// Whether a completion applied its effect (or a saga's outcome was recorded).
    Completed(bool),
    /// The sagas a claim took over.
    Claimed(Vec<SagaRequest>),
    /// A file's row and whether it existed.
    File(FileRow, bool),
    /// Nothing to return.
    Done,
}

/// An order's or report's row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Product.
    pub sku: String,
    /// Quantity.
    pub qty: u64,
    /// Cancelled (a tombstone: it can never be created again).
    pub cancelled: bool,
}

/// Stock taken for one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Product.
    pub sku: String,
    /// Quantity taken.
    pub qty: u64,
    /// Put back (or a tombstone when nothing was ever taken).
    pub restocked: bool,
}

/// A saga as its log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaEntry {
    /// What it was asked to do.
    pub request: SagaRequest,
    /// The orchestrator holding it.
    pub owner: String,
    /// Until when, ns of simulated time.
    pub lease_until_ns: u64,
    /// Its outcome, once finished.
    pub outcome: Option<String>,
}

/// Every service's tables (each service owns its own; they share one server, as in the source
/// system's single PostgreSQL with one schema per service).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tables {
    /// Investments in commit order (id = position + 1).
    pub investments: Vec<Investment>,
    /// Investment key → position.
    pub investment_keys: BTreeMap<String, usize>,
    /// Stock on hand by SKU.
    pub stock: BTreeMap<String, u64>,
    /// Reservations by order id.
    pub reservations: BTreeMap<String, Reservation>,
    /// Restocks by order id.
    pub restocks: BTreeMap<String, u32>,
    /// Orders by id.
    pub orders: BTreeMap<String, Row>,
    /// Reports by order id.
    pub reports: BTreeMap<String, Row>,
    /// Queries (id = position + 1).
    pub queries: Vec<QueryRow>,
    /// Query key → position.
    pub query_keys: BTreeMap<String, usize>,
    /// Effects applied per query id.
    pub effects: BTreeMap<u64, u32>,
    /// Saga traces by order id.
    pub saga: BTreeMap<String, Vec<String>>,
    /// Sagas by order id.
    pub sagas: BTreeMap<String, SagaEntry>,
    /// Files' rows (id = position + 1).
    pub files: Vec<FileRow>,
    /// File key → position.
    pub file_keys: BTreeMap<String, usize>,
    /// Times a thumbnail was recorded, per file id.
    pub thumbnails_applied: BTreeMap<u64, u32>,
    /// The audit table: events per file id, in order.
    pub audit: BTreeMap<u64, Vec<String>>,
}

impl Tables {
    /// Tables seeded with the product catalogue's stock.
    pub fn seeded(stock: &[(&str, u64)]) -> Tables {
        Tables { stock: stock.iter().map(|(s, q)| (s.to_string(), *q)).collect(), ..Tables::default() }
    }

    /// Apply one write; `lsn` is its position in the WAL.
    pub fn apply(&mut self, write: &Write, lsn: Lsn) -> Outcome {
        match write {
            Write::Invest(new) => self.invest(new, lsn),
            Write::Reserve { order_id, sku, qty } => Outcome::Reserved(self.reserve(order_id, sku, *qty)),
            Write::Restock { order_id } => Outcome::Restocked(self.restock(order_id)),
            Write::OrderCreate { order_id, sku, qty } => {
                Outcome::Row(create(&mut self.orders, order_id, sku, *qty))
            }
            Write::OrderCancel { order_id } => Outcome::Row(Ok(cancel(&mut self.orders, order_id))),
            Write::ReportCreate { order_id, sku, qty } => {
                Outcome::Row(create(&mut self.reports, order_id, sku, *qty))
            }
            Write::ReportCancel { order_id } => Outcome::Row(Ok(cancel(&mut self.reports, order_id))),
            Write::QueryCreate { key, sku } => self.create_query(key, sku),
            Write::QueryComplete { id, result, once } => self.complete_query(*id, result, *once),
            Write::SagaBegin { request, owner, lease_until_ns } => {
                let entry = SagaEntry {
                    request: request.clone(),
                    owner: owner.clone(),
                    lease_until_ns: *lease_until_ns,
                    outcome: None,
                };
                self.sagas.insert(request.order_id.clone(), entry);
                Outcome::Done
            }
            Write::SagaAppend { order_id, owner, step, lease_until_ns } => {
                self.saga.entry(order_id.clone()).or_default().push(step.clone());
                if let Some(saga) = self.held(order_id, owner) {
                    saga.lease_until_ns = *lease_until_ns;
                }
                Outcome::Done
            }
            Write::SagaFinish { order_id, owner, outcome } => {
                let held = self.held(order_id, owner);
                let finished = held.is_some();
                if let Some(saga) = held {
                    saga.outcome = Some(outcome.clone());
                }
                Outcome::Completed(finished)
            }
            Write::SagaClaim { owner, now_ns, lease_until_ns, limit } => {
                Outcome::Claimed(self.claim_sagas(owner, *now_ns, *lease_until_ns, *limit))
            }
            Write::FileCreate(new) => self.create_file(new),
            Write::FileThumbnail { id, thumbnail } => self.thumbnail(*id, thumbnail),
            Write::FileAudit { id, event, once } => {
                let events = self.audit.entry(*id).or_default();
                if *once && events.contains(event) {
                    return Outcome::Completed(false);
                }
                events.push(event.clone());
                Outcome::Completed(true)
            }
        }
    }

    /// An investment, idempotent on its key (a repeat answers the first row, flagged).
    fn invest(&mut self, new: &NewInvestment, lsn: Lsn) -> Outcome {
        if let Some(&at) = self.investment_keys.get(&new.key) {
            return Outcome::Invest(self.investments[at].clone(), true);
        }
        let row = Investment { id: self.investments.len() as u64 + 1, lsn, data: new.clone() };
        self.investment_keys.insert(new.key.clone(), self.investments.len());
        self.investments.push(row.clone());
        Outcome::Invest(row, false)
    }

    /// A pending query, idempotent on its key.
    fn create_query(&mut self, key: &str, sku: &str) -> Outcome {
        if let Some(&at) = self.query_keys.get(key) {
            return Outcome::Query(self.queries[at].clone(), true);
        }
        let row = QueryRow {
            id: self.queries.len() as u64 + 1,
            key: key.to_string(),
            sku: sku.to_string(),
            status: "pending".into(),
            result: None,
        };
        self.query_keys.insert(key.to_string(), self.queries.len());
        self.queries.push(row.clone());
        Outcome::Query(row, false)
    }

    /// Complete query `id` with `result` (with `once`, only if not completed yet), counting the
    /// effect.
    fn complete_query(&mut self, id: u64, result: &str, once: bool) -> Outcome {
        let Some(row) = self.queries.get_mut((id as usize).wrapping_sub(1)) else {
            return Outcome::Completed(false);
        };
        if once && row.status == "completed" {
            return Outcome::Completed(false);
        }
        row.status = "completed".into();
        row.result = Some(result.to_string());
        *self.effects.entry(id).or_default() += 1;
        Outcome::Completed(true)
    }

    /// Hand up to `limit` claimable sagas to `owner` until `lease_until_ns`; their requests.
    fn claim_sagas(&mut self, owner: &str, now_ns: u64, lease_until_ns: u64, limit: u32) -> Vec<SagaRequest> {
        let claimable: Vec<String> = self.claimable(now_ns).take(limit as usize).cloned().collect();
        let claim = |id: &String| {
            let saga = self.sagas.get_mut(id).expect("claimable saga exists");
            saga.owner = owner.to_string();
            saga.lease_until_ns = lease_until_ns;
            saga.request.clone()
        };
        claimable.iter().map(claim).collect()
    }

    /// A file's metadata row, idempotent on its key.
    fn create_file(&mut self, new: &NewFile) -> Outcome {
        if let Some(&at) = self.file_keys.get(&new.key) {
            return Outcome::File(self.files[at].clone(), true);
        }
        let row = FileRow { id: self.files.len() as u64 + 1, file: new.clone(), thumbnail: None };
        self.file_keys.insert(new.key.clone(), self.files.len());
        self.files.push(row.clone());
        Outcome::File(row, false)
    }

    /// Set file `id`'s thumbnail once, counting each application.
    fn thumbnail(&mut self, id: u64, thumbnail: &str) -> Outcome {
        let Some(row) = self.files.get_mut((id as usize).wrapping_sub(1)) else {
            return Outcome::Row(Err(format!("no file with id {id}")));
        };
        if row.thumbnail.is_some() {
            return Outcome::Row(Ok(false));
        }
        row.thumbnail = Some(thumbnail.to_string());
        *self.thumbnails_applied.entry(id).or_default() += 1;
        Outcome::Row(Ok(true))
    }

    /// The unfinished saga `owner` holds.
    fn held(&mut self, order_id: &str, owner: &str) -> Option<&mut SagaEntry> {
        self.sagas.get_mut(order_id).filter(|s| s.owner == owner && s.outcome.is_none())
    }

    /// Unfinished sagas whose lease ended before `now_ns`, by order id.
    pub fn claimable(&self, now_ns: u64) -> impl Iterator<Item = &String> {
        self.sagas
            .iter()
            .filter(move |(_, s)| s.outcome.is_none() && s.lease_until_ns < now_ns)
            .map(|(id, _)| id)
    }

    fn reserve(&mut self, order_id: &str, sku: &str, qty: u64) -> Reserved {
        match self.reservations.get(order_id) {
            Some(r) if r.restocked => return Reserved::Released,
            Some(_) => return Reserved::AlreadyTaken,
            None => {}
        }
        let on_hand = self.stock.get(sku).copied().unwrap_or(0);
        if on_hand < qty {
            return Reserved::OutOfStock;
        }
        self.stock.insert(sku.to_owned(), on_hand - qty);
        self.reservations
            .insert(order_id.to_owned(), Reservation { sku: sku.to_owned(), qty, restocked: false });
        Reserved::Taken
    }

    fn restock(&mut self, order_id: &str) -> Restocked {
        match self.reservations.get_mut(order_id) {
            None => {
                let tombstone = Reservation { restocked: true, ..Reservation::default() };
                self.reservations.insert(order_id.to_owned(), tombstone);
                Restocked::NothingTaken
            }
            Some(r) if r.restocked => Restocked::AlreadyRestocked,
            Some(r) => {
                r.restocked = true;
                *self.stock.entry(r.sku.clone()).or_default() += r.qty;
                *self.restocks.entry(order_id.to_owned()).or_default() += 1;
                Restocked::Restocked
            }
        }
    }
}

fn create(rows: &mut BTreeMap<String, Row>, id: &str, sku: &str, qty: u64) -> Result<bool, String> {
    match rows.get(id) {
        Some(row) if row.cancelled => Err(format!("`{id}` was cancelled")),
        Some(_) => Ok(false),
        None => {
            rows.insert(id.to_owned(), Row { sku: sku.to_owned(), qty, cancelled: false });
            Ok(true)
        }
    }
}

fn cancel(rows: &mut BTreeMap<String, Row>, id: &str) -> bool {
    let existed = rows.get(id).is_some_and(|r| !r.cancelled);
    rows.insert(id.to_owned(), Row { cancelled: true, ..rows.get(id).cloned().unwrap_or_default() });
    existed
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Takes writes (unless fenced).
    Primary,
    /// Replays its primary's WAL; refuses writes.
    Standby,
}

/// One database node's durable state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Which node.
    pub name: DbNode,
    /// Primary or standby.
    pub role: Role,
    /// Fenced: refuses writes forever.
    pub fenced: bool,
    /// The WAL: every write with the simulated time it committed, ns.
    pub wal: Vec<(Write, u64)>,
    /// The tables, as of the end of the WAL.
    pub tables: Tables,
    /// For a primary: the LSN its standby has confirmed (flushed and applied).
    pub standby_lsn: Lsn,
    /// When it was promoted, ns (if it was).
    pub promoted_at_ns: Option<u64>,
    /// For a primary: when a standby last asked it for WAL, ns.
    pub standby_seen_ns: Option<u64>,
    /// For a primary: the last LSN it acknowledged without its standby's confirmation
    /// (synchronous replication with no standby streaming). A standby that lacks it is not
    /// synchronous.
    pub acked_alone_lsn: Lsn,
    /// For a primary: whether its last answer to the watchdog's probe named its standby
    /// synchronous. While it did, the primary acknowledges nothing its standby has not confirmed.
    pub sync_reported: bool,
    /// The tables before the first commit, to rebuild from when the node is rewound.
    pub initial: Tables,
    /// For a primary that archives WAL: the last LSN the backup host has stored.
    pub archived_lsn: Lsn,
}

impl Node {
    /// A fresh node.
    pub fn new(name: DbNode, role: Role, tables: Tables) -> Node {
        Node {
            name,
            role,
            fenced: false,
            wal: Vec::new(),
            initial: tables.clone(),
            tables,
            standby_lsn: 0,
            promoted_at_ns: None,
            standby_seen_ns: None,
            acked_alone_lsn: 0,
            sync_reported: false,
            archived_lsn: 0,
        }
    }

    /// The LSN of its last commit (for a standby: the last it applied).
    pub fn lsn(&self) -> Lsn {
        self.wal.len() as Lsn
    }

    /// Does it take writes?
    pub fn writable(&self) -> bool {
        self.role == Role::Primary && !self.fenced
    }

    /// May the commit at `lsn` be acknowledged now, with synchronous replication? Yes once the
    /// standby has confirmed it; or, with no standby `streaming`, once the watchdog has been told
    /// the standby is not synchronous (the commit is then recorded as acknowledged alone).
    pub fn may_acknowledge(&mut self, lsn: Lsn, streaming: bool) -> bool {
        if self.standby_lsn >= lsn {
            return true;
        }
        if streaming || self.sync_reported {
            return false;
        }
        self.acked_alone_lsn = self.acked_alone_lsn.max(lsn);
        true
    }

    /// The primary's view of its standby, as `pg_stat_replication` shows it, for the watchdog's
    /// probe; remembers whether it said "synchronous" (see [`Node::may_acknowledge`]). The
    /// standby is synchronous only while it streams and has every commit acknowledged without
    /// it. `None` until a standby has ever asked this node for WAL.
    pub fn report_standby(&mut self, streaming: bool, replication: Replication) -> Option<StandbyView> {
        self.standby_seen_ns?;
        let sync = replication != Replication::Async && streaming && self.standby_lsn >= self.acked_alone_lsn;
        self.sync_reported = sync;
        let lag_bytes = self.lsn().saturating_sub(self.standby_lsn) * WAL_BYTES_PER_COMMIT;
        Some(StandbyView {
            node: self.name.peer(),
            sync,
            streaming,
            flush_lag_bytes: lag_bytes,
            replay_lag_bytes: lag_bytes,
        })
    }

    /// Commit a write on a writable node.
    pub fn commit(&mut self, write: Write, now_ns: u64) -> Result<(Outcome, Lsn), String> {
        if !self.writable() {
            let why = if self.fenced { "fenced" } else { "in recovery (a standby)" };
            return Err(format!("{} is {why}: cannot execute a write", self.name.host()));
        }
        let lsn = self.lsn() + 1;
        let outcome = self.tables.apply(&write, lsn);
        self.wal.push((write, now_ns));
        Ok((outcome, lsn))
    }

    /// Turn a fenced old primary into a standby of `primary`, as pg_rewind plus a standby.signal
    /// would: its WAL is cut back to the last entry both share (commits only it had are
    /// discarded), the tables are rebuilt from that prefix, and it replays from there on.
    /// Returns how many of its commits were discarded.
    pub fn rewind_to(&mut self, primary_wal: &[(Write, u64)]) -> usize {
        let common = self.wal.iter().zip(primary_wal).take_while(|(a, b)| a == b).count();
        let discarded = self.wal.len() - common;
        let kept: Vec<(Write, u64)> = self.wal.drain(..).take(common).collect();
        self.tables = self.initial.clone();
        self.replay(&kept);
        self.role = Role::Standby;
        self.archived_lsn = self.archived_lsn.min(common as Lsn);
        discarded
    }

    /// Apply WAL entries streamed from the primary, starting right after this node's LSN.
    pub fn replay(&mut self, entries: &[(Write, u64)]) {
        for (write, at) in entries {
            let lsn = self.lsn() + 1;
            self.tables.apply(write, lsn);
            self.wal.push((write.clone(), *at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invest(key: &str) -> Write {
        Write::Invest(NewInvestment {
            key: key.into(),
            coin: "bitcoin".into(),
            amount_usd_cents: 100,
            price_usd_micros: 1,
        })
    }

    #[test]
    fn a_standby_replaying_the_wal_reaches_the_same_tables_and_refuses_writes() {
        let mut primary = Node::new(DbNode::PgPrimary, Role::Primary, Tables::seeded(&[("sku-1", 10)]));
        let mut standby = Node::new(DbNode::PgReplica, Role::Standby, Tables::seeded(&[("sku-1", 10)]));
        primary.commit(invest("a"), 1).unwrap();
        primary.commit(Write::Reserve { order_id: "o".into(), sku: "sku-1".into(), qty: 3 }, 2).unwrap();
        let (replay, lsn) = primary.commit(invest("a"), 3).unwrap();
        assert!(matches!(replay, Outcome::Invest(_, true)), "idempotent on the key");
        assert_eq!(lsn, 3);
        standby.replay(&primary.wal.clone());
        assert_eq!(standby.tables, primary.tables);
        assert!(standby.commit(invest("b"), 4).unwrap_err().contains("standby"));
    }

    #[test]
    fn fencing_is_forever_and_restock_is_idempotent() {
        let mut node = Node::new(DbNode::PgPrimary, Role::Primary, Tables::seeded(&[("sku-1", 10)]));
        node.commit(Write::Reserve { order_id: "o".into(), sku: "sku-1".into(), qty: 3 }, 1).unwrap();
        let restock = |n: &mut Node| n.commit(Write::Restock { order_id: "o".into() }, 2).unwrap().0;
        assert_eq!(restock(&mut node), Outcome::Restocked(Restocked::Restocked));
        assert_eq!(restock(&mut node), Outcome::Restocked(Restocked::AlreadyRestocked));
        assert_eq!(node.tables.stock["sku-1"], 10);
        node.fenced = true;
        assert!(node.commit(invest("x"), 3).unwrap_err().contains("fenced"));
    }

    /// Issue 14: the standby is synchronous only while it streams and has everything the primary
    /// acknowledged, and the primary acknowledges alone only after reporting it out of sync.
    #[test]
    fn a_cut_off_standby_drops_out_of_sync_before_the_primary_commits_alone() {
        let mut primary = Node::new(DbNode::PgPrimary, Role::Primary, Tables::default());
        assert_eq!(primary.report_standby(false, Replication::Sync), None, "no standby ever seen");
        primary.standby_seen_ns = Some(0);
        primary.commit(invest("a"), 1).unwrap();
        primary.standby_lsn = 1;
        let view = primary.report_standby(true, Replication::Sync).unwrap();
        assert_eq!((view.node, view.sync, view.flush_lag_bytes), (DbNode::PgReplica, true, 0));
        // The standby is cut off: the next commit waits, even once it stopped streaming, until the
        // watchdog has been told.
        let (_, lsn) = primary.commit(invest("b"), 2).unwrap();
        assert!(!primary.may_acknowledge(lsn, true));
        assert!(!primary.may_acknowledge(lsn, false), "the watchdog still believes it is in sync");
        let view = primary.report_standby(false, Replication::Sync).unwrap();
        assert_eq!((view.sync, view.streaming, view.flush_lag_bytes), (false, false, WAL_BYTES_PER_COMMIT));
        assert!(primary.may_acknowledge(lsn, false), "now it commits alone");
        assert_eq!(primary.acked_alone_lsn, 2);
        // Back and streaming, it is synchronous only once it has what was acknowledged alone.
        assert!(!primary.report_standby(true, Replication::Sync).unwrap().sync);
        primary.standby_lsn = 2;
        assert!(primary.report_standby(true, Replication::Sync).unwrap().sync);
        assert!(!primary.report_standby(true, Replication::Async).unwrap().sync, "async is never sync");
    }

    #[test]
    fn a_rewound_old_primary_drops_what_only_it_had_and_follows_the_new_one() {
        let mut old = Node::new(DbNode::PgPrimary, Role::Primary, Tables::default());
        old.commit(invest("shared"), 1).unwrap();
        let mut new = Node::new(DbNode::PgReplica, Role::Standby, Tables::default());
        new.replay(&old.wal.clone());
        old.commit(invest("only-on-old"), 2).unwrap();
        new.role = Role::Primary;
        new.commit(invest("after-failover"), 3).unwrap();
        assert_eq!(old.rewind_to(&new.wal), 1);
        assert_eq!(old.role, Role::Standby);
        assert!(!old.tables.investment_keys.contains_key("only-on-old"));
        old.replay(&new.wal[old.wal.len()..]);
        assert_eq!(old.tables, new.tables);
    }
}
