//! `db-router` on the simulation, HAProxy's role: the writer endpoint that forwards each
//! framed write and read to the node that last answered its health check as writable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use http::Method;

use super::db::Cluster;
use super::db_client::SimDb;
use super::net::{Postcard, SimHttp};
use crate::stack::ports::{DbNode, HttpClient, HttpRequest};

#[derive(Clone)]
struct RouterHost {
    cluster: Cluster,
    http: SimHttp,
    /// The node writes go to: the first writable node by the last health check.
    route: Arc<Mutex<Option<DbNode>>>,
}

/// How long the router waits for a node before answering 504.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the router health-checks both nodes.
const ROUTER_CHECK_EVERY: Duration = Duration::from_millis(100);

/// `db-router`, HAProxy's role: every 100 ms it asks both nodes whether they take writes and
/// sends writes to the first that does, in the order `pg-primary`, `pg-replica`. The watchdog
/// steers it only through the nodes themselves — promoting one and fencing the other. An old
/// primary that nobody fenced and that comes back writable wins the health check again: split
/// brain, which is exactly what fencing exists to prevent.
pub async fn router_host(cluster: Cluster, http: SimHttp) -> turmoil::Result {
    let state = RouterHost { cluster, http, route: Arc::new(Mutex::new(None)) };
    crate::stack::spawn(health_checks(state.clone()));
    let router = Router::new()
        .route("/write", post(forward_write))
        .route("/read", post(forward_read))
        .route("/set_writer", post(set_writer))
        .with_state(state);
    super::net::serve_framed(router).await
}

async fn health_checks(host: RouterHost) {
    let probe = SimDb::new(host.http.clone(), host.cluster.clone(), ROUTER_CHECK_EVERY);
    loop {
        let mut route = None;
        for node in [DbNode::PgPrimary, DbNode::PgReplica] {
            if matches!(probe.writable(node, ROUTER_CHECK_EVERY).await, Ok(true)) {
                route = Some(node);
                break;
            }
        }
        let previous = std::mem::replace(&mut *host.route.lock().expect("route lock"), route);
        if previous != route {
            tracing::info!(route = ?route.map(DbNode::host), "db-router: writes now go to");
        }
        tokio::time::sleep(ROUTER_CHECK_EVERY).await;
    }
}

async fn forward(host: &RouterHost, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let Some(writer) = *host.route.lock().expect("route lock") else {
        return (StatusCode::SERVICE_UNAVAILABLE, b"no database node takes writes".to_vec());
    };
    let request = HttpRequest {
        method: Method::POST,
        authority: format!("{}:80", writer.host()),
        path: path.into(),
        body: Some(body),
        headers: Vec::new(),
    };
    match host.http.send(request, ROUTER_TIMEOUT).await {
        Ok(r) => (StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY), r.body),
        Err(e) => (StatusCode::GATEWAY_TIMEOUT, e.to_string().into_bytes()),
    }
}

async fn forward_write(State(host): State<RouterHost>, body: axum::body::Bytes) -> (StatusCode, Vec<u8>) {
    forward(&host, "/write", body.to_vec()).await
}

async fn forward_read(State(host): State<RouterHost>, body: axum::body::Bytes) -> (StatusCode, Vec<u8>) {
    forward(&host, "/read", body.to_vec()).await
}

/// The watchdog's declaration of the primary: recorded (the final state is read from it), not
/// used for routing.
async fn set_writer(State(host): State<RouterHost>, Postcard(node): Postcard<DbNode>) -> StatusCode {
    host.cluster.lock().expect("cluster lock").writer = node;
    tracing::info!(writer = node.host(), "db-router repointed");
    StatusCode::OK
}
