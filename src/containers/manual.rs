//! `shakedown fault …`: faults applied by hand to a stack that is up (`shakedown up`, or a run in
//! progress), from a separate process. The stack is found by its labels: containers with
//! [`PROJECT_LABEL`]`=shakedown`, grouped by [`RUN_LABEL`], each playing the host its
//! [`HOST_LABEL`] names. With several live runs, `--run ID` chooses; targets are topology hosts
//! or groups (`api`, `db`, …), resolved by `scenario::topology` on the hosts present.
//!
//! | fault | applied as | reverted (`--for D`, or `heal`) as |
//! |---|---|---|
//! | `crash T` | SIGKILL of each container (`faults.rs`'s crash) | `docker start` |
//! | `pause T` | the cgroup freezer (`docker pause`) | `docker unpause` |
//! | `partition A B [--one-way]` | `faults.rs`'s DROP rules in each container's own namespace, input and output, and every proxied link between the sides cut | those rules deleted, the links restored |
//! | `heal` | — | every paused container thawed, every stopped one started, the filter table's `INPUT` and `OUTPUT` chains flushed in each running container, every proxied link restored |
//!
//! `heal` flushes whole chains instead of deleting rules one by one because it cannot know
//! which rules an earlier `fault` process added; only shakedown puts rules in these containers
//! (Docker's own rules for its DNS live in the `nat` table, which is left alone), so a flush
//! removes exactly the partitions. With `--for D` the command waits D (Ctrl-C: at once), then
//! reverts what it did and says so.
//!
//! Must not: act on containers without our label, or on a run other than the one chosen.

use std::collections::BTreeMap;
use std::time::Duration;

use testcontainers::bollard::Docker;

use super::engine::{Engine, Listed, docker, list_labelled};
use super::faults::{Rule, dropped_by, heal, iptables, partition_rules};
use super::layout::{LINKS_HOST, PROJECT_LABEL, RunNames, crosses};
use super::proxy::{Toxics, list_links, set_toxics};
use crate::scenario::model::StackConfig;
use crate::scenario::topology::{CLIENT, Topology};
use crate::scenario::{did_you_mean, one_of};

/// A fault to apply by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manual {
    /// SIGKILL the target's containers; with `hold`, start them again after it.
    Crash {
        /// A host or group.
        target: String,
        /// How long until it is reverted (`None`: until `heal`).
        hold: Option<Duration>,
    },
    /// Freeze the target's containers; with `hold`, thaw them after it.
    Pause {
        /// A host or group.
        target: String,
        /// How long until it is reverted (`None`: until `heal`).
        hold: Option<Duration>,
    },
    /// Cut `a` off from `b`.
    Partition {
        /// One side: a host or group.
        a: String,
        /// The other side.
        b: String,
        /// Drop only what `a` sends to `b`.
        one_way: bool,
        /// How long until it is reverted (`None`: until `heal`).
        hold: Option<Duration>,
    },
    /// Revert everything: thaw, start, flush the partition rules, restore the links.
    Heal,
}

/// Why a fault could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// No live run: nothing to act on.
    #[error("no stack is up{}; start one with `shakedown up FILE`", leftovers_note(.0))]
    NoStack(Vec<String>),
    /// Several live runs and no `--run`.
    #[error("several stacks are up; choose one with --run ID:\n{0}")]
    SeveralStacks(String),
    /// `--run` names no run.
    #[error("no run `{wanted}` of ours on this engine; runs:\n{listing}")]
    UnknownRun {
        /// What `--run` said.
        wanted: String,
        /// The runs there are, one a line.
        listing: String,
    },
    /// A target is neither a host nor a group of the run's stack.
    #[error("{message}\n  hint: {hint}")]
    UnknownTarget {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A partition with a host on both sides.
    #[error("`{0}` is on both sides of the partition; a host cannot be cut off from itself")]
    BothSides(String),
    /// The engine failed (a harness error).
    #[error("{0}")]
    Engine(String),
}

impl ManualError {
    /// Whether the user asked for something impossible (exit 254) rather than the engine
    /// failing (exit 255).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ManualError::Engine(_))
    }
}

fn leftovers_note(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!(
            " (only what dead runs left: {}; `shakedown down` removes it, or pass --run ID)",
            leftovers.join(", ")
        )
    }
}

/// One run of ours as the engine shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RunInfo {
    /// The run id.
    pub(super) id: String,
    /// Its owner while it lives (`pid 812: shakedown up …`); `None`: its owner is gone.
    pub(super) owner: Option<String>,
    /// Its containers.
    pub(super) containers: Vec<Listed>,
}

impl RunInfo {
    fn container(&self, host: &str) -> Option<&Listed> {
        self.containers.iter().find(|c| c.host == host)
    }
}

/// Apply `manual` to the run `run` names, or to the only live run; prints what it does.
pub fn fault(run: Option<&str>, manual: &Manual) -> Result<(), ManualError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ManualError::Engine(format!("a tokio runtime: {e}")))?;
    runtime.block_on(async {
        let docker = docker().await.map_err(ManualError::Engine)?;
        let runs = runs(&docker).await?;
        let chosen = choose_run(&runs, run)?;
        let engine = Engine::attach(docker, RunNames { run: chosen.id.clone() });
        match manual {
            Manual::Crash { target, hold } => {
                let hosts = resolve(chosen, target)?;
                stop(&engine, chosen, &hosts, Stop::Crash, *hold).await
            }
            Manual::Pause { target, hold } => {
                let hosts = resolve(chosen, target)?;
                stop(&engine, chosen, &hosts, Stop::Pause, *hold).await
            }
            Manual::Partition { a, b, one_way, hold } => {
                let (a, b) = (resolve(chosen, a)?, resolve(chosen, b)?);
                if let Some(both) = a.iter().find(|h| b.contains(h)) {
                    return Err(ManualError::BothSides(both.clone()));
                }
                partition(&engine, chosen, &a, &b, *one_way, *hold).await
            }
            Manual::Heal => heal_all(&engine, chosen).await,
        }
    })
}

/// Every run of ours with containers, with its owner described while it lives.
async fn runs(docker: &Docker) -> Result<Vec<RunInfo>, ManualError> {
    let listed =
        list_labelled(docker, &format!("{PROJECT_LABEL}=shakedown")).await.map_err(ManualError::Engine)?;
    let mut runs: BTreeMap<String, RunInfo> = BTreeMap::new();
    for container in listed {
        let owner = container.owner.as_deref().and_then(super::owner::owner_described);
        let run = runs.entry(container.run.clone()).or_insert_with(|| RunInfo {
            id: container.run.clone(),
            owner,
            containers: Vec::new(),
        });
        run.containers.push(container);
    }
    Ok(runs.into_values().collect())
}

/// The run to act on: the one `wanted` names, or else the only live one.
pub(super) fn choose_run<'a>(runs: &'a [RunInfo], wanted: Option<&str>) -> Result<&'a RunInfo, ManualError> {
    let listing = |runs: &[&RunInfo]| -> String {
        let lines = runs.iter().map(|r| {
            let owner = r.owner.as_deref().unwrap_or("owner gone: leftovers");
            format!("  {}  {} containers  ({owner})", r.id, r.containers.len())
        });
        lines.collect::<Vec<_>>().join("\n")
    };
    if let Some(wanted) = wanted {
        return runs.iter().find(|r| r.id == wanted).ok_or_else(|| ManualError::UnknownRun {
            wanted: wanted.into(),
            listing: if runs.is_empty() {
                "  (none)".into()
            } else {
                listing(&runs.iter().collect::<Vec<_>>())
            },
        });
    }
    let live: Vec<&RunInfo> = runs.iter().filter(|r| r.owner.is_some()).collect();
    match live[..] {
        [one] => Ok(one),
        [] => Err(ManualError::NoStack(runs.iter().map(|r| r.id.clone()).collect())),
        _ => Err(ManualError::SeveralStacks(listing(&live))),
    }
}

/// The hosts `target` names in `run`: a host or a group of the stack its containers make up.
pub(super) fn resolve(run: &RunInfo, target: &str) -> Result<Vec<String>, ManualError> {
    // A compose stack's service, by name (the link proxy of a built-in stack is no target).
    if target != LINKS_HOST && run.container(target).is_some() {
        return Ok(vec![target.to_owned()]);
    }
    let count = |prefix: &str| {
        let numbered = |c: &&Listed| c.host.strip_prefix(prefix).is_some_and(|n| n.parse::<u32>().is_ok());
        run.containers.iter().filter(numbered).count() as u32
    };
    let stack =
        StackConfig { api_replicas: count("api-"), workers: count("worker-"), ..StackConfig::default() };
    let topology = Topology::new(&stack);
    if let Some(hosts) = topology.resolve(target) {
        let present: Vec<String> = hosts.into_iter().filter(|h| run.container(h).is_some()).collect();
        if !present.is_empty() {
            return Ok(present);
        }
        return Err(ManualError::UnknownTarget {
            message: format!("no container of run {} plays `{target}`", run.id),
            hint: "the stack is partly gone: `shakedown up FILE` brings a whole one up".into(),
        });
    }
    let known = topology.target_names();
    let (message, hint) = if target == CLIENT {
        ("the client runs the load generator on this host; it has no container to fault".into(), None)
    } else {
        (format!("unknown host or group `{target}`"), did_you_mean(target, known.iter().map(String::as_str)))
    };
    let hint = hint.unwrap_or_else(|| format!("known hosts and groups: {}", one_of(&known)));
    Err(ManualError::UnknownTarget { message, hint })
}

/// A crash or a pause: how it is applied and reverted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Crash,
    Pause,
}

/// Crash or pause every running container of `hosts`; with `hold`, revert after it.
async fn stop(
    engine: &Engine,
    run: &RunInfo,
    hosts: &[String],
    how: Stop,
    hold: Option<Duration>,
) -> Result<(), ManualError> {
    let mut done = Vec::new();
    for host in hosts {
        let container = run.container(host).expect("resolve keeps only hosts with a container");
        if container.state != "running" {
            println!("{} is {} already; left as it is", container.name, container.state);
            continue;
        }
        let name = container.name.as_str();
        match how {
            Stop::Crash => {
                engine.kill(name).await.map_err(ManualError::Engine)?;
                println!("crashed {name} (SIGKILL)");
            }
            Stop::Pause => {
                engine.pause(name).await.map_err(ManualError::Engine)?;
                println!("paused {name} (cgroup freezer)");
            }
        }
        done.push(name);
    }
    let Some(hold) = hold else {
        if !done.is_empty() {
            println!("it stays so until `shakedown fault heal`");
        }
        return Ok(());
    };
    if done.is_empty() {
        return Ok(());
    }
    let held = wait(hold).await;
    for name in done {
        match how {
            Stop::Crash => {
                engine.restart(name).await.map_err(ManualError::Engine)?;
                println!("started {name} again after {held:.1?}");
            }
            Stop::Pause => {
                engine.unpause(name).await.map_err(ManualError::Engine)?;
                println!("unpaused {name} after {held:.1?}");
            }
        }
    }
    Ok(())
}

/// Wait `hold`, or less if SIGINT / SIGTERM comes first; how long it was.
async fn wait(hold: Duration) -> Duration {
    let start = tokio::time::Instant::now();
    println!("reverting in {hold:?} (Ctrl-C: now)…");
    tokio::select! {
        _ = tokio::time::sleep(hold) => {}
        signal = super::runner::interrupted() => println!("{signal}: reverting now"),
    }
    start.elapsed()
}

/// Cut `a` off from `b` by DROP rules (and the proxied links between them); with `hold`,
/// heal it after that long.
async fn partition(
    engine: &Engine,
    run: &RunInfo,
    a: &[String],
    b: &[String],
    one_way: bool,
    hold: Option<Duration>,
) -> Result<(), ManualError> {
    let rules = partition_rules(engine, a, b, one_way).await;
    let mut applied: Vec<Rule> = Vec::new();
    for (container, rule) in &rules {
        if let Err(why) = iptables(engine, container, "-A", rule).await {
            heal(engine, &applied).await;
            return Err(ManualError::Engine(format!("{why} (the rules added before it were deleted)")));
        }
        applied.push((container.clone(), rule.clone()));
    }
    let admin = links_admin(run);
    let links = match &admin {
        Some(admin) => links_between(admin, a, b).await.map_err(ManualError::Engine)?,
        None => Vec::new(),
    };
    if let Some(admin) = &admin {
        set_toxics(admin, &links, Toxics { cut: true, ..Toxics::default() })
            .await
            .map_err(ManualError::Engine)?;
    }
    let mut containers: Vec<&str> = Vec::new();
    for (container, _) in &rules {
        if !containers.contains(&container.as_str()) {
            containers.push(container);
        }
    }
    let arrow = if one_way { "→" } else { "↔" };
    println!(
        "partitioned {} {arrow} {}: {} DROP rules in {}{}",
        a.join(","),
        b.join(","),
        rules.len(),
        containers.join(", "),
        if links.is_empty() { String::new() } else { format!("; proxied links cut: {}", links.join(", ")) }
    );
    let Some(hold) = hold else {
        println!("it stays so until `shakedown fault heal`");
        return Ok(());
    };
    let held = wait(hold).await;
    let dropped = dropped_by(engine, &rules).await;
    heal(engine, &rules).await;
    if let Some(admin) = &admin {
        set_toxics(admin, &links, Toxics::default()).await.map_err(ManualError::Engine)?;
    }
    println!("healed the partition after {held:.1?}: its rules dropped {dropped} packets");
    Ok(())
}

/// `heal`: thaw, start, flush the partition rules, restore the links — in that order, since
/// a frozen or stopped container takes no `iptables` command.
async fn heal_all(engine: &Engine, run: &RunInfo) -> Result<(), ManualError> {
    let mut actions = 0;
    let mut running = Vec::new();
    for container in &run.containers {
        let name = container.name.as_str();
        match container.state.as_str() {
            "paused" => {
                engine.unpause(name).await.map_err(ManualError::Engine)?;
                println!("unpaused {name}");
                actions += 1;
            }
            "exited" | "created" => {
                engine.restart(name).await.map_err(ManualError::Engine)?;
                println!("started {name} again");
                actions += 1;
            }
            "running" => {}
            other => {
                println!("{name} is {other}; left as it is");
                continue;
            }
        }
        running.push(name);
    }
    for name in running {
        let flushed = flush_rules(engine, name).await.map_err(ManualError::Engine)?;
        if flushed > 0 {
            println!("removed {flushed} partition rules in {name}");
            actions += 1;
        }
    }
    if let Some(admin) = links_admin(run) {
        let reports = list_links(&admin).await.map_err(ManualError::Engine)?;
        let disturbed: Vec<String> =
            reports.into_iter().filter(|l| l.toxics != Toxics::default()).map(|l| l.name).collect();
        set_toxics(&admin, &disturbed, Toxics::default()).await.map_err(ManualError::Engine)?;
        for link in &disturbed {
            println!("restored the proxied link {link}");
            actions += 1;
        }
    }
    if actions == 0 {
        println!(
            "nothing to heal in run {}: every container runs, no partition rules, no link disturbed",
            run.id
        );
    }
    Ok(())
}

/// Flush the filter table's INPUT and OUTPUT chains in `container`; how many DROP rules went.
async fn flush_rules(engine: &Engine, container: &str) -> Result<usize, String> {
    let (code, listing) = engine.exec_named(container, &["iptables", "-w", "-S"]).await?;
    if code != 0 {
        return Err(format!("iptables -S in {container} exited {code}: {}", listing.trim()));
    }
    let count = drop_rules(&listing);
    if count > 0 {
        for chain in ["INPUT", "OUTPUT"] {
            match engine.exec_named(container, &["iptables", "-w", "-F", chain]).await? {
                (0, _) => {}
                (code, out) => {
                    return Err(format!("iptables -F {chain} in {container} exited {code}: {out}"));
                }
            }
        }
    }
    Ok(count)
}

/// DROP rules on INPUT or OUTPUT in an `iptables -S` listing.
pub(super) fn drop_rules(listing: &str) -> usize {
    let rule = |l: &&str| l.starts_with("-A INPUT ") || l.starts_with("-A OUTPUT ");
    listing.lines().filter(rule).filter(|l| l.ends_with("-j DROP")).count()
}

/// The link proxy's admin address on 127.0.0.1, if the run has one running.
fn links_admin(run: &RunInfo) -> Option<String> {
    let links = run.container(LINKS_HOST).filter(|c| c.state == "running")?;
    links.port.map(|port| format!("127.0.0.1:{port}"))
}

/// The proxied links whose ends are on opposite sides of `a` | `b` (names are `source~target`).
async fn links_between(admin: &str, a: &[String], b: &[String]) -> Result<Vec<String>, String> {
    let crosses = |name: &str| name.split_once('~').is_some_and(|(s, t)| crosses(a, b, s, t));
    Ok(list_links(admin).await?.into_iter().map(|l| l.name).filter(|n| crosses(n)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, owner: Option<&str>, hosts: &[&str]) -> RunInfo {
        let containers = hosts
            .iter()
            .map(|h| Listed {
                name: format!("sd-{id}-{h}"),
                run: id.into(),
                host: h.to_string(),
                owner: Some("1/1".into()),
                state: "running".into(),
                status: "Up".into(),
                port: None,
            })
            .collect();
        RunInfo { id: id.into(), owner: owner.map(String::from), containers }
    }

    const STACK: [&str; 15] = [
        "lb",
        "api-1",
        "api-2",
        "pricefeed",
        "inventory",
        "ordersvc",
        "reports",
        "worker-1",
        "worker-2",
        "broker",
        "pg-primary",
        "pg-replica",
        "db-router",
        "watchdog",
        "links",
    ];

    /// The only live run is chosen by itself; a dead run's leftovers are not; with several live
    /// runs, `--run` is required and every run is listed; `--run` may name a dead one.
    #[test]
    fn the_run_is_the_only_live_one_or_the_one_named() {
        let up = run("aaaa", Some("pid 5: shakedown up s.yaml"), &STACK);
        let dead = run("dddd", None, &STACK);
        let other = run("bbbb", Some("pid 6: shakedown run s.yaml --backend containers"), &STACK);
        assert_eq!(choose_run(&[up.clone(), dead.clone()], None).unwrap().id, "aaaa");
        assert_eq!(choose_run(&[up.clone(), dead.clone()], Some("dddd")).unwrap().id, "dddd");
        let several = choose_run(&[up.clone(), other.clone()], None).unwrap_err().to_string();
        assert!(several.contains("--run ID"), "{several}");
        assert!(several.contains("aaaa  15 containers  (pid 5: shakedown up s.yaml)"), "{several}");
        assert!(several.contains("bbbb"), "{several}");
        let none = choose_run(std::slice::from_ref(&dead), None).unwrap_err();
        assert!(
            none.to_string().contains("shakedown up FILE") && none.to_string().contains("dddd"),
            "{none}"
        );
        assert!(choose_run(&[], None).unwrap_err().to_string().starts_with("no stack is up; start one"));
        let unknown = choose_run(&[up], Some("zzzz")).unwrap_err();
        assert!(unknown.is_bad_input());
        assert!(unknown.to_string().contains("aaaa"), "{unknown}");
    }

    /// Hosts and groups resolve on the hosts present (three api hosts: `api` is all three);
    /// a typo gets a did-you-mean, the client and the link proxy are not targets.
    #[test]
    fn targets_resolve_on_the_hosts_present() {
        let mut hosts = STACK.to_vec();
        hosts.push("api-3");
        let up = run("aaaa", Some("pid 5"), &hosts);
        assert_eq!(resolve(&up, "pg-primary").unwrap(), ["pg-primary"]);
        assert_eq!(resolve(&up, "api").unwrap(), ["api-1", "api-2", "api-3"]);
        assert_eq!(resolve(&up, "db").unwrap(), ["pg-primary", "pg-replica", "db-router"]);
        let typo = resolve(&up, "pg-primray").unwrap_err().to_string();
        assert_eq!(typo, "unknown host or group `pg-primray`\n  hint: did you mean `pg-primary`?");
        let far = resolve(&up, "zzzzzzzz").unwrap_err().to_string();
        assert!(far.contains("known hosts and groups: `edge`, `api`"), "{far}");
        assert!(resolve(&up, "client").unwrap_err().to_string().contains("load generator"));
        assert!(resolve(&up, "links").is_err());
        // A compose stack's services are targets by name.
        let compose = run("bbbb", Some("pid 6"), &["pg1", "etcd", "haproxy"]);
        assert_eq!(resolve(&compose, "pg1").unwrap(), ["pg1"]);
        let partial = run("cccc", Some("pid 7"), &["lb", "api-1"]);
        assert!(
            resolve(&partial, "pg-primary").unwrap_err().to_string().contains("no container of run cccc")
        );
    }

    #[test]
    fn drop_rules_are_counted_from_an_iptables_listing() {
        let listing = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n\
                       -A INPUT -s 172.18.0.5/32 -j DROP\n-A OUTPUT -d 172.18.0.5/32 -j DROP\n";
        assert_eq!(drop_rules(listing), 2);
        assert_eq!(drop_rules("-P INPUT ACCEPT\n"), 0);
    }
}
