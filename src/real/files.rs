//! The files' metadata on PostgreSQL (`migrations/0005_files.sql`): the api's row per upload, the
//! thumbnails group's mark on it and the audit group's table, all through the writer endpoint;
//! and [`read_files`], the final-state reader's view of them.
//!
//! - `create` is idempotent on the client's key (`INSERT … ON CONFLICT (key) DO NOTHING`, then
//!   the stored row), as the other stores' creates are.
//! - `set_thumbnail` sets the mark only while it is unset, in one statement, so of two
//!   subscribers racing on one event (a redelivery to a second consumer while the first still
//!   works) exactly one is told it applied.
//! - `audit` locks the file's row (`FOR UPDATE`) and then inserts, with `once` only when no entry
//!   for that file and event exists: audits of one file are serialised, so `once` holds under a
//!   race too. A missing file is `Rejected` (nothing was written), for either call.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;

use super::pg::{PgCluster, port_error};
use crate::stack::ports::{FileRow, FileStore, NewFile, PortError};

type Row = (i64, String, String, i64, String, Option<String>);
/// A [`Row`] and its audit count.
type CountedRow = (i64, String, String, i64, String, Option<String>, i64);

const COLUMNS: &str = "id, key, object_key, size, checksum, thumbnail";

fn row((id, key, object_key, size, checksum, thumbnail): Row) -> FileRow {
    FileRow { id: id as u64, file: NewFile { key, object_key, size: size as u64, checksum }, thumbnail }
}

/// A file's row with its audit entries, as the final state reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    /// The metadata row (its thumbnail mark included).
    pub row: FileRow,
    /// Rows in `audit` for this file, every event counted: 1 when the audit group applied its
    /// event exactly once.
    pub audit_count: u32,
}

/// Every file row, by id, with its audit count, read on `conn` (call it inside the final-state
/// reader's `REPEATABLE READ` transaction so it agrees with the other tables).
pub async fn read_files(conn: &mut PgConnection) -> Result<Vec<StoredFile>, PortError> {
    let rows: Vec<CountedRow> = sqlx::query_as(
        "SELECT f.id, f.key, f.object_key, f.size, f.checksum, f.thumbnail, count(a.id)
         FROM files f LEFT JOIN audit a ON a.file_id = f.id
         GROUP BY f.id ORDER BY f.id",
    )
    .fetch_all(conn)
    .await
    .map_err(port_error)?;
    Ok(rows
        .into_iter()
        .map(|(id, key, object_key, size, checksum, thumbnail, audits)| StoredFile {
            row: row((id, key, object_key, size, checksum, thumbnail)),
            audit_count: audits as u32,
        })
        .collect())
}

#[async_trait]
impl FileStore for PgCluster {
    async fn create(&self, file: &NewFile) -> Result<(FileRow, bool), PortError> {
        let pool = self.pool(self.writer());
        let inserted: Option<Row> = sqlx::query_as(&format!(
            "INSERT INTO files (key, object_key, size, checksum) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(&file.key)
        .bind(&file.object_key)
        .bind(file.size as i64)
        .bind(&file.checksum)
        .fetch_optional(pool)
        .await
        .map_err(port_error)?;
        if let Some(inserted) = inserted {
            return Ok((row(inserted), false));
        }
        let existing: Row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM files WHERE key = $1"))
            .bind(&file.key)
            .fetch_one(pool)
            .await
            .map_err(port_error)?;
        Ok((row(existing), true))
    }

    async fn get(&self, id: u64) -> Result<Option<FileRow>, PortError> {
        let found: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM files WHERE id = $1"))
            .bind(id as i64)
            .fetch_optional(self.pool(self.writer()))
            .await
            .map_err(port_error)?;
        Ok(found.map(row))
    }

    async fn set_thumbnail(&self, id: u64, thumbnail_key: &str) -> Result<bool, PortError> {
        let updated = sqlx::query("UPDATE files SET thumbnail = $2 WHERE id = $1 AND thumbnail IS NULL")
            .bind(id as i64)
            .bind(thumbnail_key)
            .execute(self.pool(self.writer()))
            .await
            .map_err(port_error)?
            .rows_affected();
        if updated == 1 {
            return Ok(true);
        }
        match FileStore::get(self, id).await? {
            Some(_) => Ok(false),
            None => Err(PortError::Rejected(format!("no file {id}"))),
        }
    }

    async fn audit(&self, id: u64, event: &str, once: bool) -> Result<bool, PortError> {
        let mut tx = self.pool(self.writer()).begin().await.map_err(port_error)?;
        let file: Option<i64> = sqlx::query_scalar("SELECT id FROM files WHERE id = $1 FOR UPDATE")
            .bind(id as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(port_error)?;
        if file.is_none() {
            return Err(PortError::Rejected(format!("no file {id}")));
        }
        let guard = if once {
            "WHERE NOT EXISTS (SELECT 1 FROM audit WHERE file_id = $1 AND event = $2)"
        } else {
            ""
        };
        let inserted = sqlx::query(&format!("INSERT INTO audit (file_id, event) SELECT $1, $2 {guard}"))
            .bind(id as i64)
            .bind(event)
            .execute(&mut *tx)
            .await
            .map_err(port_error)?
            .rows_affected();
        tx.commit().await.map_err(port_error)?;
        Ok(inserted == 1)
    }
}
