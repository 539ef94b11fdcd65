//! The round-robin balancer (host `lb`): a reverse proxy over the `api-N` hosts.
//!
//! Requests go to the next healthy upstream in turn; method, path and query, body and the
//! idempotency header are forwarded, and the upstream's status, body and `Retry-After` come back.
//! Health is tracked two ways: active checks (`GET /health` every `health_every`, one loop per
//! upstream; `eject_after` consecutive failures eject, one success re-admits) and passive
//! ejection (a forwarded request that gets no answer ejects its upstream at once). A request is
//! never retried on another upstream: its outcome is unknown, so the client decides.
//!
//! Answers of its own: 502 when the chosen upstream gave no answer, 503 when none is healthy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::time::sleep;

use super::api::IDEMPOTENCY_HEADER;
use super::ports::{HttpClient, HttpRequest, HttpResponse};
use super::wire;
use crate::scenario::model::{BalancerConfig, StackConfig};

/// How the balancer behaves. Defaults on each field.
#[derive(Clone, Debug)]
pub struct LbConfig {
    /// The upstreams' `host:port`, e.g. `api-1:80`. Default empty (every request answers 503).
    pub upstreams: Vec<String>,
    /// Health-check timing (`stack.balancer`).
    pub health: BalancerConfig,
    /// How long one health check may take. Default 250 ms.
    pub health_timeout: Duration,
    /// How long a forwarded request may take before the balancer answers 502. Default 5 s
    /// (longer than any client timeout, so the client's own timeout decides).
    pub request_timeout: Duration,
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig {
            upstreams: Vec::new(),
            health: BalancerConfig::default(),
            health_timeout: Duration::from_millis(250),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl LbConfig {
    /// The defaults, over `api-1:80` … `api-N:80` with the stack's health-check timing.
    pub fn for_stack(stack: &StackConfig) -> LbConfig {
        let upstreams = (1..=stack.api_replicas).map(|i| wire::authority(&format!("api-{i}"))).collect();
        LbConfig { upstreams, health: stack.balancer.clone(), ..LbConfig::default() }
    }
}

/// One upstream as the balancer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`.
    pub authority: String,
    /// Whether it receives requests.
    pub healthy: bool,
    /// Consecutive failed health checks.
    pub failures: u32,
}

#[derive(Debug)]
struct Pool {
    upstreams: Vec<Upstream>,
    next_index: usize,
}

/// The balancer's state. Cheap to clone (shared); the backend may read [`BalancerState::upstreams`].
#[derive(Clone)]
pub struct BalancerState {
    http: Arc<dyn HttpClient>,
    config: Arc<LbConfig>,
    pool: Arc<Mutex<Pool>>,
}

impl BalancerState {
    /// Build from the HTTP client and the config; every upstream starts healthy.
    pub fn new(http: Arc<dyn HttpClient>, config: LbConfig) -> BalancerState {
        let upstreams = config
            .upstreams
            .iter()
            .map(|authority| Upstream { authority: authority.clone(), healthy: true, failures: 0 })
            .collect();
        let pool = Pool { upstreams, next_index: 0 };
        BalancerState { http, config: Arc::new(config), pool: Arc::new(Mutex::new(pool)) }
    }

    /// Every upstream and its health, in configuration order.
    pub fn upstreams(&self) -> Vec<Upstream> {
        self.lock().upstreams.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().expect("balancer pool poisoned")
    }

    /// The next healthy upstream, round robin.
    fn pick(&self) -> Option<(usize, String)> {
        let mut pool = self.lock();
        let count = pool.upstreams.len();
        for offset in 0..count {
            let index = (pool.next_index + offset) % count;
            if pool.upstreams[index].healthy {
                pool.next_index = (index + 1) % count;
                return Some((index, pool.upstreams[index].authority.clone()));
            }
        }
        None
    }

    fn record(&self, index: usize, ok: bool, passive: bool) {
        let eject_after = self.config.health.eject_after.max(1);
        let mut pool = self.lock();
        let upstream = &mut pool.upstreams[index];
        if ok {
            if !upstream.healthy {
                tracing::info!(upstream = %upstream.authority, "balancer re-admits upstream");
            }
            upstream.failures = 0;
            upstream.healthy = true;
            return;
        }
        upstream.failures = if passive { eject_after } else { upstream.failures.saturating_add(1) };
        if upstream.healthy && upstream.failures >= eject_after {
            upstream.healthy = false;
            tracing::info!(upstream = %upstream.authority, passive, "balancer ejects upstream");
        }
    }
}

/// The proxy: every route is forwarded. Spawn [`run_health_checks`] beside it: an ejected
/// upstream is re-admitted only by a successful health check.
pub fn router(state: BalancerState) -> Router {
    Router::new().fallback(forward).with_state(state)
}

/// Run the active health checks forever, one loop per upstream.
pub async fn run_health_checks(state: BalancerState) {
    let count = state.config.upstreams.len();
    futures::future::join_all((0..count).map(|index| check_loop(state.clone(), index))).await;
}

async fn check_loop(state: BalancerState, index: usize) {
    let authority = state.config.upstreams[index].clone();
    loop {
        sleep(state.config.health.health_every.get()).await;
        let request = HttpRequest {
            method: Method::GET,
            authority: authority.clone(),
            path: "/health".into(),
            body: None,
            headers: vec![],
        };
        let ok =
            matches!(state.http.send(request, state.config.health_timeout).await, Ok(r) if r.status == 200);
        state.record(index, ok, false);
    }
}

async fn forward(
    State(state): State<BalancerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((index, authority)) = state.pick() else {
        return wire::error(StatusCode::SERVICE_UNAVAILABLE, "balancer: no healthy upstream");
    };
    let mut forwarded = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = headers.get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()) {
        forwarded.push((IDEMPOTENCY_HEADER.to_string(), key.to_string()));
    }
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let body = (!body.is_empty()).then(|| body.to_vec());
    let request = HttpRequest { method, authority: authority.clone(), path, body, headers: forwarded };
    match state.http.send(request, state.config.request_timeout).await {
        Ok(resp) => to_response(resp),
        Err(err) => {
            state.record(index, false, true);
            wire::error(StatusCode::BAD_GATEWAY, format!("balancer: upstream {authority}: {err}"))
        }
    }
}

fn to_response(resp: HttpResponse) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = (status, resp.body).into_response();
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(secs) = resp.retry_after_secs {
        out.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::testkit::{MemHttp, body_json, json_request, oneshot};
    use axum::routing::{get, post};
    use serde_json::json;

    /// An upstream that names itself and echoes what it was sent.
    fn upstream(name: &'static str) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/whoami", get(move || async move { axum::Json(json!({"name": name})) }))
            .route(
                "/echo",
                post(move |headers: HeaderMap, body: String| async move {
                    let key = headers
                        .get(IDEMPOTENCY_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    (StatusCode::CREATED, axum::Json(json!({"name": name, "key": key, "body": body})))
                }),
            )
    }

    fn fixture() -> (Arc<MemHttp>, BalancerState, Router) {
        let http = Arc::new(MemHttp::default());
        http.route("api-1:80", upstream("api-1"));
        http.route("api-2:80", upstream("api-2"));
        let config =
            LbConfig { upstreams: vec!["api-1:80".into(), "api-2:80".into()], ..LbConfig::default() };
        let state = BalancerState::new(http.clone(), config);
        (http, state.clone(), router(state))
    }

    async fn whoami(router: &Router) -> (u16, String) {
        let resp = oneshot(router.clone(), json_request(Method::GET, "/whoami", None)).await;
        (resp.status, body_json(&resp)["name"].as_str().unwrap_or("").to_string())
    }

    fn names(healthy: &[Upstream]) -> Vec<bool> {
        healthy.iter().map(|u| u.healthy).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_forwards_method_path_body_and_key() {
        let (_http, _state, router) = fixture();
        let order: Vec<String> = futures::future::join_all((0..4).map(|_| whoami(&router)))
            .await
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(order, ["api-1", "api-2", "api-1", "api-2"]);
        let mut request = json_request(Method::POST, "/echo", Some(json!({"x": 1})));
        request.headers.push((IDEMPOTENCY_HEADER.into(), "k7".into()));
        let resp = oneshot(router.clone(), request).await;
        assert_eq!(resp.status, 201);
        assert_eq!(body_json(&resp)["key"], "k7");
        assert_eq!(body_json(&resp)["body"], r#"{"x":1}"#);
    }

    /// Active checks eject a dead upstream after `eject_after` failures (not before), and one
    /// success re-admits it.
    #[tokio::test(start_paused = true)]
    async fn health_checks_eject_after_failures_and_readmit() {
        let (http, state, router) = fixture();
        tokio::spawn(run_health_checks(state.clone()));
        http.set_down("api-2:80", true);
        sleep(Duration::from_millis(600)).await;
        assert_eq!(names(&state.upstreams()), [true, true], "one failure is not enough");
        sleep(Duration::from_millis(500)).await;
        assert_eq!(names(&state.upstreams()), [true, false]);
        for _ in 0..3 {
            assert_eq!(whoami(&router).await, (200, "api-1".into()));
        }
        http.set_down("api-2:80", false);
        sleep(Duration::from_millis(500)).await;
        assert_eq!(names(&state.upstreams()), [true, true]);
        let both: Vec<String> = vec![whoami(&router).await.1, whoami(&router).await.1];
        assert!(both.contains(&"api-2".to_string()));
    }

    /// A request that gets no answer is a 502 and ejects its upstream at once; with none left
    /// healthy the balancer answers 503.
    #[tokio::test(start_paused = true)]
    async fn passive_ejection_and_no_healthy_upstream() {
        let (http, state, router) = fixture();
        http.set_down("api-1:80", true);
        assert_eq!(whoami(&router).await.0, 502);
        assert_eq!(names(&state.upstreams()), [false, true]);
        assert_eq!(whoami(&router).await, (200, "api-2".into()));
        http.set_down("api-2:80", true);
        assert_eq!(whoami(&router).await.0, 502);
        assert_eq!(whoami(&router).await.0, 503);
    }
}
