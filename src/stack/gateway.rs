//! The query gateway, served on every `api-N` host.
//!
//! - `POST /queries {key, sku}`: insert a `pending` row (idempotent on the key), publish
//!   `{id, sku}` to the queue and wait for the broker's confirm (at most `confirm_timeout`), then
//!   202 `{id}`. A full queue or a missing confirm answers 503 with `Retry-After`, never 202: the
//!   pending row stays, and a retry with the same key publishes again. A query that is already
//!   completed answers 202 without publishing.
//! - `GET /queries/{id}`: 200 with its status, 404 if unknown.
//!
//! Bug planted here: `unconfirmed_publish` (publish in the background and answer 202 at once,
//! so a rejected publish is silently lost).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::api::{QueryAccepted, QueryStatus};
use super::bugs::Bugs;
use super::invest::bounded;
use super::ports::{PublishError, Publisher, QueryMessage, QueryStore};
use super::wire;

/// How the gateway behaves. Defaults on each field.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// How long to wait for the broker's publisher confirm. Default 500 ms.
    pub confirm_timeout: Duration,
    /// Upper bound on one store call. Default 1 s.
    pub store_timeout: Duration,
    /// `Retry-After` on a 503, in seconds. Default 1.
    pub retry_after_secs: u64,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            confirm_timeout: Duration::from_millis(500),
            store_timeout: Duration::from_secs(1),
            retry_after_secs: 1,
            bugs: Bugs::default(),
        }
    }
}

/// The gateway's state.
#[derive(Clone)]
pub struct GatewayState {
    store: Arc<dyn QueryStore>,
    publisher: Arc<dyn Publisher>,
    config: Arc<GatewayConfig>,
}

impl GatewayState {
    /// Build from the query store, the broker's publishing side and the config.
    pub fn new(
        store: Arc<dyn QueryStore>,
        publisher: Arc<dyn Publisher>,
        config: GatewayConfig,
    ) -> GatewayState {
        GatewayState { store, publisher, config: Arc::new(config) }
    }
}

/// The routes `POST /queries` and `GET /queries/{id}`.
pub fn router(state: GatewayState) -> Router {
    Router::new().route("/queries", post(submit)).route("/queries/{id}", get(status)).with_state(state)
}

#[derive(Deserialize)]
struct QueryBody {
    #[serde(default)]
    key: Option<String>,
    sku: String,
}

async fn submit(State(state): State<GatewayState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: QueryBody = match wire::parse("POST /queries", &body) {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let Some(key) = wire::idempotency_key(body.key, &headers) else {
        return wire::error(
            StatusCode::BAD_REQUEST,
            "POST /queries needs a `key` or an idempotency-key header",
        );
    };
    let config = &state.config;
    let row = match bounded(config.store_timeout, state.store.create_pending(&key, &body.sku)).await {
        Ok((row, _existed)) => row,
        Err(err) => return busy(config, format!("recording the query: {err}")),
    };
    let accepted = (StatusCode::ACCEPTED, axum::Json(QueryAccepted { id: row.id })).into_response();
    if row.status == "completed" {
        return accepted;
    }
    let message = QueryMessage { id: row.id, sku: row.sku };
    if config.bugs.unconfirmed_publish {
        // Bug: fire and forget; a rejected publish is never noticed.
        let (publisher, wait) = (state.publisher.clone(), config.confirm_timeout);
        tokio::spawn(async move { publisher.publish(message, wait).await });
        return accepted;
    }
    match state.publisher.publish(message, config.confirm_timeout).await {
        Ok(()) => accepted,
        Err(err @ PublishError::Full) | Err(err @ PublishError::Unconfirmed(_)) => {
            busy(config, format!("publishing query {}: {err}", row.id))
        }
    }
}

/// 503 with `Retry-After`.
fn busy(config: &GatewayConfig, message: String) -> Response {
    let mut resp = wire::error(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(config.retry_after_secs));
    resp
}

async fn status(State(state): State<GatewayState>, Path(id): Path<u64>) -> Response {
    match bounded(state.config.store_timeout, state.store.get(id)).await {
        Ok(Some(row)) => {
            axum::Json(QueryStatus { id: row.id, status: row.status, result: row.result }).into_response()
        }
        Ok(None) => wire::error(StatusCode::NOT_FOUND, format!("no query with id {id}")),
        Err(err) => wire::port_error("reading the query", &err),
    }
}
