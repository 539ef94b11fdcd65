//! `shakedown run FILE...`: run each scenario, write its reports, print one line per run and
//! where its report is; with several files, also the index page (`OUT/index.html`: every run of
//! this invocation, and the explorations found under `OUT`). The exit code is the worst
//! verdict (fail > unknown > pass), or 254 / 255 for bad input / harness errors.

use super::args::{BackendName, RunArgs};
use crate::exit;
use crate::report::{IndexEntry, find_explorations, render_index, summary_line};
use crate::run::{Backend, RunOptions, run_loaded};
use crate::scenario::load_file;

/// Run every file.
pub(super) fn run(args: &RunArgs) -> u8 {
    let options = RunOptions {
        seed: args.seed,
        overrides: args.overrides.clone(),
        out: args.out.clone(),
        check_determinism: args.check_determinism,
    };
    let mut worst = exit::PASS;
    let mut entries = Vec::new();
    for file in &args.files {
        let loaded = match load_file(file, &options.overrides) {
            Ok(loaded) => loaded,
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                worst = worse(worst, exit::BAD_INPUT);
                continue;
            }
        };
        let compose = loaded.scenario.stack.is_compose();
        let backend = match backend(args.backend, compose) {
            Ok(backend) => backend,
            Err(message) => {
                eprintln!("shakedown run {}: {message}", file.display());
                worst = worse(worst, exit::BAD_INPUT);
                continue;
            }
        };
        if !args.quiet {
            let place = if backend.name() == "sim" { "the simulation" } else { "containers" };
            let what = if compose { " (its own compose stack)" } else { "" };
            eprintln!("running {}{what} on {place}…", file.display());
        }
        match run_loaded(&loaded, backend.as_ref(), &options) {
            Ok(outcome) => {
                println!("{}", summary_line(&outcome.report));
                // report.html unless the scenario turned HTML off.
                let html = outcome.dir.join("report.html");
                let shown = if html.exists() { html } else { outcome.dir.join("report.json") };
                if !args.quiet {
                    println!("        report: {}", shown.display());
                    if args.check_determinism {
                        println!(
                            "        determinism: two runs of seed {} gave byte-identical histories",
                            outcome.report.seed
                        );
                    }
                }
                let href = shown.strip_prefix(&args.out).unwrap_or(&shown).display().to_string();
                entries.push(IndexEntry { report: outcome.report.clone(), href });
                worst = worse(worst, outcome.report.verdict.exit_code);
            }
            Err(error) => {
                eprintln!("{error}");
                worst = worse(worst, error.exit_code());
            }
        }
    }
    if entries.len() > 1 {
        let index = args.out.join("index.html");
        match std::fs::write(&index, render_index(&entries, &find_explorations(&args.out))) {
            Ok(()) => println!("index of {} reports: {}", entries.len(), index.display()),
            Err(e) => eprintln!("cannot write {}: {e}", index.display()),
        }
    }
    worst
}

/// The backend a scenario runs on: `--backend`, else the simulation for the built-in stack and
/// containers for a compose stack (which runs nowhere else).
fn backend(name: Option<BackendName>, compose: bool) -> Result<Box<dyn Backend>, String> {
    match (name, compose) {
        (Some(BackendName::Sim), true) => Err(
            "a compose stack runs on containers only: the simulation runs the built-in stack's own code, and a compose stack is your images' processes; drop `--backend sim`".into(),
        ),
        #[cfg(feature = "containers")]
        (_, true) => Ok(Box::new(crate::compose::Compose)),
        #[cfg(not(feature = "containers"))]
        (_, true) => Err(
            "a compose stack runs on containers, and this binary was built without them; build it with `cargo build --release --features containers` (or `make build BACKEND=containers`)".into(),
        ),
        (None | Some(BackendName::Sim), false) => Ok(Box::new(crate::sim::Sim)),
        #[cfg(feature = "containers")]
        (Some(BackendName::Containers), false) => {
            crate::containers::Containers::from_current_exe().map(|b| Box::new(b) as Box<dyn Backend>).map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "containers"))]
        (Some(BackendName::Containers), false) => Err(
            "this binary was built without the containers backend; build it with `cargo build --release --features containers` (or run `make run BACKEND=containers`)".into(),
        ),
    }
}

/// The more serious of two exit codes: harness error > bad input > fail > unknown > pass.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |code: u8| match code {
        exit::HARNESS_ERROR => 4,
        exit::BAD_INPUT => 3,
        exit::FAIL => 2,
        exit::UNKNOWN => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}
