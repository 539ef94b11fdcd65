//! The `HttpClient` port over real sockets: hyper's pooled HTTP/1 client on tokio. Services name
//! their peers as in the topology (`pricefeed:80`); a peer table maps those names to real
//! addresses (`pricefeed:80` → `127.0.0.1:7001`); an unmapped authority is dialled as it is.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::stack::ports::{HttpClient, HttpRequest, HttpResponse, PortError};

/// A pooled HTTP/1 client with a peer table.
#[derive(Clone)]
pub struct RealHttp {
    client: Client<HttpConnector, Full<Bytes>>,
    peers: BTreeMap<String, String>,
}

impl RealHttp {
    /// A client dialling `peers[authority]` (or the authority itself).
    pub fn new(peers: BTreeMap<String, String>) -> RealHttp {
        RealHttp { client: Client::builder(TokioExecutor::new()).build_http(), peers }
    }
}

#[async_trait]
impl HttpClient for RealHttp {
    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, PortError> {
        let address = self.peers.get(&request.authority).unwrap_or(&request.authority);
        let mut builder =
            http::Request::builder().method(request.method).uri(format!("http://{address}{}", request.path));
        if request.body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let body = Full::new(Bytes::from(request.body.unwrap_or_default()));
        let outgoing = builder.body(body).map_err(|e| PortError::Rejected(format!("request: {e}")))?;
        let exchange = async {
            let response = self.client.request(outgoing).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let retry_after_secs = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
            Ok::<_, String>(HttpResponse { status, retry_after_secs, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(PortError::Unavailable(format!("{address}: {error}"))),
            Err(_) => {
                Err(PortError::Unavailable(format!("{address}: no answer within {} ms", timeout.as_millis())))
            }
        }
    }
}
