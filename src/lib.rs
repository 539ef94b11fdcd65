//! shakedown: declarative chaos testing for a replicated, queue-driven stack.
//!
//! One run, as numbered steps (each a module; data flows one way, DESIGN.md "Data flow"; the
//! steps in code are `run.rs`):
//!
//! 1. `scenario`: load and validate the YAML (every error with file:line:col), and resolve the
//!    timeline (`scenario::plan`: absolute times, hosts, phases).
//! 2. a backend (`sim`, or `containers` with `--features containers`) builds the `stack`,
//!    drives the `workload` and drives the faults through their one lifecycle (`faults`);
//!    `real` holds the real adapters of the stack's ports.
//! 3. `history`: every operation recorded, written to `history.jsonl` first.
//! 4. `check`: each checker reads only the history and the final state.
//! 5. `report`: JSON, HTML and JUnit from the check results.
//!
//! Around it: `explore` (seed campaigns, swarm schedules, shrinking), `cli` (the command line:
//! arguments in, library calls, exit codes out), `exit` (the exit codes), `seed` (every random
//! stream derived from the scenario seed).
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
