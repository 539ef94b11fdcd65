//! The built-in stack's tuning, as written under `stack:` — the queue, the failover watchdog and
//! the balancer's health checks — with their defaults. Part of the scenario's serde types
//! (`model.rs` re-exports them), kept apart because they only tune the services.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, Span};

/// The durable, bounded query queue.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Messages the queue holds before it rejects publishes (the gateway then answers 503).
    /// Default 500.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Unacknowledged messages a worker may hold. Default 10.
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
}

fn default_capacity() -> u32 {
    500
}
fn default_prefetch() -> u32 {
    10
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { capacity: default_capacity(), prefetch: default_prefetch() }
    }
}

/// The failover watchdog: its timing, and how much a failover may lose.
///
/// The watchdog promotes only a standby that is safe to promote, judged by the primary's own view
/// of its standby (PostgreSQL's `pg_stat_replication`) at the last probe that found it healthy.
/// With `replication: sync` or `remote_apply`, the standby must have been synchronous then
/// (Patroni's synchronous mode); with `async`, its WAL lag must have been at most `max_lag`
/// (Patroni's `maximum_lag_on_failover`). When the standby does not qualify, nobody is promoted:
/// the stack has no writer until the old primary comes back, which is then still the primary.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// How often the primary is probed. Default `500ms`.
    #[serde(default = "default_probe_every")]
    pub probe_every: Span,
    /// How long one probe may take before it counts as failed. Default `250ms`.
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout: Span,
    /// Consecutive failed probes before the replica is promoted. Default 3.
    #[serde(default = "default_failures")]
    pub failures_to_promote: u32,
    /// With `replication: async`: the most WAL a failover may throw away. A standby whose flush
    /// lag, as the primary last reported it, exceeds this is not promoted. Default `1MB`, the
    /// default of Patroni's `maximum_lag_on_failover` (1048576 bytes). Ignored with `sync` and
    /// `remote_apply`, which promote only a synchronous standby (a lag of zero acknowledged
    /// commits).
    #[serde(default = "default_max_lag")]
    pub max_lag: ByteSize,
}

fn default_probe_every() -> Span {
    Span(std::time::Duration::from_millis(500))
}
fn default_probe_timeout() -> Span {
    Span(std::time::Duration::from_millis(250))
}
fn default_failures() -> u32 {
    3
}
fn default_max_lag() -> ByteSize {
    ByteSize(1 << 20)
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            probe_every: default_probe_every(),
            probe_timeout: default_probe_timeout(),
            failures_to_promote: default_failures(),
            max_lag: default_max_lag(),
        }
    }
}

/// The balancer's active health checks.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    /// How often each replica is probed. Default `500ms`.
    #[serde(default = "default_probe_every")]
    pub health_every: Span,
    /// Consecutive failed probes before a replica is ejected. Default 2.
    #[serde(default = "default_eject_after")]
    pub eject_after: u32,
}

fn default_eject_after() -> u32 {
    2
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig { health_every: default_probe_every(), eject_after: default_eject_after() }
    }
}
