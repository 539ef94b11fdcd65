//! The scaffold the saga's three participants (`inventory.rs`, `ordersvc.rs`, `reports.rs`)
//! share: a state of one store and the [`ParticipantConfig`], every store call bounded by its
//! `store_timeout`, a router that also answers `GET /health`, and — for the two that own one
//! table of rows by order id (orders, reports) — the whole `POST /{table}` /
//! `DELETE /{table}/{id}` pair.
//!
//! Store failures answer by the status convention in `wire.rs` (504 unknown, 503 read-only, 422
//! rejected).

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};

use super::invest::bounded;
use super::ports::{OrderStore, PortError, ReportStore};
use super::wire::{self, ParticipantConfig, StepRequest};

/// A participant's state: its store and its config.
pub struct Participant<S: ?Sized> {
    store: Arc<S>,
    config: Arc<ParticipantConfig>,
}

impl<S: ?Sized> Clone for Participant<S> {
    fn clone(&self) -> Self {
        Participant { store: self.store.clone(), config: self.config.clone() }
    }
}

impl<S: ?Sized + Send + Sync + 'static> Participant<S> {
    /// Build from the store and the config.
    pub fn new(store: Arc<S>, config: ParticipantConfig) -> Participant<S> {
        Participant { store, config: Arc::new(config) }
    }

    /// The store.
    pub(super) fn store(&self) -> &S {
        &self.store
    }

    /// `call` on the store, bounded by `store_timeout` (running out is `Unavailable`: 504).
    pub(super) async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        bounded(self.config.store_timeout, call).await
    }

    /// `routes` plus `GET /health`, on this state.
    pub(super) fn router(self, routes: Router<Participant<S>>) -> Router {
        routes.route("/health", get(|| async { "ok" })).with_state(self)
    }
}

/// A table of rows by order id that a saga step creates and its compensation cancels,
/// idempotently, leaving a tombstone ([`OrderStore`], [`ReportStore`]).
#[async_trait]
pub(super) trait Rows: Send + Sync + 'static {
    /// Create the row; `Ok(false)` if it existed.
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError>;
    /// Cancel the row; `Ok(true)` if a live one was cancelled now.
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError>;
}

#[async_trait]
impl Rows for dyn OrderStore {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        OrderStore::create(self, order_id, sku, qty).await
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        OrderStore::cancel(self, order_id).await
    }
}

#[async_trait]
impl Rows for dyn ReportStore {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        ReportStore::create(self, order_id, sku, qty).await
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        ReportStore::cancel(self, order_id).await
    }
}

/// The routes of a participant owning `table` (`orders`, `reports`) of `noun`s (`order`,
/// `report`): `POST /{table}` (a [`StepRequest`]: 201 `created`, 200 `existed`, 422 once
/// cancelled) and `DELETE /{table}/{id}` (200 `cancelled` or `absent`), plus `GET /health`.
pub(super) fn rows_router<S: ?Sized + Rows>(
    state: Participant<S>,
    table: &'static str,
    noun: &'static str,
) -> Router {
    let create = move |State(state): State<Participant<S>>, body: Bytes| create(state, table, noun, body);
    let cancel = move |State(state): State<Participant<S>>, Path(id): Path<String>| cancel(state, noun, id);
    let routes = Router::new()
        .route(&format!("/{table}"), post(create))
        .route(&format!("/{table}/{{id}}"), delete(cancel));
    state.router(routes)
}

async fn create<S: ?Sized + Rows>(state: Participant<S>, table: &str, noun: &str, body: Bytes) -> Response {
    let step: StepRequest = match wire::parse(&format!("POST /{table}"), &body) {
        Ok(step) => step,
        Err(resp) => return *resp,
    };
    match state.call(state.store().create(&step.order_id, &step.sku, step.qty)).await {
        Ok(true) => wire::answer(StatusCode::CREATED, "created"),
        Ok(false) => wire::answer(StatusCode::OK, "existed"),
        Err(err) => wire::port_error(&format!("creating the {noun}"), &err),
    }
}

async fn cancel<S: ?Sized + Rows>(state: Participant<S>, noun: &str, id: String) -> Response {
    match state.call(state.store().cancel(&id)).await {
        Ok(true) => wire::answer(StatusCode::OK, "cancelled"),
        Ok(false) => wire::answer(StatusCode::OK, "absent"),
        Err(err) => wire::port_error(&format!("cancelling the {noun}"), &err),
    }
}
