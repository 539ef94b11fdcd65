//! The final state read from real PostgreSQL, for the containers backend: the same
//! [`FinalState`] fields, by the same rules, as the simulation's `sim::state` reads from its
//! model. Every read of the final primary happens in one `REPEATABLE READ READ ONLY`
//! transaction, so the tables agree with each other (stock and reservations above all).
//!
//! Rules, field by field:
//! - `primary`: the node the caller names as the final primary.
//! - `investments`: key → number of rows with that key on the final primary (the table's unique
//!   key keeps it at 1; the count is kept for the checker's duplicate rule).
//! - `diverged_investments`: keys present on the other node but not on the final primary, only
//!   when the other node answers, is *not* in recovery and is on a timeline at least as new as
//!   the final primary's, i.e. it took writes of its own as a primary no older than the final
//!   one (split brain); otherwise empty. The simulation counts only the writes the other node committed
//!   after the final primary was promoted; real rows carry no commit time, so here a write the
//!   old primary took before the failover and never shipped (asynchronous replication) also
//!   counts when that node came back writable. A fenced old primary restarts in recovery, so it
//!   never contributes.
//! - `initial_stock`: [`CATALOG`], as the simulation seeds it.
//! - `stock`: `products`, every row.
//! - `orders`: one record per order id in `reservations` ∪ `orders` ∪ `reports`:
//!   `sku` is the reservation's unless it is a tombstone's empty one, else the order row's;
//!   `qty` is the order row's, else the reservation's; `reserved_qty` is the reservation's
//!   quantity unless restocked; `order_exists` / `report_exists` mean a row that is not
//!   cancelled (a tombstone does not exist); `compensations` is 1 when a real reservation was
//!   restocked, else 0 (see `compensations()`); `trace` is the order's `saga_log` steps by id.
//! - `queries`: key → id, status and `effects` from `queries`.
//! - `files`: key → the row of `files` and its count of `audit` entries; `thumbnails_applied`
//!   is 1 when the row has its mark (the table keeps one mark, so twice cannot show here).
//! - `objects` is left empty: the backend lists the object store itself.
//! - `stock_snapshots` is left empty: the backend takes them during the run
//!   ([`stock_snapshot`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgConnection;

use super::pg::port_error;
use crate::check::{FileRecord, FinalState, OrderRecord, QueryRecord, StockSnapshot};
use crate::stack::ports::{DbNode, PortError};
use crate::workload::CATALOG;

/// Longest wait for the other node's answers (it may be dead, frozen or cut off): past it, the
/// other node is ignored, as an unreachable one is.
pub const OTHER_NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// A consistent read-only snapshot of every table.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Read the final state from `primary` (the final primary), comparing with `other` (may be
/// unreachable → ignored) for diverged/lost writes.
pub async fn read_final_state(
    primary: &PgPool,
    primary_name: DbNode,
    other: Option<&PgPool>,
) -> Result<FinalState, PortError> {
    let mut tx = primary.begin_with(SNAPSHOT).await.map_err(port_error)?;
    let mut state = FinalState {
        primary: primary_name.host().into(),
        initial_stock: CATALOG.iter().map(|(sku, qty)| (sku.to_string(), *qty)).collect(),
        stock: on_hand(&mut tx).await?,
        ..FinalState::default()
    };
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT key, count(*) FROM investments GROUP BY key ORDER BY key")
            .fetch_all(&mut *tx)
            .await
            .map_err(port_error)?;
    state.investments = counts.into_iter().map(|(key, n)| (key, n as u32)).collect();
    state.orders = orders(&mut tx).await?;
    let queries: Vec<(i64, String, String, i64)> =
        sqlx::query_as("SELECT id, key, status, effects FROM queries ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(port_error)?;
    for (id, key, status, effects) in queries {
        state.queries.insert(key, QueryRecord { id: id as u64, status, effects: effects as u32 });
    }
    for stored in crate::real::files::read_files(&mut tx).await? {
        let row = stored.row;
        let record = FileRecord {
            id: row.id,
            object_key: row.file.object_key,
            size: row.file.size,
            checksum: row.file.checksum,
            // The mark is set at most once (`set_thumbnail` only fills an empty one).
            thumbnails_applied: u32::from(row.thumbnail.is_some()),
            thumbnail: row.thumbnail,
            audits: stored.audit_count,
        };
        state.files.insert(row.file.key, record);
    }
    tx.commit().await.map_err(port_error)?;
    if let Some(other) = other {
        let timeline = timeline(primary).await?;
        state.diverged_investments = diverged(&state.investments, timeline, other).await;
    }
    Ok(state)
}

/// One stock snapshot (on hand + reserved by live reservations), in one transaction.
pub async fn stock_snapshot(pool: &PgPool, time_ns: u64) -> Result<StockSnapshot, PortError> {
    let mut tx = pool.begin_with(SNAPSHOT).await.map_err(port_error)?;
    let on_hand = on_hand(&mut tx).await?;
    let reserved: Vec<(String, i64)> = sqlx::query_as(
        "SELECT sku, sum(qty)::bigint FROM reservations WHERE NOT restocked GROUP BY sku ORDER BY sku",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(port_error)?;
    tx.commit().await.map_err(port_error)?;
    let reserved = reserved.into_iter().map(|(sku, qty)| (sku, qty as u64)).collect();
    Ok(StockSnapshot { time_ns, on_hand, reserved })
}

/// Investment keys on a node (for counting writes a crashed node never passed on).
pub async fn investment_keys(pool: &PgPool) -> Result<BTreeSet<String>, PortError> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM investments").fetch_all(pool).await.map_err(port_error)?;
    Ok(keys.into_iter().collect())
}

async fn on_hand(conn: &mut PgConnection) -> Result<BTreeMap<String, u64>, PortError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sku, stock FROM products ORDER BY sku")
        .fetch_all(conn)
        .await
        .map_err(port_error)?;
    Ok(rows.into_iter().map(|(sku, stock)| (sku, stock as u64)).collect())
}

/// A writable node's timeline: 1 for the first primary, one more at each promotion (the first
/// 8 hex digits of its current WAL file's name).
async fn timeline(pool: &PgPool) -> Result<u32, PortError> {
    let name: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .fetch_one(pool)
        .await
        .map_err(port_error)?;
    u32::from_str_radix(&name[..8.min(name.len())], 16)
        .map_err(|e| PortError::Rejected(format!("WAL file name {name}: {e}")))
}

/// Keys the other node holds that the final primary does not, if the other node took writes of
/// its own as a primary *at least as new* as the final one (not in recovery, and a timeline not
/// older than the final primary's): an old primary left writable on an older timeline — frozen
/// or cut off at the failover, then taken out of service by the db-router — holds only the
/// commits it never shipped, which are losses (the durability check counts the acknowledged
/// ones), not split brain. Unreachable, slow or in recovery: none.
async fn diverged(
    primary_keys: &BTreeMap<String, u32>,
    primary_timeline: u32,
    other: &PgPool,
) -> Vec<String> {
    let read = async {
        let in_recovery: bool =
            sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(other).await.map_err(port_error)?;
        if in_recovery || timeline(other).await? < primary_timeline {
            return Ok(BTreeSet::new());
        }
        investment_keys(other).await
    };
    match tokio::time::timeout(OTHER_NODE_TIMEOUT, read).await {
        Ok(Ok(keys)) => keys.into_iter().filter(|key| !primary_keys.contains_key(key)).collect(),
        Ok(Err(error)) => {
            tracing::info!(%error, "final state: the other node is unreachable; ignored");
            Vec::new()
        }
        Err(_) => {
            tracing::info!("final state: the other node did not answer in time; ignored");
            Vec::new()
        }
    }
}

/// A saga participant's row: `(sku, qty, flag)`, the flag being `restocked` for a reservation
/// and `cancelled` for an order or report.
type SagaRow = (String, i64, bool);

async fn saga_rows(conn: &mut PgConnection, sql: &str) -> Result<BTreeMap<String, SagaRow>, PortError> {
    let rows: Vec<(String, String, i64, bool)> =
        sqlx::query_as(sql).fetch_all(conn).await.map_err(port_error)?;
    Ok(rows.into_iter().map(|(id, sku, qty, flag)| (id, (sku, qty, flag))).collect())
}

async fn orders(conn: &mut PgConnection) -> Result<BTreeMap<String, OrderRecord>, PortError> {
    let reservations = saga_rows(conn, "SELECT order_id, sku, qty, restocked FROM reservations").await?;
    let orders = saga_rows(conn, "SELECT order_id, sku, qty, cancelled FROM orders").await?;
    let reports = saga_rows(conn, "SELECT order_id, sku, qty, cancelled FROM reports").await?;
    let steps: Vec<(String, String)> = sqlx::query_as("SELECT order_id, step FROM saga_log ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    let mut traces: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (order_id, step) in steps {
        traces.entry(order_id).or_default().push(step);
    }
    let ids: BTreeSet<&String> = reservations.keys().chain(orders.keys()).chain(reports.keys()).collect();
    let mut records = BTreeMap::new();
    for id in ids {
        let reservation = reservations.get(id);
        let order = orders.get(id);
        let report = reports.get(id);
        let sku = reservation
            .map(|(sku, _, _)| sku.clone())
            .filter(|sku| !sku.is_empty())
            .or_else(|| order.map(|(sku, _, _)| sku.clone()))
            .unwrap_or_default();
        let qty = order.map(|(_, qty, _)| *qty).or_else(|| reservation.map(|(_, qty, _)| *qty)).unwrap_or(0);
        let record = OrderRecord {
            sku,
            qty: qty as u64,
            reserved_qty: reservation.filter(|(_, _, restocked)| !restocked).map_or(0, |(_, q, _)| *q as u64),
            order_exists: order.is_some_and(|(_, _, cancelled)| !cancelled),
            report_exists: report.is_some_and(|(_, _, cancelled)| !cancelled),
            compensations: reservation.map_or(0, compensations),
            trace: traces.remove(id).unwrap_or_default(),
        };
        records.insert(id.clone(), record);
    }
    Ok(records)
}

/// How many times inventory restocked an order, derived from its reservation row, since the
/// schema keeps no counter: `restock` (`super::saga`) flips `restocked` from false to true at most
/// once, under the row lock, and only on a real reservation (one that took stock, so its `sku`
/// is set); a restock that found nothing taken writes a tombstone with an empty `sku` instead.
/// So a restocked row with a `sku` is exactly one compensation, anything else none — the same
/// count the simulation keeps, which also restocks a reservation at most once.
fn compensations((sku, _, restocked): &SagaRow) -> u32 {
    u32::from(*restocked && !sku.is_empty())
}
