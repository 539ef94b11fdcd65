//! The orders service (host `ordersvc`), the saga's second participant: owns the orders table.
//!
//! | route | body | answers |
//! |---|---|---|
//! | `POST /orders` | `StepRequest` | 201 `created`, 200 `existed`; 422 if the order was cancelled (tombstone) |
//! | `DELETE /orders/{id}` | — | 200 `cancelled` (a live order was cancelled now) or `absent` |
//!
//! Idempotent on the order id. The routes are the shared scaffold's (`participant.rs`); store
//! failures answer by the status convention in `wire.rs`.

use axum::Router;

use super::participant::{Participant, rows_router};
use super::ports::OrderStore;

/// The orders service's state: its store and the participant config.
pub type OrderSvcState = Participant<dyn OrderStore>;

/// The routes `POST /orders`, `DELETE /orders/{id}`, `GET /health`.
pub fn router(state: OrderSvcState) -> Router {
    rows_router(state, "orders", "order")
}
