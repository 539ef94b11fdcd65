//! The fault vocabulary and the resolved timeline, shared by both backends.
//!
//! `scenario` turns each written [`FaultSpec`](crate::scenario::model::FaultSpec) into a
//! [`PlannedFault`]: absolute start and end, hosts expanded from groups, exactly one
//! [`FaultKind`]. Backends apply a plan; they never read the YAML types. Every fault kind has an
//! undo (its end), and a backend heals every fault still active when a run ends or aborts.
//!
//! | file | owns |
//! |---|---|
//! | `plan.rs` | the resolved plan, fault kinds, effects, phase windows |
//! | `record.rs` | fault events in the history; effects read from the finished history |
//! | `lost.rs` | charging each lost acknowledged write to the fault that explains it |

mod lost;
mod plan;
mod record;

pub use lost::{attribute_lost_writes, culprit};
pub use plan::{FaultEffect, FaultKind, PhaseWindow, Plan, PlannedFault, plan};
pub use record::{ops_failed_count, publishes_rejected_count, record_event};
