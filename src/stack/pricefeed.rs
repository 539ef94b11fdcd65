//! The price feed: a stand-in for CoinGecko's `GET /simple/price?ids=..&vs_currencies=usd`,
//! answering `{"bitcoin":{"usd":43250.12},...}` from `fixtures/prices.json` (embedded, so the
//! binary needs no files). Unknown ids and currencies are left out of the answer, as CoinGecko
//! does.
//!
//! A [`PricefeedControl`] shared with the backend switches outages on and off (the
//! `pricefeed_outage` fault): `errors` answers 503, `slow` answers correctly after a delay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::wire;
use crate::scenario::model::OutageMode;

/// The embedded price table: coin id → currency → price.
const PRICES_JSON: &str = include_str!("../../fixtures/prices.json");

/// What the price feed is doing now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outage {
    /// Answering normally.
    #[default]
    None,
    /// Every request answers 503.
    Errors,
    /// Every request answers correctly, this late.
    Slow(Duration),
}

impl Outage {
    /// The outage a `pricefeed_outage` fault asks for (`delay` is used only when slow).
    pub fn from_fault(mode: OutageMode, delay: Duration) -> Outage {
        match mode {
            OutageMode::Errors => Outage::Errors,
            OutageMode::Slow => Outage::Slow(delay),
        }
    }
}

/// The outage switch the backend flips. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct PricefeedControl {
    outage: Arc<Mutex<Outage>>,
}

impl PricefeedControl {
    /// Set the current outage (`Outage::None` ends it).
    pub fn set(&self, outage: Outage) {
        *self.outage.lock().expect("pricefeed control poisoned") = outage;
    }

    /// The current outage.
    pub fn get(&self) -> Outage {
        *self.outage.lock().expect("pricefeed control poisoned")
    }
}

/// The price feed's state: the price table and the outage switch.
#[derive(Clone, Debug)]
pub struct PricefeedState {
    prices: Arc<BTreeMap<String, BTreeMap<String, f64>>>,
    control: PricefeedControl,
}

impl PricefeedState {
    /// The embedded fixture prices, with `control` as the outage switch.
    pub fn new(control: PricefeedControl) -> PricefeedState {
        let prices = serde_json::from_str(PRICES_JSON).expect("fixtures/prices.json is valid");
        PricefeedState { prices: Arc::new(prices), control }
    }

    /// The coin ids the feed knows, in order.
    pub fn coins(&self) -> Vec<String> {
        self.prices.keys().cloned().collect()
    }
}

/// The price feed's routes: `GET /simple/price`, `GET /health`.
pub fn router(state: PricefeedState) -> Router {
    Router::new()
        .route("/simple/price", get(simple_price))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
}

#[derive(Deserialize)]
struct PriceQuery {
    #[serde(default)]
    ids: String,
    #[serde(default)]
    vs_currencies: String,
}

async fn simple_price(State(state): State<PricefeedState>, Query(query): Query<PriceQuery>) -> Response {
    match state.control.get() {
        Outage::None => {}
        Outage::Errors => return wire::error(StatusCode::SERVICE_UNAVAILABLE, "price feed outage"),
        Outage::Slow(delay) => tokio::time::sleep(delay).await,
    }
    let mut answer = Map::new();
    for id in query.ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(quotes) = state.prices.get(id) else { continue };
        let mut row = Map::new();
        for currency in query.vs_currencies.split(',').map(str::trim) {
            if let Some(price) = quotes.get(currency) {
                row.insert(currency.to_string(), Value::from(*price));
            }
        }
        answer.insert(id.to_string(), Value::Object(row));
    }
    axum::Json(Value::Object(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::testkit::{body_json, json_request, oneshot};
    use serde_json::json;

    const PATH: &str = "/simple/price?ids=bitcoin,ethereum,nosuchcoin&vs_currencies=usd,eur";

    #[tokio::test(start_paused = true)]
    async fn answers_coingecko_shape_and_obeys_the_outage_switch() {
        let control = PricefeedControl::default();
        let state = PricefeedState::new(control.clone());
        assert!(state.coins().len() >= 6);
        let app = router(state);
        let resp = oneshot(app.clone(), json_request(http::Method::GET, PATH, None)).await;
        assert_eq!(resp.status, 200);
        assert_eq!(body_json(&resp), json!({"bitcoin": {"usd": 43250.12}, "ethereum": {"usd": 2287.45}}));
        control.set(Outage::from_fault(OutageMode::Errors, Duration::ZERO));
        assert_eq!(oneshot(app.clone(), json_request(http::Method::GET, PATH, None)).await.status, 503);
        control.set(Outage::from_fault(OutageMode::Slow, Duration::from_secs(2)));
        let started = tokio::time::Instant::now();
        assert_eq!(oneshot(app.clone(), json_request(http::Method::GET, PATH, None)).await.status, 200);
        assert!(started.elapsed() >= Duration::from_secs(2));
    }
}
