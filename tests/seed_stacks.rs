//! Seed systems under test as their authors built them (`examples/seeds/`), run by `shakedown
//! run` as a user would, shortened, and afterwards nothing labelled with the run left on the
//! engine:
//! - the query gateway (FastAPI, RabbitMQ, a pika worker, PostgreSQL): its worker is SIGKILLed
//!   while it computes and restarted; the worker acknowledges a message only after its commit,
//!   so RabbitMQ redelivers what it held and every accepted query must still complete;
//! - the investments API: `latency` between it and its replicas, measured in what the reads saw.
//!
//! Needs a Docker engine, a Compose CLI and, the first time, mmdebstrap (the local base and the
//! seed's image are built when missing: a few minutes). `make examples` runs every seed scenario.
#![cfg(feature = "containers")]

mod common;

use common::{left_behind, run_compose};

/// Run a seed scenario shortened by `sets`; its report, once the run is checked to have left
/// nothing behind and to have ended in a verdict (exit 0 or 1, never an error).
fn run_to_a_verdict(scenario: &str, sets: &[&str]) -> serde_json::Value {
    let ran = run_compose(scenario, sets);
    let (run, stderr, code) = (&ran.run, &ran.stderr, ran.code);
    assert!(left_behind(run).is_empty(), "run {run} left {:?}", left_behind(run));
    assert!(code == 0 || code == 1, "a verdict (0 or 1), not {code}:\n{stderr}");
    assert!(!ran.report.is_null(), "no report.json:\n{stderr}");
    ran.report
}

// Goal: a seed scenario runs to a verdict on containers and cleans up after itself. Method: the
// query gateway's worker crash, 25 s of load at 1 query/s (half the example's rate: a busy
// machine's single worker keeps up with it) with the crash at 8 s and the restart 6 s later, the
// latency objectives dropped (they are the example's for a quiet machine); the run exits 0 or 1,
// never an error; the crash hit the worker; queries were accepted, and none was lost.
#[test]
fn the_query_gateway_s_worker_crash_loses_no_accepted_query_and_leaves_nothing_behind() {
    let sets = [
        "duration=25s",
        "workload[0].rate=1/s",
        "faults[0].at=8s",
        "faults[0].restart_after=6s",
        "checks.slo=[]",
    ];
    let report = run_to_a_verdict("examples/seeds/query-gateway/worker-crash.yaml", &sets);
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

/// The latency row of `op` in `phase` from a report: its p50 in ms.
fn p50(report: &serde_json::Value, op: &str, phase: &str) -> f64 {
    let rows = report["latency"].as_array().expect("latency rows");
    let row = rows
        .iter()
        .find(|r| r["op"] == op && r["phase"] == phase)
        .unwrap_or_else(|| panic!("no {op} row for {phase} in {rows:?}"));
    row["latency_ms_p50"].as_f64().unwrap_or_else(|| panic!("no p50: {row}"))
}

// Goal: `latency` works on a compose stack, and the ops see the delay the scenario asks for.
// Method: the investments seed's history reads (each opens its own PostgreSQL connection to a
// replica) with 100 ms each way between the API and both replicas for 12 s of a 30 s run. A
// read makes at least one round trip to a replica, so its median in the fault phase must be at
// least 200 ms above the steady median; after the heal the delay is gone (the recovery phase's
// median within 100 ms of steady's); the delayers held packets; the fault named the API and
// both replicas; and the run leaves nothing behind.
#[test]
fn latency_on_a_compose_stack_delays_what_the_ops_see_and_goes_away_when_healed() {
    let sets = ["duration=30s", "faults[0].at=8s", "faults[0].for=12s", "checks.slo=[]"];
    let report = run_to_a_verdict("examples/seeds/investments/slow-replicas.yaml", &sets);
    let fault = &report["faults"][0];
    assert_eq!(fault["hosts"], serde_json::json!(["api", "pg-replica-1", "pg-replica-2"]), "{fault}");
    assert!(fault["effect"]["messages_held_count"].as_u64().unwrap_or(0) > 0, "{fault}");
    let history = |phase| p50(&report, "list-history", phase);
    let (steady, during, after) = (history("steady"), history("fault"), history("recovery"));
    eprintln!("list-history p50: steady {steady:.1} ms, fault {during:.1} ms, recovery {after:.1} ms");
    assert!(during >= steady + 200.0, "one round trip at least: steady {steady} ms, fault {during} ms");
    assert!(after < steady + 100.0, "healed: steady {steady} ms, recovery {after} ms");
}
