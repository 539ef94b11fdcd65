//! The query pipeline's store on PostgreSQL (`migrations/0003_queries.sql`): the gateway's
//! pending rows and the workers' completion, whose effect and status change commit together.

use async_trait::async_trait;

use super::pg::{PgCluster, port_error};
use crate::stack::ports::{PortError, QueryRow, QueryStore};

type Row = (i64, String, String, String, Option<String>);

fn row((id, key, sku, status, result): Row) -> QueryRow {
    QueryRow { id: id as u64, key, sku, status, result }
}

impl PgCluster {
    /// How many times a query's effect was applied (1 when processed exactly once).
    pub async fn effects(&self, id: u64) -> Result<u64, PortError> {
        let n: i64 = sqlx::query_scalar("SELECT effects FROM queries WHERE id = $1")
            .bind(id as i64)
            .fetch_one(self.pool(self.writer()))
            .await
            .map_err(port_error)?;
        Ok(n as u64)
    }
}

#[async_trait]
impl QueryStore for PgCluster {
    async fn create_pending(&self, key: &str, sku: &str) -> Result<(QueryRow, bool), PortError> {
        let pool = self.pool(self.writer());
        let inserted: Option<Row> = sqlx::query_as(
            "INSERT INTO queries (key, sku, status) VALUES ($1, $2, 'pending') ON CONFLICT (key) DO NOTHING
             RETURNING id, key, sku, status, result",
        )
        .bind(key)
        .bind(sku)
        .fetch_optional(pool)
        .await
        .map_err(port_error)?;
        if let Some(inserted) = inserted {
            return Ok((row(inserted), false));
        }
        let existing: Row = sqlx::query_as("SELECT id, key, sku, status, result FROM queries WHERE key = $1")
            .bind(key)
            .fetch_one(pool)
            .await
            .map_err(port_error)?;
        Ok((row(existing), true))
    }

    async fn get(&self, id: u64) -> Result<Option<QueryRow>, PortError> {
        let found: Option<Row> =
            sqlx::query_as("SELECT id, key, sku, status, result FROM queries WHERE id = $1")
                .bind(id as i64)
                .fetch_optional(self.pool(self.writer()))
                .await
                .map_err(port_error)?;
        Ok(found.map(row))
    }

    async fn compute(&self, sku: &str) -> Result<String, PortError> {
        let stock: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE sku = $1")
            .bind(sku)
            .fetch_optional(self.pool(self.writer()))
            .await
            .map_err(port_error)?;
        Ok(match stock {
            Some(stock) => format!("{sku}: {stock} in stock"),
            None => format!("{sku}: unknown product"),
        })
    }

    async fn complete(&self, id: u64, result: &str, once: bool) -> Result<bool, PortError> {
        // One statement, one transaction: the status and the effect change together. With
        // `once`, a completed row is left alone (the redelivered message's effect is skipped).
        let guard = if once { "AND status <> 'completed'" } else { "" };
        let updated = sqlx::query(&format!(
            "UPDATE queries SET status = 'completed', result = $2, effects = effects + 1 WHERE id = $1 {guard}"
        ))
        .bind(id as i64)
        .bind(result)
        .execute(self.pool(self.writer()))
        .await
        .map_err(port_error)?
        .rows_affected();
        if updated == 1 {
            return Ok(true);
        }
        match self.get(id).await? {
            Some(_) => Ok(false),
            None => Err(PortError::Rejected(format!("no query {id}"))),
        }
    }
}
