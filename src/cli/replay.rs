//! `shakedown replay REPORT_JSON`: re-run exactly the run that produced a report — the same
//! scenario file (checked by its SHA-256), `--set` overrides and seed — and compare the new
//! history with the `history.jsonl` beside the report, event by event.
//! Exit: the new run's verdict (0/1/2); 254 when the report or scenario cannot be replayed
//! (missing, edited, another backend); 255 when the histories differ (a determinism bug).

use std::path::Path;

use super::args::ReplayArgs;
use super::report::read_report;
use crate::exit;
use crate::history::History;
use crate::report::summary_line;
use crate::run::{RunOptions, first_divergence, run_loaded};

/// Replay one report.
pub(super) fn run(args: &ReplayArgs) -> u8 {
    let report = match read_report(&args.report) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("shakedown replay: {error}");
            return exit::BAD_INPUT;
        }
    };
    if report.backend != "sim" {
        eprintln!(
            "shakedown replay: {} came from the `{}` backend; only simulation runs repeat exactly",
            args.report.display(),
            report.backend
        );
        return exit::BAD_INPUT;
    }
    let file = Path::new(&report.scenario.file);
    let loaded = match crate::scenario::load_file(file, &report.scenario.overrides) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!(
                "hint: the report names its scenario as `{}`, relative to where it ran; replay from that directory",
                report.scenario.file
            );
            return exit::BAD_INPUT;
        }
    };
    if loaded.source_sha256 != report.scenario.sha256 {
        eprintln!(
            "shakedown replay: {} changed since the report was written (SHA-256 {} then, {} now), so the run would not repeat; restore that version (e.g. with git) or `shakedown run` the file anew",
            report.scenario.file,
            short(&report.scenario.sha256),
            short(&loaded.source_sha256)
        );
        return exit::BAD_INPUT;
    }
    // Read the old history before the run: replaying into the same --out replaces its directory.
    let history_file = args.report.with_file_name("history.jsonl");
    let before =
        std::fs::File::open(&history_file).ok().map(|f| History::read_jsonl(std::io::BufReader::new(f)));
    eprintln!("replaying {} with seed {}…", report.scenario.file, report.seed);
    let options = RunOptions {
        seed: Some(report.seed),
        overrides: report.scenario.overrides.clone(),
        out: args.out.clone(),
        check_determinism: false,
    };
    let outcome = match run_loaded(&loaded, &crate::sim::Sim, &options) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("{error}");
            return error.exit_code();
        }
    };
    println!("{}", summary_line(&outcome.report));
    println!("        report: {}", outcome.dir.join("report.html").display());
    match before {
        Some(Ok(before)) => {
            let after = History::read_jsonl(std::io::BufReader::new(
                std::fs::File::open(outcome.dir.join("history.jsonl"))
                    .expect("the run just wrote its history"),
            ))
            .expect("the run just wrote its history");
            if let Some(d) = first_divergence(&before, &after) {
                eprintln!(
                    "shakedown replay: the replay diverged from {} at line {}:\n  before: {}\n  now:    {}",
                    history_file.display(),
                    d.line,
                    d.first.as_deref().unwrap_or("(end)"),
                    d.second.as_deref().unwrap_or("(end)")
                );
                return exit::HARNESS_ERROR;
            }
            println!("        replay: identical history ({} events)", after.entries().len());
        }
        Some(Err(error)) => {
            println!("        replay: could not compare histories: {}: {error}", history_file.display())
        }
        None => println!("        replay: no history.jsonl beside the report to compare with"),
    }
    if outcome.report.verdict.status != report.verdict.status {
        eprintln!(
            "shakedown replay: the verdict changed: {:?} then, {:?} now (the histories matched, so a checker changed)",
            report.verdict.status, outcome.report.verdict.status
        );
    }
    outcome.report.verdict.exit_code
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
