//! A seed system under test as its authors built it: the query gateway of `examples/seeds/`
//! (FastAPI, RabbitMQ, a pika worker, PostgreSQL) run by `shakedown run` as a user would,
//! shortened. Its worker is SIGKILLed while it computes and restarted; the worker acknowledges a
//! message only after its commit, so RabbitMQ redelivers what it held and every accepted query
//! must still complete. Afterwards nothing labelled with the run is left on the engine.
//!
//! Needs a Docker engine, a Compose CLI and, the first time, mmdebstrap (the local base and the
//! seed's image are built when missing: a few minutes). `make examples` runs every seed scenario.
#![cfg(feature = "containers")]

mod common;

use common::{left_behind, repo, shakedown};

/// The `report.json` under `dir`.
fn report_under(dir: &std::path::Path) -> Option<std::path::PathBuf> {
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

// Goal: a seed scenario runs to a verdict on containers and cleans up after itself. Method: the
// query gateway's worker crash, 25 s of load at 1 query/s (half the example's rate: a busy
// machine's single worker keeps up with it) with the crash at 8 s and the restart 6 s later, the
// latency objectives dropped (they are the example's for a quiet machine); the run exits 0 or 1,
// never an error; the crash hit the worker; queries were accepted, and none was lost.
#[test]
fn the_query_gateway_s_worker_crash_loses_no_accepted_query_and_leaves_nothing_behind() {
    let out = tempfile::tempdir().unwrap();
    let path = repo().join("examples/seeds/query-gateway/worker-crash.yaml");
    let sets = [
        "duration=25s",
        "workload[0].rate=1/s",
        "faults[0].at=8s",
        "faults[0].restart_after=6s",
        "checks.slo=[]",
    ];
    let mut args = vec!["run", path.to_str().unwrap(), "--out", out.path().to_str().unwrap()];
    for set in &sets {
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
    assert!(left_behind(&run).is_empty(), "run {run} left {:?}", left_behind(&run));
    let code = output.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "a verdict (0 or 1), not {code}:\n{stderr}");
    let file = report_under(out.path()).unwrap_or_else(|| panic!("no report.json:\n{stderr}"));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(
        ["pass", "fail"].contains(&report["verdict"]["status"].as_str().unwrap()),
        "{}",
        report["verdict"]
    );
    assert_eq!(report["faults"][0]["hosts"], serde_json::json!(["worker"]), "{}", report["faults"][0]);
    let delivery = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "delivery").unwrap();
    assert!(delivery["details"]["accepted_count"].as_u64().unwrap() > 10, "{delivery}");
    assert_eq!(delivery["status"], "pass", "{delivery}");
}
