//! Faults: the one lifecycle every backend drives its faults through.
//!
//! `scenario` turns each written [`FaultSpec`](crate::scenario::model::FaultSpec) into a
//! [`PlannedFault`] (`scenario/plan.rs`, re-exported here): absolute start and end, hosts
//! expanded from groups, exactly one [`FaultKind`]. Backends apply a plan; they never read the
//! YAML types.
//!
//! The decisions — when a fault is applied and reverted, that every fault still in force is
//! healed when the run's duration is up (before the drain), what the history records, how each
//! [`FaultEffect`] field is computed — live here once. A backend supplies only an *actuator*:
//! [`Actuator`] (async, for real stacks, driven by [`drive`]) or [`SyncActuator`] (the
//! simulation, driven by [`Lifecycle::advance`] between two steps of its clock).
//!
//! # The actuator contract
//!
//! - `targets(fault)`: the hosts the fault hits, resolved when it starts — the built-in stack
//!   answers the plan's expanded hosts; a target that is a *role* resolves to whoever holds it
//!   at that moment. An empty list means the fault is vacuous: it is recorded (`fault_start` /
//!   `fault_stop` with no hosts and a zero effect) but never applied, and is not an error. An
//!   error ends the run (exit 255) after every fault in force is reverted.
//! - `apply(fault, hosts)`: put the fault in force. It may take seconds (a restore): the driver
//!   runs each fault on its own task, so it delays no other fault. `fault_start` is recorded,
//!   with `hosts`, as application begins. On error the fault may be partly applied: `revert`
//!   is called at once, then the run ends.
//! - `revert(fault, hosts)`: undo `apply`, also a partial one, tolerating what is already gone.
//!   Called at the fault's end, or when the run's duration is up, or when another fault failed.
//!   `fault_stop` is recorded when it returns. Instant actions (`restore`, `failback`) revert
//!   nothing.
//! - `counters(fault, hosts)`: the backend's raw [`Counters`] over what the fault touches
//!   (connections reset or refused; messages dropped or held). Read just before `apply` and
//!   just before `revert`; each only needs to grow, the lifecycle takes the difference. A
//!   counter a backend cannot read is 0.
//!
//! Match on [`FaultKind`] exhaustively (no `_` arm) in an actuator: a new kind then fails to
//! compile where it needs a decision. A kind an actuator cannot apply is refused by
//! `run::Backend::check` before the run, not in `apply`.
//!
//! # Each effect field, defined once
//!
//! | field | what it counts | computed |
//! |---|---|---|
//! | `connections_reset_count` | the actuator's connections-reset counter, before `apply` → before `revert` | [`Lifecycle::end`], in `fault_stop` |
//! | `messages_held_count` | the actuator's messages-held counter, the same span | [`Lifecycle::end`], in `fault_stop` |
//! | `ops_failed_count` | client ops invoked in the fault's window that did not complete `ok` | [`complete_effects`], after the drain |
//! | `publishes_rejected_count` | client ops invoked in the window that failed with `queue full` | [`complete_effects`], after the drain |
//! | `writes_lost_count` | lost acknowledged writes this fault answers for | [`attribute_lost_writes`], after the checks |
//!
//! | file | owns |
//! |---|---|
//! | `lifecycle.rs` | the state machine: when each fault starts and stops, its history events, counter readings; the sync actuator |
//! | `drive.rs` | the async actuator trait and the driver that runs every fault's life concurrently |
//! | `effect.rs` | how each effect field is computed; fault events in the history |
//! | `lost.rs` | charging each lost acknowledged write to the fault that explains it |

mod drive;
mod effect;
mod lifecycle;
mod lost;

pub use crate::scenario::plan::{FaultKind, PhaseWindow, Plan, PlannedFault, plan};
pub use drive::{Actuator, drive};
pub use effect::{Counters, complete_effects, counted, ops_failed_count, publishes_rejected_count};
pub use lifecycle::{Lifecycle, SyncActuator};
pub use lost::{attribute_lost_writes, culprit};

pub use crate::history::FaultEffect;
