//! Sockets for the simulation: axum routers served over turmoil's TCP listener, and the
//! `HttpClient` port over turmoil TCP streams. Every byte crosses the simulated network, so
//! partitions, pauses, latency and crashes reach the services' traffic.
//!
//! Two wires, chosen by the host called:
//! - **HTTP/1.1** (hyper) to the services — the same protocol they speak on containers.
//! - **Frames** to the hosts that exist only in the simulation ([`FRAMED_HOSTS`]: the simulated
//!   database nodes and db-router, broker, Redis, object store and backup agent). On containers
//!   their real counterparts are reached through sqlx, lapin, the `redis` crate and an S3 client,
//!   so nothing but simulation code ever talks to them, and HTTP/1's parsing and writing there
//!   was pure cost. A frame is a 4-byte big-endian length and then the request or
//!   answer: a postcard-encoded head (method, path, headers / status, `Retry-After`) followed by
//!   the body's raw bytes. The same axum routers answer (a frame becomes an `http::Request`),
//!   on the same port, over the same turmoil TCP: a cut connection is still a cut connection, one
//!   request at a time per connection, connections pooled per peer as HTTP/1 keep-alive's are.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tower::ServiceExt;

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

/// The hosts reached over frames instead of HTTP/1: every one exists only in the simulation.
pub const FRAMED_HOSTS: [&str; 7] =
    ["pg-primary", "pg-replica", "db-router", "broker", "redis", "objects", "backup"];

/// Whether calls to `authority` (`host:port`) go over frames.
fn framed(authority: &str) -> bool {
    let host = authority.split(':').next().unwrap_or(authority);
    FRAMED_HOSTS.contains(&host)
}

/// The largest frame either side accepts: a base backup carries a node's whole state.
const FRAME_MAX: usize = 256 << 20;

type FrameConn = Framed<turmoil::net::TcpStream, LengthDelimitedCodec>;

fn frame_conn(stream: turmoil::net::TcpStream) -> FrameConn {
    Framed::new(stream, LengthDelimitedCodec::builder().max_frame_length(FRAME_MAX).new_codec())
}

/// A request frame's head; the body follows it.
#[derive(Serialize, Deserialize)]
struct RequestHead {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    has_body: bool,
}

/// An answer frame's head; the body follows it.
#[derive(Serialize, Deserialize)]
struct AnswerHead {
    status: u16,
    retry_after_secs: Option<u64>,
}

/// A head followed by raw body bytes.
fn encode_frame(head: &impl Serialize, body: &[u8]) -> Bytes {
    let mut frame = to_postcard(head);
    frame.extend_from_slice(body);
    Bytes::from(frame)
}

/// Serve an axum router over frames on the current host until the host is crashed (the framed
/// twin of [`serve`], for [`FRAMED_HOSTS`]): one task per connection, answering its requests in
/// order.
pub async fn serve_framed(router: axum::Router) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let router = router.clone();
        crate::stack::spawn(async move {
            let mut conn = frame_conn(stream);
            // A reset peer or a malformed frame ends this connection only.
            while let Some(Ok(frame)) = conn.next().await {
                let Some(answer) = answer_frame(&router, &frame).await else { break };
                if conn.send(answer).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Run one request frame through the router; `None` for a frame that does not decode.
async fn answer_frame(router: &axum::Router, frame: &[u8]) -> Option<Bytes> {
    let (head, body) = postcard::take_from_bytes::<RequestHead>(frame).ok()?;
    let mut builder = http::Request::builder().method(head.method.as_str()).uri(head.path);
    // As the HTTP/1 client marks a body: the broker's, Redis's and the archive's routes read
    // JSON through axum's `Json`, which insists on it (the database's `Postcard` ignores it).
    if head.has_body {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in &head.headers {
        builder = builder.header(name, value);
    }
    let request = builder.body(axum::body::Body::from(body.to_vec())).ok()?;
    let response = router.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
    let status = response.status().as_u16();
    let retry_after_secs = retry_after(response.headers());
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some(encode_frame(&AnswerHead { status, retry_after_secs }, &body))
}

fn retry_after(headers: &http::HeaderMap) -> Option<u64> {
    headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// A body in postcard, the framed wire's compact binary encoding, for the simulation's own
/// types (the database's commands and answers): as an extractor it answers 400 to a body that
/// does not decode; as a response it is the encoded value.
pub struct Postcard<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Postcard<T> {
    type Rejection = (http::StatusCode, String);

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bad = |e: String| (http::StatusCode::BAD_REQUEST, format!("body: {e}"));
        let bytes = Bytes::from_request(request, state).await.map_err(|e| bad(e.to_string()))?;
        postcard::from_bytes(&bytes).map(Postcard).map_err(|e| bad(e.to_string()))
    }
}

impl<T: Serialize> axum::response::IntoResponse for Postcard<T> {
    fn into_response(self) -> axum::response::Response {
        to_postcard(&self.0).into_response()
    }
}

/// `value` in postcard.
pub fn to_postcard<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("the simulation's wire types serialise")
}

/// A postcard body back into its value; one that does not decode is a bad answer.
pub fn from_postcard<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PortError> {
    postcard::from_bytes(bytes).map_err(|e| PortError::Unavailable(format!("bad answer: {e}")))
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
    idle_framed: Arc<Mutex<BTreeMap<String, Vec<FrameConn>>>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle connections kept per peer; more are closed after use.
const IDLE_PER_PEER: usize = 16;

impl SimHttp {
    /// A client that counts its failures into `counters`.
    pub fn new(counters: Arc<NetCounters>) -> SimHttp {
        SimHttp { counters, idle: Arc::default(), idle_framed: Arc::default() }
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

    /// An idle framed connection to `authority` that its peer has not closed, if the pool has one.
    fn reuse_framed(&self, authority: &str) -> Option<FrameConn> {
        let mut idle = self.idle_framed.lock().expect("pool lock");
        let conns = idle.get_mut(authority)?;
        while let Some(mut conn) = conns.pop() {
            // Nothing is due on an idle connection: a ready read is its peer's close or reset
            // (or a stray frame): not reusable.
            if conn.next().now_or_never().is_none() {
                return Some(conn);
            }
        }
        None
    }

    fn put_back_framed(&self, authority: String, conn: FrameConn) {
        let mut idle = self.idle_framed.lock().expect("pool lock");
        let conns = idle.entry(authority).or_default();
        if conns.len() < IDLE_PER_PEER {
            conns.push(conn);
        }
    }

    async fn exchange_framed(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        let authority = request.authority;
        let head = RequestHead {
            method: request.method.to_string(),
            path: request.path,
            headers: request.headers,
            has_body: request.body.is_some(),
        };
        let frame = encode_frame(&head, request.body.as_deref().unwrap_or_default());
        // A pooled connection found closed when sending has not delivered the request: then
        // (only then) it goes again on a new connection.
        let mut conn = loop {
            match self.reuse_framed(&authority) {
                Some(mut conn) => {
                    if conn.send(frame.clone()).await.is_ok() {
                        break conn;
                    }
                }
                None => {
                    let stream = turmoil::net::TcpStream::connect(authority.as_str())
                        .await
                        .map_err(|e| format!("connect {authority}: {e}"))?;
                    let mut conn = frame_conn(stream);
                    conn.send(frame).await.map_err(|e| format!("send: {e}"))?;
                    break conn;
                }
            }
        };
        let answer = match conn.next().await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => return Err(format!("answer: {e}")),
            None => return Err(format!("{authority} closed the connection before answering")),
        };
        let (head, body) =
            postcard::take_from_bytes::<AnswerHead>(&answer).map_err(|e| format!("answer head: {e}"))?;
        let response = HttpResponse {
            status: head.status,
            retry_after_secs: head.retry_after_secs,
            body: body.to_vec(),
        };
        self.put_back_framed(authority, conn);
        Ok(response)
    }

    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        if framed(&request.authority) {
            return self.exchange_framed(request).await;
        }
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
        let retry_after_secs = retry_after(response.headers());
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use axum::Router;
    use axum::routing::post;
    use http::{HeaderMap, Method, StatusCode};

    use super::*;

    fn request(host: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: Method::POST,
            authority: format!("{host}:{PORT}"),
            path: "/echo?x=1".into(),
            body: Some(body.as_bytes().to_vec()),
            headers: vec![("x-tag".into(), "t1".into())],
        }
    }

    /// Answers 503 with `Retry-After: 7` and a body naming the boot, the query, the header, the
    /// content type and the request body: everything a frame must carry both ways.
    fn echo(boot: u32) -> Router {
        Router::new().route(
            "/echo",
            post(move |uri: http::Uri, headers: HeaderMap, body: Bytes| async move {
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                let text = format!(
                    "boot {boot} {} {} {} {}",
                    uri.query().unwrap_or("-"),
                    header("x-tag"),
                    header("content-type"),
                    String::from_utf8_lossy(&body)
                );
                ([("retry-after", "7")], (StatusCode::SERVICE_UNAVAILABLE, text))
            }),
        )
    }

    #[test]
    fn a_framed_call_carries_everything_and_a_crashed_peer_is_unavailable_until_it_is_back() {
        assert!(framed("redis:80") && framed("pg-primary:80") && !framed("api-1:80") && !framed("lb:80"));
        let mut sim = turmoil::Builder::new()
            .tick_duration(Duration::from_millis(2))
            .simulation_duration(Duration::from_secs(10))
            .build();
        let boots = Arc::new(AtomicU32::new(0));
        let boots_in = boots.clone();
        sim.host("redis", move || serve_framed(echo(boots_in.fetch_add(1, Ordering::Relaxed))));
        let counters = Arc::new(NetCounters::default());
        let http = SimHttp::new(counters.clone());
        let answers: Arc<Mutex<Vec<Result<HttpResponse, PortError>>>> = Arc::default();
        let seen = answers.clone();
        sim.client("client", async move {
            let begin = tokio::time::Instant::now();
            let timeout = Duration::from_millis(300);
            for (at_ms, body) in [(0, "one"), (5, "two"), (1000, "back"), (2000, "down")] {
                tokio::time::sleep_until(begin + Duration::from_millis(at_ms)).await;
                let answer = http.send(request("redis", body), timeout).await;
                seen.lock().unwrap().push(answer);
            }
            Ok(())
        });
        // Restarted between "two" and "back" (the pooled connection's peer is gone), down at "down".
        let mut faults = vec![(500, "crash"), (600, "bounce"), (1500, "crash")].into_iter().peekable();
        while !sim.step().unwrap() {
            if let Some(&(at_ms, fault)) = faults.peek()
                && sim.elapsed() >= Duration::from_millis(at_ms)
            {
                if fault == "crash" {
                    sim.crash("redis")
                } else {
                    sim.bounce("redis")
                }
                faults.next();
            }
        }
        let answers = answers.lock().unwrap();
        let ok = |i: usize| {
            answers[i]
                .as_ref()
                .map(|r| (r.status, r.retry_after_secs, String::from_utf8_lossy(&r.body).into_owned()))
        };
        assert_eq!(ok(0).unwrap(), (503, Some(7), "boot 0 x=1 t1 application/json one".into()));
        assert_eq!(
            ok(1).unwrap(),
            (503, Some(7), "boot 0 x=1 t1 application/json two".into()),
            "on the pooled connection"
        );
        assert_eq!(
            ok(2).unwrap().2,
            "boot 1 x=1 t1 application/json back",
            "the dead pooled connection was not reused"
        );
        assert!(matches!(answers[3], Err(PortError::Unavailable(_))), "while crashed: {:?}", answers[3]);
        assert_eq!(counters.unavailable.load(Ordering::Relaxed), 1);
        assert_eq!(boots.load(Ordering::Relaxed), 2);
    }
}
