//! Issue 17: a campaign split with `explore --shard K/N` over separate processes, gathered with
//! `shakedown merge`, is the campaign an unsharded `explore` runs: the same seeds judged, the same
//! failure groups, the same counts.

mod common;

use common::shakedown;
use serde_json::Value;

/// A short scenario whose swarm schedules fail some seeds (a crash loses writes acknowledged
/// before commit) and pass others (schedules without a primary crash).
const SCENARIO: &str = "name: sharded\nseed: 5\nduration: 12s\nstack: { bugs: [ack-before-commit] }\nworkload: [ { op: invest, rate: 40/s } ]\nfaults:\n  - { at: 3s, crash: pg-primary, restart_after: 3s }\n  - { at: 4s, pause: api, for: 2s }\nchecks: { durability: {} }\n";

const SEEDS: &str = "6";

fn summary(path: std::path::PathBuf) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// What a campaign decided, without its timings: per seed the outcome and schedule, the groups.
fn decided(summary: &Value) -> (Vec<Value>, Value) {
    let runs = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let mut run = run.clone();
            run.as_object_mut().unwrap().remove("wall_ms");
            run
        })
        .collect();
    (runs, summary["groups"].clone())
}

#[test]
fn shards_run_as_separate_processes_merge_into_the_unsharded_campaign() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sharded.yaml"), SCENARIO).unwrap();
    let explore = ["explore", "sharded.yaml", "--swarm", "--seeds", SEEDS, "--jobs", "1"];

    let whole = shakedown(dir.path(), &[&explore[..], &["--no-shrink", "--out", "whole"]].concat());
    assert_eq!(whole.status.code(), Some(1), "{}", String::from_utf8_lossy(&whole.stderr));
    let whole = summary(dir.path().join("whole/sharded/explore/summary.json"));

    // Three shards, each its own process and its own output directory (three machines).
    for k in 1..=3 {
        let out = format!("shard{k}");
        let shard = format!("{k}/3");
        let run = shakedown(dir.path(), &[&explore[..], &["--shard", &shard, "--out", &out]].concat());
        assert!(matches!(run.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&run.stderr));
        let own = summary(dir.path().join(format!("{out}/sharded/explore/shard-{k}-of-3/summary.json")));
        assert_eq!(own["shard"]["index"], k);
        let seeds: Vec<u64> =
            own["runs"].as_array().unwrap().iter().map(|r| r["seed"].as_u64().unwrap()).collect();
        assert_eq!(seeds, vec![5 + k - 1, 5 + k + 2], "shard {k} runs seed indices k-1 and k+2");
        assert!(
            own["groups"].as_array().unwrap().iter().all(|g| g["shrunk"].is_null()),
            "shards never shrink"
        );
    }

    // A merge with a shard missing refuses, and says which.
    let partial = shakedown(dir.path(), &["merge", "shard1", "shard3", "--no-shrink", "--out", "partial"]);
    assert_eq!(partial.status.code(), Some(254));
    let stderr = String::from_utf8_lossy(&partial.stderr);
    assert!(stderr.contains("shards 2 of 3 are missing"), "{stderr}");

    let merged =
        shakedown(dir.path(), &["merge", "shard1", "shard2", "shard3", "--no-shrink", "--out", "merged"]);
    let stdout = String::from_utf8_lossy(&merged.stdout);
    assert_eq!(merged.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&merged.stderr));
    let merged = summary(dir.path().join("merged/sharded/explore/summary.json"));
    assert!(merged.get("shard").is_none(), "the merged summary is a campaign's, not a shard's");
    assert_eq!(decided(&merged), decided(&whole));
    assert!(!whole["groups"].as_array().unwrap().is_empty(), "the campaign found the planted bug");
    assert_eq!(merged["seeds_count"], 6);
    assert!(stdout.contains("explored sharded: 6 seeds"), "{stdout}");
}

/// The shipped launchers agree with the flags they drive: the Kubernetes Job is Indexed, its
/// completions equal the shard count it gives `--shard`, and the merge waits for that many; the
/// GitHub matrix lists exactly SHARDS shards.
#[test]
fn the_kubernetes_job_and_the_github_workflow_shard_consistently() {
    let text = std::fs::read_to_string(common::repo().join("deploy/k8s/explore-job.yaml")).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Job"]);
    let env = |job: &Value, name: &str| -> String {
        let env = job.pointer("/spec/template/spec/containers/0/env").unwrap().as_array().unwrap();
        env.iter().find(|e| e["name"] == name).unwrap()["value"].as_str().unwrap().to_owned()
    };
    let shards = &documents[1];
    assert_eq!(shards["spec"]["completionMode"], "Indexed");
    assert_eq!(shards["spec"]["completions"], shards["spec"]["parallelism"]);
    assert_eq!(shards["spec"]["completions"].as_u64().unwrap().to_string(), env(shards, "SHAKEDOWN_SHARDS"));
    let args = shards.pointer("/spec/template/spec/containers/0/args/0").unwrap().as_str().unwrap();
    assert!(args.contains("shakedown explore") && args.contains("--shard "), "{args}");
    let merge = &documents[2];
    assert_eq!(env(merge, "SHAKEDOWN_SHARDS"), env(shards, "SHAKEDOWN_SHARDS"));
    let args = merge.pointer("/spec/template/spec/containers/0/args/0").unwrap().as_str().unwrap();
    assert!(args.contains("shakedown merge /campaign/shards"), "{args}");
    for document in &documents {
        assert_eq!(document["metadata"]["labels"]["shakedown.project"], "shakedown", "labelled as ours");
    }

    let text = std::fs::read_to_string(common::repo().join(".github/workflows/explore.yml")).unwrap();
    let workflow: Value = serde_saphyr::from_str(&text).unwrap();
    let matrix = workflow.pointer("/jobs/shard/strategy/matrix/shard").unwrap().as_array().unwrap();
    let count = workflow["env"]["SHARDS"].as_u64().unwrap();
    assert_eq!(
        matrix.iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(),
        (1..=count).collect::<Vec<_>>()
    );
    assert_eq!(workflow["jobs"]["merge"]["needs"], "shard");
}
