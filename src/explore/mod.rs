//! `shakedown explore`: one scenario over many seeds, in parallel, with optional swarm schedules;
//! failures grouped by signature; each group's first failure shrunk to a small concrete YAML.
//!
//! Data flow, one direction: the loaded scenario → per seed a *concrete* scenario (the seed set,
//! and with `--swarm` or `--swarm all` its drawn fault timeline) → a simulation → the checkers → a [`Judgement`].
//! Seeds run on `jobs` threads (each simulation is single-threaded and deterministic on its own
//! thread: see `tests/determinism.rs`); results are collected in seed order, so groups, their
//! first seeds and the shrunk scenarios do not depend on which thread finished first.
//!
//! Output, under `OUT/<scenario>/explore/`: `summary.json` (every seed's judgement), and per
//! failure group `<signature>/failing.yaml` (the first failing seed's concrete scenario),
//! `<signature>/shrunk.yaml` and the shrunk run's full report beside it.

pub mod drill;
pub mod judge;
pub mod shard;
pub mod shrink;
pub mod swarm;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use judge::{Judgement, Signature, judge};
pub use shard::Shard;
pub use shrink::Stop;
pub use swarm::Vocabulary;

use crate::check::{plural, run_all};
use crate::run::{Backend, RunOptions};
use crate::scenario::model::FaultSpec;
use crate::scenario::units::Span;
use crate::scenario::{Diagnostics, Loaded, Scenario, load_str, to_compact_yaml};

/// How to explore.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many seeds, starting at the scenario's own seed.
    pub seeds: u64,
    /// Draw a fault timeline per seed from this vocabulary (`None`: the scenario's own timeline).
    pub swarm: Option<Vocabulary>,
    /// Simulations in parallel.
    pub jobs: usize,
    /// Stop starting seeds (and shrink runs) after this much wall time.
    pub time_budget: Option<Duration>,
    /// Output root.
    pub out: PathBuf,
    /// Judge SLO and recovery checks too.
    pub slo: bool,
    /// Most runs one shrink may spend.
    pub shrink_runs: usize,
    /// Shrink each failure group's first failure (off: groups only).
    pub shrink: bool,
    /// Run only this slice of the seeds, and write a shard summary (never shrinks: `merge` does).
    pub shard: Option<Shard>,
    /// Seeds each shrink candidate is judged on: the failing one and this many less one more.
    pub shrink_seeds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seeds: 100,
            swarm: None,
            jobs: 1,
            time_budget: None,
            out: PathBuf::from("reports"),
            slo: false,
            shrink_runs: SHRINK_RUNS_DEFAULT,
            shrink: true,
            shard: None,
            shrink_seeds: SHRINK_SEEDS_DEFAULT,
        }
    }
}

/// The default of `--shrink-runs`: enough for a final pass over every reduction of a small
/// scenario on every shrink seed, after the reductions that got it there.
pub const SHRINK_RUNS_DEFAULT: usize = 400;

/// The default of `--shrink-seeds`.
pub const SHRINK_SEEDS_DEFAULT: usize = 4;

/// One seed's run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// What the checkers found, or why the run could not complete.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Faults in its timeline.
    pub faults_count: usize,
    /// With a swarm, the timeline drawn for this seed (what `failing.yaml` holds, if it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<FaultSpec>>,
    /// Wall time of the run, ms.
    pub wall_ms: u64,
    /// The concrete scenario that ran (YAML).
    #[serde(skip)]
    pub yaml: String,
}

/// A seed's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outcome {
    /// The run completed and was judged.
    Judged(Judgement),
    /// The harness failed (a backend error or a panic): not a finding about the stack.
    Error {
        /// What went wrong.
        error: String,
    },
}

/// Failures that broke the same thing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    /// What broke.
    pub signature: Signature,
    /// Every seed that broke it, ascending.
    pub seeds: Vec<u64>,
    /// The shrunk first failure, when shrinking ran (never in a shard summary).
    #[serde(skip_deserializing)]
    pub shrunk: Option<ShrunkFailure>,
}

/// A shrunk failure, written out.
#[derive(Clone, Debug, Serialize)]
pub struct ShrunkFailure {
    /// The first failing seed's concrete scenario.
    pub failing_yaml: PathBuf,
    /// The shrunk scenario.
    pub yaml: PathBuf,
    /// Its run's report directory.
    pub report_dir: PathBuf,
    /// The command that replays it.
    pub replay: String,
    /// Faults before and after.
    pub faults_count: (usize, usize),
    /// Workload streams before and after.
    pub streams_count: (usize, usize),
    /// The run's duration before and after.
    pub duration: (Span, Span),
    /// The seed the shrunk scenario names (one it fails on).
    pub seed: u64,
    /// The seeds each candidate was judged on, the failing seed first.
    pub shrink_seeds: Vec<u64>,
    /// Runs the shrink spent.
    pub runs: usize,
    /// Why it stopped: `minimal` (no single reduction still fails), `run_budget` or `time_budget`.
    pub stop: Stop,
    /// Whether the final pass showed it 1-minimal.
    pub minimal: bool,
    /// Lines of the written file, its header included.
    pub lines_count: usize,
    /// Whether the written scenario, run on its own, still fails the same checks.
    pub still_fails: bool,
}

/// The whole exploration, or one shard of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The file explored.
    pub file: String,
    /// The scenario explored, after `--set` overrides (what `merge` shrinks from).
    pub scenario_yaml: String,
    /// The swarm's vocabulary (`scenario` or `all`), or `null` for the scenario's own timeline.
    pub swarm: Option<Vocabulary>,
    /// Whether SLO and recovery checks were judged.
    pub slo: bool,
    /// Seeds asked for, in the whole campaign.
    pub seeds_count: u64,
    /// The slice this summary covers, when it is a shard's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Every seed run, ascending.
    pub runs: Vec<SeedRun>,
    /// Failure groups, by first seed.
    pub groups: Vec<Group>,
    /// Seeds not started because the time budget ran out.
    pub skipped_count: u64,
    /// Wall time of the seed runs (without shrinking), ms.
    pub wall_ms: u64,
    /// Threads used.
    pub jobs: usize,
}

impl Summary {
    /// Seeds whose judgement was a failure.
    pub fn failed_count(&self) -> usize {
        self.runs.iter().filter(|r| matches!(r.outcome, Outcome::Judged(Judgement::Fail { .. }))).count()
    }
    /// Seeds that could not be decided.
    pub fn inconclusive_count(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Judged(Judgement::Inconclusive { .. })))
            .count()
    }
    /// Seeds where the harness failed.
    pub fn error_count(&self) -> usize {
        self.runs.iter().filter(|r| matches!(r.outcome, Outcome::Error { .. })).count()
    }
    /// Seeds per hour of wall time at this run's pace.
    pub fn seeds_per_hour(&self) -> f64 {
        self.runs.len() as f64 * 3_600_000.0 / self.wall_ms.max(1) as f64
    }
}

/// What exploration reports while it works (a progress bar, or nothing).
pub trait Progress: Sync {
    /// A seed finished.
    fn seed_done(&self, run: &SeedRun);
    /// A line worth showing (shrinking started, a shrink finished).
    fn note(&self, line: &str);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn seed_done(&self, _run: &SeedRun) {}
    fn note(&self, _line: &str) {}
}

/// Why exploration could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// `--swarm` on a scenario with no faults to draw from.
    #[error(
        "{0}: --swarm draws each seed's faults from the scenario's `faults:` list, and it is empty; add the faults exploration may use (their kinds, targets and parameters), use --swarm all (every fault kind, over the whole stack), or drop --swarm"
    )]
    NoVocabulary(String),
    /// Files could not be written.
    #[error("writing {path}: {error}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Explore `loaded` on `backend`.
pub fn explore(
    loaded: &Loaded,
    backend: &(dyn Backend + Sync),
    options: &Options,
    progress: &dyn Progress,
) -> Result<Summary, ExploreError> {
    let base = &loaded.scenario;
    if options.swarm == Some(Vocabulary::Scenario) && base.faults.is_empty() {
        return Err(ExploreError::NoVocabulary(loaded.file.clone()));
    }
    let started = Instant::now();
    let deadline = options.time_budget.map(|budget| started + budget);
    // The seed indices this run owns: all of them, or its shard's slice.
    let indices: Vec<u64> =
        (0..options.seeds).filter(|&i| options.shard.is_none_or(|s| s.holds(i))).collect();
    let next = AtomicUsize::new(0);
    let out_of_time = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel();
    let mut runs = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            let sender = sender.clone();
            let (next, out_of_time, indices) = (&next, &out_of_time, &indices);
            scope.spawn(move || {
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        out_of_time.store(true, Ordering::Relaxed);
                        return;
                    }
                    let Some(&index) = indices.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let run = run_seed(loaded, backend, base.seed.wrapping_add(index), options);
                    if sender.send(run).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        for run in receiver {
            progress.seed_done(&run);
            runs.push(run);
        }
    });
    runs.sort_by_key(|r| r.seed);
    let wall_ms = started.elapsed().as_millis() as u64;
    let skipped_count = indices.len() as u64 - runs.len() as u64;
    let mut dir = explore_dir(&options.out, &base.name);
    if let Some(shard) = options.shard {
        dir = dir.join(shard.dir_name());
    }
    let mut summary = Summary {
        scenario: base.name.clone(),
        file: loaded.file.clone(),
        scenario_yaml: to_yaml(base),
        swarm: options.swarm,
        slo: options.slo,
        seeds_count: options.seeds,
        shard: options.shard,
        groups: groups(&runs),
        runs,
        skipped_count,
        wall_ms,
        jobs: options.jobs.max(1),
    };
    if options.shrink && options.shard.is_none() {
        shrink_groups(loaded, backend, options, progress, &mut summary, &dir, deadline)?;
    }
    write_summary(&summary, &dir)?;
    Ok(summary)
}

/// Failing runs grouped by signature, in the order of each group's first seed (`runs` ascending).
pub fn groups(runs: &[SeedRun]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for run in runs {
        if let Outcome::Judged(Judgement::Fail { signature }) = &run.outcome {
            match groups.iter_mut().find(|g| &g.signature == signature) {
                Some(group) => group.seeds.push(run.seed),
                None => {
                    groups.push(Group { signature: signature.clone(), seeds: vec![run.seed], shrunk: None })
                }
            }
        }
    }
    groups
}

/// Shrink the first failure of each of `summary`'s groups, writing each under `dir`. The first
/// failure's concrete scenario is drawn again from its seed (the same on every machine), so a
/// merged campaign shrinks exactly what its unsharded run would have.
pub fn shrink_groups(
    loaded: &Loaded,
    backend: &(dyn Backend + Sync),
    options: &Options,
    progress: &dyn Progress,
    summary: &mut Summary,
    dir: &Path,
    deadline: Option<Instant>,
) -> Result<(), ExploreError> {
    for group in &mut summary.groups {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            progress.note(&format!("time budget spent: not shrinking {}", group.signature));
            continue;
        }
        let first =
            summary.runs.iter().find(|r| r.seed == group.seeds[0]).expect("the group's first seed ran");
        let yaml = to_yaml(&concrete(loaded, first.seed, options.swarm));
        let first = SeedRun { yaml, ..first.clone() };
        group.shrunk =
            Some(shrink_group(loaded, backend, options, progress, dir, &group.signature, &first, deadline)?);
    }
    Ok(())
}

/// Write `summary.json` under `dir`.
pub fn write_summary(summary: &Summary, dir: &Path) -> Result<(), ExploreError> {
    let json = serde_json::to_string_pretty(summary).expect("the summary serialises");
    write(&dir.join("summary.json"), &(json + "\n"))
}

/// Where an exploration of `scenario` writes: `OUT/<scenario>/explore/`.
pub fn explore_dir(out: &Path, scenario: &str) -> PathBuf {
    out.join(scenario).join("explore")
}

/// The concrete scenario for `seed`: the seed set, and with a swarm a timeline drawn from its
/// vocabulary whose every fault validates. With `all`, a draw none of whose faults validate is
/// drawn again (from the seed's next stream, at most [`SWARM_DRAWS_MAX`] times), so every seed
/// meets at least one fault.
pub fn concrete(loaded: &Loaded, seed: u64, swarm: Option<Vocabulary>) -> Scenario {
    let mut scenario = loaded.scenario.clone();
    scenario.seed = seed;
    let Some(vocabulary) = swarm else { return scenario };
    let draws = if vocabulary == Vocabulary::All { SWARM_DRAWS_MAX } else { 1 };
    for attempt in 0..draws {
        let stream = if attempt == 0 { "swarm".to_owned() } else { format!("swarm-{attempt}") };
        let drawn = swarm::draw(&loaded.scenario, vocabulary, &mut crate::seed::stream(seed, &stream));
        scenario.faults.clear();
        for fault in drawn {
            scenario.faults.push(fault);
            if reload(&scenario, "swarm").is_err() {
                scenario.faults.pop();
            }
        }
        // A drill action dropped as invalid leaves the rest of its drill out of shape: drop the
        // drill, keep the other faults.
        if !drill::problems(&scenario).is_empty() {
            scenario.faults.retain(|f| !drill::is_drill(f));
        }
        if !scenario.faults.is_empty() {
            break;
        }
    }
    scenario
}

/// Most draws of one seed's `all` schedule before it runs without faults.
pub const SWARM_DRAWS_MAX: usize = 8;

/// The scenario as YAML.
pub fn to_yaml(scenario: &Scenario) -> String {
    serde_saphyr::to_string(scenario).expect("scenarios serialise")
}

/// Validate a (changed) scenario by writing and loading it, as a user's file would be.
pub fn reload(scenario: &Scenario, label: &str) -> Result<Loaded, Diagnostics> {
    load_str(&to_yaml(scenario), label, &[])
}

fn run_seed(loaded: &Loaded, backend: &dyn Backend, seed: u64, options: &Options) -> SeedRun {
    let started = Instant::now();
    let scenario = concrete(loaded, seed, options.swarm);
    let yaml = to_yaml(&scenario);
    let outcome = match load_str(&yaml, &format!("{} (seed {seed})", loaded.file), &[]) {
        Err(diagnostics) => {
            Outcome::Error { error: format!("the concrete scenario is invalid: {diagnostics}") }
        }
        Ok(concrete) => judge_run(&concrete, backend, seed, options.slo),
    };
    SeedRun {
        seed,
        outcome,
        faults_count: scenario.faults.len(),
        schedule: options.swarm.map(|_| scenario.faults.clone()),
        wall_ms: started.elapsed().as_millis() as u64,
        yaml,
    }
}

/// Run one concrete scenario and judge it. A panic inside the harness is an `Error` outcome,
/// so one bad seed does not end the exploration.
fn judge_run(loaded: &Loaded, backend: &dyn Backend, seed: u64, slo: bool) -> Outcome {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.run(loaded, seed)));
    match run {
        Ok(Ok(observed)) => {
            let checked = run_all(&observed.history, &observed.final_state, &loaded.plan, &loaded.scenario);
            Outcome::Judged(judge(&checked.results, &observed.generator, slo))
        }
        Ok(Err(error)) => Outcome::Error { error: error.to_string() },
        Err(panic) => Outcome::Error {
            error: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the simulation panicked".into()),
        },
    }
}

/// The same checks still fail (invariant detail may differ).
fn fails_the_same(outcome: &Outcome, signature: &Signature) -> bool {
    match outcome {
        Outcome::Judged(Judgement::Fail { signature: now }) => signature.shared_by(now),
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn shrink_group(
    loaded: &Loaded,
    backend: &(dyn Backend + Sync),
    options: &Options,
    progress: &dyn Progress,
    dir: &Path,
    signature: &Signature,
    first: &SeedRun,
    deadline: Option<Instant>,
) -> Result<ShrunkFailure, ExploreError> {
    let group_dir = dir.join(signature.slug());
    let failing_yaml = group_dir.join("failing.yaml");
    write(&failing_yaml, &first.yaml)?;
    let mut failing = load_str(&first.yaml, &failing_yaml.display().to_string(), &[])
        .expect("the failing scenario loaded when it ran")
        .scenario;
    // A regression test fails on `shakedown run`: drop `expect` (a bug-zoo scenario expects the
    // failure), and give it its own name so its reports do not mix with the original's. Done
    // before shrinking, so the written file is exactly the scenario the last kept run judged.
    failing.expect.clear();
    failing.name = format!("{}-shrunk", loaded.scenario.name);
    failing.description =
        format!("Shrunk by `shakedown explore` from {} seed {}: fails {signature}.", loaded.file, first.seed);
    let seeds = shrink::seeds(first.seed, options.shrink_seeds);
    progress.note(&format!(
        "shrinking {signature} from seed {} ({}, {}; each candidate on {}, at most {})…",
        first.seed,
        plural(failing.faults.len(), "fault"),
        plural(failing.workload.len(), "stream"),
        plural(seeds.len(), "seed"),
        plural(options.shrink_runs, "run")
    ));
    let keep_checks: Vec<&str> = signature.checks().collect();
    // A failure found with drills in shape shrinks to drills in shape: dropping a disaster's
    // restore (or moving it before the disaster) fails a correct stack too.
    let shaped = drill::problems(&failing).is_empty();
    let shrunk =
        shrink::shrink(&failing, &seeds, &keep_checks, options.shrink_runs, options.jobs, |candidate| {
            if shaped && !drill::problems(candidate).is_empty() {
                return shrink::Trial::Invalid;
            }
            shrink_trial(candidate, backend, signature, options.slo, deadline)
        });
    let scenario = shrunk.scenario;
    let yaml_path = group_dir.join("shrunk.yaml");
    let text =
        shrunk_file(loaded, options, signature, first.seed, &failing, &scenario, shrunk.runs, shrunk.stop);
    write(&yaml_path, &text)?;
    let replay = format!("shakedown run {}", yaml_path.display());
    let (report_dir, still_fails) = run_alone(&yaml_path, backend, &group_dir, signature, progress);
    let shrunk_failure = ShrunkFailure {
        failing_yaml,
        yaml: yaml_path,
        report_dir,
        replay,
        faults_count: (failing.faults.len(), scenario.faults.len()),
        streams_count: (failing.workload.len(), scenario.workload.len()),
        duration: (failing.duration, scenario.duration),
        seed: scenario.seed,
        shrink_seeds: seeds,
        runs: shrunk.runs,
        stop: shrunk.stop,
        minimal: shrunk.stop == Stop::Minimal,
        lines_count: text.lines().count(),
        still_fails,
    };
    progress.note(&format!(
        "shrunk {signature}: {}; {}",
        shrunk_failure.describe(),
        if still_fails { "it still fails on its own" } else { "WARNING: on its own it no longer fails" }
    ));
    Ok(shrunk_failure)
}

impl ShrunkFailure {
    /// `faults 3 → 1, streams 2 → 1, duration 30s → 12s, seed 24, 87 runs, 1-minimal`.
    pub fn describe(&self) -> String {
        format!(
            "faults {} → {}, streams {} → {}, duration {} → {}, seed {}, {} runs, {}",
            self.faults_count.0,
            self.faults_count.1,
            self.streams_count.0,
            self.streams_count.1,
            self.duration.0,
            self.duration.1,
            self.seed,
            self.runs,
            self.stop.describe()
        )
    }
}

/// Judge one shrink candidate (its `seed` set) as exploration judged the original.
fn shrink_trial(
    candidate: &Scenario,
    backend: &dyn Backend,
    signature: &Signature,
    slo: bool,
    deadline: Option<Instant>,
) -> shrink::Trial {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return shrink::Trial::OutOfTime;
    }
    let Ok(candidate) = reload(candidate, "shrink candidate") else { return shrink::Trial::Invalid };
    let seed = candidate.scenario.seed;
    if fails_the_same(&judge_run(&candidate, backend, seed, slo), signature) {
        shrink::Trial::Failed
    } else {
        shrink::Trial::Passed
    }
}

/// The shrunk file's text: a header saying where it came from and how it was shrunk, then the
/// scenario with only what differs from the defaults.
#[allow(clippy::too_many_arguments)]
fn shrunk_file(
    loaded: &Loaded,
    options: &Options,
    signature: &Signature,
    first_seed: u64,
    failing: &Scenario,
    shrunk: &Scenario,
    runs: usize,
    stop: Stop,
) -> String {
    let swarm = match options.swarm {
        None => "",
        Some(Vocabulary::Scenario) => " --swarm",
        Some(Vocabulary::All) => " --swarm all",
    };
    let overrides: String = loaded.overrides.iter().map(|o| format!(" --set '{o}'")).collect();
    let header = format!(
        "# Found by `shakedown explore {}{overrides}{swarm}`: seed {first_seed} failed {signature}.\n# Shrunk in {runs} runs ({}): faults {} → {}, streams {} → {}, duration {} → {}; fails at seed {}.\n# Keep it as a regression test; while the bug is open, `expect: {{ {}: fail }}` makes it pass.\n",
        loaded.file,
        stop.describe(),
        failing.faults.len(),
        shrunk.faults.len(),
        failing.workload.len(),
        shrunk.workload.len(),
        failing.duration,
        shrunk.duration,
        shrunk.seed,
        signature.checks().next().unwrap_or("check"),
    );
    header + &to_compact_yaml(shrunk)
}

/// Run the written file as a user would, for its report and to confirm it still fails.
fn run_alone(
    yaml_path: &Path,
    backend: &dyn Backend,
    group_dir: &Path,
    signature: &Signature,
    progress: &dyn Progress,
) -> (PathBuf, bool) {
    let run_options = RunOptions { out: group_dir.to_owned(), ..RunOptions::default() };
    match crate::run::run_file(yaml_path, backend, &run_options) {
        Ok(outcome) => {
            let failed: Vec<&str> = outcome
                .report
                .checks
                .iter()
                .filter(|c| c.status == crate::check::Status::Fail)
                .map(|c| c.name.as_str())
                .collect();
            (outcome.dir, signature.checks().all(|c| failed.contains(&c)))
        }
        Err(error) => {
            progress.note(&format!("the shrunk scenario did not run: {error}"));
            (group_dir.to_owned(), false)
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), ExploreError> {
    let error = |error| ExploreError::Write { path: path.to_owned(), error };
    std::fs::create_dir_all(path.parent().expect("a file in a directory")).map_err(error)?;
    // Write beside, then rename: an interrupted exploration never leaves half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(error)?;
    std::fs::rename(&partial, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_survives_the_yaml_round_trip() {
        for file in crate::scenario::shipped_files() {
            let loaded = crate::scenario::load_file(&file, &[]).unwrap();
            let again =
                reload(&loaded.scenario, "round trip").unwrap_or_else(|d| panic!("{}: {d}", file.display()));
            assert_eq!(to_yaml(&again.scenario), to_yaml(&loaded.scenario), "{}", file.display());
            assert_eq!(format!("{:?}", again.plan), format!("{:?}", loaded.plan), "{}", file.display());
        }
    }

    /// Goal: a timing-sensitive failure shrinks to a 1-minimal, short file that fails on its own.
    /// Method: a skip-compensation saga with a reports crash (an order must be in flight at the
    /// crash), padded with a second stream, a second fault and a second check, is explored on one
    /// seed; the written `shrunk.yaml` is loaded back and must fail at the seed it names, and
    /// removing any one of its faults or streams must make every shrink seed stop failing (a
    /// removal that leaves no stream is invalid, which also counts).
    #[test]
    fn a_shrunk_file_is_one_minimal_and_fails_at_its_own_seed() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name: t\nseed: 23\nduration: 6s\nstack: { bugs: [skip-compensation] }\nworkload:\n  - { op: order, rate: 40/s }\n  - { op: invest, rate: 10/s }\nfaults:\n  - { at: 1s, pause: pricefeed, for: 1s }\n  - { at: 2s, crash: reports, restart_after: 2s }\nchecks: { saga: {}, durability: {} }\n";
        let loaded = load_str(text, "t.yaml", &[]).unwrap();
        let options =
            Options { seeds: 1, jobs: 2, out: dir.path().to_owned(), shrink_runs: 300, ..Options::default() };
        let summary = explore(&loaded, &crate::sim::Sim, &options, &Quiet).unwrap();
        let group = &summary.groups[0];
        assert_eq!(group.signature.checks().collect::<Vec<_>>(), ["saga"], "{}", group.signature);
        let shrunk = group.shrunk.as_ref().unwrap();
        assert!(shrunk.minimal && shrunk.still_fails, "{}", shrunk.describe());
        assert_eq!((shrunk.faults_count, shrunk.streams_count), ((2, 1), (2, 1)), "{}", shrunk.describe());
        let written = std::fs::read_to_string(&shrunk.yaml).unwrap();
        assert!(written.lines().count() <= 25, "{written}");
        let again = load_str(&written, "shrunk.yaml", &[]).unwrap();
        assert_eq!(again.scenario.seed, shrunk.seed);
        let body: String =
            written.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            to_compact_yaml(&again.scenario),
            body,
            "the file is the compact form of what it loads to"
        );
        let fails_at = |scenario: &Scenario, seed: u64| {
            let mut at_seed = scenario.clone();
            at_seed.seed = seed;
            match reload(&at_seed, "removal") {
                Ok(candidate) => {
                    fails_the_same(&judge_run(&candidate, &crate::sim::Sim, seed, false), &group.signature)
                }
                Err(_) => false,
            }
        };
        assert!(fails_at(&again.scenario, shrunk.seed));
        let s = &again.scenario;
        let removals = (0..s.faults.len())
            .map(|i| {
                (
                    format!("fault {i}"),
                    s.faults.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| f.clone()).collect(),
                    s.workload.clone(),
                )
            })
            .chain((0..s.workload.len()).map(|i| {
                let workload =
                    s.workload.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, l)| l.clone()).collect();
                (format!("stream {i}"), s.faults.clone(), workload)
            }));
        for (what, faults, workload) in removals {
            let removed = Scenario { faults, workload, ..s.clone() };
            for &seed in &shrunk.shrink_seeds {
                assert!(
                    !fails_at(&removed, seed),
                    "without {what} it still fails at seed {seed}:\n{written}"
                );
            }
        }
    }

    #[test]
    fn swarm_concrete_scenarios_validate_and_differ_by_seed() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/primary-crash.yaml");
        let loaded = crate::scenario::load_file(&file, &[]).unwrap();
        let a = concrete(&loaded, 1, Some(Vocabulary::Scenario));
        let b = concrete(&loaded, 2, Some(Vocabulary::Scenario));
        assert!(reload(&a, "a").is_ok() && reload(&b, "b").is_ok());
        assert!(!a.faults.is_empty());
        assert_ne!(to_yaml(&a), to_yaml(&b));
        assert_eq!(to_yaml(&concrete(&loaded, 1, Some(Vocabulary::Scenario))), to_yaml(&a));
        assert_eq!(concrete(&loaded, 9, None).faults.len(), loaded.scenario.faults.len());
    }
}
