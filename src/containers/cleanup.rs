//! Nothing of ours outlives its run. Three layers:
//!
//! 1. the run itself removes everything labelled with its run id when it ends — passed, failed,
//!    errored, panicked, or interrupted by Ctrl-C / SIGTERM (see `runner.rs`);
//! 2. every run first sweeps what *dead* runs left: a run whose owner label names a process
//!    that no longer exists (SIGKILLed harness, a machine that rebooted) — the owner is
//!    `pid/start-time` from `/proc`, so a reused pid is not mistaken for the owner;
//! 3. `shakedown down` (the CLI) removes every run of ours, live or not — `shakedown up`'s
//!    included: `up` notices its stack is gone and ends — or only the run `--run ID` names.

use testcontainers::bollard::Docker;

use super::engine::{docker, remove_labelled, runs};
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
pub(super) fn owner_alive(token: &str) -> bool {
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

/// Who owns a run, for people: `pid 812: shakedown up scenarios/steady-state.yaml` while the
/// owner lives (`/proc/PID/cmdline`, the program's file name only), `None` once it is gone.
pub(super) fn owner_described(token: &str) -> Option<String> {
    if !owner_alive(token) {
        return None;
    }
    let pid = token.split('/').next()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(String::from_utf8_lossy);
    let program = args.next()?;
    let program = program.rsplit('/').next().unwrap_or_default().to_string();
    let words: Vec<String> = std::iter::once(program).chain(args.map(|a| a.into_owned())).collect();
    Some(format!("pid {pid}: {}", words.join(" ")))
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
        let described = owner_described(&me).expect("this process is alive");
        assert!(described.starts_with(&format!("pid {pid}: ")), "{described}");
        assert_eq!(owner_described(&format!("{pid}/{later}")), None);
    }
}
