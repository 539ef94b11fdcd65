//! The orders saga's stores on PostgreSQL (`migrations/0002_saga.sql`): inventory reservations,
//! order and report rows, and the saga's step log — all through the writer endpoint, each call
//! one transaction, with the tombstone rules of `stack::ports` (a restocked reservation or a
//! cancelled row is kept, so a late or retried step can never undo a compensation).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::pg::{PgCluster, port_error};
use crate::stack::ports::{InventoryStore, OrderStore, PortError, ReportStore, Reserved, Restocked, SagaLog};

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

#[async_trait]
impl SagaLog for PgCluster {
    async fn append(&self, order_id: &str, step: &str) -> Result<(), PortError> {
        sqlx::query("INSERT INTO saga_log (order_id, step) VALUES ($1, $2)")
            .bind(order_id)
            .bind(step)
            .execute(self.pool(self.writer()))
            .await
            .map_err(port_error)?;
        Ok(())
    }
    async fn trace(&self, order_id: &str) -> Result<Vec<String>, PortError> {
        sqlx::query_scalar("SELECT step FROM saga_log WHERE order_id = $1 ORDER BY id")
            .bind(order_id)
            .fetch_all(self.pool(self.writer()))
            .await
            .map_err(port_error)
    }
}
