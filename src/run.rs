//! One run, end to end — the pipeline of DESIGN.md as numbered steps:
//!
//! 1. load and validate the scenario (`scenario::load_file`), apply `--seed`;
//! 2. run it on the backend (`sim::run`), which builds the stack, drives the workload, injects
//!    the plan's faults and reads the final state;
//! 3. write `history.jsonl` — before any checker runs;
//! 4. run the checkers (`check::run_all`) and apply `expect` (`check::verdict`);
//! 5. build the `Report` and write `report.json`, `report.html`, `junit.xml`.
//!
//! Output goes to `OUT/<scenario>/<seed>/`, written into a temporary directory that is renamed
//! into place at the end, so a crashed run never leaves a half-written report behind.
//! `run_file` is the library entry point users call from their own tests.
