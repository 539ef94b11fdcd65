//! Shared helpers for the real-server tests (`--features real`).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use serde_json::json;
use shakedown::real::PgCluster;
use shakedown::stack::api::{HistoryResponse, InvestResponse};
use shakedown::stack::bugs::Bugs;
use shakedown::stack::invest::{InvestConfig, InvestState, router};
use shakedown::stack::ports::HttpResponse;
use shakedown::stack::pricefeed::{self, PricefeedControl, PricefeedState};
use shakedown::stack::testkit::{MemHttp, json_request, oneshot};

/// The cluster `scripts/real-services.sh` started, migrated. Panics — the test fails, it does
/// not skip — when the primary cannot be reached.
pub async fn cluster() -> PgCluster {
    let cluster = PgCluster::from_env().expect("valid connection settings");
    if let Err(error) = cluster.migrate().await {
        panic!(
            "the PostgreSQL primary is not reachable ({error}); these tests need the real servers: run `make test-real` (or `make real-up` first)"
        );
    }
    cluster
}

/// A key no earlier run used.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
    format!("{prefix}-{nanos}")
}

/// The investments API over `cluster`, with the price feed served in memory.
pub fn invest_api(cluster: &PgCluster, bugs: Bugs) -> Router {
    let http = Arc::new(MemHttp::default());
    http.route("pricefeed:80", pricefeed::router(PricefeedState::new(PricefeedControl::default())));
    let config =
        InvestConfig { bugs, ryw_wait_max: std::time::Duration::from_millis(300), ..InvestConfig::default() };
    router(InvestState::new(Arc::new(cluster.clone()), http, config))
}

/// `POST /invest`.
pub async fn invest(api: &Router, key: &str) -> (HttpResponse, Option<InvestResponse>) {
    let body = json!({"key": key, "coin": "bitcoin", "amount_usd_cents": 1000});
    let response = oneshot(api.clone(), json_request(http::Method::POST, "/invest", Some(body))).await;
    let parsed = serde_json::from_slice(&response.body).ok();
    (response, parsed)
}

/// `GET /history?min_lsn=L`.
pub async fn history(api: &Router, min_lsn: u64) -> HistoryResponse {
    let response =
        oneshot(api.clone(), json_request(http::Method::GET, &format!("/history?min_lsn={min_lsn}"), None))
            .await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    serde_json::from_slice(&response.body).expect("a history page")
}

/// The orders saga middleware's state over `cluster` for the orchestrator `owner`, holding sagas
/// for `lease` and looking for sagas to take over every 200 ms. With `reports_stalled`, the
/// reports participant takes calls and never answers them, so a saga stops after its order step.
pub fn saga_state(
    cluster: &PgCluster,
    owner: &str,
    lease: std::time::Duration,
    reports_stalled: bool,
) -> shakedown::stack::orders::OrdersState {
    use shakedown::stack::orders::{OrdersConfig, OrdersState};
    use shakedown::stack::wire::ParticipantConfig;
    use shakedown::stack::{inventory, ordersvc, reports};
    let store = Arc::new(cluster.clone());
    let http = Arc::new(MemHttp::default());
    let pc = ParticipantConfig::default;
    http.route("inventory:80", inventory::router(inventory::InventoryState::new(store.clone(), pc())));
    http.route("ordersvc:80", ordersvc::router(ordersvc::OrderSvcState::new(store.clone(), pc())));
    if reports_stalled {
        let stalled = Router::new().fallback(std::future::pending::<()>);
        http.route("reports:80", stalled);
    } else {
        http.route("reports:80", reports::router(reports::ReportsState::new(store.clone(), pc())));
    }
    let config = OrdersConfig {
        owner: owner.into(),
        lease,
        recovery_every: std::time::Duration::from_millis(200),
        ..OrdersConfig::default()
    };
    OrdersState::new(http, store, config)
}

/// The orders saga over `cluster`: the middleware and its three participants (inventory,
/// ordersvc, reports) on the real stores, wired in memory.
pub fn saga_api(cluster: &PgCluster, bugs: Bugs) -> Router {
    use shakedown::stack::orders::{OrdersConfig, OrdersState};
    use shakedown::stack::wire::ParticipantConfig;
    use shakedown::stack::{inventory, orders, ordersvc, reports};
    let store = Arc::new(cluster.clone());
    let http = Arc::new(MemHttp::default());
    let pc = ParticipantConfig::default;
    http.route("inventory:80", inventory::router(inventory::InventoryState::new(store.clone(), pc())));
    http.route("ordersvc:80", ordersvc::router(ordersvc::OrderSvcState::new(store.clone(), pc())));
    http.route("reports:80", reports::router(reports::ReportsState::new(store.clone(), pc())));
    orders::router(OrdersState::new(http, store, OrdersConfig { bugs, ..OrdersConfig::default() }))
}

/// `POST /orders`; the status and the answer's `status` field.
pub async fn order(api: &Router, key: &str, sku: &str, qty: u64) -> (u16, String) {
    let body = json!({"key": key, "sku": sku, "qty": qty});
    let response = oneshot(api.clone(), json_request(http::Method::POST, "/orders", Some(body))).await;
    let answer: serde_json::Value = serde_json::from_slice(&response.body).expect("an order answer");
    (response.status, answer["status"].as_str().unwrap_or_default().to_owned())
}

/// The query gateway over `cluster` and a fresh bounded queue of `capacity` on the real broker.
pub async fn gateway_api(
    cluster: &PgCluster,
    queue: &shakedown::real::rabbit::RabbitConfig,
    bugs: Bugs,
) -> Router {
    use shakedown::real::rabbit::RabbitPublisher;
    use shakedown::stack::gateway::{self, GatewayConfig, GatewayState};
    let publisher = RabbitPublisher::connect(queue).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is not reachable ({e}); these tests need the real servers: run `make test-real`")
    });
    let config = GatewayConfig { bugs, ..GatewayConfig::default() };
    gateway::router(GatewayState::new(Arc::new(cluster.clone()), Arc::new(publisher), config))
}

/// `POST /queries`: the status and, when accepted, the query's id.
pub async fn submit(api: &Router, key: &str, sku: &str) -> (u16, Option<u64>, Option<u64>) {
    let body = json!({"key": key, "sku": sku});
    let response = oneshot(api.clone(), json_request(http::Method::POST, "/queries", Some(body))).await;
    let id = serde_json::from_slice::<serde_json::Value>(&response.body).ok().and_then(|v| v["id"].as_u64());
    (response.status, id, response.retry_after_secs)
}

/// Start a worker on `queue` over `cluster`; abort the handle to stop it.
pub fn worker(
    cluster: &PgCluster,
    queue: &shakedown::real::rabbit::RabbitConfig,
    bugs: Bugs,
) -> tokio::task::JoinHandle<()> {
    use shakedown::real::rabbit::RabbitConsumers;
    use shakedown::stack::worker::{self, WorkerConfig, WorkerControl};
    let config = WorkerConfig { bugs, ..WorkerConfig::default() };
    tokio::spawn(worker::run(
        Arc::new(RabbitConsumers::new(queue.clone())),
        Arc::new(cluster.clone()),
        config,
        WorkerControl::default(),
    ))
}

/// Wait (at most 10 s) until `done` holds.
pub async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `shakedown serve` child process, killed when dropped.
pub struct Served(pub std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `shakedown serve ARGS` with extra environment variables.
pub fn serve_with(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shakedown"));
    command.arg("serve").args(args).envs(env.iter().copied());
    Served(command.spawn().expect("the shakedown binary starts"))
}

/// Start `shakedown serve ARGS`.
pub fn serve(args: &[&str]) -> Served {
    serve_with(args, &[])
}

/// One HTTP exchange with a real address: status and body (a JSON value when the body is JSON,
/// else null); `None` when nothing answered within 2 s.
pub async fn call(
    method: http::Method,
    authority: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Option<(u16, serde_json::Value)> {
    use shakedown::real::http::RealHttp;
    use shakedown::stack::ports::{HttpClient, HttpRequest};
    let request = HttpRequest {
        method,
        authority: authority.into(),
        path: path.into(),
        body: body.map(|b| serde_json::to_vec(&b).expect("JSON serialises")),
        headers: Vec::new(),
    };
    let response =
        RealHttp::new(Default::default()).send(request, std::time::Duration::from_secs(2)).await.ok()?;
    let value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
    Some((response.status, value))
}

/// Wait (at most `limit`) until `done` holds; panics naming `what` otherwise.
pub async fn within(what: &str, limit: std::time::Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `GET /route` of a db-router's admin: the route's node (or null) and the change count.
pub async fn route(admin: &str) -> Option<(serde_json::Value, u64)> {
    let (status, body) = call(http::Method::GET, admin, "/route", None).await?;
    (status == 200).then(|| (body["route"].clone(), body["changes"].as_u64().unwrap_or(0)))
}

/// Which cluster a connection through `url` landed on (`primary` or `standby`, the
/// `cluster_name` `scripts/real-services.sh` sets), or the error.
pub async fn landed_on(url: &str) -> Result<String, sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let name: String =
        sqlx::query_scalar("SELECT current_setting('cluster_name')").fetch_one(&mut conn).await?;
    let _ = conn.close().await;
    Ok(name)
}

/// Start `serve db-router` on loopback (`proxy` and `admin` ports), in front of the loopback
/// pair; returns the process and the proxy's PostgreSQL URL once the router routes to `primary`.
pub async fn db_router(proxy: u16, admin: u16) -> (Served, String) {
    let served = serve_with(
        &["db-router", "--listen", &format!("127.0.0.1:{proxy}"), "--admin", &format!("127.0.0.1:{admin}")],
        &[("RUST_LOG", "info")],
    );
    let admin = format!("127.0.0.1:{admin}");
    within("the db-router routes to pg-primary", std::time::Duration::from_secs(10), async || {
        route(&admin).await.is_some_and(|(node, _)| node == "pg-primary")
    })
    .await;
    (served, format!("postgres://postgres@127.0.0.1:{proxy}/postgres"))
}

/// A loopback port free now, for a server a test starts. Fixed ports collided: ours lie in
/// Linux's ephemeral range, where a test's own outgoing connections (a pool's, say) take them.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}
