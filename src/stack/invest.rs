//! The investments API (CQRS), served on every `api-N` host.
//!
//! - `POST /invest`: ask the price feed for the coin's price (bounded by `pricefeed_timeout`),
//!   then record the investment through the writer endpoint, idempotently on the key (body
//!   `key`, or the `idempotency-key` header). 201 with the commit's LSN, 200 on a replay; 503 when
//!   the price feed fails (nothing written: definite), 504 when the store's answer is unknown.
//! - `GET /history?min_lsn=L&limit=N`: read-your-writes on demand. With `L > 0` the read waits
//!   (polling the replica's replayed LSN every `ryw_poll_every`, at most `ryw_wait_max`) until the
//!   replica has the write, and otherwise falls back to the primary; `served_by` says who answered.
//!
//! Bugs planted here: `ack_before_commit` (answer before the write), `stale_read_your_writes`
//! (answer from the replica without waiting).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::time::{Instant, sleep, timeout};

use super::api::{HistoryResponse, InvestResponse};
use super::bugs::Bugs;
use super::ports::{
    DbNode, HistoryPage, HttpClient, HttpRequest, InvestStore, Investment, Lsn, NewInvestment, PortError,
};
use super::wire;
use crate::scenario::model::StackConfig;

/// How the investments API behaves. Defaults on each field.
#[derive(Clone, Debug)]
pub struct InvestConfig {
    /// The price feed's `host:port`. Default `pricefeed:80`.
    pub pricefeed_authority: String,
    /// How long a price lookup may take. Default 500 ms.
    pub pricefeed_timeout: Duration,
    /// Upper bound on any one store call, on top of the adapter's own. Default 1 s.
    pub store_timeout: Duration,
    /// Longest a read-your-writes read waits for the replica before falling back. Default 200 ms.
    pub ryw_wait_max: Duration,
    /// How often the replica's replayed LSN is polled while waiting. Default 5 ms.
    pub ryw_poll_every: Duration,
    /// `limit` when the request gives none. Default 50.
    pub history_limit_default: u32,
    /// Largest `limit` honoured. Default 500.
    pub history_limit_max: u32,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Default for InvestConfig {
    fn default() -> Self {
        InvestConfig {
            pricefeed_authority: "pricefeed:80".into(),
            pricefeed_timeout: Duration::from_millis(500),
            store_timeout: Duration::from_secs(1),
            ryw_wait_max: Duration::from_millis(200),
            ryw_poll_every: Duration::from_millis(5),
            history_limit_default: 50,
            history_limit_max: 500,
            bugs: Bugs::default(),
        }
    }
}

impl InvestConfig {
    /// The defaults, with the stack's bug switches.
    pub fn for_stack(stack: &StackConfig) -> InvestConfig {
        InvestConfig { bugs: Bugs::from_list(&stack.bugs), ..InvestConfig::default() }
    }
}

/// The investments API's state.
#[derive(Clone)]
pub struct InvestState {
    store: Arc<dyn InvestStore>,
    http: Arc<dyn HttpClient>,
    config: Arc<InvestConfig>,
}

impl InvestState {
    /// Build from the store, the HTTP client (for the price feed) and the config.
    pub fn new(store: Arc<dyn InvestStore>, http: Arc<dyn HttpClient>, config: InvestConfig) -> InvestState {
        InvestState { store, http, config: Arc::new(config) }
    }
}

/// The routes `POST /invest` and `GET /history`.
pub fn router(state: InvestState) -> Router {
    Router::new().route("/invest", post(invest)).route("/history", get(history)).with_state(state)
}

/// `POST /invest` body; the key may instead come in the header.
#[derive(Deserialize)]
struct InvestBody {
    #[serde(default)]
    key: Option<String>,
    coin: String,
    amount_usd_cents: u64,
}

async fn invest(State(state): State<InvestState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: InvestBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => return wire::error(StatusCode::BAD_REQUEST, format!("POST /invest body: {err}")),
    };
    let Some(key) = wire::idempotency_key(body.key, &headers) else {
        return wire::error(
            StatusCode::BAD_REQUEST,
            "POST /invest needs a `key` or an idempotency-key header",
        );
    };
    let price_usd_micros = match price(&state, &body.coin).await {
        Ok(price) => price,
        Err((status, message)) => return wire::error(status, message),
    };
    let new =
        NewInvestment { key, coin: body.coin, amount_usd_cents: body.amount_usd_cents, price_usd_micros };
    if state.config.bugs.ack_before_commit {
        // Bug: answer with what we meant to write, before the write has happened.
        let answer = InvestResponse {
            id: 0,
            key: new.key.clone(),
            coin: new.coin.clone(),
            amount_usd_cents: new.amount_usd_cents,
            price_usd_micros,
            lsn: 0,
        };
        let store = state.store.clone();
        crate::stack::spawn(async move { store.record(new).await });
        return (StatusCode::CREATED, axum::Json(answer)).into_response();
    }
    match bounded(state.config.store_timeout, state.store.record(new)).await {
        Ok((row, replay)) => {
            let status = if replay { StatusCode::OK } else { StatusCode::CREATED };
            (status, axum::Json(to_response(row))).into_response()
        }
        Err(err) => wire::port_error("recording the investment", &err),
    }
}

/// The coin's USD price in micros, or the status and message to answer with.
async fn price(state: &InvestState, coin: &str) -> Result<u64, (StatusCode, String)> {
    let request = HttpRequest {
        method: http::Method::GET,
        authority: state.config.pricefeed_authority.clone(),
        path: format!("/simple/price?ids={}&vs_currencies=usd", wire::encode(coin)),
        body: None,
        headers: Vec::new(),
    };
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, format!("price feed: {why}"));
    let resp = match state.http.send(request, state.config.pricefeed_timeout).await {
        Ok(resp) if resp.status == 200 => resp,
        Ok(resp) => return Err(unavailable(format!("status {}: {}", resp.status, wire::body_text(&resp)))),
        Err(err) => return Err(unavailable(err.to_string())),
    };
    let quotes: serde_json::Value =
        serde_json::from_slice(&resp.body).map_err(|e| unavailable(format!("bad JSON: {e}")))?;
    match quotes.get(coin).and_then(|q| q.get("usd")).and_then(|p| p.as_f64()) {
        Some(usd) if usd.is_finite() && usd > 0.0 => Ok((usd * 1_000_000.0).round() as u64),
        _ => {
            Err((StatusCode::UNPROCESSABLE_ENTITY, format!("the price feed does not know the coin `{coin}`")))
        }
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    min_lsn: Lsn,
    #[serde(default)]
    limit: Option<u32>,
}

async fn history(State(state): State<InvestState>, Query(query): Query<HistoryQuery>) -> Response {
    let config = &state.config;
    let limit = query.limit.unwrap_or(config.history_limit_default).min(config.history_limit_max);
    let waited = query.min_lsn == 0
        || config.bugs.stale_read_your_writes
        || replica_caught_up(&state, query.min_lsn).await;
    let page = if waited {
        match bounded(config.store_timeout, state.store.history(DbNode::PgReplica, query.min_lsn, limit))
            .await
        {
            Ok(page) => Ok(page),
            Err(_) => from_writer(&state, query.min_lsn, limit).await,
        }
    } else {
        from_writer(&state, query.min_lsn, limit).await
    };
    match page {
        Ok(page) => axum::Json(to_history(page)).into_response(),
        Err(err) => wire::port_error("reading the history", &err),
    }
}

async fn from_writer(state: &InvestState, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
    bounded(state.config.store_timeout, state.store.history_from_writer(min_lsn, limit)).await
}

/// Wait (bounded by `ryw_wait_max`) until the replica has replayed `min_lsn`.
async fn replica_caught_up(state: &InvestState, min_lsn: Lsn) -> bool {
    let deadline = Instant::now() + state.config.ryw_wait_max;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, state.store.applied_lsn(DbNode::PgReplica)).await {
            Ok(Ok(applied)) if applied >= min_lsn => return true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
        if Instant::now() + state.config.ryw_poll_every > deadline {
            return false;
        }
        sleep(state.config.ryw_poll_every).await;
    }
}

/// Run a store call with an upper bound; running out is `Unavailable` (unknown outcome).
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    match timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(PortError::Unavailable(format!("no answer within {limit:?}"))),
    }
}

fn to_response(row: Investment) -> InvestResponse {
    InvestResponse {
        id: row.id,
        key: row.data.key,
        coin: row.data.coin,
        amount_usd_cents: row.data.amount_usd_cents,
        price_usd_micros: row.data.price_usd_micros,
        lsn: row.lsn,
    }
}

fn to_history(page: HistoryPage) -> HistoryResponse {
    HistoryResponse {
        replica_lsn: page.applied_lsn,
        served_by: page.node.host().to_string(),
        investments: page.investments.into_iter().map(to_response).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::HttpResponse;
    use crate::stack::pricefeed::{self, Outage, PricefeedControl, PricefeedState};
    use crate::stack::testkit::{MemHttp, MemInvestStore, body_json, json_request, oneshot};
    use http::Method;
    use serde_json::json;

    struct Fixture {
        store: Arc<MemInvestStore>,
        feed: PricefeedControl,
        router: Router,
    }

    fn fixture(bugs: Bugs) -> Fixture {
        let store = Arc::new(MemInvestStore::default());
        let feed = PricefeedControl::default();
        let http = Arc::new(MemHttp::default());
        http.route("pricefeed:80", pricefeed::router(PricefeedState::new(feed.clone())));
        let config = InvestConfig { bugs, ..InvestConfig::default() };
        let router = router(InvestState::new(store.clone(), http, config));
        Fixture { store, feed, router }
    }

    async fn invest(router: &Router, key: &str) -> HttpResponse {
        let body = json!({"key": key, "coin": "bitcoin", "amount_usd_cents": 1000});
        oneshot(router.clone(), json_request(Method::POST, "/invest", Some(body))).await
    }

    async fn history(router: &Router, min_lsn: u64) -> HistoryResponse {
        let resp =
            oneshot(router.clone(), json_request(Method::GET, &format!("/history?min_lsn={min_lsn}"), None))
                .await;
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        serde_json::from_slice(&resp.body).unwrap()
    }

    /// A retried key answers 200 with the stored row and writes nothing new; the key may also
    /// come in the header.
    #[tokio::test(start_paused = true)]
    async fn invest_is_idempotent_on_its_key() {
        let f = fixture(Bugs::default());
        let first = invest(&f.router, "k1").await;
        assert_eq!(first.status, 201);
        let first: InvestResponse = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(first.price_usd_micros, 43_250_120_000);
        let replay = invest(&f.router, "k1").await;
        assert_eq!(replay.status, 200);
        assert_eq!(serde_json::from_slice::<InvestResponse>(&replay.body).unwrap(), first);
        assert_eq!(f.store.rows().len(), 1);

        let mut by_header =
            json_request(Method::POST, "/invest", Some(json!({"coin": "ethereum", "amount_usd_cents": 5})));
        by_header.headers.push(("idempotency-key".into(), "k2".into()));
        let resp = oneshot(f.router.clone(), by_header).await;
        assert_eq!(resp.status, 201);
        assert_eq!(body_json(&resp)["key"], "k2");
        assert_eq!(f.store.rows().len(), 2);
    }

    /// A failing or too slow price feed answers 503 and never reaches the store.
    #[tokio::test(start_paused = true)]
    async fn price_feed_failure_is_503_and_writes_nothing() {
        let f = fixture(Bugs::default());
        f.feed.set(Outage::Errors);
        assert_eq!(invest(&f.router, "k1").await.status, 503);
        f.feed.set(Outage::Slow(Duration::from_secs(2)));
        assert_eq!(invest(&f.router, "k1").await.status, 503);
        assert_eq!(f.store.record_calls(), 0);
        f.feed.set(Outage::None);
        assert_eq!(invest(&f.router, "k1").await.status, 201);
    }

    /// An unknown store outcome is 504, a read-only node 503.
    #[tokio::test(start_paused = true)]
    async fn store_failures_map_to_unknown_and_definite() {
        let f = fixture(Bugs::default());
        f.store.fail_record(Some(PortError::Unavailable("timeout".into())));
        assert_eq!(invest(&f.router, "k1").await.status, 504);
        f.store.fail_record(Some(PortError::ReadOnly("standby".into())));
        assert_eq!(invest(&f.router, "k1").await.status, 503);
    }

    /// Bug `ack_before_commit`: the client gets 201 for a write the store never took.
    #[tokio::test(start_paused = true)]
    async fn bug_ack_before_commit_acknowledges_a_failed_write() {
        for (bugs, expected) in
            [(Bugs::default(), 504), (Bugs { ack_before_commit: true, ..Bugs::default() }, 201)]
        {
            let f = fixture(bugs);
            f.store.fail_record(Some(PortError::Unavailable("primary crashed".into())));
            assert_eq!(invest(&f.router, "k1").await.status, expected);
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(f.store.rows().is_empty());
        }
    }

    /// A read presenting an LSN the replica has not replayed waits until it has, then reads the
    /// replica.
    #[tokio::test(start_paused = true)]
    async fn history_waits_for_the_replica_to_replay_the_lsn() {
        let f = fixture(Bugs::default());
        invest(&f.router, "k1").await;
        invest(&f.router, "k2").await;
        f.store.set_replica_lsn(10);
        let store = f.store.clone();
        crate::stack::spawn(async move {
            sleep(Duration::from_millis(50)).await;
            store.set_replica_lsn(20);
        });
        let started = Instant::now();
        let page = history(&f.router, 20).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(page.served_by, "pg-replica");
        assert_eq!(page.investments.iter().map(|i| i.lsn).collect::<Vec<_>>(), [20]);
    }

    /// A replica that stays behind for `ryw_wait_max` (or is down) sends the read to the primary.
    #[tokio::test(start_paused = true)]
    async fn history_falls_back_to_the_primary() {
        let f = fixture(Bugs::default());
        invest(&f.router, "k1").await;
        invest(&f.router, "k2").await;
        f.store.set_replica_lsn(10);
        let page = history(&f.router, 20).await;
        assert_eq!(page.served_by, "pg-primary");
        assert_eq!(page.investments.len(), 1);
        assert_eq!(history(&f.router, 0).await.served_by, "pg-replica");
        f.store.set_replica_down(true);
        assert_eq!(history(&f.router, 0).await.served_by, "pg-primary");
    }

    /// Bug `stale_read_your_writes`: the lagging replica answers without the write.
    #[tokio::test(start_paused = true)]
    async fn bug_stale_read_your_writes_answers_without_the_write() {
        let f = fixture(Bugs { stale_read_your_writes: true, ..Bugs::default() });
        invest(&f.router, "k1").await;
        invest(&f.router, "k2").await;
        f.store.set_replica_lsn(10);
        let page = history(&f.router, 20).await;
        assert_eq!(page.served_by, "pg-replica");
        assert!(page.investments.is_empty(), "the write at LSN 20 is missing: a read-your-writes violation");
    }
}
