//! The simulated object store (host `objects`): S3's semantics over the simulated network. A PUT
//! is stored before it is answered, so one acknowledged is durable (the store lives outside the
//! host and survives its crash) and immediately readable; a PUT cut off by a crash, a pause or a
//! partition may or may not have landed, as on S3.
//!
//! Routes: `PUT /o/{key}` (the bytes), `GET /o/{key}` (200 with the bytes, 404), `GET /list`
//! (every object's key, size and checksum, for the final-state reader).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::Method;

use super::net::SimHttp;
use crate::stack::ports::{HttpClient, HttpRequest, ObjectInfo, ObjectStore, PortError};

/// The objects, by key: durable state created before the host.
pub type Objects = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// The `objects` host's server.
pub async fn objects_host(objects: Objects) -> turmoil::Result {
    let router =
        Router::new().route("/o/{*key}", get(read).put(write)).route("/list", get(list)).with_state(objects);
    super::net::serve_framed(router).await
}

async fn write(State(objects): State<Objects>, Path(key): Path<String>, body: Bytes) -> StatusCode {
    objects.lock().expect("objects lock").insert(key, body.to_vec());
    StatusCode::OK
}

async fn read(State(objects): State<Objects>, Path(key): Path<String>) -> Response {
    match objects.lock().expect("objects lock").get(&key) {
        Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn list(State(objects): State<Objects>) -> axum::Json<Vec<ObjectInfo>> {
    axum::Json(info(&objects.lock().expect("objects lock")))
}

/// Every object's key, size and checksum.
pub fn info(objects: &BTreeMap<String, Vec<u8>>) -> Vec<ObjectInfo> {
    objects.iter().map(|(key, bytes)| ObjectInfo::of(key, bytes)).collect()
}

/// The object-store port over the simulated network.
pub struct SimObjects {
    http: SimHttp,
    timeout: Duration,
}

impl SimObjects {
    /// Calls bounded by `timeout`.
    pub fn new(http: SimHttp, timeout: Duration) -> SimObjects {
        SimObjects { http, timeout }
    }

    async fn call(
        &self,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), PortError> {
        let request = HttpRequest { method, authority: "objects:80".into(), path, body, headers: Vec::new() };
        let response = self.http.send(request, self.timeout).await?;
        Ok((response.status, response.body))
    }
}

fn unavailable<T>(what: &str, status: u16) -> Result<T, PortError> {
    Err(PortError::Unavailable(format!("objects answered {status} to {what}")))
}

#[async_trait]
impl ObjectStore for SimObjects {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        match self.call(Method::PUT, format!("/o/{key}"), Some(bytes)).await? {
            (200, _) => Ok(()),
            (status, _) => unavailable("a put", status),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        match self.call(Method::GET, format!("/o/{key}"), None).await? {
            (200, bytes) => Ok(Some(bytes)),
            (404, _) => Ok(None),
            (status, _) => unavailable("a get", status),
        }
    }

    async fn list(&self) -> Result<Vec<ObjectInfo>, PortError> {
        match self.call(Method::GET, "/list".into(), None).await? {
            (200, body) => serde_json::from_slice(&body).map_err(|e| PortError::Unavailable(e.to_string())),
            (status, _) => unavailable("a list", status),
        }
    }
}
