//! The reports service (host `reports`), the saga's third participant: owns the reports table.
//!
//! | route | body | answers |
//! |---|---|---|
//! | `POST /reports` | `StepRequest` | 201 `created`, 200 `existed`; 422 if the report was cancelled (tombstone) |
//! | `DELETE /reports/{id}` | — | 200 `cancelled` (a report was removed now) or `absent` |
//!
//! Idempotent on the order id. Store failures answer by the status convention in `wire.rs`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};

use super::invest::bounded;
use super::ports::ReportStore;
use super::wire::{self, ParticipantConfig, StepRequest};

/// The reports service's state.
#[derive(Clone)]
pub struct ReportsState {
    store: Arc<dyn ReportStore>,
    config: Arc<ParticipantConfig>,
}

impl ReportsState {
    /// Build from the store and the config.
    pub fn new(store: Arc<dyn ReportStore>, config: ParticipantConfig) -> ReportsState {
        ReportsState { store, config: Arc::new(config) }
    }
}

/// The routes `POST /reports`, `DELETE /reports/{id}`, `GET /health`.
pub fn router(state: ReportsState) -> Router {
    Router::new()
        .route("/reports", post(create))
        .route("/reports/{id}", delete(cancel))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
}

async fn create(State(state): State<ReportsState>, body: Bytes) -> Response {
    let step: StepRequest = match wire::parse("POST /reports", &body) {
        Ok(step) => step,
        Err(resp) => return *resp,
    };
    let call = state.store.create(&step.order_id, &step.sku, step.qty);
    match bounded(state.config.store_timeout, call).await {
        Ok(true) => wire::answer(StatusCode::CREATED, "created"),
        Ok(false) => wire::answer(StatusCode::OK, "existed"),
        Err(err) => wire::port_error("creating the report", &err),
    }
}

async fn cancel(State(state): State<ReportsState>, Path(id): Path<String>) -> Response {
    match bounded(state.config.store_timeout, state.store.cancel(&id)).await {
        Ok(true) => wire::answer(StatusCode::OK, "cancelled"),
        Ok(false) => wire::answer(StatusCode::OK, "absent"),
        Err(err) => wire::port_error("cancelling the report", &err),
    }
}
