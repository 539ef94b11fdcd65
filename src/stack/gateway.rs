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
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::api::{QueryAccepted, QueryStatus};
use super::bugs::Bugs;
use super::invest::bounded;
use super::ports::{PublishError, Publisher, QueryMessage, QueryStore};
use super::wire;
use crate::scenario::model::StackConfig;

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

impl GatewayConfig {
    /// The defaults, with the stack's bug switches.
    pub fn for_stack(stack: &StackConfig) -> GatewayConfig {
        GatewayConfig { bugs: Bugs::from_list(&stack.bugs), ..GatewayConfig::default() }
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
        Err(resp) => return *resp,
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
        crate::stack::spawn(async move { publisher.publish(message, wait).await });
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
    wire::busy(config.retry_after_secs, message)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::HttpResponse;
    use crate::stack::testkit::{MemBroker, MemQueries, body_json, json_request, oneshot};
    use serde_json::json;

    fn fixture(bugs: Bugs) -> (Arc<MemQueries>, MemBroker, Router) {
        let store = Arc::new(MemQueries::default());
        let broker = MemBroker::new(2);
        let config = GatewayConfig { bugs, ..GatewayConfig::default() };
        let router = router(GatewayState::new(store.clone(), Arc::new(broker.clone()), config));
        (store, broker, router)
    }

    async fn submit(router: &Router, key: &str) -> HttpResponse {
        let body = json!({"key": key, "sku": "widget"});
        oneshot(router.clone(), json_request(http::Method::POST, "/queries", Some(body))).await
    }

    #[tokio::test(start_paused = true)]
    async fn accepted_query_is_published_once_confirmed() {
        let (store, broker, router) = fixture(Bugs::default());
        let resp = submit(&router, "q1").await;
        assert_eq!(resp.status, 202);
        let id = body_json(&resp)["id"].as_u64().unwrap();
        assert_eq!(broker.published(), [QueryMessage { id, sku: "widget".into() }]);
        assert_eq!(store.row(id).unwrap().status, "pending");
        let status =
            oneshot(router.clone(), json_request(http::Method::GET, &format!("/queries/{id}"), None)).await;
        assert_eq!((status.status, body_json(&status)["status"].clone()), (200, json!("pending")));
        let missing = oneshot(router.clone(), json_request(http::Method::GET, "/queries/99", None)).await;
        assert_eq!(missing.status, 404);
    }

    /// A full queue and a missing confirm are 503 with Retry-After, never 202; a retry with the
    /// same key reuses the row and publishes again.
    #[tokio::test(start_paused = true)]
    async fn full_queue_or_unconfirmed_publish_is_503_with_retry_after() {
        let (_store, broker, router) = fixture(Bugs::default());
        assert_eq!(submit(&router, "q1").await.status, 202);
        assert_eq!(submit(&router, "q2").await.status, 202);
        let full = submit(&router, "q3").await;
        assert_eq!((full.status, full.retry_after_secs), (503, Some(1)));
        broker.fail_publish(Some(PublishError::Unconfirmed("channel closed".into())));
        let unconfirmed = submit(&router, "q4").await;
        assert_eq!((unconfirmed.status, unconfirmed.retry_after_secs), (503, Some(1)));
        assert_eq!(broker.published().len(), 2);
        broker.fail_publish(None);
        let before = broker.ready_count();
        let _ = submit(&router, "q1").await;
        assert_eq!(broker.ready_count(), before, "the queue is still full: q1's retry was rejected");
    }

    /// Bug `unconfirmed_publish`: 202 for a query the full queue rejected, so it is lost.
    #[tokio::test(start_paused = true)]
    async fn bug_unconfirmed_publish_accepts_a_rejected_query() {
        for (bugs, expected) in
            [(Bugs::default(), 503), (Bugs { unconfirmed_publish: true, ..Bugs::default() }, 202)]
        {
            let (_store, broker, router) = fixture(bugs);
            submit(&router, "q1").await;
            submit(&router, "q2").await;
            assert_eq!(submit(&router, "q3").await.status, expected);
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(broker.published().len(), 2, "q3 never reached the queue");
        }
    }
}
