//! The fault vocabulary and the resolved timeline, shared by both backends.
//!
//! `scenario` turns each written [`FaultSpec`](crate::scenario::model::FaultSpec) into a
//! [`PlannedFault`]: absolute start and end, hosts expanded from groups, exactly one
//! [`FaultKind`]. Backends apply a plan; they never read the YAML types. Every fault kind has an
//! undo (its end), and a backend heals every fault still active when a run ends or aborts.

mod plan;
mod record;

pub use plan::{FaultEffect, FaultKind, PhaseWindow, Plan, PlannedFault, plan};
pub use record::{ops_failed_count, publishes_rejected_count, record_event};
