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

/// The `shakedown` binary under test: `SHAKEDOWN_BIN` when set (`make test-containers` points it
/// at the release build its images carry, so this test crate need not be built with fat LTO
/// too), else the one cargo built with this test.
pub fn binary() -> PathBuf {
    std::env::var_os("SHAKEDOWN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shakedown")))
}

/// Run the built `shakedown` binary in `dir`.
pub fn shakedown(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary()).args(args).current_dir(dir).output().expect("the binary runs")
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

/// A compose scenario run by the binary: its exit code, `report.json` (`Null` if none was
/// written), stderr, and the run id its compose project is named after.
pub struct ComposeRun {
    pub code: i32,
    pub report: serde_json::Value,
    pub stderr: String,
    pub run: String,
}

/// Run the repository's compose scenario `scenario` with `--set` overrides (`shakedown run`, as
/// a user would, into a temporary directory); panics if no compose project was brought up.
pub fn run_compose(scenario: &str, sets: &[&str]) -> ComposeRun {
    let out = tempfile::tempdir().unwrap();
    let path = repo().join(scenario);
    let mut args = vec!["run", path.to_str().unwrap(), "--out", out.path().to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = shakedown(out.path(), &args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let run = stderr
        .split("as compose project sd-")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no compose project named in:\n{stderr}"))
        .to_owned();
    let report = report_under(out.path())
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .unwrap_or(serde_json::Value::Null);
    ComposeRun { code: output.status.code().unwrap_or(-1), report, stderr, run }
}

/// The `report.json` under `dir`.
fn report_under(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = report_under(&path) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == "report.json") {
            return Some(path);
        }
    }
    None
}

/// What the engine still holds with a run's label: containers, networks, volumes.
pub fn left_behind(run: &str) -> Vec<String> {
    let filter = format!("label=shakedown.run={run}");
    let mut out = Vec::new();
    for what in [&["ps", "-a"][..], &["network", "ls"], &["volume", "ls"]] {
        let listed = Command::new("docker")
            .args(what)
            .args(["-q", "--filter", &filter])
            .output()
            .expect("docker runs");
        out.extend(String::from_utf8_lossy(&listed.stdout).lines().map(|l| format!("{} {l}", what[0])));
    }
    out
}
