//! Nothing of ours outlives its run. Three layers:
//!
//! 1. the run itself removes everything labelled with its run id when it ends — passed, failed,
//!    errored, panicked, or interrupted by Ctrl-C / SIGTERM (see `runner.rs`);
//! 2. every run first sweeps what *dead* runs left: a run whose owner label names a process
//!    that no longer exists (SIGKILLed harness, a machine that rebooted) — the owner is
//!    `pid/start-time` from `/proc`, so a reused pid is not mistaken for the owner;
//! 3. `shakedown down` (the CLI) removes every run of ours, live or not.

use testcontainers::bollard::Docker;

use super::engine::{remove_labelled, runs};
use super::layout::{PROJECT_LABEL, RUN_LABEL};

/// This process as an owner label: `pid/start-time` (clock ticks since boot, `/proc/self/stat`
/// field 22), so that a reused pid does not look like a live owner.
pub(super) fn owner_token(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid}/{start}"))
}

/// Whether the process an owner label names still runs.
fn owner_alive(token: &str) -> bool {
    let Some(pid) = token.split('/').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    owner_token(pid).as_deref() == Some(token)
}

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

/// Remove every run of ours, live or dead (`shakedown down`); returns how many resources went.
pub async fn remove_all() -> Result<usize, String> {
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .map_err(|e| format!("no Docker engine: {e}"))?;
    Ok(remove_labelled(&docker, &format!("{PROJECT_LABEL}=shakedown")).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_owner_is_not() {
        let me = owner_token(std::process::id()).expect("/proc/self/stat");
        assert!(owner_alive(&me));
        let (pid, start) = me.split_once('/').unwrap();
        let later: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!owner_alive(&format!("{pid}/{later}")), "a reused pid with another start time is dead");
        assert!(!owner_alive("4194304/1"));
        assert!(!owner_alive("garbage"));
    }
}
