//! Nothing of ours outlives its run. Three layers:
//!
//! 1. the run itself removes everything labelled with its run id when it ends — passed, failed,
//!    errored, panicked, or interrupted by Ctrl-C / SIGTERM (see `runner.rs`);
//! 2. every run first sweeps what *dead* runs left: a run whose owner label names a process
//!    that no longer exists (SIGKILLed harness, a machine that rebooted) — the owner is
//!    `pid/start-time` from `/proc` (`owner.rs`), so a reused pid is not mistaken for the owner;
//! 3. `shakedown down` (the CLI) removes every run of ours, live or not — `shakedown up`'s
//!    included: `up` notices its stack is gone and ends — or only the run `--run ID` names.

use testcontainers::bollard::Docker;

use super::engine::{docker, remove_labelled, runs};
use super::layout::{PROJECT_LABEL, RUN_LABEL};
use super::owner::{owner_alive, owner_described};

/// Remove what runs whose owner is gone left behind; returns the runs swept.
pub(super) async fn sweep_dead_runs(docker: &Docker) -> Vec<String> {
    let mut swept = Vec::new();
    for (run, owner) in runs(docker).await {
        if owner.as_deref().is_some_and(owner_alive) {
            continue;
        }
        remove_labelled(docker, &format!("{RUN_LABEL}={run}")).await;
        swept.push(run);
    }
    swept
}

/// Remove everything of one run.
pub(super) async fn remove_run(docker: &Docker, run: &str) -> usize {
    remove_labelled(docker, &format!("{RUN_LABEL}={run}")).await
}

/// What `shakedown down` removed of one run.
#[derive(Clone, Debug)]
pub struct Removed {
    /// The run id.
    pub run: String,
    /// Its owner while it was alive (`pid 812: shakedown up …`); `None`: a dead run's leftovers.
    pub owner: Option<String>,
    /// Containers, networks and volumes removed.
    pub count: usize,
}

/// `shakedown down`: remove every run of ours, live or dead — or, with `only`, that one run —
/// and say what went, run by run. An unknown `only` is an error that lists the runs there are.
pub async fn down(only: Option<&str>) -> Result<Vec<Removed>, String> {
    let docker = docker().await?;
    let runs = runs(&docker).await;
    if let Some(wanted) = only
        && !runs.iter().any(|(run, _)| run == wanted)
    {
        let known: Vec<&str> = runs.iter().map(|(run, _)| run.as_str()).collect();
        let listed = if known.is_empty() { "there is none".to_string() } else { known.join(", ") };
        return Err(format!("no run `{wanted}` of ours on this engine (runs: {listed})"));
    }
    let mut removed = Vec::new();
    for (run, owner) in runs.into_iter().filter(|(run, _)| only.is_none_or(|o| o == run)) {
        let owner = owner.as_deref().and_then(owner_described);
        let count = remove_run(&docker, &run).await;
        removed.push(Removed { run, owner, count });
    }
    if only.is_none() {
        // Anything of ours that lost its run label (none is made so): the project's label.
        let rest = remove_labelled(&docker, &format!("{PROJECT_LABEL}=shakedown")).await;
        if rest > 0 {
            removed.push(Removed { run: "(no run label)".into(), owner: None, count: rest });
        }
    }
    Ok(removed)
}
