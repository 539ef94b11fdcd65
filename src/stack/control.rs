//! What a backend outside the process may switch in a running service, and the JSON it sends.
//!
//! The simulation flips the fault switches in memory (`sim/faults.rs`:
//! `PricefeedControl::set(Outage::from_fault(..))`, `WorkerControl::set(WorkerMode::from_fault(..))`).
//! A service run by `shakedown serve` in its own container cannot be reached that way, so it
//! takes the same switch over HTTP:
//!
//! | service | request | body | sets |
//! |---|---|---|---|
//! | `pricefeed` | `POST` [`OUTAGE_PATH`] | [`OutageRequest`]: `{"mode": "none" \| "errors" \| "slow", "delay_ms": N}` | its `PricefeedControl` |
//! | `worker` | `POST` [`WORKER_MODE_PATH`] | [`WorkerModeRequest`]: `{"mode": "running" \| "paused" \| "slow", "slow_by_ms": N}` | its `WorkerControl` |
//! | `watchdog` | `GET` [`WATCHDOG_STATE_PATH`] | none | answers its `WatchdogView` |
//! | `watchdog` | `POST` [`WATCHDOG_HOLD_PATH`] | none | holds it (`WatchdogState::hold`) |
//! | `watchdog` | `POST` [`WATCHDOG_RESET_PATH`] | [`WatchdogResetRequest`]: `{"primary": "pg-primary", "switchover": false}` | `WatchdogState::reset` |
//!
//! The harness builds a body from the very value the simulation would set
//! ([`OutageRequest::from_outage`], [`WorkerModeRequest::from_mode`]), and the service turns it
//! back ([`OutageRequest::to_outage`], [`WorkerModeRequest::to_mode`]): both backends apply the
//! same switch. Durations travel as whole milliseconds; anything finer is truncated.
//!
//! This module owns the wire format and the routes that take it ([`routes`], which a real node
//! serves beside its service: `real/serve.rs`); the callers are in the containers backend.
//! Nothing authenticates these routes: they are for a run's private network, never for an
//! exposed port.

use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::host::{Controls, Service, with_health};
use super::pricefeed::{Outage, PricefeedControl};
use super::watchdog::WatchdogState;
use super::wire;
use super::worker::{WorkerControl, WorkerMode};

/// Where the price feed takes an [`OutageRequest`].
pub const OUTAGE_PATH: &str = "/control/outage";

/// Where a worker takes a [`WorkerModeRequest`].
pub const WORKER_MODE_PATH: &str = "/control/mode";

/// Where the watchdog takes a [`WatchdogResetRequest`] (containers: after a restore or a
/// failback).
pub const WATCHDOG_RESET_PATH: &str = "/control/reset";

/// Where the watchdog tells what it believes: `GET`, a JSON `WatchdogView` (who is primary, the
/// standby as last seen healthy, fenced nodes, counts) — e.g. whether it has seen a standby it
/// could promote yet.
pub const WATCHDOG_STATE_PATH: &str = "/control/state";

/// Where the watchdog is held (containers: while a failback stops and starts the database
/// nodes): `POST`, no body; it answers once no tick is in progress (`WatchdogState::hold`).
pub const WATCHDOG_HOLD_PATH: &str = "/control/hold";

/// The body of `POST /control/reset`: an operator rebuilt or rejoined both database nodes (a
/// restore, a failback), `primary` is the primary, nothing is fenced, and a hold is lifted
/// (`WatchdogState::reset`, which the simulation calls in memory after a restore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogResetRequest {
    /// The node that is primary now.
    pub primary: super::ports::DbNode,
    /// Whether it became primary in a planned switchover (counted as one). Default false.
    #[serde(default)]
    pub switchover: bool,
}

/// The body of `POST /control/outage`: the price feed's [`Outage`] to set.
///
/// `{"mode": "slow", "delay_ms": 2000}`; `delay_ms` defaults to 0 and is ignored unless the mode
/// is `slow`. Unknown fields are rejected, so a misspelt `delay` is an error, not a zero delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageRequest {
    /// `none` ends an outage, `errors` answers 503, `slow` answers correctly after `delay_ms`.
    pub mode: OutageKind,
    /// For `slow`: how late each answer is, in milliseconds. Default 0.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The `mode` of an [`OutageRequest`], one per [`Outage`] variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// [`Outage::None`].
    None,
    /// [`Outage::Errors`].
    Errors,
    /// [`Outage::Slow`].
    Slow,
}

impl OutageRequest {
    /// The body that sets `outage` (e.g. `Outage::from_fault(..)`, as the simulation applies it).
    pub fn from_outage(outage: Outage) -> OutageRequest {
        match outage {
            Outage::None => OutageRequest { mode: OutageKind::None, delay_ms: 0 },
            Outage::Errors => OutageRequest { mode: OutageKind::Errors, delay_ms: 0 },
            Outage::Slow(delay) => OutageRequest { mode: OutageKind::Slow, delay_ms: millis(delay) },
        }
    }

    /// The outage this body asks for.
    pub fn to_outage(&self) -> Outage {
        match self.mode {
            OutageKind::None => Outage::None,
            OutageKind::Errors => Outage::Errors,
            OutageKind::Slow => Outage::Slow(Duration::from_millis(self.delay_ms)),
        }
    }
}

/// The body of `POST /control/mode`: a worker's [`WorkerMode`] to set.
///
/// `{"mode": "slow", "slow_by_ms": 100}`; `slow_by_ms` defaults to 0 and is ignored unless the
/// mode is `slow`. Unknown fields are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerModeRequest {
    /// `running` consumes normally, `paused` takes nothing new, `slow` takes `slow_by_ms` longer
    /// per message.
    pub mode: WorkerModeKind,
    /// For `slow`: the extra time per message, in milliseconds. Default 0.
    #[serde(default)]
    pub slow_by_ms: u64,
}

/// The `mode` of a [`WorkerModeRequest`], one per [`WorkerMode`] variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerModeKind {
    /// [`WorkerMode::Running`].
    Running,
    /// [`WorkerMode::Paused`].
    Paused,
    /// [`WorkerMode::Slow`].
    Slow,
}

impl WorkerModeRequest {
    /// The body that sets `mode` (e.g. `WorkerMode::from_fault(..)`, as the simulation applies it).
    pub fn from_mode(mode: WorkerMode) -> WorkerModeRequest {
        match mode {
            WorkerMode::Running => WorkerModeRequest { mode: WorkerModeKind::Running, slow_by_ms: 0 },
            WorkerMode::Paused => WorkerModeRequest { mode: WorkerModeKind::Paused, slow_by_ms: 0 },
            WorkerMode::Slow(slow_by) => {
                WorkerModeRequest { mode: WorkerModeKind::Slow, slow_by_ms: millis(slow_by) }
            }
        }
    }

    /// The worker mode this body asks for.
    pub fn to_mode(&self) -> WorkerMode {
        match self.mode {
            WorkerModeKind::Running => WorkerMode::Running,
            WorkerModeKind::Paused => WorkerMode::Paused,
            WorkerModeKind::Slow => WorkerMode::Slow(Duration::from_millis(self.slow_by_ms)),
        }
    }
}

/// The control routes of `service` over `controls` (the table above), plus `GET /health` for
/// the services that have no router of their own (worker, watchdog); none for the others.
pub fn routes(service: Service, controls: &Controls) -> Router {
    match service {
        Service::Pricefeed => {
            Router::new().route(OUTAGE_PATH, post(set_outage)).with_state(controls.pricefeed.clone())
        }
        Service::Worker => with_health(
            Router::new().route(WORKER_MODE_PATH, post(set_worker_mode)).with_state(controls.worker.clone()),
        ),
        Service::Watchdog => with_health(
            Router::new()
                .route(WATCHDOG_RESET_PATH, post(reset_watchdog))
                .route(WATCHDOG_HOLD_PATH, post(hold_watchdog))
                .route(
                    WATCHDOG_STATE_PATH,
                    get(|State(state): State<WatchdogState>| async move { Json(state.view()) }),
                )
                .with_state(controls.watchdog.clone()),
        ),
        Service::Api | Service::Inventory | Service::OrderSvc | Service::Reports | Service::Balancer => {
            Router::new()
        }
    }
}

/// Set the price feed's outage; answers the outage now set, as an [`OutageRequest`].
async fn set_outage(
    State(control): State<PricefeedControl>,
    body: Result<Json<OutageRequest>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(request)) => {
            let outage = request.to_outage();
            control.set(outage);
            tracing::info!(?outage, "price feed outage set");
            Json(OutageRequest::from_outage(outage)).into_response()
        }
        Err(rejection) => wire::error(rejection.status(), rejection.body_text()),
    }
}

/// Set the worker's mode; answers the mode now set, as a [`WorkerModeRequest`].
async fn set_worker_mode(
    State(control): State<WorkerControl>,
    body: Result<Json<WorkerModeRequest>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(request)) => {
            let mode = request.to_mode();
            control.set(mode);
            tracing::info!(?mode, "worker mode set");
            Json(WorkerModeRequest::from_mode(mode)).into_response()
        }
        Err(rejection) => wire::error(rejection.status(), rejection.body_text()),
    }
}

async fn reset_watchdog(
    State(state): State<WatchdogState>,
    body: Result<Json<WatchdogResetRequest>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(request)) => {
            state.reset(request.primary, request.switchover);
            tracing::info!(primary = request.primary.host(), request.switchover, "watchdog reset");
            Json(request).into_response()
        }
        Err(rejection) => wire::error(rejection.status(), rejection.body_text()),
    }
}

async fn hold_watchdog(State(state): State<WatchdogState>) -> Response {
    state.hold().await;
    tracing::info!("watchdog held: no probe, no action until reset");
    Json(serde_json::json!({ "held": true })).into_response()
}

/// Whole milliseconds, saturating (a delay past `u64::MAX` ms is already "forever").
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::scenario::model::{ConsumerMode, OutageMode};
    use crate::stack::testkit::{body_json, json_request, oneshot};

    /// Goal: the harness's body sets exactly what the simulation would. Method: every outage
    /// variant (including the ones `Outage::from_fault` builds) → request → JSON text → request
    /// → outage, and the same again.
    #[test]
    fn every_outage_round_trips_through_json() {
        let outages = [
            Outage::None,
            Outage::Errors,
            Outage::Slow(Duration::from_millis(250)),
            Outage::from_fault(OutageMode::Errors, Duration::from_secs(2)),
            Outage::from_fault(OutageMode::Slow, Duration::from_secs(2)),
        ];
        for outage in outages {
            let json = serde_json::to_string(&OutageRequest::from_outage(outage)).unwrap();
            let request: OutageRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(request.to_outage(), outage, "{json}");
        }
        let json = serde_json::to_value(OutageRequest::from_outage(Outage::Slow(Duration::from_secs(2))));
        assert_eq!(json.unwrap(), serde_json::json!({"mode": "slow", "delay_ms": 2000}));
    }

    /// As above, for every worker mode.
    #[test]
    fn every_worker_mode_round_trips_through_json() {
        let modes = [
            WorkerMode::Running,
            WorkerMode::Paused,
            WorkerMode::Slow(Duration::from_millis(100)),
            WorkerMode::from_fault(ConsumerMode::Pause, Duration::from_millis(100)),
            WorkerMode::from_fault(ConsumerMode::Slow, Duration::from_millis(100)),
        ];
        for mode in modes {
            let json = serde_json::to_string(&WorkerModeRequest::from_mode(mode)).unwrap();
            let request: WorkerModeRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(request.to_mode(), mode, "{json}");
        }
        let json = serde_json::to_value(WorkerModeRequest::from_mode(WorkerMode::Paused));
        assert_eq!(json.unwrap(), serde_json::json!({"mode": "paused", "slow_by_ms": 0}));
    }

    /// The optional durations default to 0; a bad body (unknown field, unknown mode, no mode,
    /// a duration as text, another service's field) is an error.
    #[test]
    fn defaults_apply_and_bad_bodies_are_errors() {
        let outage: OutageRequest = serde_json::from_str(r#"{"mode": "errors"}"#).unwrap();
        assert_eq!(outage.to_outage(), Outage::Errors);
        let mode: WorkerModeRequest = serde_json::from_str(r#"{"mode": "slow"}"#).unwrap();
        assert_eq!(mode.to_mode(), WorkerMode::Slow(Duration::ZERO));
        for bad in [
            r#"{"mode": "slow", "delay": 5}"#,
            r#"{"mode": "down"}"#,
            r#"{"delay_ms": 5}"#,
            r#"{"mode": "slow", "delay_ms": "5ms"}"#,
            r#"{"mode": "none", "slow_by_ms": 5}"#,
        ] {
            assert!(serde_json::from_str::<OutageRequest>(bad).is_err(), "{bad}");
        }
        for bad in [r#"{"mode": "pause"}"#, r#"{"mode": "slow", "delay_ms": 5}"#, "{}"] {
            assert!(serde_json::from_str::<WorkerModeRequest>(bad).is_err(), "{bad}");
        }
    }

    /// The price feed's router with its control routes, as a real node serves it.
    fn pricefeed_app(control: PricefeedControl) -> Router {
        let controls = Controls { pricefeed: control.clone(), ..Controls::default() };
        let feed = super::super::pricefeed::router(super::super::pricefeed::PricefeedState::new(control));
        feed.merge(routes(Service::Pricefeed, &controls))
    }

    const PRICE: &str = "/simple/price?ids=bitcoin&vs_currencies=usd";

    /// Goal: the containers backend can start and end a price-feed outage from outside.
    /// Method: POST the switch to the price feed's routes, then GET a price.
    #[tokio::test]
    async fn the_pricefeed_outage_is_switched_over_http() {
        let control = PricefeedControl::default();
        let app = pricefeed_app(control.clone());
        let get_price = || oneshot(app.clone(), json_request(Method::GET, PRICE, None));
        let set = |body| oneshot(app.clone(), json_request(Method::POST, OUTAGE_PATH, Some(body)));
        assert_eq!(get_price().await.status, 200);
        let resp = set(json!({"mode": "errors"})).await;
        assert_eq!((resp.status, body_json(&resp)), (200, json!({"mode": "errors", "delay_ms": 0})));
        assert_eq!(control.get(), Outage::Errors);
        assert_eq!(get_price().await.status, 503);
        assert_eq!(set(json!({"mode": "none"})).await.status, 200);
        assert_eq!(get_price().await.status, 200);
        let resp = set(json!({"mode": "slow", "delay_ms": 1500})).await;
        assert_eq!(body_json(&resp), json!({"mode": "slow", "delay_ms": 1500}));
        assert_eq!(control.get(), Outage::Slow(Duration::from_millis(1500)));
        let health = oneshot(app.clone(), json_request(Method::GET, "/health", None)).await;
        assert_eq!(health.status, 200);
    }

    /// A bad body answers 4xx with a message naming the problem and leaves the switch alone.
    #[tokio::test]
    async fn a_bad_control_body_is_refused_with_a_message() {
        let control = PricefeedControl::default();
        let app = pricefeed_app(control.clone());
        let body = json!({"mode": "errors", "delay": 5});
        let resp = oneshot(app.clone(), json_request(Method::POST, OUTAGE_PATH, Some(body))).await;
        assert_eq!(resp.status, 422);
        let message = body_json(&resp)["error"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("unknown field `delay`"), "{message}");
        let mut request = json_request(Method::POST, OUTAGE_PATH, None);
        request.body = Some(b"{not json".to_vec());
        assert_eq!(oneshot(app, request).await.status, 400);
        assert_eq!(control.get(), Outage::None);
    }

    /// Goal: the containers backend can pause and resume a worker from outside. Method: POST
    /// the mode to the worker's control routes and read it back through its `WorkerControl`.
    #[tokio::test]
    async fn the_worker_mode_is_switched_over_http() {
        let controls = Controls::default();
        let app = routes(Service::Worker, &controls);
        let set = |body| oneshot(app.clone(), json_request(Method::POST, WORKER_MODE_PATH, Some(body)));
        let resp = set(json!({"mode": "paused"})).await;
        assert_eq!((resp.status, body_json(&resp)), (200, json!({"mode": "paused", "slow_by_ms": 0})));
        assert_eq!(controls.worker.get(), WorkerMode::Paused);
        assert_eq!(set(json!({"mode": "slow", "slow_by_ms": 100})).await.status, 200);
        assert_eq!(controls.worker.get(), WorkerMode::Slow(Duration::from_millis(100)));
        assert_eq!(set(json!({"mode": "pause"})).await.status, 422);
        assert_eq!(set(json!({"mode": "running"})).await.status, 200);
        assert_eq!(controls.worker.get(), WorkerMode::Running);
        let health = oneshot(app, json_request(Method::GET, "/health", None)).await;
        assert_eq!(health.status, 200);
    }
}
