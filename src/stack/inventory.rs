//! The inventory service (host `inventory`), the saga's first participant: owns the stock table.
//!
//! | route | body | answers |
//! |---|---|---|
//! | `POST /reserve` | `StepRequest` | 201 `taken`, 200 `already_taken`, 409 `out_of_stock`, 410 `released` (compensated before) |
//! | `POST /restock` | `OrderRef` | 200 `restocked` / `already_restocked` / `nothing_taken` |
//! | `GET /stock` | — | 200 `{sku: on_hand}` |
//!
//! Both writes are idempotent on the order id (the store guarantees it). The state and router
//! scaffold are the participants' (`participant.rs`); store failures answer by the status
//! convention in `wire.rs` (504 unknown, 503 read-only, 422 rejected).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::participant::Participant;
use super::ports::{InventoryStore, Reserved, Restocked};
use super::wire::{self, OrderRef, StepRequest};

/// The inventory service's state: its store and the participant config.
pub type InventoryState = Participant<dyn InventoryStore>;

/// The routes `POST /reserve`, `POST /restock`, `GET /stock`, `GET /health`.
pub fn router(state: InventoryState) -> Router {
    let routes = Router::new()
        .route("/reserve", post(reserve))
        .route("/restock", post(restock))
        .route("/stock", get(stock));
    state.router(routes)
}

async fn reserve(State(state): State<InventoryState>, body: Bytes) -> Response {
    let step: StepRequest = match wire::parse("POST /reserve", &body) {
        Ok(step) => step,
        Err(resp) => return *resp,
    };
    match state.call(state.store().reserve(&step.order_id, &step.sku, step.qty)).await {
        Ok(Reserved::Taken) => wire::answer(StatusCode::CREATED, "taken"),
        Ok(Reserved::AlreadyTaken) => wire::answer(StatusCode::OK, "already_taken"),
        Ok(Reserved::OutOfStock) => wire::answer(StatusCode::CONFLICT, "out_of_stock"),
        Ok(Reserved::Released) => wire::answer(StatusCode::GONE, "released"),
        Err(err) => wire::port_error("reserving stock", &err),
    }
}

async fn restock(State(state): State<InventoryState>, body: Bytes) -> Response {
    let order: OrderRef = match wire::parse("POST /restock", &body) {
        Ok(order) => order,
        Err(resp) => return *resp,
    };
    match state.call(state.store().restock(&order.order_id)).await {
        Ok(Restocked::Restocked) => wire::answer(StatusCode::OK, "restocked"),
        Ok(Restocked::AlreadyRestocked) => wire::answer(StatusCode::OK, "already_restocked"),
        Ok(Restocked::NothingTaken) => wire::answer(StatusCode::OK, "nothing_taken"),
        Err(err) => wire::port_error("restocking", &err),
    }
}

async fn stock(State(state): State<InventoryState>) -> Response {
    match state.call(state.store().stock()).await {
        Ok(stock) => axum::Json(stock).into_response(),
        Err(err) => wire::port_error("reading stock", &err),
    }
}
