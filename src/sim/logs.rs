//! Log lines stamped with simulated time. turmoil enters a `node{name=…}` span while it polls
//! each host, so every event (including spawned tasks) also names its host: one request can be
//! followed across hosts by time and name. Outside a simulation the stamp is `-`.

use std::fmt;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// A `tracing-subscriber` timer printing the simulated time, `t=  12.345678s`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimClock;

impl FormatTime for SimClock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "t={:>11.6}s", t.as_secs_f64()),
            None => write!(w, "{:>14}", "-"),
        }
    }
}
