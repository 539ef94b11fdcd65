//! One run, end to end — the pipeline of DESIGN.md as numbered steps:
//!
//! 1. load and validate the scenario (`scenario::load_file`), apply `--seed`;
//! 2. run it on the backend (`Backend::run`: `sim::Sim` or `containers::Containers`), which
//!    builds the stack, drives the workload, drives the plan's faults through `faults/` (healed
//!    before the [`DRAIN`]) and reads the final state;
//! 3. write `history.jsonl` — before any checker runs;
//! 4. run the checkers (`check::run_all`) and apply `expect` (`check::verdict`); complete each
//!    fault's effect from the history (`faults::complete_effects`) and charge each write the
//!    durability check found lost to a fault (`faults::attribute_lost_writes`), so both
//!    backends' fault effects are computed the same way;
//! 5. build the `Report` and write `report.json`, `report.html`, `junit.xml`.
//!
//! Output goes to `OUT/<scenario>/<seed>/` (`OUT/<scenario>/<seed>-<variant>/` with `--set`
//! overrides, [`run_dir`]), written into a temporary directory that is renamed
//! into place at the end, so a crashed run never leaves a half-written report behind.
//! `run_file` is the library entry point users call from their own tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::check::{Checked, FinalState, run_all, verdict};
use crate::faults::{FaultEffect, Plan, attribute_lost_writes, complete_effects};
use crate::history::History;
use crate::report::{self, OutputDir, Report, RunFacts, WriteError};
use crate::scenario::{Diagnostics, Loaded, load_file};
use crate::workload::GeneratorStats;

/// Time the stack gets after load stops, before the final state is read, for accepted queries
/// and sagas to settle — simulated on the simulation, real on containers.
pub const DRAIN: Duration = Duration::from_secs(10);

/// What a backend observed in one run: everything the checkers and the report need.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Every operation and fault event, in order.
    pub history: History,
    /// The stack's data after the run, read from the final primary.
    pub final_state: FinalState,
    /// What each planned fault hit as the backend counted it (`faults::Lifecycle::effects`),
    /// indexed by `PlannedFault::index`; the run completes it.
    pub fault_effects: Vec<FaultEffect>,
    /// The load generator's figures.
    pub generator: GeneratorStats,
    /// Simulated (or real) time covered, ms, including the drain.
    pub simulated_ms: u64,
    /// From images present to every service healthy, ms (containers; `None` on the simulation).
    pub startup_ms: Option<u64>,
}

/// Why a backend could not complete a run (a harness error, exit 255).
#[derive(Debug, thiserror::Error)]
#[error("{backend} backend: {message}")]
pub struct BackendError {
    /// Which backend.
    pub backend: &'static str,
    /// What went wrong.
    pub message: String,
}

/// A place scenarios run: it builds the stack, drives the workload, applies the plan's faults,
/// heals them, and reads the final state. The only code that knows how hosts start and fail.
pub trait Backend {
    /// `sim` or `containers`.
    fn name(&self) -> &'static str;
    /// Why this backend cannot run `loaded` (an unsupported fault, a missing engine), one line
    /// per reason; checked before anything starts, so the run fails as bad input (exit 254)
    /// rather than minutes in.
    fn check(&self, _loaded: &Loaded) -> Vec<String> {
        Vec::new()
    }
    /// Run a validated scenario with `seed`.
    fn run(&self, loaded: &Loaded, seed: u64) -> Result<Observed, BackendError>;
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// `--set` overrides, applied before validation.
    pub overrides: Vec<String>,
    /// Output root: files go to `out/<scenario>/<seed>/`.
    pub out: PathBuf,
    /// Run twice and compare histories.
    pub check_determinism: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: None,
            overrides: Vec::new(),
            out: PathBuf::from("reports"),
            check_determinism: false,
        }
    }
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The report (also written as `report.json`).
    pub report: Report,
    /// The directory holding the run's files.
    pub dir: PathBuf,
}

/// Why a run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario is invalid (exit 254).
    #[error("{0}")]
    Scenario(Diagnostics),
    /// The backend cannot run this scenario (exit 254): one reason per line.
    #[error("{backend} backend cannot run this scenario:\n  {}", reasons.join("\n  "))]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// Why, one line each.
        reasons: Vec<String>,
    },
    /// The backend failed (exit 255).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Two runs of the same seed differed (exit 255: a determinism bug in the harness).
    #[error("the two runs diverged at history line {}:\n  first:  {}\n  second: {}", .0.line, .0.first.as_deref().unwrap_or("(end)"), .0.second.as_deref().unwrap_or("(end)"))]
    Nondeterministic(Divergence),
    /// The run's files could not be written (exit 255).
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl RunError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Scenario(_) | RunError::Unsupported { .. } => crate::exit::BAD_INPUT,
            _ => crate::exit::HARNESS_ERROR,
        }
    }
}

/// Load, run on `backend`, check and report one scenario file — the library entry point users
/// call from their own tests (`shakedown::run::run_file`).
pub fn run_file(path: &Path, backend: &dyn Backend, options: &RunOptions) -> Result<RunOutcome, RunError> {
    let loaded = load_file(path, &options.overrides).map_err(RunError::Scenario)?;
    run_loaded(&loaded, backend, options)
}

/// Run an already loaded scenario.
pub fn run_loaded(
    loaded: &Loaded,
    backend: &dyn Backend,
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let seed = options.seed.unwrap_or(loaded.scenario.seed);
    let reasons = backend.check(loaded);
    if !reasons.is_empty() {
        return Err(RunError::Unsupported { backend: backend.name(), reasons });
    }
    let wall = Instant::now();
    let observed = backend.run(loaded, seed)?;
    let wall_ms = wall.elapsed().as_millis() as u64;
    if options.check_determinism {
        let again = backend.run(loaded, seed)?;
        if let Some(divergence) = first_divergence(&observed.history, &again.history) {
            return Err(RunError::Nondeterministic(divergence));
        }
    }
    let out = OutputDir::create(&run_dir(&options.out, &loaded.scenario.name, seed, &loaded.overrides))?;
    // Step 3: the history goes to disk before any checker runs.
    out.write_with("history.jsonl", |w| observed.history.write_jsonl(w))?;
    let checked = run_all(&observed.history, &observed.final_state, &loaded.plan, &loaded.scenario);
    let verdict = verdict(&checked.results, &loaded.scenario, &observed.generator);
    let fault_effects = fault_effects(&observed, &checked, &loaded.plan);
    let speedup = observed.simulated_ms as f64 / wall_ms.max(1) as f64;
    let report = report::build(report::Inputs {
        loaded,
        seed,
        backend: backend.name(),
        history: &observed.history,
        fault_effects: &fault_effects,
        generator: &observed.generator,
        checked: &checked,
        verdict: &verdict,
        run: RunFacts {
            wall_ms,
            simulated_ms: observed.simulated_ms,
            speedup: (speedup * 10.0).round() / 10.0,
            version: env!("CARGO_PKG_VERSION").into(),
            startup_ms: observed.startup_ms,
        },
    });
    let json = serde_json::to_string_pretty(&report).expect("reports serialise");
    out.write("report.json", &(json + "\n"))?;
    out.write(
        "final-state.json",
        &serde_json::to_string_pretty(&observed.final_state).expect("state serialises"),
    )?;
    if loaded.scenario.report.html {
        out.write("report.html", &report::render_html(&report))?;
    }
    if loaded.scenario.report.junit {
        out.write("junit.xml", &report::render_junit(&report))?;
    }
    let dir = out.commit()?;
    Ok(RunOutcome { report, dir })
}

/// The backend's counted fault effects, completed with what the finished history tells and
/// the lost writes each fault answers for (the same for every backend: `faults/`).
fn fault_effects(observed: &Observed, checked: &Checked, plan: &Plan) -> Vec<FaultEffect> {
    let mut effects = observed.fault_effects.clone();
    let count = plan.faults.iter().map(|f| f.index + 1).max().unwrap_or(0);
    assert_eq!(effects.len(), count, "the backend returned an effect per fault");
    complete_effects(&mut effects, plan, &observed.history);
    attribute_lost_writes(&mut effects, plan, checked.lost_writes.iter().map(|w| w.ack_ns));
    effects
}

/// The first place two histories of the same seed differ, for `--check-determinism`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based line of `history.jsonl` where they first differ.
    pub line: usize,
    /// That line in the first run (`None` if the first run's history ended earlier).
    pub first: Option<String>,
    /// That line in the second run.
    pub second: Option<String>,
}

/// Compare two runs' histories line by line; `None` when they are byte-identical.
pub fn first_divergence(first: &History, second: &History) -> Option<Divergence> {
    let render = |history: &History| -> Vec<String> {
        let mut bytes = Vec::new();
        history.write_jsonl(&mut bytes).expect("writing to memory cannot fail");
        String::from_utf8(bytes).expect("JSON is UTF-8").lines().map(str::to_owned).collect()
    };
    let (a, b) = (render(first), render(second));
    let length = a.len().max(b.len());
    (0..length).find(|&i| a.get(i) != b.get(i)).map(|i| Divergence {
        line: i + 1,
        first: a.get(i).cloned(),
        second: b.get(i).cloned(),
    })
}

/// Where a run's files go: `OUT/<scenario name>/<seed>/`, or for a variant run with `--set`
/// overrides `OUT/<scenario name>/<seed>-<variant>/` ([`variant`]), so a variant never replaces
/// the plain run's reports, nor another variant's.
pub fn run_dir(out: &Path, scenario_name: &str, seed: u64, overrides: &[String]) -> PathBuf {
    let leaf = match variant(overrides) {
        None => seed.to_string(),
        Some(variant) => format!("{seed}-{variant}"),
    };
    out.join(scenario_name).join(leaf)
}

/// The longest variant name before it is cut and given a digest.
const VARIANT_CHARS_MAX: usize = 60;

/// `--set` overrides as a directory name: `stack.replication=async`, several joined by `+`.
/// Characters other than letters, digits and `.`, `_`, `-`, `=` become `_`; when that changed
/// anything (or the name is longer than [`VARIANT_CHARS_MAX`]) the name is cut and the first 8 hex
/// digits of the overrides' SHA-256 are appended, so distinct overrides never share a directory.
/// `None` without overrides.
pub fn variant(overrides: &[String]) -> Option<String> {
    use sha2::{Digest, Sha256};
    if overrides.is_empty() {
        return None;
    }
    let joined = overrides.join("+");
    let safe = |c: char| c.is_ascii_alphanumeric() || "._-=".contains(c);
    let name: String = joined.chars().map(|c| if c == '+' || safe(c) { c } else { '_' }).collect();
    let lossy = name != joined || overrides.iter().any(|o| o.contains('+')) || name.starts_with('.');
    if !lossy && name.len() <= VARIANT_CHARS_MAX {
        return Some(name);
    }
    let digest = Sha256::digest(overrides.join("\n").as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let cut: String = name.chars().take(VARIANT_CHARS_MAX).collect();
    Some(format!("{cut}-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EntryOp, EntryType, Process, Value};
    use crate::scenario::Loaded;

    /// A backend that replays a fixed observation.
    struct Scripted(Observed);

    impl Backend for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn run(&self, _loaded: &Loaded, _seed: u64) -> Result<Observed, BackendError> {
            Ok(self.0.clone())
        }
    }

    /// An invest of `key` invoked 5 ms before `ack_ms` and answered `kind` then.
    fn invest(history: &mut History, key: &str, ack_ms: u64, kind: EntryType) {
        let process = Process::Client(history.entries().len() as u32);
        let value = Value { key: Some(key.into()), ..Value::default() };
        let ack_ns = ack_ms * 1_000_000;
        history.push(ack_ns - 5_000_000, EntryType::Invoke, process, EntryOp::Invest, value.clone(), None);
        history.push(ack_ns, kind, process, EntryOp::Invest, Value { lsn: Some(9), ..value }, None);
    }

    /// An observation of `history` ending on `final_state`, for a plan of `faults_count` faults
    /// whose effects the backend left at zero.
    fn observed(history: History, final_state: FinalState, faults_count: usize) -> Observed {
        Observed {
            history,
            final_state,
            fault_effects: vec![FaultEffect::default(); faults_count],
            generator: GeneratorStats { scheduled_count: 1, sent_count: 1, ..GeneratorStats::default() },
            simulated_ms: 30_000,
            startup_ms: None,
        }
    }

    /// One acknowledged write that the final state lost, during a crash of the primary.
    fn one_lost_write() -> Scripted {
        let mut history = History::new();
        invest(&mut history, "invest-000000", 21_005, EntryType::Ok);
        Scripted(observed(history, FinalState { primary: "pg-replica".into(), ..FinalState::default() }, 1))
    }

    #[test]
    fn a_run_writes_history_report_and_junit_and_the_report_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.yaml");
        let text = "name: lossy\nduration: 30s\nworkload: [ { op: invest, rate: 1/s } ]\nfaults: [ { at: 20s, crash: pg-primary, restart_after: 5s } ]\nchecks: { durability: {} }\n";
        std::fs::write(&scenario, text).unwrap();
        let options = RunOptions { out: dir.path().join("out"), seed: Some(42), ..RunOptions::default() };
        let outcome = run_file(&scenario, &one_lost_write(), &options).unwrap();
        assert_eq!(outcome.dir, dir.path().join("out/lossy/42"));
        assert_eq!(outcome.report.verdict.exit_code, crate::exit::FAIL);
        for file in ["history.jsonl", "report.json", "junit.xml", "final-state.json"] {
            assert!(outcome.dir.join(file).exists(), "{file} missing");
        }
        let json = std::fs::read_to_string(outcome.dir.join("report.json")).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, outcome.report);
        assert_eq!(back.schema, "shakedown.report/v3");
        assert!(
            back.replay.starts_with("shakedown run ") && back.replay.contains("--seed 42 --backend scripted")
        );
        assert_eq!(back.checks[0].details["lost_count"], 1);
        assert!(!back.faults[0].vacuous);
        assert_eq!(back.faults[0].effect.writes_lost_count, 1, "the backend counted none: the run did");
        let history = History::read_jsonl(
            std::fs::File::open(outcome.dir.join("history.jsonl")).map(std::io::BufReader::new).unwrap(),
        )
        .unwrap();
        assert_eq!(history.entries().len(), 2);
        let junit = std::fs::read_to_string(outcome.dir.join("junit.xml")).unwrap();
        assert!(junit.contains("<failure message=\"1 of 1 acknowledged writes lost\""), "{junit}");
        let xml = roxmltree::Document::parse(&junit).expect("junit.xml is well-formed XML");
        let cases = xml.descendants().filter(|n| n.has_tag_name("testcase")).count();
        assert_eq!(cases, back.checks.len() + back.slo.len(), "one testcase per check and per SLO row");
        let html = std::fs::read_to_string(outcome.dir.join("report.html")).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("1 of 1 acknowledged writes lost"));
    }

    #[test]
    fn an_invalid_scenario_is_bad_input_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.yaml");
        std::fs::write(&scenario, "name: x\n").unwrap();
        let options = RunOptions { out: dir.path().join("out"), ..RunOptions::default() };
        let error = run_file(&scenario, &one_lost_write(), &options).unwrap_err();
        assert_eq!(error.exit_code(), crate::exit::BAD_INPUT);
        assert!(!dir.path().join("out").exists());
    }

    /// Goal: every write the durability check lists as lost is counted on the fault that
    /// explains it, whatever the backend counted. Method: a hand-built history and final state
    /// over three faults — latency on the replication link 5–8 s, a crash of the primary
    /// 10–15 s, a pause of the standby 20–22 s — with lost writes acknowledged before, during and
    /// between them, and one acknowledged during the pause that did survive.
    #[test]
    fn lost_writes_are_charged_to_the_fault_in_force_or_the_next_that_can_lose_them() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.yaml");
        let text = indoc::indoc! {"
            name: charged
            duration: 30s
            workload: [ { op: invest, rate: 1/s } ]
            faults:
              - { at: 5s, latency: { between: [[pg-primary], [pg-replica]], delay: 100ms }, for: 3s }
              - { at: 10s, crash: pg-primary, restart_after: 5s }
              - { at: 20s, pause: pg-replica, for: 2s }
            checks: { durability: {} }
        "};
        std::fs::write(&scenario, text).unwrap();
        let mut history = History::new();
        invest(&mut history, "a", 2_000, EntryType::Ok); // calm: the crash that follows
        invest(&mut history, "b", 6_000, EntryType::Ok); // latency cannot lose it: the crash
        invest(&mut history, "c", 11_000, EntryType::Ok); // during the crash
        invest(&mut history, "d", 16_000, EntryType::Ok); // after the crash: the pause
        invest(&mut history, "e", 21_000, EntryType::Ok); // during the pause, but it survived
        invest(&mut history, "f", 25_000, EntryType::Ok); // after every fault: the last, the pause
        invest(&mut history, "g", 12_000, EntryType::Fail); // failed, absent: not lost
        let final_state = FinalState {
            primary: "pg-replica".into(),
            investments: [("e".to_string(), 1)].into(),
            ..FinalState::default()
        };
        let mut seen = observed(history, final_state, 3);
        seen.fault_effects[0].writes_lost_count = 99; // a backend's own guess is replaced
        let options = RunOptions { out: dir.path().join("out"), ..RunOptions::default() };
        let report = run_file(&scenario, &Scripted(seen), &options).unwrap().report;
        assert_eq!(report.checks[0].details["lost_count"], 5);
        let counts: Vec<(&str, u64)> =
            report.faults.iter().map(|f| (f.kind.as_str(), f.effect.writes_lost_count)).collect();
        assert_eq!(counts, [("latency", 0), ("crash", 3), ("pause", 2)]);
    }

    #[test]
    fn divergence_names_the_first_differing_line() {
        let mut a = History::new();
        a.push(1, EntryType::Invoke, Process::Client(0), EntryOp::Invest, Value::default(), None);
        let mut b = a.clone();
        assert_eq!(first_divergence(&a, &b), None);
        a.push(5, EntryType::Ok, Process::Client(0), EntryOp::Invest, Value::default(), None);
        b.push(6, EntryType::Ok, Process::Client(0), EntryOp::Invest, Value::default(), None);
        let divergence = first_divergence(&a, &b).unwrap();
        assert_eq!(divergence.line, 2);
        assert!(divergence.first.unwrap().contains("\"time_ns\":5"));
        assert!(divergence.second.unwrap().contains("\"time_ns\":6"));
    }

    /// Goal: a `--set` variant writes beside the plain run, never over it, and distinct overrides
    /// never share a directory. Method: the directory names of a few override lists.
    #[test]
    fn variants_get_their_own_directory() {
        let out = Path::new("out");
        let set = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(run_dir(out, "primary-crash", 7, &[]), Path::new("out/primary-crash/7"));
        assert_eq!(
            run_dir(out, "primary-crash", 7, &set(&["stack.replication=async"])),
            Path::new("out/primary-crash/7-stack.replication=async")
        );
        let two = variant(&set(&["stack.replication=async", "stack.watchdog.max_lag=0B"])).unwrap();
        assert_eq!(two, "stack.replication=async+stack.watchdog.max_lag=0B");
        let lists = [
            set(&["stack.bugs=[no-fencing]"]),
            set(&["stack.bugs=_no-fencing_"]),
            set(&["a=b+c=d"]),
            set(&["a=b", "c=d"]),
            set(&[&format!("name={}", "x".repeat(80))]),
            set(&[&format!("name={}y", "x".repeat(80))]),
        ];
        let names: std::collections::BTreeSet<String> = lists.iter().map(|l| variant(l).unwrap()).collect();
        assert_eq!(names.len(), lists.len(), "{names:?}");
        for name in &names {
            assert!(name.len() <= VARIANT_CHARS_MAX + 9 && !name.contains('/'), "{name}");
        }
    }
}
