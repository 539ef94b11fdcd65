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
//! This module owns only the wire format; the routes live in `cli/serve.rs`, the callers in the
//! containers backend.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pricefeed::Outage;
use super::worker::WorkerMode;

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

/// Whole milliseconds, saturating (a delay past `u64::MAX` ms is already "forever").
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::{ConsumerMode, OutageMode};

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
}
