//! shakedown: declarative chaos testing for a replicated, queue-driven stack.
//!
//! One run, as numbered steps (each a module; data flows one way, DESIGN.md "Data flow"):
//!
//! 1. `scenario`: load and validate the YAML (every error with file:line:col).
//! 2. `scenario::plan`: resolve the timeline (absolute times, hosts, phases).
//! 3. a backend (`sim`) builds the `stack`, drives the `workload` and injects the faults.
//! 4. `history`: every operation recorded, written to `history.jsonl` first.
//! 5. `check`: each checker reads only the history and the final state.
//! 6. `report`: JSON, HTML and JUnit from the check results.
#![warn(missing_docs)]

pub mod check;
pub mod cli;
#[cfg(feature = "containers")]
pub mod compose;
#[cfg(feature = "containers")]
pub mod containers;
pub mod exit;
pub mod explore;
pub mod faults;
pub mod history;
#[cfg(feature = "real")]
pub mod real;
pub mod report;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod sim;
pub mod stack;
pub mod workload;
