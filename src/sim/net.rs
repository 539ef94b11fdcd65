//! Sockets for the simulation: an `axum::serve::Listener` over turmoil's TCP listener, and the
//! `HttpClient` port over turmoil TCP streams with hyper's HTTP/1 client. Every byte crosses the
//! simulated network, so partitions, pauses, latency and crashes reach the services' traffic.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::stack::ports::{HttpClient, HttpRequest, HttpResponse, PortError};

/// The port every simulated service listens on.
pub const PORT: u16 = 80;

/// Serve an axum router on the current host until the host is crashed: HTTP/1.1 with keep-alive,
/// one task per connection spawned with [`crate::stack::spawn`] (so a crash drops them in a fixed
/// order; `axum::serve` would put them on tokio's shared task list and poll an unbiased
/// `select!`).
pub async fn serve(router: axum::Router) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
    loop {
        // An accept error (a peer that reset before we took it) concerns that peer only.
        let Ok((stream, _)) = listener.accept().await else { continue };
        let service = TowerToHyperService::new(router.clone());
        crate::stack::spawn(async move {
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            // A reset or timed-out peer ends its connection only.
            let _ = connection.await;
        });
    }
}

/// Counts of failed calls, read by the fault scheduler to attribute effects to faults.
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Calls that got no answer (refused, reset, timed out).
    pub unavailable: AtomicU64,
}

/// The `HttpClient` port over the simulated network, keeping idle HTTP/1.1 connections open per
/// peer as real clients' pools do. A crashed or partitioned peer still shows up as a refused,
/// reset or timed-out call: a pooled connection whose peer went away is closed and not reused.
///
/// A pool belongs to one host boot: a connection is driven by a task on the host that opened it,
/// so sharing one across hosts would send one host's traffic from another. Give every host (and
/// every restart of it) its own with [`SimHttp::for_host`]; clones share the pool.
#[derive(Clone, Default)]
pub struct SimHttp {
    counters: Arc<NetCounters>,
    idle: Arc<Mutex<BTreeMap<String, Vec<Sender>>>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle connections kept per peer; more are closed after use.
const IDLE_PER_PEER: usize = 16;

impl SimHttp {
    /// A client that counts its failures into `counters`.
    pub fn new(counters: Arc<NetCounters>) -> SimHttp {
        SimHttp { counters, idle: Arc::default() }
    }

    /// The same counters with an empty connection pool: one per host boot.
    pub fn for_host(&self) -> SimHttp {
        SimHttp::new(self.counters.clone())
    }

    /// An idle open connection to `authority`, if the pool has one.
    fn reuse(&self, authority: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("pool lock");
        let senders = idle.get_mut(authority)?;
        while let Some(sender) = senders.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, authority: String, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let senders = idle.entry(authority).or_default();
        if senders.len() < IDLE_PER_PEER {
            senders.push(sender);
        }
    }

    async fn connect(authority: &str) -> Result<Sender, String> {
        let stream = turmoil::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        crate::stack::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(&request.path)
            .header("host", &request.authority);
        if request.body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let body = Full::new(Bytes::from(request.body.unwrap_or_default()));
        let mut http_request = builder.body(body).map_err(|e| format!("request: {e}"))?;
        // A pooled connection the peer has closed meanwhile fails before the request is sent:
        // then (only then) the request goes again on a new connection.
        let (sender, response) = loop {
            let (mut sender, pooled) = match self.reuse(&request.authority) {
                Some(sender) => (sender, true),
                None => (SimHttp::connect(&request.authority).await?, false),
            };
            if pooled && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(http_request).await {
                Ok(response) => break (sender, response),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if pooled => http_request = unsent,
                    _ => return Err(format!("send: {}", error.error())),
                },
            }
        };
        let status = response.status().as_u16();
        let retry_after_secs =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let body =
            response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes().to_vec();
        self.put_back(request.authority, sender);
        Ok(HttpResponse { status, retry_after_secs, body })
    }
}

#[async_trait]
impl HttpClient for SimHttp {
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, PortError> {
        let authority = request.authority.clone();
        let outcome = match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error)) => error,
            Err(_) => format!("{authority}: no answer within {} ms", timeout.as_millis()),
        };
        self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        Err(PortError::Unavailable(outcome))
    }
}
