//! A user's compose stack under test, end to end: the Patroni example (three PostgreSQL nodes
//! under Patroni, etcd, HAProxy — a stack shakedown did not write) run by `shakedown run` as a
//! user would, shortened. Its leader is crashed (resolved by role when the fault starts) and, in
//! the second test, cut off from its peers; nothing acknowledged may be lost, the recovery check
//! reports the RTO, and afterwards nothing labelled with the run is left on the engine.
//!
//! Needs a Docker engine, a Compose CLI and, the first time, mmdebstrap (the local base and the
//! example's image are built when missing: a few minutes). `make test-compose` runs it.
#![cfg(feature = "containers")]

mod common;

use common::{left_behind, run_compose};

/// Run an example scenario with `--set` overrides; (exit code, report.json, stderr, run id).
fn run(scenario: &str, sets: &[&str]) -> (i32, serde_json::Value, String, String) {
    let ran = run_compose(scenario, sets);
    (ran.code, ran.report, ran.stderr, ran.run)
}

fn check<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

/// Shortened: 40 s of load, the fault at 12 s. The latency objectives are the example's for a
/// quiet machine; these tests judge loss and recovery, on whatever CI machine runs them.
const SHORT: [&str; 3] = ["duration=40s", "faults[0].at=12s", "checks.slo=[]"];

#[test]
fn the_patroni_leader_is_crashed_by_role_and_nothing_acknowledged_is_lost() {
    let mut sets = SHORT.to_vec();
    sets.push("faults[0].restart_after=15s");
    let (code, report, stderr, run) = run("examples/patroni/leader-crash.yaml", &sets);
    assert!(left_behind(&run).is_empty(), "run {run} left {:?}", left_behind(&run));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["scenario"]["stack"]["kind"], "compose");
    let fault = &report["faults"][0];
    let hit = fault["hosts"].as_array().unwrap();
    assert!(
        hit.len() == 1 && ["pg1", "pg2", "pg3"].contains(&hit[0].as_str().unwrap()),
        "the role resolved to one node: {fault}"
    );
    let durability = check(&report, "durability");
    assert_eq!(durability["status"], "pass", "{durability}");
    assert!(durability["details"]["acknowledged_count"].as_u64().unwrap() > 1000, "{durability}");
    assert!(
        fault["effect"]["ops_failed_count"].as_u64().unwrap() > 0,
        "the crash interrupted writes: {fault}"
    );
    let recovery = check(&report, "recovery");
    let rto = recovery["details"]["faults"][0]["rto_ms"].as_u64().unwrap();
    assert!(rto > 1000 && rto < 30_000, "Patroni's failover takes seconds (ttl 10 s): {rto} ms");
}

#[test]
fn a_partitioned_patroni_leader_is_demoted_and_no_write_is_taken_by_two_nodes() {
    let mut sets = SHORT.to_vec();
    sets.push("faults[0].for=15s");
    let (code, report, stderr, run) = run("examples/patroni/leader-partition.yaml", &sets);
    assert!(left_behind(&run).is_empty(), "run {run} left {:?}", left_behind(&run));
    assert_eq!(code, 0, "{stderr}");
    let durability = check(&report, "durability");
    assert_eq!(durability["status"], "pass", "{durability}");
    assert_eq!(durability["details"]["diverged_count"], 0, "{durability}");
    assert!(
        report["faults"][0]["effect"]["messages_held_count"].as_u64().unwrap() > 0,
        "the cut dropped packets"
    );
}
