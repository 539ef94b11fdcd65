//! Helpers shared by the integration tests. Each test crate uses some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[cfg(feature = "real")]
pub mod real;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run the built `shakedown` binary in `dir`.
pub fn shakedown(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// Run a scenario file on the simulation with `--set` overrides, as a user's test would
/// (`shakedown::run::run_file`), writing into a temporary directory; panics on a harness error.
pub fn run(path: &Path, overrides: &[&str]) -> shakedown::report::Report {
    let out = tempfile::tempdir().unwrap();
    let options = shakedown::run::RunOptions {
        out: out.path().to_path_buf(),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        ..shakedown::run::RunOptions::default()
    };
    shakedown::run::run_file(path, &shakedown::sim::Sim, &options)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .report
}
