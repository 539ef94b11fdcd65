//! What each `api-N` host serves: the investments API, the orders saga middleware and the query
//! gateway merged into one router, plus `GET /health`.

use axum::Router;
use axum::routing::get;

use super::gateway::{self, GatewayState};
use super::invest::{self, InvestState};
use super::orders::{self, OrdersState};

/// The states of the three public services an api host runs.
#[derive(Clone)]
pub struct ApiHostState {
    /// `POST /invest`, `GET /history`.
    pub invest: InvestState,
    /// `POST /orders`.
    pub orders: OrdersState,
    /// `POST /queries`, `GET /queries/{id}`.
    pub gateway: GatewayState,
}

/// The merged router of an api host.
pub fn router(state: ApiHostState) -> Router {
    Router::new()
        .merge(invest::router(state.invest))
        .merge(orders::router(state.orders))
        .merge(gateway::router(state.gateway))
        .route("/health", get(|| async { "ok" }))
}
