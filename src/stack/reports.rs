//! The reports service (host `reports`), the saga's third participant: owns the reports table.
//!
//! | route | body | answers |
//! |---|---|---|
//! | `POST /reports` | `StepRequest` | 201 `created`, 200 `existed`; 422 if the report was cancelled (tombstone) |
//! | `DELETE /reports/{id}` | — | 200 `cancelled` (a report was removed now) or `absent` |
//!
//! Idempotent on the order id. The routes are the shared scaffold's (`participant.rs`); store
//! failures answer by the status convention in `wire.rs`.

use axum::Router;

use super::participant::{Participant, rows_router};
use super::ports::ReportStore;

/// The reports service's state: its store and the participant config.
pub type ReportsState = Participant<dyn ReportStore>;

/// The routes `POST /reports`, `DELETE /reports/{id}`, `GET /health`.
pub fn router(state: ReportsState) -> Router {
    rows_router(state, "reports", "report")
}
