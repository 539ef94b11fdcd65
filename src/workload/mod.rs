//! The open-loop load generator: a seeded schedule of operations (`schedule`), and the driver
//! that issues them through the balancer and records every invocation and completion in the
//! history (`drive`).
//!
//! Open loop: an operation starts at its scheduled (intended) time whether or not earlier ones
//! have answered, and its latency is measured from that intended time, so a stalled stack shows
//! up as latency instead of as politely missing load (no coordinated omission).

mod declared;
mod drive;
mod schedule;
pub mod template;

pub use declared::{Answer, Executor, drive_declared, read_of};
pub use drive::{GeneratorStats, PROCESSES_MAX, Recorder, drive};
pub use schedule::{CATALOG, COINS, Schedule, ScheduledOp, entry_op};
