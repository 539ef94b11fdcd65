//! `shakedown explore FILE`: many seeds in parallel, a progress bar, failures grouped and shrunk,
//! a summary with the replay command of each shrunk failure. Exit 1 when a failure was found,
//! 0 when none, 255 when only harness errors stopped it.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::args::{ExploreArgs, SwarmVocabulary};
use crate::check::plural;
use crate::exit;
use crate::explore::{Judgement, Options, Outcome, Progress, SeedRun, Shard, Summary, explore, explore_dir};
use crate::scenario::units::Span;

/// Run the exploration.
pub(super) fn run(args: &ExploreArgs) -> u8 {
    let time_budget = match args.time_budget.as_deref().map(str::parse::<Span>).transpose() {
        Ok(budget) => budget.map(Span::get),
        Err(error) => {
            eprintln!("shakedown explore: --time-budget: {error}");
            return exit::BAD_INPUT;
        }
    };
    if args.seeds == 0 {
        eprintln!("shakedown explore: --seeds must be at least 1");
        return exit::BAD_INPUT;
    }
    let shard = args.shard.as_deref().map(|text| match text {
        "" => Shard::from_env(|name| std::env::var(name).ok()),
        text => Shard::parse(text),
    });
    let shard = match shard.transpose() {
        Ok(shard) => shard,
        Err(error) => {
            eprintln!("shakedown explore: --shard: {error}");
            return exit::BAD_INPUT;
        }
    };
    if args.shrink_seeds == 0 {
        eprintln!("shakedown explore: --shrink-seeds must be at least 1 (the failing seed itself)");
        return exit::BAD_INPUT;
    }
    // `--seed N` starts at seed N: the same as `--set seed=N`, and recorded as such (the shrunk
    // files' headers and `merge` read the overrides).
    let mut overrides = args.overrides.clone();
    overrides.extend(args.seed.map(|seed| format!("seed={seed}")));
    let mut loaded = match crate::scenario::load_file(&args.file, &overrides) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return exit::BAD_INPUT;
        }
    };
    let backend = match explore_backend(&mut loaded, args.swarm) {
        Ok(backend) => backend,
        Err(message) => {
            eprintln!("shakedown explore {}: {message}", args.file.display());
            return exit::BAD_INPUT;
        }
    };
    let own_seeds = shard.map_or(args.seeds, |s| s.size(args.seeds));
    // A compose stack is real containers on this machine: one run at a time.
    let parallel = if loaded.scenario.stack.is_compose() { Some(1) } else { args.jobs };
    let jobs = parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, own_seeds.max(1) as usize);
    let options = Options {
        seeds: args.seeds,
        swarm: args.swarm.map(Into::into),
        jobs,
        time_budget,
        out: args.out.clone(),
        slo: args.slo,
        shrink_runs: args.shrink_runs,
        shrink: !args.no_shrink,
        shard,
        shrink_seeds: args.shrink_seeds,
    };
    eprintln!(
        "exploring {} over {} seeds from {}{}{} on {jobs} threads; judging {}",
        args.file.display(),
        args.seeds,
        loaded.scenario.seed,
        shard.map_or(String::new(), |s| format!(" (shard {s}: its {own_seeds} seeds)")),
        match args.swarm {
            None => "",
            Some(SwarmVocabulary::Scenario) => " with swarm fault schedules from the scenario's faults",
            Some(SwarmVocabulary::All) => " with swarm fault schedules from every fault kind",
        },
        if args.slo { "every check" } else { "the invariant checks (add --slo for SLOs)" },
    );
    let bar = Bar::new(own_seeds);
    let summary = match explore(&loaded, backend.as_ref(), &options, &bar) {
        Ok(summary) => summary,
        Err(error) => {
            bar.bar.abandon();
            eprintln!("shakedown explore: {error}");
            return match error {
                crate::explore::ExploreError::NoVocabulary(_) => exit::BAD_INPUT,
                _ => exit::HARNESS_ERROR,
            };
        }
    };
    bar.bar.finish_and_clear();
    let mut dir = explore_dir(&args.out, &loaded.scenario.name);
    if let Some(shard) = shard {
        dir = dir.join(shard.dir_name());
    }
    print_summary(&summary, &dir);
    if shard.is_some() {
        println!(
            "  a shard: `shakedown merge` gathers every shard's summary.json and shrinks each group once"
        );
    }
    exit_code(&summary)
}

/// A campaign's exit code: 1 when a seed failed, 255 when only harness errors, else 0.
pub(super) fn exit_code(summary: &Summary) -> u8 {
    if summary.failed_count() > 0 {
        exit::FAIL
    } else if summary.error_count() > 0 {
        exit::HARNESS_ERROR
    } else {
        exit::PASS
    }
}

/// How often a plain progress line is printed when stderr is not a terminal (CI logs), as the
/// containers run does.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The progress bar: seeds done, failures and inconclusive seeds found, seeds per second. It
/// draws only on a terminal; otherwise a plain progress line is printed every [`PLAIN_EVERY`].
/// Failures are printed as lines either way.
pub(super) struct Bar {
    pub(super) bar: ProgressBar,
    counts: Mutex<(u64, u64)>,
    started: Instant,
    /// Where plain lines go when the bar is hidden, how often, and when the last one went.
    plain: Mutex<Plain>,
}

struct Plain {
    out: Box<dyn std::io::Write + Send>,
    every: Duration,
    last: Instant,
}

impl Bar {
    pub(super) fn new(seeds: u64) -> Bar {
        let bar = ProgressBar::new(seeds);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} seeds · {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar::with(bar, Box::new(std::io::stderr()), PLAIN_EVERY)
    }

    fn with(bar: ProgressBar, out: Box<dyn std::io::Write + Send>, every: Duration) -> Bar {
        let started = Instant::now();
        let plain = Mutex::new(Plain { out, every, last: started });
        Bar { bar, counts: Mutex::new((0, 0)), started, plain }
    }
}

impl Progress for Bar {
    fn seed_done(&self, run: &SeedRun) {
        let mut counts = self.counts.lock().expect("counts lock");
        match &run.outcome {
            Outcome::Judged(Judgement::Fail { signature }) => {
                counts.0 += 1;
                let faults = plural(run.faults_count, "fault");
                self.line(&format!("seed {}: FAIL {signature} ({faults})", run.seed));
            }
            Outcome::Judged(Judgement::Inconclusive { reason }) => {
                counts.1 += 1;
                self.line(&format!("seed {}: inconclusive: {reason}", run.seed));
            }
            Outcome::Error { error } => self.line(&format!("seed {}: harness error: {error}", run.seed)),
            Outcome::Judged(Judgement::Pass) => {}
        }
        self.bar.inc(1);
        let elapsed = self.started.elapsed();
        let rate = self.bar.position() as f64 / elapsed.as_secs_f64().max(0.001);
        let message = format!("{} failing · {} inconclusive · {rate:.2} seeds/s", counts.0, counts.1);
        if self.bar.is_hidden() {
            let mut plain = self.plain.lock().expect("plain lock");
            let done = self.bar.position();
            let total = self.bar.length().unwrap_or(done);
            if plain.last.elapsed() >= plain.every || done == total {
                plain.last = Instant::now();
                let line = format!("{:>4}s {done}/{total} seeds · {message}", elapsed.as_secs());
                let _ = writeln!(plain.out, "{line}");
            }
        }
        self.bar.set_message(message);
    }

    fn note(&self, line: &str) {
        self.line(line);
    }
}

impl Bar {
    fn line(&self, line: &str) {
        if self.bar.is_hidden() {
            let mut plain = self.plain.lock().expect("plain lock");
            let _ = writeln!(plain.out, "{line}");
        } else {
            self.bar.println(line);
        }
    }
}

pub(super) fn print_summary(summary: &Summary, dir: &std::path::Path) {
    let ran = summary.runs.len();
    println!(
        "explored {}: {ran} seeds in {:.1} s on {} threads ({:.0} seeds/hour): {} failing, {} inconclusive, {} harness errors, {} passing{}",
        summary.scenario,
        summary.wall_ms as f64 / 1000.0,
        summary.jobs,
        summary.seeds_per_hour(),
        summary.failed_count(),
        summary.inconclusive_count(),
        summary.error_count(),
        ran - summary.failed_count() - summary.inconclusive_count() - summary.error_count(),
        if summary.skipped_count > 0 {
            format!(" ({} seeds not started: time budget)", summary.skipped_count)
        } else {
            String::new()
        },
    );
    for group in &summary.groups {
        let seeds: Vec<String> = group.seeds.iter().take(10).map(u64::to_string).collect();
        let more = if group.seeds.len() > 10 { " …" } else { "" };
        let count = plural(group.seeds.len(), "seed");
        println!("  FAIL {}: {count} ({}{more})", group.signature, seeds.join(", "));
        if let Some(shrunk) = &group.shrunk {
            println!(
                "       shrunk: {}{}: {}",
                shrunk.describe(),
                if shrunk.still_fails { "" } else { " — but on its own it no longer fails" },
                shrunk.yaml.display()
            );
            println!("       report: {}", shrunk.report_dir.join("report.html").display());
            println!("       replay: {}", shrunk.replay);
        }
    }
    println!("  summary: {}", dir.join("summary.json").display());
}

/// Where a scenario is explored: the simulation, or for a compose stack its containers. A
/// compose scenario's file is made absolute first, so the variants and shrunk files written
/// elsewhere still find it.
fn explore_backend(
    loaded: &mut crate::scenario::Loaded,
    swarm: Option<SwarmVocabulary>,
) -> Result<Box<dyn crate::run::Backend + Sync>, String> {
    let Some(compose) = loaded.scenario.stack.compose.clone() else {
        return Ok(Box::new(crate::sim::Sim));
    };
    if swarm == Some(SwarmVocabulary::All) {
        return Err("`--swarm=all` draws the built-in stack's faults; on a compose stack use `--swarm` (drawn from the scenario's own faults)".into());
    }
    let path = crate::scenario::compose_path(&loaded.file, &compose);
    let absolute = std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    loaded.scenario.stack.compose = Some(absolute.display().to_string());
    #[cfg(feature = "containers")]
    return Ok(Box::new(crate::compose::Compose));
    #[cfg(not(feature = "containers"))]
    Err("a compose stack runs on containers, and this binary was built without them; build it with `cargo build --release --features containers`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn passing(seed: u64) -> SeedRun {
        SeedRun {
            seed,
            outcome: Outcome::Judged(Judgement::Pass),
            faults_count: 1,
            schedule: None,
            wall_ms: 1,
            yaml: String::new(),
        }
    }

    /// Goal: without a terminal, exploring prints progress between its first and last line.
    /// Method: a hidden bar (what indicatif gives when stderr is not a terminal) over 3 seeds,
    /// plain lines due at every seed; every passing seed then prints a progress line, the last
    /// one saying 3/3. With lines due every hour, only the last seed prints one.
    #[test]
    fn without_a_terminal_progress_is_printed_as_plain_lines() {
        let out = Shared::default();
        let bar = Bar::with(ProgressBar::hidden(), Box::new(out.clone()), Duration::ZERO);
        bar.bar.set_length(3);
        for seed in 1..=3 {
            bar.seed_done(&passing(seed));
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("1/3 seeds · 0 failing · 0 inconclusive"), "{text}");
        assert!(lines[2].contains("3/3 seeds"), "{text}");
        let out = Shared::default();
        let bar = Bar::with(ProgressBar::hidden(), Box::new(out.clone()), Duration::from_secs(3600));
        bar.bar.set_length(3);
        for seed in 1..=3 {
            bar.seed_done(&passing(seed));
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
