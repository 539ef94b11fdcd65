//! The final state of the stack, read by the backend once load stops and every fault is healed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stack::ports::CatalogueEntry;

/// What the checkers need from the stack's data after the run, read from the current primary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// The node that was primary at the end (`pg-primary` or `pg-replica` after a failover).
    pub primary: String,
    /// Investments on the final primary: idempotency key → number of rows with that key
    /// (more than one is a duplicate).
    pub investments: BTreeMap<String, u32>,
    /// Writes some other node accepted that the final primary does not have (split brain), by key.
    pub diverged_investments: Vec<String>,
    /// Stock at the start of the run, by SKU.
    pub initial_stock: BTreeMap<String, u64>,
    /// Stock on hand at the end, by SKU.
    pub stock: BTreeMap<String, u64>,
    /// Orders by order id (the saga's idempotency key).
    pub orders: BTreeMap<String, OrderRecord>,
    /// Snapshots of stock taken during the run, for conservation at every point.
    pub stock_snapshots: Vec<StockSnapshot>,
    /// Queries by the client's idempotency key.
    pub queries: BTreeMap<String, QueryRecord>,
    /// Files' metadata rows by the client's idempotency key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileRecord>,
    /// Every object in object storage, by key (read from the object store itself).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, StoredObject>,
    /// The backups, when the stack takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<BackupsState>,
    /// Compose stacks: what the final read of each declared `write` op found, by op name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: BTreeMap<String, KeySet>,
    /// Compose stacks: each declared `submit` op's accepted jobs, by op name, then job id:
    /// whether a last poll after the drain found it done.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<String, BTreeMap<String, bool>>,
    /// Compose stacks: every evaluation of every invariant, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<InvariantSample>,
    /// Compose stacks: each conservation check's parts, read once after the drain, by check name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conservation: BTreeMap<String, Vec<PartReading>>,
}

/// The keys a declared `write` op left: on the node that accepts writes, and on each node read
/// directly (`per_node`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// Key → rows with it on the node that accepts writes (more than one is a duplicate).
    pub present: BTreeMap<String, u32>,
    /// Each node read directly: its keys, or why it could not be read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, NodeKeys>,
}

/// One node's keys, or why they could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKeys {
    /// The keys it holds (`None`: unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<std::collections::BTreeSet<String>>,
    /// Why it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One evaluation of an invariant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantSample {
    /// The invariant's name.
    pub name: String,
    /// When it was evaluated, ns from the start of the run (the end-of-run check: after the drain).
    pub time_ns: u64,
    /// `Some(true)` held, `Some(false)` violated, `None` could not be evaluated.
    pub holds: Option<bool>,
    /// The row it returned, or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Whether this is the end-of-run evaluation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// One part of a conservation check, as read after the drain: its value, or why it has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartReading {
    /// The client it was read through.
    pub client: String,
    /// The integer it read (`None`: unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// Why it could not be read: the error, no row, or a value that is not an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The backups at the end: the catalogue as Redis holds it, what the backup storage holds, and
/// every restore the run asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupsState {
    /// The catalogue's entries, by id.
    pub catalogue: Vec<CatalogueEntry>,
    /// What the backup storage holds: backup id → checksum of its stored bytes.
    pub stored: BTreeMap<String, String>,
    /// The restores, in the order they were asked for.
    pub restores: Vec<RestoreRecord>,
}

/// What one restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// When it was asked for, ns from the start of the run.
    pub requested_ns: u64,
    /// When the data it restores was lost: the last `disaster` before it (the request itself
    /// when there was none), ns.
    pub lost_at_ns: u64,
    /// The recovery target, ns from the start; `None` for `latest`.
    pub target_ns: Option<u64>,
    /// The base backup it started from (`None`: it found no verified one and restored nothing).
    pub base: Option<String>,
    /// Base backups it skipped because they did not verify, with why.
    pub skipped: Vec<String>,
    /// WAL segments it replayed after the base.
    pub segments: u32,
    /// The last LSN it recovered.
    pub recovered_lsn: u64,
    /// Commit time of the last transaction it recovered, ns (the recovery point).
    pub recovered_until_ns: u64,
    /// Why it stopped replaying (end of archive, a gap, the target).
    pub stopped: String,
    /// When the rebuilt primary took writes, ns (`None`: it never did).
    pub completed_ns: Option<u64>,
}

/// One file's row and what the subscribers did for it, at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The row's id.
    pub id: u64,
    /// Where the row says the bytes are.
    pub object_key: String,
    /// The size the row records.
    pub size: u64,
    /// The checksum the row records.
    pub checksum: String,
    /// The derived object's key, once the thumbnails group recorded it.
    pub thumbnail: Option<String>,
    /// Times the thumbnails group recorded it (exactly 1 is right).
    pub thumbnails_applied: u32,
    /// Audit entries for the file (exactly 1 is right).
    pub audits: u32,
}

/// One object as object storage holds it at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub checksum: String,
}

/// One order as the three saga participants see it at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The product.
    pub sku: String,
    /// How many.
    pub qty: u64,
    /// Stock currently taken for this order by inventory (0 after compensation).
    pub reserved_qty: u64,
    /// The order row exists in `ordersvc`.
    pub order_exists: bool,
    /// The report row exists in `reports`.
    pub report_exists: bool,
    /// How many times inventory restocked it.
    pub compensations: u32,
    /// The saga's steps as recorded by the middleware, in order (`reserve ok`, `order fail`, …).
    pub trace: Vec<String>,
}

/// Stock at one moment: on hand plus taken by orders must equal the initial stock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockSnapshot {
    /// When, since the start of the run.
    pub time_ns: u64,
    /// On hand, by SKU.
    pub on_hand: BTreeMap<String, u64>,
    /// Taken by live reservations, by SKU.
    pub reserved: BTreeMap<String, u64>,
}

/// One query as the gateway's table and the workers' effect ledger see it at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// The gateway's id.
    pub id: u64,
    /// `pending` or `completed`.
    pub status: String,
    /// How many times a worker applied its effect (exactly 1 is right once completed).
    pub effects: u32,
}
