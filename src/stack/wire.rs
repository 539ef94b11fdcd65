//! What the services share on the wire beyond the public API (`api.rs`): the saga participants'
//! request and answer bodies, the mapping from a port error to an HTTP status, and the reading of
//! an HTTP answer back into "applied / definitely not / unknown".
//!
//! Status convention between services (and on the public routes): `504` means the outcome is
//! unknown (a store call timed out), `503` definitely not applied but worth retrying (a read-only
//! or fenced node, a failed dependency), `409`/`422` definitely not applied and final.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::api::IDEMPOTENCY_HEADER;
use super::ports::{HttpResponse, PortError};

/// The port every HTTP service listens on; authorities are `host:HTTP_PORT`.
pub const HTTP_PORT: u16 = 80;

/// The authority of a stack host's HTTP service, e.g. `authority("inventory")` is `inventory:80`.
pub fn authority(host: &str) -> String {
    format!("{host}:{HTTP_PORT}")
}

/// A saga step for one order: `POST /reserve` (inventory), `POST /orders` (ordersvc),
/// `POST /reports` (reports) — the same body the saga log keeps to run the saga again.
pub type StepRequest = super::ports::SagaRequest;

/// A compensation for one order: `POST /restock` (inventory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    /// The order id.
    pub order_id: String,
}

/// Every participant's answer: what the step did, in the store's own words
/// (`taken`, `already_taken`, `out_of_stock`, `restocked`, `created`, `existed`, `cancelled`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAnswer {
    /// The outcome.
    pub outcome: String,
}

/// The JSON error body every service answers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// An error response with a JSON body.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody { error: message.into() })).into_response()
}

/// 503 with `Retry-After: retry_after_secs`: definitely not applied, worth retrying later (a full
/// queue, a missing confirm).
pub(crate) fn busy(retry_after_secs: u64, message: impl Into<String>) -> Response {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after_secs));
    resp
}

/// The status for a failed store call: `504` unknown, `503` read-only, `422` rejected.
pub(crate) fn port_status(err: &PortError) -> StatusCode {
    match err {
        PortError::Unavailable(_) => StatusCode::GATEWAY_TIMEOUT,
        PortError::ReadOnly(_) => StatusCode::SERVICE_UNAVAILABLE,
        PortError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The error response for a failed store call, naming the operation.
pub(crate) fn port_error(what: &str, err: &PortError) -> Response {
    error(port_status(err), format!("{what}: {err}"))
}

/// A step answer with a status.
pub(crate) fn answer(status: StatusCode, outcome: &str) -> Response {
    (status, Json(StepAnswer { outcome: outcome.into() })).into_response()
}

/// Percent-encode `text` for a path segment or a query value: every byte outside RFC 3986's
/// unreserved set (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, so client-chosen keys are safe in URLs.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The idempotency key: the body's if present and non-empty, else the header's.
pub(crate) fn idempotency_key(body_key: Option<String>, headers: &HeaderMap) -> Option<String> {
    let from_body = body_key.filter(|k| !k.is_empty());
    from_body.or_else(|| {
        let header = headers.get(IDEMPOTENCY_HEADER)?.to_str().ok()?;
        (!header.is_empty()).then(|| header.to_string())
    })
}

/// How a call to another service ended, as the caller must treat it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Called {
    /// A 2xx answer.
    Ok(HttpResponse),
    /// A definite refusal: the callee did not apply it (4xx, 503, or 500).
    Definite(HttpResponse),
    /// No answer, or `502`/`504`: it may or may not have been applied.
    Unknown(String),
}

/// Classify the result of `HttpClient::send` under the status convention above.
pub(crate) fn classify(result: Result<HttpResponse, PortError>) -> Called {
    match result {
        Err(err) => Called::Unknown(err.to_string()),
        Ok(resp) if (200..300).contains(&resp.status) => Called::Ok(resp),
        Ok(resp) if resp.status == 502 || resp.status == 504 => {
            Called::Unknown(format!("status {}: {}", resp.status, body_text(&resp)))
        }
        Ok(resp) => Called::Definite(resp),
    }
}

/// The body as text, for messages.
pub(crate) fn body_text(resp: &HttpResponse) -> String {
    String::from_utf8_lossy(&resp.body).chars().take(200).collect()
}

/// The saga participants' (inventory, ordersvc, reports) config.
#[derive(Clone, Debug)]
pub struct ParticipantConfig {
    /// Upper bound on one store call, on top of the adapter's own; running out answers 504.
    /// Default 1 s.
    pub store_timeout: std::time::Duration,
}

impl Default for ParticipantConfig {
    fn default() -> Self {
        ParticipantConfig { store_timeout: std::time::Duration::from_secs(1) }
    }
}

/// Parse a JSON body, or the 400 to answer with (boxed: a `Response` is large).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(route: &str, body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("{route} body: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_escapes_everything_outside_the_unreserved_set() {
        assert_eq!(encode("w1-7.a_b~"), "w1-7.a_b~");
        assert_eq!(encode("a/b c&d=é"), "a%2Fb%20c%26d%3D%C3%A9");
    }

    #[test]
    fn a_lost_answer_or_gateway_timeout_is_unknown_and_a_refusal_is_definite() {
        let resp = |status| Ok(HttpResponse { status, retry_after_secs: None, body: vec![] });
        assert!(matches!(classify(resp(201)), Called::Ok(_)));
        assert!(matches!(classify(resp(504)), Called::Unknown(_)));
        assert!(matches!(classify(resp(502)), Called::Unknown(_)));
        assert!(matches!(classify(resp(503)), Called::Definite(_)));
        assert!(matches!(classify(resp(409)), Called::Definite(_)));
        assert!(matches!(classify(Err(PortError::Unavailable("reset".into()))), Called::Unknown(_)));
    }
}
