//! The simulated Redis (host `redis`, group `meta`): the backup catalogue, one entry per base
//! backup and WAL segment, as a hash from id to entry. Durable across a crash of the host (Redis
//! with `appendonly yes` and `appendfsync always`); unreachable while it is down, paused or cut
//! off, so catalogue writes then fail and are retried by the backup agent.
//!
//! Routes: `POST /put` (an entry), `POST /remove` (an id), `GET /list` (every entry, by id).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Method;

use super::net::SimHttp;
use crate::stack::ports::{Catalogue, CatalogueEntry, HttpClient, HttpRequest, PortError};

/// Redis's data: the catalogue hash, created before the host.
pub type RedisData = Arc<Mutex<BTreeMap<String, CatalogueEntry>>>;

/// The `redis` host's server.
pub async fn redis_host(data: RedisData) -> turmoil::Result {
    let router = Router::new()
        .route("/put", post(put))
        .route("/remove", post(remove))
        .route("/list", get(list))
        .with_state(data);
    super::net::serve_framed(router).await
}

async fn put(State(data): State<RedisData>, Json(entry): Json<CatalogueEntry>) {
    data.lock().expect("redis lock").insert(entry.id.clone(), entry);
}

async fn remove(State(data): State<RedisData>, Json(id): Json<String>) {
    data.lock().expect("redis lock").remove(&id);
}

async fn list(State(data): State<RedisData>) -> Json<Vec<CatalogueEntry>> {
    Json(data.lock().expect("redis lock").values().cloned().collect())
}

/// The catalogue port over the simulated network.
pub struct SimCatalogue {
    http: SimHttp,
    timeout: Duration,
}

impl SimCatalogue {
    /// Calls bounded by `timeout`.
    pub fn new(http: SimHttp, timeout: Duration) -> SimCatalogue {
        SimCatalogue { http, timeout }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Vec<u8>, PortError> {
        let request = HttpRequest {
            method,
            authority: "redis:80".into(),
            path: path.into(),
            body,
            headers: Vec::new(),
        };
        let response = self.http.send(request, self.timeout).await?;
        match response.status {
            200 => Ok(response.body),
            status => Err(PortError::Unavailable(format!("redis answered {status} to {path}"))),
        }
    }
}

#[async_trait]
impl Catalogue for SimCatalogue {
    async fn put(&self, entry: &CatalogueEntry) -> Result<(), PortError> {
        self.call(Method::POST, "/put", Some(serde_json::to_vec(entry).expect("entries serialise")))
            .await
            .map(|_| ())
    }

    async fn remove(&self, id: &str) -> Result<(), PortError> {
        self.call(Method::POST, "/remove", Some(serde_json::to_vec(id).expect("ids serialise")))
            .await
            .map(|_| ())
    }

    async fn list(&self) -> Result<Vec<CatalogueEntry>, PortError> {
        let body = self.call(Method::GET, "/list", None).await?;
        serde_json::from_slice(&body).map_err(|e| PortError::Unavailable(format!("bad catalogue: {e}")))
    }
}
