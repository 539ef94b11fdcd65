//! The outputs of a run: `report.json` (the versioned [`Report`]), and the sinks that render it —
//! a self-contained `report.html` and `junit.xml`. Sinks read only the `Report`; none of them
//! computes a verdict.

mod model;
pub mod timeline;
mod write;

pub use write::{OutputDir, WriteError};

pub use model::{
    CheckEntry, FaultEntry, GeneratorFacts, LatencyRow, PhaseEntry, Report, RunFacts, SCHEMA, ScenarioInfo,
    SloEntry, VerdictInfo,
};
