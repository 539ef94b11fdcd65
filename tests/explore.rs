//! `shakedown explore` and `shakedown replay` end to end, on the binary as users run them.

mod common;

use common::{repo, shakedown};

#[test]
fn explore_finds_a_planted_bug_groups_it_and_writes_a_shrunk_scenario_that_still_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = repo().join("scenarios/bugs/ack-before-commit.yaml");
    let out = shakedown(
        dir.path(),
        &[
            "explore",
            file.to_str().unwrap(),
            "--seeds",
            "2",
            "--jobs",
            "2",
            "--shrink-runs",
            "2",
            "--out",
            "out",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a failure was found: exit 1\n{stdout}\n{stderr}");
    assert!(stdout.contains("explored bug-ack-before-commit: 2 seeds"), "{stdout}");
    assert!(stdout.contains("FAIL durability (lost acknowledged write): 2 seeds (21, 22)"), "{stdout}");
    let group = dir.path().join("out/bug-ack-before-commit/explore/durability-lost-acknowledged-write");
    let shrunk = std::fs::read_to_string(group.join("shrunk.yaml")).unwrap();
    assert!(shrunk.starts_with("# Found by `shakedown explore"), "{shrunk}");
    assert!(
        !shrunk.lines().any(|l| l.starts_with("expect:")),
        "a regression test fails on `shakedown run`: {shrunk}"
    );
    assert!(group.join("failing.yaml").exists());
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/bug-ack-before-commit/explore/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 2);
    assert_eq!(summary["groups"][0]["shrunk"]["still_fails"], true);
    // The shrunk file runs on its own and fails the same check.
    let run = shakedown(dir.path(), &["run", group.join("shrunk.yaml").to_str().unwrap(), "--out", "again"]);
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stdout));
    assert!(String::from_utf8_lossy(&run.stdout).contains("failed: durability"));
}

#[test]
fn explore_without_faults_cannot_swarm_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = repo().join("scenarios/steady-state.yaml");
    let out = shakedown(dir.path(), &["explore", file.to_str().unwrap(), "--swarm", "--seeds", "1"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--swarm draws each seed's faults from the scenario's `faults:` list, and it is empty")
    );
}

/// Issue 14: `--swarm all` needs no `faults:` list — it draws from every fault kind — and the
/// summary records the vocabulary and each seed's drawn schedule.
#[test]
fn explore_swarm_all_draws_faults_for_a_scenario_that_lists_none() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "name: calm\nduration: 10s\nworkload: [ { op: invest, rate: 10/s } ]\nchecks: { durability: {} }\n";
    std::fs::write(dir.path().join("calm.yaml"), text).unwrap();
    let args =
        ["explore", "calm.yaml", "--swarm", "all", "--seeds", "2", "--jobs", "2", "--shrink-runs", "1"];
    let out = shakedown(dir.path(), &[&args[..], &["--out", "out"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    assert!(stderr.contains("with swarm fault schedules from every fault kind"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/calm/explore/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["swarm"], "all");
    for run in summary["runs"].as_array().unwrap() {
        let schedule = run["schedule"].as_array().unwrap();
        assert!((1..=4).contains(&schedule.len()), "{run}");
        assert_eq!(run["faults_count"], schedule.len());
    }
}

#[test]
fn replay_repeats_a_run_exactly_and_refuses_an_edited_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("scenarios/bugs/ack-before-commit.yaml")).unwrap();
    std::fs::write(dir.path().join("s.yaml"), &text).unwrap();
    let run = shakedown(dir.path(), &["run", "s.yaml", "--seed", "5", "--out", "out"]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let report = "out/bug-ack-before-commit/5/report.json";
    let replay = shakedown(dir.path(), &["replay", report, "--out", "out"]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&replay.stderr));
    assert!(stdout.contains("replay: identical history ("), "{stdout}");
    std::fs::write(dir.path().join("s.yaml"), text + "\n# edited\n").unwrap();
    let edited = shakedown(dir.path(), &["replay", report]);
    assert_eq!(edited.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&edited.stderr).contains("changed since the report was written"));
}
