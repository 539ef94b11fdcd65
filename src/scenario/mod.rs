//! The scenario language: types, units (`250ms`, `200/s`, `99.9%`), loading, validation and
//! the JSON Schema.
//!
//! Loading runs in passes, each with its own type (STYLE.md 16): YAML text → `model::Scenario`
//! (shape errors, with file:line:col) → validated (semantic errors, all of them at once) →
//! `faults::Plan` (absolute times, expanded hosts, phases). Later code never sees unvalidated
//! data.

pub mod model;
pub mod units;

pub use model::Scenario;
