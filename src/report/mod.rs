//! The outputs of a run: `report.json` (the versioned [`Report`]), and the sinks that render it —
//! a self-contained `report.html` and `junit.xml` — and the pages and lines that span runs: the
//! console line (`console`), the index of a `make chaos` run (`index`) and the comparison page. Sinks read only the `Report`; none of them
//! computes a verdict.

mod build;
mod compare;
mod console;
mod html;
mod index;
mod junit;
mod model;
mod svg;
pub mod timeline;
mod write;

pub use write::{OutputDir, WriteError};

/// Per-op per-phase figures and evaluated SLO thresholds are computed by `check::slo`; the report
/// embeds them as they are.
pub use crate::check::{LatencyRow, SloEntry};
pub use build::{Inputs, build, describe, replay_command};
pub use compare::render_comparison;
pub use console::{Word, summary_line};
pub use html::render_html;
pub use index::{Exploration, IndexEntry, find_explorations, render_index};
pub use junit::{escape, render_junit};
pub use model::{
    CheckEntry, FaultEntry, GeneratorFacts, PhaseEntry, Report, RunFacts, SCHEMA, SCHEMAS_READ, ScenarioInfo,
    StackSource, VerdictInfo,
};
