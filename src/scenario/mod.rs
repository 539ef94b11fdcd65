//! The scenario language: types, units (`250ms`, `200/s`, `99.9%`), loading, validation and
//! the JSON Schema.
//!
//! Loading runs in passes, each with its own type (STYLE.md 16): YAML text → spanned tree and
//! JSON value (`tree`, syntax errors) → `--set` overrides → `model::Scenario` (shape errors, each
//! section on its own so all are reported) → `validate` (semantic errors, all at once; after
//! shape errors, on what `salvage` could still read) →
//! `faults::Plan` (absolute times, expanded hosts, phases). Later code never sees unvalidated
//! data. Every error is a [`Diagnostic`] printed as `FILE:LINE:COL: message`.

mod compact;
mod diagnostic;
mod load;
pub mod model;
mod salvage;
mod schema;
mod tree;
pub mod units;
mod validate;

pub use compact::to_compact_yaml;
pub use diagnostic::{Diagnostic, Diagnostics, Position};
#[cfg(feature = "containers")]
pub(crate) use diagnostic::{did_you_mean, one_of};
pub use load::{Loaded, load_file, load_str};
pub use model::Scenario;
pub use schema::json_schema;
pub(crate) use validate::configured;
#[cfg(test)]
mod tests;
