//! The orders saga's stores on PostgreSQL (`migrations/0002_saga.sql`, `0004_saga_leases.sql`):
//! inventory reservations, order and report rows, and the saga's log (a `sagas` row per saga with
//! its lease on the database's clock, and the `saga_log` steps) — all through the writer endpoint, each call
//! one transaction, with the tombstone rules of `stack::ports` (a restocked reservation or a
//! cancelled row is kept, so a late or retried step can never undo a compensation).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::pg::{PgCluster, port_error};
use crate::stack::ports::{
    InventoryStore, OrderStore, PortError, ReportStore, Reserved, Restocked, SagaLog, SagaRequest,
};

impl PgCluster {
    /// Put `stock` of each SKU on the shelf (insert or overwrite), for tests and the harness.
    pub async fn set_stock(&self, stock: &[(&str, u64)]) -> Result<(), PortError> {
        self.put_stock(stock, "DO UPDATE SET stock = $2").await
    }

    /// Put `stock` of each SKU on the shelf unless the SKU is there already (a restarted or
    /// second service must not reset stock that orders have taken). `serve` seeds the workload's
    /// catalogue this way, as the simulation seeds its tables.
    pub async fn seed_stock(&self, stock: &[(&str, u64)]) -> Result<(), PortError> {
        self.put_stock(stock, "DO NOTHING").await
    }

    /// Insert each SKU's stock; `on_conflict` says what happens to a SKU already there.
    async fn put_stock(&self, stock: &[(&str, u64)], on_conflict: &str) -> Result<(), PortError> {
        let pool = self.pool(self.writer());
        let sql =
            format!("INSERT INTO products (sku, stock) VALUES ($1, $2) ON CONFLICT (sku) {on_conflict}");
        for (sku, qty) in stock {
            sqlx::query(&sql).bind(sku).bind(*qty as i64).execute(pool).await.map_err(port_error)?;
        }
        Ok(())
    }

    async fn create_row(&self, table: &str, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        let pool = self.pool(self.writer());
        let inserted = sqlx::query(&format!(
            "INSERT INTO {table} (order_id, sku, qty, cancelled) VALUES ($1, $2, $3, false) ON CONFLICT (order_id) DO NOTHING"
        ))
        .bind(order_id)
        .bind(sku)
        .bind(qty as i64)
        .execute(pool)
        .await
        .map_err(port_error)?
        .rows_affected();
        if inserted == 1 {
            return Ok(true);
        }
        let cancelled: bool =
            sqlx::query_scalar(&format!("SELECT cancelled FROM {table} WHERE order_id = $1"))
                .bind(order_id)
                .fetch_one(pool)
                .await
                .map_err(port_error)?;
        if cancelled { Err(PortError::Rejected(format!("{order_id} was cancelled"))) } else { Ok(false) }
    }

    async fn cancel_row(&self, table: &str, order_id: &str) -> Result<bool, PortError> {
        let pool = self.pool(self.writer());
        // A live row becomes a tombstone; no row gets a tombstone (a late create must fail).
        let cancelled = sqlx::query(&format!(
            "UPDATE {table} SET cancelled = true WHERE order_id = $1 AND NOT cancelled"
        ))
        .bind(order_id)
        .execute(pool)
        .await
        .map_err(port_error)?
        .rows_affected();
        if cancelled == 1 {
            return Ok(true);
        }
        sqlx::query(&format!(
            "INSERT INTO {table} (order_id, sku, qty, cancelled) VALUES ($1, '', 0, true) ON CONFLICT (order_id) DO NOTHING"
        ))
        .bind(order_id)
        .execute(pool)
        .await
        .map_err(port_error)?;
        Ok(false)
    }
}

#[async_trait]
impl InventoryStore for PgCluster {
    async fn reserve(&self, order_id: &str, sku: &str, qty: u64) -> Result<Reserved, PortError> {
        let mut tx = self.pool(self.writer()).begin().await.map_err(port_error)?;
        // The reservation row first: a concurrent reserve of the same order waits on it.
        let inserted = sqlx::query(
            "INSERT INTO reservations (order_id, sku, qty, restocked) VALUES ($1, $2, $3, false) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(sku)
        .bind(qty as i64)
        .execute(&mut *tx)
        .await
        .map_err(port_error)?
        .rows_affected();
        if inserted == 0 {
            let restocked: bool =
                sqlx::query_scalar("SELECT restocked FROM reservations WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(port_error)?;
            return Ok(if restocked { Reserved::Released } else { Reserved::AlreadyTaken });
        }
        let taken = sqlx::query("UPDATE products SET stock = stock - $2 WHERE sku = $1 AND stock >= $2")
            .bind(sku)
            .bind(qty as i64)
            .execute(&mut *tx)
            .await
            .map_err(port_error)?
            .rows_affected();
        if taken == 0 {
            tx.rollback().await.map_err(port_error)?;
            return Ok(Reserved::OutOfStock);
        }
        tx.commit().await.map_err(port_error)?;
        Ok(Reserved::Taken)
    }

    async fn restock(&self, order_id: &str) -> Result<Restocked, PortError> {
        let mut tx = self.pool(self.writer()).begin().await.map_err(port_error)?;
        let tombstone = sqlx::query(
            "INSERT INTO reservations (order_id, sku, qty, restocked) VALUES ($1, '', 0, true) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .execute(&mut *tx)
        .await
        .map_err(port_error)?
        .rows_affected();
        if tombstone == 1 {
            tx.commit().await.map_err(port_error)?;
            return Ok(Restocked::NothingTaken);
        }
        let row: (String, i64, bool) =
            sqlx::query_as("SELECT sku, qty, restocked FROM reservations WHERE order_id = $1 FOR UPDATE")
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(port_error)?;
        let (sku, qty, restocked) = row;
        if restocked {
            return Ok(Restocked::AlreadyRestocked);
        }
        sqlx::query("UPDATE products SET stock = stock + $2 WHERE sku = $1")
            .bind(&sku)
            .bind(qty)
            .execute(&mut *tx)
            .await
            .map_err(port_error)?;
        sqlx::query("UPDATE reservations SET restocked = true WHERE order_id = $1")
            .bind(order_id)
            .execute(&mut *tx)
            .await
            .map_err(port_error)?;
        tx.commit().await.map_err(port_error)?;
        Ok(Restocked::Restocked)
    }

    async fn stock(&self) -> Result<BTreeMap<String, u64>, PortError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sku, stock FROM products ORDER BY sku")
            .fetch_all(self.pool(self.writer()))
            .await
            .map_err(port_error)?;
        Ok(rows.into_iter().map(|(sku, stock)| (sku, stock as u64)).collect())
    }
}

#[async_trait]
impl OrderStore for PgCluster {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        self.create_row("orders", order_id, sku, qty).await
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        self.cancel_row("orders", order_id).await
    }
}

#[async_trait]
impl ReportStore for PgCluster {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        self.create_row("reports", order_id, sku, qty).await
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        self.cancel_row("reports", order_id).await
    }
}

/// A lease as a PostgreSQL interval, in milliseconds (bound as `$n * interval '1 millisecond'`).
fn lease_ms(lease: Duration) -> f64 {
    lease.as_secs_f64() * 1000.0
}

#[async_trait]
impl SagaLog for PgCluster {
    async fn begin(&self, request: &SagaRequest, owner: &str, lease: Duration) -> Result<(), PortError> {
        sqlx::query(
            "INSERT INTO sagas (order_id, sku, qty, owner, lease_until, outcome) \
             VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond', NULL) \
             ON CONFLICT (order_id) DO UPDATE SET owner = $4, lease_until = EXCLUDED.lease_until, outcome = NULL",
        )
        .bind(&request.order_id)
        .bind(&request.sku)
        .bind(request.qty as i64)
        .bind(owner)
        .bind(lease_ms(lease))
        .execute(self.pool(self.writer()))
        .await
        .map_err(port_error)?;
        Ok(())
    }
    async fn append(
        &self,
        order_id: &str,
        owner: &str,
        step: &str,
        lease: Duration,
    ) -> Result<(), PortError> {
        // One statement, one round trip: renew the lease if still held, and append the step.
        sqlx::query(
            "WITH renewed AS (UPDATE sagas SET lease_until = now() + $4 * interval '1 millisecond' \
             WHERE order_id = $1 AND owner = $2 AND outcome IS NULL) \
             INSERT INTO saga_log (order_id, step) VALUES ($1, $3)",
        )
        .bind(order_id)
        .bind(owner)
        .bind(step)
        .bind(lease_ms(lease))
        .execute(self.pool(self.writer()))
        .await
        .map_err(port_error)?;
        Ok(())
    }
    async fn finish(&self, order_id: &str, owner: &str, outcome: &str) -> Result<bool, PortError> {
        let finished = sqlx::query(
            "UPDATE sagas SET outcome = $3 WHERE order_id = $1 AND owner = $2 AND outcome IS NULL",
        )
        .bind(order_id)
        .bind(owner)
        .bind(outcome)
        .execute(self.pool(self.writer()))
        .await
        .map_err(port_error)?
        .rows_affected();
        Ok(finished == 1)
    }
    async fn claim(&self, owner: &str, lease: Duration, limit: u32) -> Result<Vec<SagaRequest>, PortError> {
        // SKIP LOCKED: two orchestrators claiming at once take different sagas.
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "UPDATE sagas SET owner = $1, lease_until = now() + $2 * interval '1 millisecond' \
             WHERE order_id IN (SELECT order_id FROM sagas WHERE outcome IS NULL AND lease_until < now() \
             ORDER BY order_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING order_id, sku, qty",
        )
        .bind(owner)
        .bind(lease_ms(lease))
        .bind(i64::from(limit))
        .fetch_all(self.pool(self.writer()))
        .await
        .map_err(port_error)?;
        let mut claimed: Vec<SagaRequest> = rows
            .into_iter()
            .map(|(order_id, sku, qty)| SagaRequest { order_id, sku, qty: qty as u64 })
            .collect();
        claimed.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(claimed)
    }
    async fn trace(&self, order_id: &str) -> Result<Vec<String>, PortError> {
        sqlx::query_scalar("SELECT step FROM saga_log WHERE order_id = $1 ORDER BY id")
            .bind(order_id)
            .fetch_all(self.pool(self.writer()))
            .await
            .map_err(port_error)
    }
}
