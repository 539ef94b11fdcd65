//! The outputs of a run: `report.json` (the versioned [`Report`]), and the sinks that render it —
//! a self-contained `report.html` and `junit.xml`. Sinks read only the `Report`; none of them
//! computes a verdict.

mod build;
mod compare;
mod html;
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
pub use compare::{IndexEntry, render_comparison, render_index, summary_line};
pub use html::render_html;
pub use junit::{escape, render_junit};
pub use model::{
    CheckEntry, FaultEntry, GeneratorFacts, PhaseEntry, Report, RunFacts, SCHEMA, SCHEMAS_READ, ScenarioInfo, StackSource,
    VerdictInfo,
};
