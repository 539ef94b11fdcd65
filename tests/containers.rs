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

/// Run a shipped scenario with each `(from, to)` text replaced (a fault added, a duration
/// changed), from a copy in a temporary directory.
fn run_edited(shipped: &str, edits: &[(&str, &str)]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let mut scenario = std::fs::read_to_string(repo().join(shipped)).unwrap();
    for (from, to) in edits {
        assert!(scenario.contains(from), "{shipped} no longer says `{from}`: update the test");
        scenario = scenario.replace(from, to);
    }
    let path = dir.path().join("edited.yaml");
    std::fs::write(&path, scenario).unwrap();
    run(path.to_str().unwrap(), &[])
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

/// Latency between two services that are not the replication pair: the api hosts' connections
/// to the price feed go through the link proxy (only because the scenario asks for latency
/// there), every chunk waits 100 ms each way, so an investment — one price lookup — takes about
/// 200 ms longer during the fault and no longer after it.
#[test]
fn latency_between_api_and_pricefeed_on_containers() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("api-pricefeed-latency.yaml");
    std::fs::write(
        &scenario,
        "name: api-pricefeed-latency\nseed: 5\nduration: 24s\n\
         workload:\n  - { op: invest, rate: 20/s }\n\
         faults:\n  - { at: 8s, latency: { between: [[api], [pricefeed]], delay: 100ms }, for: 8s }\n\
         phases: { recovery: 4s }\n\
         checks:\n  durability: {}\n",
    )
    .unwrap();
    let ran = run(scenario.to_str().unwrap(), &[]);
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report["checks"]);
    let fault = &ran.report["faults"][0];
    assert!(fault["effect"]["messages_held_count"].as_u64().unwrap() > 0, "{fault:#}");
    let p50 = |phase: &str| {
        let rows = ran.report["latency"].as_array().unwrap();
        let row = rows.iter().find(|r| r["op"] == "invest" && r["phase"] == phase).unwrap();
        row["latency_ms_p50"].as_f64().unwrap()
    };
    let added = p50("fault") - p50("steady");
    eprintln!(
        "invest p50: steady {:.1} ms, fault {:.1} ms, added {added:.1} ms (asked 2 x 100 ms)",
        p50("steady"),
        p50("fault")
    );
    assert!((added - 200.0).abs() <= 20.0, "asked 2 x 100 ms, the median grew by {added:.1} ms");
    assert!((p50("post") - p50("steady")).abs() <= 20.0, "the delay ended with the fault");
    assert!(ours().is_empty(), "left behind: {:?}", ours());
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

/// Bug zoo on real servers — non-idempotent worker: workers cut off from the broker for 5 s
/// commit what they hold but cannot acknowledge it; RabbitMQ declares their connections dead
/// after two missed 1 s heartbeats and redelivers, and the planted bug applies the effect twice.
/// (With the server's 60 s default heartbeat nothing was redelivered and the bug went unseen.)
#[test]
fn bug_non_idempotent_worker_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/non-idempotent-worker.yaml");
    assert_eq!(check(&ran.report, "delivery")["status"], "fail");
}

/// Files on real servers (s3s-fs on a volume, PostgreSQL, RabbitMQ's fanout): the object store
/// SIGKILLed and restarted, then cut off from the api hosts, a worker killed and the broker
/// frozen — every acknowledged upload has its object with the bytes sent, its row, a thumbnail
/// and one audit entry, and no row points at a missing object.
#[test]
fn object_store_outage_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/object-store-outage.yaml");
    let files = check(&ran.report, "files");
    assert_eq!(files["status"], "pass", "{files:#}");
    assert!(files["details"]["acknowledged_count"].as_u64().unwrap() > 100, "{files:#}");
}

/// Bug zoo on real servers — metadata before object: rows committed before their PUT, which
/// fails while s3s-fs is down, point at nothing; the files check catches them.
#[test]
fn bug_metadata_before_object_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/metadata-before-object.yaml");
    let files = check(&ran.report, "files");
    assert!(files["details"]["dangling_row_count"].as_u64().unwrap() > 0, "{files:#}");
}

/// Bug zoo on real servers — auto-ack subscriber: the audit group acks each event on receipt,
/// so the events whose write fails while the workers are cut off from the database are gone.
#[test]
fn bug_autoack_subscriber_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/autoack-subscriber.yaml");
    let files = check(&ran.report, "files");
    assert!(files["details"]["missed_audit_count"].as_u64().unwrap() > 0, "{files:#}");
}

/// Backups on real servers: base backups with `pg_basebackup` on the run's grid, WAL archived
/// by `archive_command` to the backup agent and streamed to it by `pg_receivewal`, a catalogue
/// in real Redis; both database nodes and their volumes lost at 40 s, and at 45 s `pg-primary`
/// rebuilt from the newest verified base backup plus the archived WAL and the streamed tail,
/// `pg-replica` cloned from it. Nothing acknowledged before the recovery point is missing, every
/// catalogued backup verifies, writes resume, and the scenario's own RPO objective (1 s) holds:
/// the archive alone trails the loss by up to `archive_timeout` (1 s) plus a push, the stream by
/// milliseconds.
#[test]
fn backups_and_a_restore_after_losing_both_nodes_on_containers() {
    let ran = run("scenarios/backup-restore.yaml", &[]);
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report["checks"]);
    let restore = check(&ran.report, "restore");
    assert_eq!(restore["status"], "pass", "{restore:#}");
    let details = &restore["details"];
    let done = &details["restores"][0];
    assert!(done["base"].as_str().is_some_and(|b| b.starts_with("base-")), "{done:#}");
    assert!(done["segments_count"].as_u64().unwrap() > 0, "{done:#}");
    assert!(done["stopped"].as_str().is_some_and(|s| s.contains("streamed segment")), "{done:#}");
    assert!(done["rto_ms"].as_u64().unwrap() <= 20_000, "{done:#}");
    assert!(details["catalogue_done_count"].as_u64().unwrap() > 3, "{details:#}");
    assert_eq!(check(&ran.report, "durability")["status"], "pass");
    assert_eq!(ran.final_state["primary"], "pg-primary");
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// Bug zoo on real servers — catalog before backup: the agent marks a base backup done before
/// `pg_basebackup` has stored it and is SIGKILLed while it copies; the catalogue in Redis promises
/// a backup the volume does not hold, and the restore check says so.
#[test]
fn bug_catalog_before_backup_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/catalog-before-backup.yaml");
    let restore = check(&ran.report, "restore");
    assert!(restore["details"]["catalogue_broken_count"].as_u64().unwrap() > 0, "{restore:#}");
}

/// Bug zoo on real servers — WAL archive gap: pushes to the agent fail while the primary is cut
/// off from it, and the planted `archive_command` reports success anyway, so PostgreSQL recycles
/// segments the archive never got; the restore stops at the gap, seconds short.
#[test]
fn bug_wal_archive_gap_is_caught_on_containers() {
    let ran = same_verdict_as_on_the_simulation("scenarios/bugs/wal-archive-gap.yaml");
    let restore = check(&ran.report, "restore");
    assert!(restore["details"]["rpo_exceeded_count"].as_u64().unwrap() > 0, "{restore:#}");
}

/// Failback on real servers: the primary is SIGKILLed and the watchdog fails over to the
/// synchronous standby; at 35 s the old primary is rewound (`pg_rewind` against the new one),
/// rejoins as its standby, and a planned switchover makes it primary again (the run fails if
/// any step does: the failback is refused unless `pg-replica` is the primary then). Then the
/// watchdog must guard the stack as before: `pg-primary` is SIGKILLed again at 48 s, for good,
/// and the watchdog fails over to `pg-replica`, which it can only do having seen it streaming
/// synchronously since the failback. Nothing acknowledged may be lost on the way.
#[test]
fn failback_switches_back_and_the_watchdog_guards_the_stack_again_on_containers() {
    let ran = run("scenarios/regressions/crash-after-failback.yaml", &[]);
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report["checks"]);
    let durability = check(&ran.report, "durability");
    assert_eq!(durability["status"], "pass", "{durability:#}");
    let recovery = check(&ran.report, "recovery");
    let faults = recovery["details"]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 3, "{recovery:#}");
    assert!(faults.iter().all(|f| f["recovered"] == true), "{recovery:#}");
    assert_eq!(ran.final_state["primary"], "pg-replica");
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// Failback when the old primary really diverged: the planted `promote-lagging-standby` bug
/// promotes a standby cut off for 10 s, so the old primary holds acknowledged writes the new
/// one lacks (durability catches their loss). A diverged node cannot follow the new timeline:
/// the failback streams from it only because `pg_rewind` took the tail back, and the run ends
/// on `pg-primary` with the bug's expectation met.
#[test]
fn failback_rewinds_a_diverged_old_primary_on_containers() {
    let ran = run_edited(
        "scenarios/bugs/promote-lagging-standby.yaml",
        &[
            ("duration: 45s", "duration: 50s"),
            (
                "  - { at: 20s, crash: pg-primary, restart_after: 10s }\n",
                "  - { at: 20s, crash: pg-primary, restart_after: 10s }\n  - { at: 38s, failback: pg-primary }\n",
            ),
        ],
    );
    assert_eq!(ran.code, 0, "{}\n{:#}", ran.stderr, ran.report["checks"]);
    let durability = check(&ran.report, "durability");
    assert!(durability["details"]["lost_count"].as_u64().unwrap() > 0, "{durability:#}");
    assert_eq!(ran.final_state["primary"], "pg-primary");
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// A harness SIGKILLed mid-run cannot clean up; the next run sweeps what it left (its owner
/// process is gone) and, when it ends, nothing of ours is left on the engine.
#[test]
fn the_next_run_removes_what_a_sigkilled_harness_left() {
    let out = tempfile::tempdir().unwrap();
    let scenario = repo().join("scenarios/steady-state.yaml");
    let mut child = Command::new(common::binary())
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

/// Resources of one run on the engine (`docker … ls` by its run label).
fn ours_of(run: &str) -> Vec<String> {
    let mut out = Vec::new();
    for what in [&["ps", "-a"][..], &["network", "ls"], &["volume", "ls"]] {
        let listed = Command::new("docker")
            .args(what)
            .args(["-q", "--filter", &format!("label=shakedown.run={run}")])
            .output()
            .expect("docker runs");
        out.extend(String::from_utf8_lossy(&listed.stdout).lines().map(|l| format!("{} {l}", what[0])));
    }
    out
}

/// `GET path` on 127.0.0.1:`port` over a plain socket: the status and the body.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(answer.clone())?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Where db-router sends writes now (`GET /route` on its admin port).
fn route(admin_port: u16) -> Option<String> {
    let (_, body) = http_get(admin_port, "/route").ok()?;
    let value: serde_json::Value = serde_json::from_str(&body).ok()?;
    value["route"].as_str().map(String::from)
}

/// A `shakedown up` child process. Dropped while it still runs (a failed assertion), it gets
/// SIGINT and a bounded wait to clean up, then SIGKILL and `shakedown down --run` of its run.
struct Up {
    child: std::process::Child,
    run: Option<String>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Up {
    fn start(scenario: &str) -> (Up, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let mut child = Command::new(common::binary())
            .args(["up", repo().join(scenario).to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, received) = std::sync::mpsc::channel();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (out, pipe) = (stdout.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines.send(line);
            }
        });
        let (err, pipe) = (stderr.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                err.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        (Up { child, run: None, stdout, stderr }, received)
    }

    /// What it printed so far, for failure messages.
    fn output(&self) -> String {
        format!("--- stdout:\n{}--- stderr:\n{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    /// Send SIGINT; whether it was delivered.
    fn interrupt(&self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().is_ok_and(|s| s.success())
    }

    /// Wait (bounded) for it to exit.
    fn wait(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // Still running: SIGINT lets it remove its run; SIGKILL if that does not end it.
        if self.child.try_wait().ok().flatten().is_none()
            && (!self.interrupt() || self.wait(Duration::from_secs(60)).is_none())
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(run) = &self.run
            && !ours_of(run).is_empty()
        {
            let _ = Command::new(common::binary()).args(["down", "--run", run]).status();
        }
    }
}

/// Run `shakedown fault --run RUN ARGS…`; its exit code and stdout + stderr.
fn fault(run: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new(common::binary())
        .args(["fault", "--run", run])
        .args(args)
        .output()
        .expect("the binary runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// `shakedown up` as people use it: the stack comes up and prints its endpoints; the balancer
/// answers on 127.0.0.1; `shakedown fault crash pg-primary` from another process makes the
/// watchdog fail over (db-router's `GET /route` moves to pg-replica); a one-way partition comes
/// and goes; `heal` starts the old primary again; SIGINT ends `up` and removes everything of its
/// run. Method: `up` as a child process, the endpoints parsed from its table, every wait bounded.
/// Only this run's resources are checked and removed: other runs may share the engine.
#[test]
fn up_fault_heal_and_ctrl_c_leave_nothing_behind() {
    let started = Instant::now();
    let (mut up, lines) = Up::start("scenarios/steady-state.yaml");
    let word_after = |line: &str, host: &str| -> Option<u16> {
        let words: Vec<&str> = line.split_whitespace().collect();
        (words.first() == Some(&host)).then(|| words.get(2)?.strip_prefix("127.0.0.1:")?.parse().ok())?
    };
    let (mut lb, mut router, mut watchdog) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => panic!("`up` printed no endpoints within 240 s\n{}", up.output()),
        };
        if let Some(rest) = line.strip_prefix("shakedown up: run ") {
            up.run.get_or_insert_with(|| rest.split(':').next().unwrap().to_string());
        }
        lb = lb.or_else(|| word_after(&line, "lb"));
        router = router.or_else(|| word_after(&line, "db-router"));
        watchdog = watchdog.or_else(|| word_after(&line, "watchdog"));
        if line.trim_start().starts_with("stop:") {
            break;
        }
    }
    let up_s = started.elapsed().as_secs_f64();
    let run = up.run.clone().unwrap_or_else(|| panic!("no run id\n{}", up.output()));
    let (lb, router) = (lb.expect("the balancer's endpoint"), router.expect("db-router's endpoint"));
    assert_eq!(http_get(lb, "/health").map(|(status, _)| status), Ok(200), "{}", up.output());
    assert_eq!(route(router).as_deref(), Some("pg-primary"), "{}", up.output());

    // The watchdog promotes only a standby a healthy probe has shown it synchronous; a crash
    // before that probe is rightly not failed over (a CI run crashed the primary that early).
    let watchdog = watchdog.expect("the watchdog's endpoint");
    let armed = Instant::now();
    loop {
        let state = http_get(watchdog, "/control/state").map(|(_, body)| body).unwrap_or_default();
        let view: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
        if view["standby"]["sync"] == true {
            break;
        }
        assert!(
            armed.elapsed() < Duration::from_secs(30),
            "the watchdog saw no synchronous standby: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, said) = fault(&run, &["crash", "pg-primary"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains(&format!("crashed sd-{run}-pg-primary (SIGKILL)")), "{said}");
    let crashed = Instant::now();
    while route(router).as_deref() != Some("pg-replica") {
        assert!(crashed.elapsed() < Duration::from_secs(30), "no failover in 30 s\n{}", up.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let failover_s = crashed.elapsed().as_secs_f64();
    while !up.stdout.lock().unwrap().contains("pg-primary: running → exited") {
        assert!(
            crashed.elapsed() < Duration::from_secs(30),
            "`up` did not report the crash\n{}",
            up.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let (code, said) = fault(&run, &["partition", "api", "pg-replica", "--one-way", "--for", "1s"]);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("partitioned api-1,api-2 → pg-replica") && said.contains("healed the partition"),
        "{said}"
    );
    let (code, said) = fault(&run, &["crash", "pg-primray"]);
    assert_eq!(code, 254, "{said}");
    assert!(said.contains("did you mean `pg-primary`?"), "{said}");

    let (code, said) = fault(&run, &["heal"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains(&format!("started sd-{run}-pg-primary again")), "{said}");
    assert_eq!(http_get(lb, "/health").map(|(status, _)| status), Ok(200), "{}", up.output());

    assert!(up.interrupt(), "SIGINT to `up`");
    let status = up.wait(Duration::from_secs(90));
    assert!(
        status.is_some_and(|s| s.success()),
        "`up` did not end well on SIGINT: {status:?}\n{}",
        up.output()
    );
    assert!(up.stdout.lock().unwrap().contains("stopped by SIGINT"), "{}", up.output());
    assert!(ours_of(&run).is_empty(), "left behind: {:?}", ours_of(&run));
    eprintln!(
        "up: endpoints after {up_s:.1} s; failover {failover_s:.2} s after the crash; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
