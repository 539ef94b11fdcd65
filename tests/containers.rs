//! The containers backend end to end: shipped scenarios on real containers (real PostgreSQL
//! primary + streaming standby, real RabbitMQ, the services as `shakedown serve`), their
//! verdicts, and cleanup — also after the harness is SIGKILLed mid-run.
//!
//! Needs a Docker engine and a binary built with `--features containers`; `make test-containers`
//! builds the images (if missing) and runs this file on one thread (the runs share the engine).
//! Each test asserts that nothing labelled by shakedown is left once it is done.
#![cfg(feature = "containers")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo, shakedown};

/// Resources of ours on the engine: containers, networks, volumes (`docker … ls` by label).
fn ours() -> Vec<String> {
    let mut out = Vec::new();
    for what in [&["ps", "-a"][..], &["network", "ls"], &["volume", "ls"]] {
        let listed = Command::new("docker")
            .args(what)
            .args(["-q", "--filter", "label=shakedown.project=shakedown"])
            .output()
            .expect("docker runs");
        out.extend(String::from_utf8_lossy(&listed.stdout).lines().map(|l| format!("{} {l}", what[0])));
    }
    out
}

/// What one run left: its exit code, report.json, final-state.json and stderr.
struct Ran {
    code: i32,
    report: serde_json::Value,
    final_state: serde_json::Value,
    stderr: String,
}

/// Run a scenario on containers in a fresh output directory.
fn run(scenario: &str, sets: &[&str]) -> Ran {
    let out = tempfile::tempdir().unwrap();
    let path = repo().join(scenario);
    let mut args = vec!["run", path.to_str().unwrap(), "--backend", "containers", "--out"];
    args.push(out.path().to_str().unwrap());
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = shakedown(out.path(), &args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let code = output.status.code().unwrap_or(-1);
    let read = |name: &str| {
        find_report(out.path())
            .and_then(|p| std::fs::read_to_string(p.with_file_name(name)).ok())
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap_or(serde_json::Value::Null)
    };
    Ran { code, report: read("report.json"), final_state: read("final-state.json"), stderr }
}

fn find_report(dir: &Path) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_report(&path) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == "report.json") {
            return Some(path);
        }
    }
    None
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check"))
}

/// Steady state on real servers: every check passes, the report says `containers` and how long
/// the stack took to come up, and the run leaves nothing behind.
#[test]
fn steady_state_passes_on_containers() {
    let ran = run("scenarios/steady-state.yaml", &["duration=20s"]);
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report);
    assert_eq!(ran.report["backend"], "containers");
    assert!(ran.report["run"]["startup_ms"].as_u64().is_some_and(|ms| ms > 0), "{:#}", ran.report["run"]);
    assert_eq!(ran.final_state["primary"], "pg-primary");
    assert!(
        ran.final_state["investments"].as_object().is_some_and(|i| i.len() > 100),
        "{:#}",
        ran.final_state
    );
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// SIGKILL of the real primary under load with synchronous replication: the watchdog fences it
/// on its volume and promotes the standby with `pg_promote()`, db-router follows, the restarted
/// old primary stays read-only, and no acknowledged write is lost.
#[test]
fn primary_crash_on_containers_loses_nothing_with_sync_replication() {
    let ran = run("scenarios/primary-crash.yaml", &[]);
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report);
    assert_eq!(ran.report["backend"], "containers");
    assert_eq!(check(&ran.report, "durability")["status"], "pass");
    assert_eq!(ran.final_state["primary"], "pg-replica", "the standby was promoted");
    let crash = ran.report["faults"].as_array().unwrap().iter().find(|f| f["kind"] == "crash").unwrap();
    assert!(!crash["vacuous"].as_bool().unwrap(), "{crash:#}");
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// A frozen primary (cgroup freezer: its kernel still accepts connections, nothing answers) is a
/// gray failure: the watchdog's probes time out, it fences the node (on its volume and, since a
/// frozen node cannot be made read-only, in the db-router) and promotes the standby; thawed, the
/// old primary is still writable but never routed to again. Nothing acknowledged is lost and no
/// split brain is reported.
#[test]
fn a_frozen_primary_is_fenced_and_replaced_without_loss() {
    let ran = run("scenarios/primary-pause.yaml", &[]);
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report);
    assert_eq!(check(&ran.report, "durability")["status"], "pass");
    assert_eq!(check(&ran.report, "durability")["details"]["diverged_count"], 0);
    let pause = ran.report["faults"].as_array().unwrap().iter().find(|f| f["kind"] == "pause").unwrap();
    assert!(!pause["vacuous"].as_bool().unwrap(), "{pause:#}");
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// A shipped scenario on containers gives the verdict it gives on the simulation (exit 0: every
/// check passed, or failed exactly as its `expect` says), every fault hit something, and
/// nothing is left behind.
fn same_verdict_as_on_the_simulation(scenario: &str) -> Ran {
    let ran = run(scenario, &[]);
    assert_eq!(ran.code, 0, "{scenario}: {}\n{:#}", ran.stderr, ran.report["checks"]);
    for fault in ran.report["faults"].as_array().unwrap() {
        assert!(!fault["vacuous"].as_bool().unwrap(), "{scenario}: a fault hit nothing: {fault:#}");
    }
    assert!(ours().is_empty(), "left behind: {:?}", ours());
    ran
}

/// Workers paused through their control endpoints, with the queue bounded: the gateway answers
/// 503 when the real queue is full, and every accepted query completes once they resume.
#[test]
fn queue_backpressure_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/queue-backpressure.yaml");
    assert_eq!(check(&ran.report, "delivery")["status"], "pass");
}

/// The price feed answers errors through its control endpoint: investments fail cleanly
/// (nothing acknowledged without a price) and recover.
#[test]
fn pricefeed_outage_on_containers() {
    same_verdict_as_on_the_simulation("scenarios/pricefeed-outage.yaml");
}

/// The standby cut off from the primary and the api hosts by iptables rules in their own network
/// namespaces (the replication link through the proxy cut too): reads fall back to the primary,
/// the standby catches up after the heal, read-your-writes holds, nothing is lost.
#[test]
fn replica_partition_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/replica-partition.yaml");
    assert_eq!(check(&ran.report, "staleness")["status"], "pass");
    let partition = &ran.report["faults"][0];
    assert!(partition["effect"]["messages_held_count"].as_u64().unwrap() > 0, "{partition:#}");
}

/// Bug zoo on real servers — no fencing: the frozen old primary thaws writable, db-router was
/// never told to take it out of service, and writes land on both nodes: split brain, caught.
#[test]
fn bug_no_fencing_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/no-fencing.yaml");
    assert_eq!(check(&ran.report, "durability")["status"], "fail");
}

/// Bug zoo on real servers — skip compensation: orders whose report step fails while `reports`
/// is SIGKILLed keep their stock taken; the saga check catches it.
#[test]
fn bug_skip_compensation_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/skip-compensation.yaml");
    assert_eq!(check(&ran.report, "saga")["status"], "fail");
}

/// A harness SIGKILLed mid-run cannot clean up; the next run sweeps what it left (its owner
/// process is gone) and, when it ends, nothing of ours is left on the engine.
#[test]
fn the_next_run_removes_what_a_sigkilled_harness_left() {
    let out = tempfile::tempdir().unwrap();
    let scenario = repo().join("scenarios/steady-state.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(["run", scenario.to_str().unwrap(), "--backend", "containers", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run has containers up (bounded), then SIGKILL the harness.
    let deadline = Instant::now() + Duration::from_secs(180);
    while ours().iter().filter(|r| r.starts_with("ps")).count() < 5 {
        assert!(Instant::now() < deadline, "the run never started its containers");
        assert!(child.try_wait().unwrap().is_none(), "the harness ended before it was killed");
        std::thread::sleep(Duration::from_millis(500));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!ours().is_empty(), "a SIGKILLed harness cannot have cleaned up");
    let ran = run("scenarios/steady-state.yaml", &["duration=5s"]);
    assert!(ran.stderr.contains("removed what the dead run"), "{}", ran.stderr);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}
