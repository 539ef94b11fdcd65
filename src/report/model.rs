//! `report.json`: the versioned result of one run (`shakedown.report/v3`), the single source every
//! other sink (HTML, JUnit, the console line) renders from.
//!
//! Contract (DESIGN.md): everything that depends on the wall clock lives under `run`; for a `sim`
//! run the rest of the file is byte-identical for the same seed. Readers reject unknown fields,
//! so adding a field means bumping [`SCHEMA`].

use serde::{Deserialize, Serialize};

use crate::check::{LatencyRow, SloEntry, Status};
use crate::faults::FaultEffect;
use crate::scenario::model::{Expectation, Phase};

use super::timeline::Timeline;

/// The schema tag of this version of the format. v2 added `hosts`; v3 `scenario.stack`.
pub const SCHEMA: &str = "shakedown.report/v3";
/// Earlier versions, still read (a v1 `hosts` reads as empty: not recorded; a v1 or v2
/// `scenario.stack` as absent: the built-in stack).
pub const SCHEMAS_READ: [&str; 3] = [SCHEMA, "shakedown.report/v2", "shakedown.report/v1"];

/// The stack a compose scenario tested (absent: the built-in stack).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSource {
    /// `compose`.
    pub kind: String,
    /// The compose file, as the scenario's directory and `stack.compose` make its path.
    pub file: String,
    /// SHA-256 of the compose file's text, hex.
    pub sha256: String,
}

/// Which scenario ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInfo {
    /// `name:` from the file.
    pub name: String,
    /// `description:` from the file.
    pub description: String,
    /// The file as given on the command line.
    pub file: String,
    /// SHA-256 of the file's text (hex), to tell edited scenarios apart.
    pub sha256: String,
    /// The `--set` overrides applied, in order.
    pub overrides: Vec<String>,
    /// A user's compose stack, when the scenario tests one instead of the built-in stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackSource>,
}

/// The overall outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictInfo {
    /// pass / fail / unknown, after applying `expect`.
    pub status: Status,
    /// The process exit code this verdict maps to (0, 1, 2).
    pub exit_code: u8,
    /// One sentence: what a reviewer needs to know first.
    pub summary: String,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckEntry {
    /// `durability`, `saga`, …
    pub name: String,
    /// What the checker concluded.
    pub status: Status,
    /// What the scenario expected (`fail` for a bug demonstration).
    pub expected: Expectation,
    /// Whether the outcome met the expectation.
    pub as_expected: bool,
    /// One line with the key figures.
    pub summary: String,
    /// Checker-specific figures and evidence.
    pub details: serde_json::Value,
}

/// One fault as it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    /// Position in the scenario's `faults` list.
    pub index: usize,
    /// `crash`, `partition`, …
    pub kind: String,
    /// A human description (`crash pg-primary, restart after 15s`).
    pub description: String,
    /// The hosts it hit.
    pub hosts: Vec<String>,
    /// Start, ms since the start of the run.
    pub start_ms: u64,
    /// End (restart/heal), ms, or `None` when it lasted to the end.
    pub end_ms: Option<u64>,
    /// What it actually hit.
    pub effect: FaultEffect,
    /// True when it hit nothing: the scenario may not test what it claims.
    pub vacuous: bool,
}

/// One window of a phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseEntry {
    /// Which phase.
    pub phase: Phase,
    /// Start, ms.
    pub start_ms: u64,
    /// End (exclusive), ms.
    pub end_ms: u64,
}

/// Wall-clock facts: the only part of a report that differs between two runs of one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFacts {
    /// Wall time the run took, ms.
    pub wall_ms: u64,
    /// Simulated (or real) time covered, ms, including the drain after load stops.
    pub simulated_ms: u64,
    /// `simulated_ms / wall_ms`.
    pub speedup: f64,
    /// shakedown's version.
    pub version: String,
    /// Containers only: from images present to every service healthy, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<u64>,
}

/// The complete report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Which scenario ran.
    pub scenario: ScenarioInfo,
    /// The seed every random choice derived from.
    pub seed: u64,
    /// `sim` (or `containers`).
    pub backend: String,
    /// The hosts the run started, in topology order (the client first): only those the
    /// scenario's ops and faults use. Empty in a v1 report.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The overall outcome.
    pub verdict: VerdictInfo,
    /// One entry per configured check, in report order.
    pub checks: Vec<CheckEntry>,
    /// Every SLO threshold, evaluated.
    pub slo: Vec<SloEntry>,
    /// The fault timeline with what each fault hit.
    pub faults: Vec<FaultEntry>,
    /// The phase windows.
    pub phases: Vec<PhaseEntry>,
    /// Per-op (and `any`) per-phase latency and outcome figures.
    pub latency: Vec<LatencyRow>,
    /// Throughput, errors and latency per time bucket.
    pub timeline: Timeline,
    /// How far the load generator fell behind its schedule.
    pub generator: GeneratorFacts,
    /// The command that reproduces this run exactly.
    pub replay: String,
    /// Wall-clock facts (the only part that differs between runs of one seed).
    pub run: RunFacts,
}

/// The load generator's own figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorFacts {
    /// Ops in the schedule.
    pub scheduled_count: u64,
    /// Ops actually sent.
    pub sent_count: u64,
    /// Ops dropped because every session was busy (`processes_max` reached).
    pub dropped_count: u64,
    /// Largest delay between an op's intended start and its send, ms.
    pub lag_ms_max: u64,
    /// Client sessions used.
    pub processes_count: u64,
}
