//! Sockets for the simulation: an `axum::serve::Listener` over turmoil's TCP listener, and the
//! `HttpClient` port over turmoil TCP streams with hyper's HTTP/1 client. Every byte crosses the
//! simulated network, so partitions, pauses, latency and crashes reach the services' traffic.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::stack::ports::{HttpClient, HttpRequest, HttpResponse, PortError};

/// The port every simulated service listens on.
pub const PORT: u16 = 80;

/// turmoil's listener as an axum listener.
pub struct SimListener(turmoil::net::TcpListener);

impl SimListener {
    /// Bind `0.0.0.0:port` on the current host.
    pub async fn bind(port: u16) -> std::io::Result<SimListener> {
        Ok(SimListener(turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // An accept error (a peer that reset before we took it) concerns that peer only.
            if let Ok(accepted) = self.0.accept().await {
                return accepted;
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Serve an axum router on the current host until the host is crashed.
pub async fn serve(router: axum::Router) -> turmoil::Result {
    let listener = SimListener::bind(PORT).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

/// Counts of failed calls, read by the fault scheduler to attribute effects to faults.
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Calls that got no answer (refused, reset, timed out).
    pub unavailable: AtomicU64,
}

/// The `HttpClient` port over the simulated network: one connection per request, so a crashed
/// or partitioned peer shows up as a refused or timed-out call.
#[derive(Clone, Default)]
pub struct SimHttp {
    counters: Arc<NetCounters>,
}

impl SimHttp {
    /// A client that counts its failures into `counters`.
    pub fn new(counters: Arc<NetCounters>) -> SimHttp {
        SimHttp { counters }
    }

    async fn exchange(request: HttpRequest) -> Result<HttpResponse, String> {
        let stream = turmoil::net::TcpStream::connect(request.authority.as_str())
            .await
            .map_err(|e| format!("connect {}: {e}", request.authority))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
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
        let http_request = builder.body(body).map_err(|e| format!("request: {e}"))?;
        let response = sender.send_request(http_request).await.map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let retry_after_secs =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let body =
            response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes().to_vec();
        Ok(HttpResponse { status, retry_after_secs, body })
    }
}

#[async_trait]
impl HttpClient for SimHttp {
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, PortError> {
        let authority = request.authority.clone();
        let outcome = match tokio::time::timeout(timeout, SimHttp::exchange(request)).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error)) => error,
            Err(_) => format!("{authority}: no answer within {} ms", timeout.as_millis()),
        };
        self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        Err(PortError::Unavailable(outcome))
    }
}
