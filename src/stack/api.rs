//! The public HTTP API of the stack, as the load generator and the balancer see it: routes and
//! JSON bodies. Services and the workload both use these types, so the two cannot drift.
//!
//! | route | body | answers |
//! |---|---|---|
//! | `POST /invest` | [`InvestRequest`] | 201 [`InvestResponse`] (200 on an idempotent replay); 503 if the price feed or database is unavailable (definitely not written); 504 if the write's outcome is unknown; 422 unknown coin |
//! | `GET /history?min_lsn=L&limit=N` | — | 200 [`HistoryResponse`]: investments with `lsn >= L`, newest first |
//! | `POST /orders` | [`OrderRequest`] | 201 [`OrderResponse`] `completed`; 409 `compensated` or `rejected` (definitely not applied); 503/504 unknown (504 body: `OrderResponse` with status `unknown`) |
//! | `POST /queries` | [`QueryRequest`] | 202 [`QueryAccepted`]; 503 with `Retry-After` when the queue is full or the publish unconfirmed |
//! | `GET /queries/{id}` | — | 200 [`QueryStatus`]; 404 unknown id |
//! | `GET /health` | — | 200 when the service can serve |
//!
//! Every write carries a client-chosen idempotency key (`key`): retrying it never applies twice.
//! The key may instead come in the [`IDEMPOTENCY_HEADER`] header. The balancer answers 502 when
//! the chosen api host gave no answer (outcome unknown) and 503 when no api host is healthy.

use serde::{Deserialize, Serialize};

/// The idempotency-key header accepted as an alternative to the body field.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// `POST /invest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestRequest {
    /// Idempotency key.
    pub key: String,
    /// Coin id as the price feed knows it (`bitcoin`, `ethereum`, …).
    pub coin: String,
    /// Amount invested, in US cents.
    pub amount_usd_cents: u64,
}

/// One recorded investment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestResponse {
    /// Database id.
    pub id: u64,
    /// The idempotency key it was written with.
    pub key: String,
    /// Coin id.
    pub coin: String,
    /// Amount, in US cents.
    pub amount_usd_cents: u64,
    /// The coin's price when recorded, in millionths of a US dollar.
    pub price_usd_micros: u64,
    /// The commit's log sequence number: present it to `GET /history` to read your write.
    pub lsn: u64,
}

/// `GET /history` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The LSN the answering node had applied when it answered.
    pub replica_lsn: u64,
    /// Which node answered (`pg-replica`, or `pg-primary` when the read fell back).
    pub served_by: String,
    /// Investments with `lsn >= min_lsn`, newest first, at most `limit`.
    pub investments: Vec<InvestResponse>,
}

/// `POST /orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Idempotency key; also the order id.
    pub key: String,
    /// Product.
    pub sku: String,
    /// Quantity.
    pub qty: u64,
}

/// `POST /orders` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderResponse {
    /// The order id (the key).
    pub order_id: String,
    /// `completed`, `compensated` (a later step failed, stock restored) or `rejected` (no stock).
    pub status: String,
    /// Why, for a non-completed order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /queries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// Idempotency key.
    pub key: String,
    /// The product whose statistics to compute.
    pub sku: String,
}

/// `POST /queries` answer (202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAccepted {
    /// The query's id, for polling.
    pub id: u64,
}

/// `GET /queries/{id}` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStatus {
    /// The query's id.
    pub id: u64,
    /// `pending` or `completed`.
    pub status: String,
    /// The computed answer, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// `POST /files` answer (201): the stored file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAccepted {
    /// The file's id.
    pub id: u64,
    /// Where the bytes are in object storage.
    pub object_key: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex (`ports::checksum`).
    pub checksum: String,
}

/// The bytes the load generator uploads for `key`: `size` bytes, different for every key (the
/// key and a counter, repeated), so a file's checksum names its upload.
pub fn upload_body(key: &str, size: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(size as usize);
    let mut line = 0u64;
    while (body.len() as u64) < size {
        body.extend_from_slice(format!("{key} {line}\n").as_bytes());
        line += 1;
    }
    body.truncate(size as usize);
    body
}
