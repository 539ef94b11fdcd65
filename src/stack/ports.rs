//! The ports: every way a service reaches outside itself. Services are written against these
//! traits only; `sim/` implements them over turmoil sockets against simulated database and broker
//! hosts, and the real adapters implement them with sqlx (PostgreSQL), lapin (RabbitMQ) and
//! hyper on tokio sockets.
//!
//! Error contract shared by every port: [`PortError::Unavailable`] means the call may or may not
//! have taken effect (a timeout, a reset connection), so a caller must treat a write as unknown;
//! every other error means it definitely did not.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A log sequence number: the position of a commit in the primary's write-ahead log.
pub type Lsn = u64;

/// Why a port call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PortError {
    /// No answer (refused, reset, timed out): a write may or may not have happened.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The node refused the write because it is a standby or was fenced: nothing happened.
    #[error("read-only: {0}")]
    ReadOnly(String),
    /// The request was understood and refused (bad input, a constraint): nothing happened.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// A database node, as the watchdog and the read path name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbNode {
    /// The node that starts as primary (`pg-primary`).
    PgPrimary,
    /// The node that starts as streaming standby (`pg-replica`).
    PgReplica,
}

impl DbNode {
    /// The host name.
    pub fn host(self) -> &'static str {
        match self {
            DbNode::PgPrimary => "pg-primary",
            DbNode::PgReplica => "pg-replica",
        }
    }

    /// The node of a database host name (`pg-primary`; anything else is `pg-replica`, so only
    /// validated names belong here).
    pub fn named(host: &str) -> DbNode {
        if host == "pg-primary" { DbNode::PgPrimary } else { DbNode::PgReplica }
    }

    /// The other node.
    pub fn peer(self) -> DbNode {
        match self {
            DbNode::PgPrimary => DbNode::PgReplica,
            DbNode::PgReplica => DbNode::PgPrimary,
        }
    }
}

/// A new investment, before it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInvestment {
    /// Idempotency key.
    pub key: String,
    /// Coin id.
    pub coin: String,
    /// Amount in US cents.
    pub amount_usd_cents: u64,
    /// Price in millionths of a US dollar.
    pub price_usd_micros: u64,
}

/// A stored investment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investment {
    /// Row id.
    pub id: u64,
    /// The commit's LSN.
    pub lsn: Lsn,
    /// What was written.
    pub data: NewInvestment,
}

/// A page of investments read from one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The LSN the node had applied when it answered.
    pub applied_lsn: Lsn,
    /// Which node answered.
    pub node: DbNode,
    /// Investments with `lsn >= min_lsn`, newest first.
    pub investments: Vec<Investment>,
}

/// The investments API's data (CQRS: writes to the primary, reads from a chosen node).
#[async_trait]
pub trait InvestStore: Send + Sync + 'static {
    /// Insert through the writer endpoint. Idempotent on `key`: a replay returns the stored row
    /// and `true`.
    async fn record(&self, investment: NewInvestment) -> Result<(Investment, bool), PortError>;
    /// The LSN `node` has applied (for a standby: replayed).
    async fn applied_lsn(&self, node: DbNode) -> Result<Lsn, PortError>;
    /// Investments with `lsn >= min_lsn` as `node` sees them, newest first, at most `limit`.
    async fn history(&self, node: DbNode, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError>;
    /// Investments as the *current primary* sees them (through the writer endpoint): the
    /// read-your-writes fallback when the replica lags. `HistoryPage::node` says who answered.
    /// The default reads `PgPrimary`, right until a failover; adapters that know the writer
    /// (the db-router) should override it.
    async fn history_from_writer(&self, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        self.history(DbNode::PgPrimary, min_lsn, limit).await
    }
}

/// What reserving stock did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reserved {
    /// Stock was taken for this order now.
    Taken,
    /// It had already been taken for this order (a retry).
    AlreadyTaken,
    /// Not enough stock: nothing taken.
    OutOfStock,
    /// This order's stock was taken and has since been put back (or a restock came first): the
    /// order was compensated, nothing is taken again.
    Released,
}

/// What restocking (compensation) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restocked {
    /// The order's stock was put back now.
    Restocked,
    /// It had already been put back (a retry).
    AlreadyRestocked,
    /// Nothing was ever taken for this order.
    NothingTaken,
}

/// The inventory service's data.
///
/// Reservations are keyed by order id and never forgotten: after a `restock`, a `reserve` for
/// the same order id takes nothing and answers `Released` (a client retry of a compensated order
/// stays compensated). A `restock` of an order with nothing taken leaves the same tombstone, so a
/// reserve that arrives late (after the saga gave up on it and compensated) cannot take stock.
#[async_trait]
pub trait InventoryStore: Send + Sync + 'static {
    /// Take `qty` of `sku` for `order_id`, idempotently.
    async fn reserve(&self, order_id: &str, sku: &str, qty: u64) -> Result<Reserved, PortError>;
    /// Put back what `order_id` took, idempotently (the saga's compensation).
    async fn restock(&self, order_id: &str) -> Result<Restocked, PortError>;
    /// Stock on hand by SKU.
    async fn stock(&self) -> Result<BTreeMap<String, u64>, PortError>;
}

/// The orders service's data.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Create the order row, idempotently; `Ok(false)` if it already existed.
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError>;
    /// Cancel the order (the saga's compensation), idempotently: `Ok(true)` if a live order was
    /// cancelled now, `Ok(false)` if there was none (never created, or already cancelled).
    /// Leaves a tombstone: a later `create` for the same id must fail with `Rejected`, so a
    /// delayed or retried create can never resurrect a compensated order.
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError>;
}

/// The reports service's data.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Create the report row for an order, idempotently; `Ok(false)` if it already existed.
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError>;
    /// Delete an order's report (compensation when the report step's outcome was unknown),
    /// idempotently, with the same tombstone rule as [`OrderStore::cancel`]: `Ok(true)` if a
    /// report was removed now.
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError>;
}

/// The orders saga's log, kept by the middleware (its own tables): one entry per saga (the
/// request, which orchestrator holds it and until when, and its outcome once finished) and every
/// step in order, e.g. `reserve ok`, `order unknown`, `cancel-order ok`, `restock ok`.
///
/// Step vocabulary: `reserve ok|unknown|out-of-stock|released|refused <status>`,
/// `order|report ok|fail|unknown`, `cancel-report|cancel-order ok|fail|unknown` or
/// `… unconfirmed (the step never applied)`, `restock ok|fail|unknown`, `restock skipped` (the
/// skip-compensation bug), `resumed by <owner>` (a recovery took the saga over). The final-state
/// reader copies the steps into `OrderRecord::trace`. Appends are best effort: the saga does not
/// fail because its log is unreachable. A client retry of the same order appends its steps after
/// the earlier run's (a retried compensated order adds `reserve released`).
///
/// Leases: the orchestrator that [`begin`](SagaLog::begin)s a saga holds it for `lease`, renewed
/// by every [`append`](SagaLog::append); a saga unfinished when its lease runs out (its
/// orchestrator crashed or is cut off) is [`claim`](SagaLog::claim)ed by a live one — the
/// restarted orchestrator itself or another replica — and run again, every step being idempotent. Only the holder can [`finish`](SagaLog::finish) it, so of
/// two orchestrators running one saga at most one answers definitely. Lease times are the
/// log's own clock (the database's `now()`).
#[async_trait]
pub trait SagaLog: Send + Sync + 'static {
    /// Record the saga of `request`, held by `owner` for `lease` (a retry re-opens a finished one).
    async fn begin(&self, request: &SagaRequest, owner: &str, lease: Duration) -> Result<(), PortError>;
    /// Append one step to an order's trace, renewing `owner`'s lease if it still holds the saga.
    async fn append(&self, order_id: &str, owner: &str, step: &str, lease: Duration)
    -> Result<(), PortError>;
    /// Record the saga's outcome if `owner` still holds it: false when another took it over.
    async fn finish(&self, order_id: &str, owner: &str, outcome: &str) -> Result<bool, PortError>;
    /// Take over at most `limit` unfinished sagas whose lease ran out, holding each for `lease`;
    /// their requests, by order id.
    async fn claim(&self, owner: &str, lease: Duration, limit: u32) -> Result<Vec<SagaRequest>, PortError>;
    /// An order's trace, oldest step first (empty if none).
    async fn trace(&self, order_id: &str) -> Result<Vec<String>, PortError>;
}

/// What a saga was asked to do: enough to run it again after its orchestrator is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRequest {
    /// The order id (the client's idempotency key).
    pub order_id: String,
    /// The product.
    pub sku: String,
    /// Quantity.
    pub qty: u64,
}

/// A stored asynchronous query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRow {
    /// Its id.
    pub id: u64,
    /// The client's idempotency key.
    pub key: String,
    /// The product it asks about.
    pub sku: String,
    /// `pending` or `completed`.
    pub status: String,
    /// The answer, once completed.
    pub result: Option<String>,
}

/// The query gateway's and workers' data.
#[async_trait]
pub trait QueryStore: Send + Sync + 'static {
    /// Insert a `pending` row, idempotently on `key`; returns the row and whether it existed.
    async fn create_pending(&self, key: &str, sku: &str) -> Result<(QueryRow, bool), PortError>;
    /// Read a query.
    async fn get(&self, id: u64) -> Result<Option<QueryRow>, PortError>;
    /// Compute the answer from the product table (the worker's effect).
    async fn compute(&self, sku: &str) -> Result<String, PortError>;
    /// Mark completed and record the effect, in one transaction. When `once` is true the effect
    /// applies at most once per query (`Ok(false)` if it already had); when false it is applied
    /// again on every call (the non-idempotent-worker bug).
    async fn complete(&self, id: u64, result: &str, once: bool) -> Result<bool, PortError>;
}

/// A message on the query queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMessage {
    /// The query's id.
    pub id: u64,
    /// The product.
    pub sku: String,
}

/// What the broker carries: a serialisable message. The broker ports are generic over it; the
/// default is the query queue's [`QueryMessage`], the files' events are [`FileEvent`]s.
pub trait Message: Clone + Send + Sync + Serialize + serde::de::DeserializeOwned + 'static {}

impl<M: Clone + Send + Sync + Serialize + serde::de::DeserializeOwned + 'static> Message for M {}

/// Why a publish failed. Every variant means the message is not known to be queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PublishError {
    /// The queue is at capacity and rejected the message (RabbitMQ `reject-publish`); for a
    /// fanout, at least one bound queue did.
    #[error("queue full")]
    Full,
    /// No confirm arrived in time: the message may or may not be queued.
    #[error("publish unconfirmed: {0}")]
    Unconfirmed(String),
}

/// One delivery to a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery<M = QueryMessage> {
    /// The tag to acknowledge it with (unique per consumer connection).
    pub tag: u64,
    /// True when the broker delivered it before and it was not acknowledged.
    pub redelivered: bool,
    /// The message.
    pub message: M,
}

/// The publishing side of the broker. `publish` returns only once the broker confirmed the
/// message (publisher confirms), unless the caller chooses not to wait. One publisher publishes
/// to one destination: the query queue, or the files' fanout exchange.
#[async_trait]
pub trait Publisher<M: Message = QueryMessage>: Send + Sync + 'static {
    /// Publish and wait for the confirm, at most `confirm_timeout`.
    async fn publish(&self, message: M, confirm_timeout: Duration) -> Result<(), PublishError>;
}

/// The consuming side of the broker: manual acknowledgements, bounded prefetch. If the consumer's
/// connection dies, the broker redelivers every unacknowledged message to another consumer.
/// Dropping a consumer closes its connection (the worker drops it to hand its unacknowledged
/// messages back after it gives up on one).
#[async_trait]
pub trait Consumer<M: Message = QueryMessage>: Send + 'static {
    /// The next delivery; `Err` when the connection is lost (the caller reconnects).
    async fn next(&mut self) -> Result<Delivery<M>, PortError>;
    /// Acknowledge a delivery (after the effect is committed).
    async fn ack(&mut self, tag: u64) -> Result<(), PortError>;
}

/// Opens consumers (one per worker connection) of one queue.
#[async_trait]
pub trait ConsumerFactory<M: Message = QueryMessage>: Send + Sync + 'static {
    /// Connect and start consuming with at most `prefetch` unacknowledged deliveries.
    async fn connect(&self, prefetch: u32) -> Result<Box<dyn Consumer<M>>, PortError>;
}

/// The fanout exchange the api publishes `file.uploaded` events on.
pub const FILES_EXCHANGE: &str = "files";

/// The subscriber groups bound to [`FILES_EXCHANGE`]: each has its own queue and gets every
/// event; the consumers within a group compete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriberGroup {
    /// Makes a derived object (`thumbs/<key>`) and records it on the file's row.
    Thumbnails,
    /// Appends the event to the audit table.
    Audit,
}

impl SubscriberGroup {
    /// Both groups, in a fixed order.
    pub const ALL: [SubscriberGroup; 2] = [SubscriberGroup::Thumbnails, SubscriberGroup::Audit];

    /// The group's name, and its queue's (`files.thumbnails`, `files.audit`) suffix.
    pub fn name(self) -> &'static str {
        match self {
            SubscriberGroup::Thumbnails => "thumbnails",
            SubscriberGroup::Audit => "audit",
        }
    }

    /// The group's queue, bound to [`FILES_EXCHANGE`].
    pub fn queue(self) -> String {
        format!("{FILES_EXCHANGE}.{}", self.name())
    }
}

/// The `file.uploaded` event: published once the object and its row are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEvent {
    /// The file's row id.
    pub id: u64,
    /// The client's idempotency key.
    pub key: String,
    /// Where the bytes are.
    pub object_key: String,
}

/// One object as object storage holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// [`checksum`] of its bytes.
    pub checksum: String,
}

impl ObjectInfo {
    /// The info of `bytes` stored under `key`.
    pub fn of(key: &str, bytes: &[u8]) -> ObjectInfo {
        ObjectInfo { key: key.to_owned(), size: bytes.len() as u64, checksum: checksum(bytes) }
    }
}

/// The checksum the stack keeps with a file and the checks compare: SHA-256, lowercase hex.
pub fn checksum(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// S3-shaped object storage (the `objects` host). A `put` that returns `Ok` is durable and
/// immediately readable; one that fails with [`PortError::Unavailable`] may or may not have
/// landed.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Store `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError>;
    /// An object's bytes; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// Every object with its size and checksum, by key (the final-state reader's view).
    async fn list(&self) -> Result<Vec<ObjectInfo>, PortError>;
}

/// A file to record: what the api stored and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFile {
    /// The client's idempotency key.
    pub key: String,
    /// Where the bytes are in object storage.
    pub object_key: String,
    /// Size in bytes.
    pub size: u64,
    /// [`checksum`] of the bytes.
    pub checksum: String,
}

/// A file's metadata row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRow {
    /// Its id.
    pub id: u64,
    /// What was recorded.
    pub file: NewFile,
    /// The derived object's key, once the thumbnails group made it.
    pub thumbnail: Option<String>,
}

/// The files' metadata (PostgreSQL): one row per upload, the thumbnails group's mark on it, and
/// the audit group's table.
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Insert the row, idempotently on `key`; returns the row and whether it existed.
    async fn create(&self, file: &NewFile) -> Result<(FileRow, bool), PortError>;
    /// Read a file's row.
    async fn get(&self, id: u64) -> Result<Option<FileRow>, PortError>;
    /// Record the derived object on the row; `Ok(false)` if it was already recorded (a
    /// redelivery), `Rejected` if there is no such row.
    async fn set_thumbnail(&self, id: u64, thumbnail_key: &str) -> Result<bool, PortError>;
    /// Append `event` for file `id` to the audit table; when `once`, at most once per file and
    /// event (`Ok(false)` if it was there already).
    async fn audit(&self, id: u64, event: &str, once: bool) -> Result<bool, PortError>;
}

/// A plain HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Retry-After` in seconds, if present.
    pub retry_after_secs: Option<u64>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// An outgoing HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: http::Method,
    /// `host:port` of the service, e.g. `pricefeed:80`.
    pub authority: String,
    /// Path and query, e.g. `/simple/price?ids=bitcoin&vs_currencies=usd`.
    pub path: String,
    /// JSON body for a POST.
    pub body: Option<Vec<u8>>,
    /// Extra headers (e.g. the idempotency key).
    pub headers: Vec<(String, String)>,
}

/// The HTTP client port: services call each other, and the load generator calls the balancer,
/// through it. `Err` means no response arrived (refused, reset, timed out): see the module doc.
#[async_trait]
pub trait HttpClient: Send + Sync + 'static {
    /// Send one request, giving up after `timeout`.
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, PortError>;
}

/// A standby as its primary sees it: its row of PostgreSQL's `pg_stat_replication` (or, while it
/// is disconnected, what its replication slot remembers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyView {
    /// Which node the standby is.
    pub node: DbNode,
    /// `sync_state = 'sync'`: it streams, it has every commit the primary has acknowledged, and
    /// the primary does not acknowledge a commit without it. Never true with async replication.
    pub sync: bool,
    /// It is connected and streaming now (`state = 'streaming'`).
    pub streaming: bool,
    /// WAL the primary has written that the standby has not flushed, in bytes
    /// (`pg_current_wal_lsn() - flush_lsn`): at most what promoting it now would lose.
    pub flush_lag_bytes: u64,
    /// WAL the standby has not replayed yet, in bytes (`pg_current_wal_lsn() - replay_lsn`).
    pub replay_lag_bytes: u64,
}

/// What a probe of one node found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Up, primary and not fenced: it takes writes. False for a standby or a fenced node.
    pub writable: bool,
    /// For a writable node, its standby as it sees it; `None` for a node that knows of no
    /// standby, and for a node that is not writable.
    pub standby: Option<StandbyView>,
}

/// The database's control plane, used by the watchdog: probe, promote, fence, and repoint the
/// writer endpoint (the db-router).
#[async_trait]
pub trait DbAdmin: Send + Sync + 'static {
    /// Is `node` up and accepting writes, and (when it is) how does its standby replicate? `Err`
    /// when it did not answer within `timeout`. Each probe is the watchdog's view of the node at
    /// that moment: a primary may count on the watchdog having seen what its answer says.
    async fn probe(&self, node: DbNode, timeout: Duration) -> Result<NodeStatus, PortError>;
    /// Promote a standby to primary (`pg_promote()`).
    async fn promote(&self, node: DbNode) -> Result<(), PortError>;
    /// Fence a node so it can never take writes again (even after a restart). Must succeed
    /// against a crashed node (it acts on the node's storage, like STONITH): the watchdog does
    /// not promote until the old primary is fenced.
    async fn fence(&self, node: DbNode) -> Result<(), PortError>;
    /// Point the writer endpoint at `node`.
    async fn set_writer(&self, node: DbNode) -> Result<(), PortError>;
    /// Non-strict synchronous replication, step two: let `primary` acknowledge commits without
    /// waiting for its standby (real: `synchronous_standby_names = ''` and a reload, which
    /// releases every commit waiting for it). The watchdog calls it only after its view records
    /// the standby as not synchronous (Patroni updates `/sync` before it empties the list), so a
    /// standby it would promote never lacks a commit acknowledged alone. Idempotent.
    async fn release_sync(&self, primary: DbNode) -> Result<(), PortError>;
    /// Make `primary` wait for its standby again (real: `synchronous_standby_names` names it
    /// again, and a reload). The watchdog calls it once a probe shows the standby streaming and
    /// caught up; it counts the standby synchronous only when a later probe reports it so.
    /// Idempotent.
    async fn require_sync(&self, primary: DbNode) -> Result<(), PortError>;
    /// The node's WAL position: the current LSN of a primary, the replayed LSN of a standby
    /// (`pg_current_wal_lsn()` / `pg_last_wal_replay_lsn()`). Answers on a fenced node too.
    async fn wal_lsn(&self, node: DbNode) -> Result<Lsn, PortError>;
    /// Lift the fence from a node that has been resynchronised as a standby of the current
    /// primary (pg_rewind, or a fresh base backup), so a planned switchover may promote it.
    /// `Rejected` while it is not a standby yet: unfencing a diverged old primary would let it
    /// take writes beside the current one.
    async fn unfence(&self, node: DbNode) -> Result<(), PortError>;
}

/// What a backup catalogue entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// A full base backup (real: `pg_basebackup`).
    Base,
    /// One archived WAL segment (real: what `archive_command` copied).
    Wal,
}

/// Where a backup is in its life. The catalogue says `done` only once the backup's bytes are
/// stored whole and their checksum is recorded: a restore trusts nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    /// Being taken or copied.
    Running,
    /// Stored whole; `checksum` is the stored bytes'.
    Done,
}

/// One entry of the backup catalogue (kept in Redis): a base backup or a WAL segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueEntry {
    /// Unique, sortable by when the backup started (`base-000042`, `wal-000000010-000000057`).
    pub id: String,
    /// Base backup or WAL segment.
    pub kind: BackupKind,
    /// Where its WAL range starts, inclusive: a segment's first LSN; a base backup's first LSN a
    /// restore must replay from (PostgreSQL's backup start, the checkpoint's redo point).
    /// Ranges are half-open, as PostgreSQL's are (`stack::backup_policy` relies on it).
    pub start_lsn: Lsn,
    /// Where its WAL range ends, exclusive: a segment's next LSN; for a base backup, the LSN
    /// replay must reach before the restored data is consistent (PostgreSQL's backup end).
    pub stop_lsn: Lsn,
    /// When it started, ns from the start of the run (real: Unix time, ns).
    pub time_ns: u64,
    /// When it ended, same clock: a base backup is consistent as of then (usable for a target
    /// time at or after it); a segment holds nothing later. 0: unknown (an entry written before
    /// the field existed), and such a base backup serves only a restore to the latest.
    #[serde(default)]
    pub stop_time_ns: u64,
    /// Its stored size in bytes.
    pub size: u64,
    /// [`checksum`] of the stored bytes (empty while running).
    pub checksum: String,
    /// Running or done.
    pub state: BackupState,
}

/// The backup catalogue (the `redis` host): one entry per base backup and WAL segment, by id.
/// Calls are bounded; `Unavailable` means the call may or may not have taken effect.
#[async_trait]
pub trait Catalogue: Send + Sync + 'static {
    /// Insert or replace the entry with `entry.id`.
    async fn put(&self, entry: &CatalogueEntry) -> Result<(), PortError>;
    /// Remove an entry (pruned backups, WAL of an abandoned timeline); `Ok` if it was not there.
    async fn remove(&self, id: &str) -> Result<(), PortError>;
    /// Every entry, by id.
    async fn list(&self) -> Result<Vec<CatalogueEntry>, PortError>;
}
