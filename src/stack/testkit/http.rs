//! An HTTP client that dispatches to in-process axum routers by authority, with hosts that can
//! be taken down (every request to them answers `Unavailable`, as a refused connection).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::stack::ports::{HttpClient, HttpRequest, HttpResponse, PortError};

#[derive(Default)]
struct HttpInner {
    routes: BTreeMap<String, Router>,
    down: BTreeSet<String>,
    calls: Vec<String>,
}

/// Routers by authority (`inventory:80` → the inventory router).
#[derive(Default)]
pub struct MemHttp {
    inner: Mutex<HttpInner>,
}

impl MemHttp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HttpInner> {
        self.inner.lock().expect("http poisoned")
    }

    /// Serve `router` at `authority`.
    pub fn route(&self, authority: &str, router: Router) {
        self.lock().routes.insert(authority.to_string(), router);
    }

    /// Take a host down (`true`) or bring it back.
    pub fn set_down(&self, authority: &str, down: bool) {
        let mut inner = self.lock();
        if down {
            inner.down.insert(authority.to_string());
        } else {
            inner.down.remove(authority);
        }
    }

    /// Every request sent, as `METHOD authority path`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }
}

#[async_trait]
impl HttpClient for MemHttp {
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, PortError> {
        let router = {
            let mut inner = self.lock();
            inner.calls.push(format!("{} {} {}", request.method, request.authority, request.path));
            if inner.down.contains(&request.authority) {
                return Err(PortError::Unavailable(format!("{}: connection refused", request.authority)));
            }
            let Some(router) = inner.routes.get(&request.authority) else {
                return Err(PortError::Unavailable(format!("{}: no such host", request.authority)));
            };
            router.clone()
        };
        let call = oneshot(router, request);
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| PortError::Unavailable(format!("no answer within {timeout:?}")))
    }
}

/// Send one request to a router in process and read the whole answer.
pub async fn oneshot(router: Router, request: HttpRequest) -> HttpResponse {
    let mut builder = http::Request::builder().method(request.method).uri(request.path);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let req = builder.body(Body::from(request.body.unwrap_or_default())).expect("a valid request");
    let resp = router.oneshot(req).await.expect("axum routers are infallible");
    let status = resp.status().as_u16();
    let retry_after_secs =
        resp.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
    let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    HttpResponse { status, retry_after_secs, body }
}

/// A request with a JSON body (or none), for [`oneshot`] or an [`HttpClient`].
pub fn json_request(method: http::Method, path: &str, body: Option<serde_json::Value>) -> HttpRequest {
    HttpRequest {
        method,
        authority: "test:80".into(),
        path: path.into(),
        body: body.map(|b| serde_json::to_vec(&b).expect("JSON serialises")),
        headers: vec![("content-type".into(), "application/json".into())],
    }
}

/// The body of an answer as JSON (`null` if empty or not JSON).
pub fn body_json(resp: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null)
}
