//! The scenario language: types, units (`250ms`, `200/s`, `99.9%`), loading, validation and
//! the JSON Schema.
//!
//! Loading runs in passes, each with its own type (STYLE.md 16): YAML text → spanned tree and
//! JSON value (`tree`, syntax errors) → `--set` overrides → `model::Scenario` (shape errors, each
//! section on its own so all are reported) → `validate` (semantic errors, all at once; after
//! shape errors, on what `salvage` could still read; `coherence` judges the scenario as a whole) →
//! `plan::Plan` (absolute times, expanded hosts, phases; the backends run it). `topology` names
//! the stack's hosts and groups, which faults and validation resolve names against. Later code
//! never sees unvalidated
//! data. Every error is a [`Diagnostic`] printed as `FILE:LINE:COL: message`.

mod coherence;
mod compact;
mod compose_env;
pub mod compose_file;
pub mod declared;
mod diagnostic;
mod load;
pub mod model;
pub mod plan;
mod salvage;
mod schema;
pub mod topology;
mod tree;
mod tuning;
pub mod units;
mod validate;
pub mod validate_declared;

pub(crate) use coherence::{ops_needed, reached};
pub use compact::to_compact_yaml;
pub use diagnostic::{Diagnostic, Diagnostics, Position};
#[cfg(feature = "containers")]
pub(crate) use diagnostic::{did_you_mean, one_of};
pub use load::{Loaded, compose_path, load_file, load_str};
pub use model::Scenario;
pub use schema::json_schema;
pub(crate) use validate::configured;
#[cfg(test)]
mod tests;

/// Every shipped scenario file (`scenarios/`, `bugs/`, `regressions/`), for tests that must
/// hold for all of them.
#[cfg(test)]
pub(crate) fn shipped_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    for sub in ["bugs", "regressions"] {
        files.extend(std::fs::read_dir(dir.join(sub)).unwrap().map(|e| e.unwrap().path()));
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    assert!(files.len() >= 14);
    files
}
