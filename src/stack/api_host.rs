//! What each `api-N` host serves: the investments API, the orders saga middleware, the query
//! gateway and the files API merged into one router, plus `GET /health`. A stack without object
//! storage (no `objects` host) answers `POST /files` with 503.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::files::{self, FilesConfig, FilesPorts, FilesState};
use super::gateway::{self, GatewayConfig, GatewayState};
use super::invest::{self, InvestConfig, InvestState};
use super::orders::{self, OrdersConfig, OrdersState};
use super::ports::{HttpClient, InvestStore, Publisher, QueryStore, SagaLog};
use crate::scenario::model::StackConfig;

/// The ports an api host's services use.
#[derive(Clone)]
pub struct ApiPorts {
    /// To the price feed and the saga participants.
    pub http: Arc<dyn HttpClient>,
    /// The investments' data.
    pub invest: Arc<dyn InvestStore>,
    /// The queries' data.
    pub queries: Arc<dyn QueryStore>,
    /// The broker's publishing side.
    pub publisher: Arc<dyn Publisher>,
    /// The saga's step log.
    pub saga_log: Arc<dyn SagaLog>,
    /// Object storage, file rows and the files' events; `None` where the stack has no object
    /// storage.
    pub files: Option<FilesPorts>,
}

/// The states of the three public services an api host runs.
#[derive(Clone)]
pub struct ApiHostState {
    /// `POST /invest`, `GET /history`.
    pub invest: InvestState,
    /// `POST /orders`.
    pub orders: OrdersState,
    /// `POST /queries`, `GET /queries/{id}`.
    pub gateway: GatewayState,
    /// `POST /files`, `GET /files/{id}`, when the stack has object storage.
    pub files: Option<FilesState>,
}

impl ApiHostState {
    /// The three services of the api host `host` (`api-1`, …) with their default configs and the
    /// stack's bug switches.
    pub fn for_stack(stack: &StackConfig, host: &str, ports: ApiPorts) -> ApiHostState {
        ApiHostState {
            invest: InvestState::new(ports.invest, ports.http.clone(), InvestConfig::for_stack(stack)),
            orders: OrdersState::new(ports.http, ports.saga_log, OrdersConfig::for_stack(stack, host)),
            gateway: GatewayState::new(ports.queries, ports.publisher, GatewayConfig::for_stack(stack)),
            files: ports.files.map(|p| FilesState::new(p, FilesConfig::for_stack(stack))),
        }
    }
}

/// What an api host runs beside its routes: the saga recovery ([`orders::recover`]). Call it on
/// the host (it spawns with [`crate::stack::spawn`]).
pub fn spawn_background(state: &ApiHostState) {
    crate::stack::spawn(orders::recover(state.orders.clone()));
}

/// The merged router of an api host.
pub fn router(state: ApiHostState) -> Router {
    let router = Router::new()
        .merge(invest::router(state.invest))
        .merge(orders::router(state.orders))
        .merge(gateway::router(state.gateway))
        .route("/health", get(|| async { "ok" }));
    match state.files {
        Some(files) => router.merge(files::router(files)),
        None => router.route("/files", axum::routing::post(no_object_storage)),
    }
}

async fn no_object_storage() -> axum::response::Response {
    let message = "this stack has no object storage (no `objects` host): POST /files is not served";
    super::wire::error(axum::http::StatusCode::SERVICE_UNAVAILABLE, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::testkit::{
        MemBroker, MemHttp, MemInvestStore, MemQueries, MemSagaLog, json_request, oneshot,
    };

    /// Every public route answers on one api host (none is shadowed by the merge).
    #[tokio::test(start_paused = true)]
    async fn serves_every_public_route() {
        let http = Arc::new(MemHttp::default());
        let state = ApiHostState {
            invest: InvestState::new(
                Arc::new(MemInvestStore::default()),
                http.clone(),
                InvestConfig::default(),
            ),
            orders: OrdersState::new(http, Arc::new(MemSagaLog::default()), OrdersConfig::default()),
            gateway: GatewayState::new(
                Arc::new(MemQueries::default()),
                Arc::new(MemBroker::new(10)),
                GatewayConfig::default(),
            ),
            files: None,
        };
        let app = router(state);
        let get = |path: &str| json_request(http::Method::GET, path, None);
        assert_eq!(oneshot(app.clone(), get("/health")).await.status, 200);
        assert_eq!(oneshot(app.clone(), get("/history")).await.status, 200);
        assert_eq!(oneshot(app.clone(), get("/queries/1")).await.status, 404);
        let query = serde_json::json!({"key": "q", "sku": "widget"});
        assert_eq!(
            oneshot(app.clone(), json_request(http::Method::POST, "/queries", Some(query))).await.status,
            202
        );
        // No price feed is routed: the invest route is there and answers 503.
        let invest = serde_json::json!({"key": "k", "coin": "bitcoin", "amount_usd_cents": 1});
        assert_eq!(
            oneshot(app.clone(), json_request(http::Method::POST, "/invest", Some(invest))).await.status,
            503
        );
        let order = serde_json::json!({"key": "o", "sku": "widget", "qty": 1});
        assert_eq!(
            oneshot(app.clone(), json_request(http::Method::POST, "/orders", Some(order))).await.status,
            504
        );
    }

    /// The whole stack wired in memory: every public op goes client → balancer → an api host →
    /// price feed, saga participants, broker and worker, and comes back with its documented answer.
    #[tokio::test(start_paused = true)]
    async fn whole_stack_in_memory_serves_every_op_through_the_balancer() {
        use crate::stack::testkit::{MemInventory, MemRows, body_json};
        use crate::stack::wire::ParticipantConfig;
        use crate::stack::{balancer, inventory, ordersvc, pricefeed, reports, worker};

        let stack = StackConfig::default();
        let http = Arc::new(MemHttp::default());
        let pc = ParticipantConfig::default;
        let feed = pricefeed::PricefeedState::new(pricefeed::PricefeedControl::default());
        http.route("pricefeed:80", pricefeed::router(feed));
        let stock = Arc::new(MemInventory::with_stock(&[("widget", 5)]));
        http.route("inventory:80", inventory::router(inventory::InventoryState::new(stock.clone(), pc())));
        let orders_rows = Arc::new(MemRows::default());
        http.route("ordersvc:80", ordersvc::router(ordersvc::OrderSvcState::new(orders_rows, pc())));
        http.route(
            "reports:80",
            reports::router(reports::ReportsState::new(Arc::new(MemRows::default()), pc())),
        );
        let (queries, broker) = (Arc::new(MemQueries::default()), MemBroker::new(10));
        let ports = ApiPorts {
            http: http.clone(),
            invest: Arc::new(MemInvestStore::default()),
            queries: queries.clone(),
            publisher: Arc::new(broker.clone()),
            saga_log: Arc::new(MemSagaLog::default()),
            files: None,
        };
        http.route("api-1:80", router(ApiHostState::for_stack(&stack, "api-1", ports.clone())));
        http.route("api-2:80", router(ApiHostState::for_stack(&stack, "api-2", ports)));
        let lb = balancer::router(balancer::BalancerState::new(
            http.clone(),
            balancer::LbConfig::for_stack(&stack),
        ));
        let config = worker::WorkerConfig::for_stack(&stack);
        tokio::spawn(worker::run(Arc::new(broker), queries, config, worker::WorkerControl::default()));

        let post = |path: &str, body: serde_json::Value| json_request(http::Method::POST, path, Some(body));
        let get = |path: &str| json_request(http::Method::GET, path, None);
        let invest = serde_json::json!({"key": "i1", "coin": "ethereum", "amount_usd_cents": 100});
        let resp = oneshot(lb.clone(), post("/invest", invest)).await;
        assert_eq!(resp.status, 201);
        let lsn = body_json(&resp)["lsn"].as_u64().unwrap();
        let resp = oneshot(lb.clone(), get(&format!("/history?min_lsn={lsn}"))).await;
        assert_eq!(body_json(&resp)["served_by"], "pg-primary", "the replica never caught up: fallback");
        let order = serde_json::json!({"key": "o1", "sku": "widget", "qty": 2});
        assert_eq!(oneshot(lb.clone(), post("/orders", order)).await.status, 201);
        assert_eq!(stock.on_hand("widget"), 3);
        let resp =
            oneshot(lb.clone(), post("/queries", serde_json::json!({"key": "q1", "sku": "widget"}))).await;
        assert_eq!(resp.status, 202);
        let id = body_json(&resp)["id"].as_u64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let resp = oneshot(lb.clone(), get(&format!("/queries/{id}"))).await;
        assert_eq!(body_json(&resp)["status"], "completed");
        let spread: std::collections::BTreeSet<String> = http
            .calls()
            .iter()
            .filter(|c| c.contains(" api-"))
            .map(|c| c.split(' ').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(spread.len(), 2, "the balancer used both api hosts");
    }
}
