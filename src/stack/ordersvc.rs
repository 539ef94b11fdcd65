//! The orders service (host `ordersvc`), the saga's second participant: owns the orders table.
//!
//! | route | body | answers |
//! |---|---|---|
//! | `POST /orders` | `StepRequest` | 201 `created`, 200 `existed`; 422 if the order was cancelled (tombstone) |
//! | `DELETE /orders/{id}` | — | 200 `cancelled` (a live order was cancelled now) or `absent` |
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
use super::ports::OrderStore;
use super::wire::{self, ParticipantConfig, StepRequest};

/// The orders service's state.
#[derive(Clone)]
pub struct OrderSvcState {
    store: Arc<dyn OrderStore>,
    config: Arc<ParticipantConfig>,
}

impl OrderSvcState {
    /// Build from the store and the config.
    pub fn new(store: Arc<dyn OrderStore>, config: ParticipantConfig) -> OrderSvcState {
        OrderSvcState { store, config: Arc::new(config) }
    }
}

/// The routes `POST /orders`, `DELETE /orders/{id}`, `GET /health`.
pub fn router(state: OrderSvcState) -> Router {
    Router::new()
        .route("/orders", post(create))
        .route("/orders/{id}", delete(cancel))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
}

async fn create(State(state): State<OrderSvcState>, body: Bytes) -> Response {
    let step: StepRequest = match wire::parse("POST /orders", &body) {
        Ok(step) => step,
        Err(resp) => return *resp,
    };
    let call = state.store.create(&step.order_id, &step.sku, step.qty);
    match bounded(state.config.store_timeout, call).await {
        Ok(true) => wire::answer(StatusCode::CREATED, "created"),
        Ok(false) => wire::answer(StatusCode::OK, "existed"),
        Err(err) => wire::port_error("creating the order", &err),
    }
}

async fn cancel(State(state): State<OrderSvcState>, Path(id): Path<String>) -> Response {
    match bounded(state.config.store_timeout, state.store.cancel(&id)).await {
        Ok(true) => wire::answer(StatusCode::OK, "cancelled"),
        Ok(false) => wire::answer(StatusCode::OK, "absent"),
        Err(err) => wire::port_error("cancelling the order", &err),
    }
}
