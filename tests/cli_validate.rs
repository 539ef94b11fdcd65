//! The `shakedown` binary as users meet it first: `validate`, `schema`, `list` and bad flags.
//! Each test runs the built binary in a fresh temporary directory.

mod common;

use common::{repo, shakedown};

/// Write `text` to `bad.yaml` in a temp dir, validate it, and return (exit code, stderr).
fn validate_text(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), text).unwrap();
    let out = shakedown(dir.path(), &["validate", "bad.yaml"]);
    (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
}

const GOOD: &str = "name: t\nduration: 30s\nworkload:\n  - { op: invest, rate: 10/s }\n";

#[test]
fn every_shipped_scenario_validates() {
    let mut files: Vec<String> = Vec::new();
    for dir in ["scenarios", "scenarios/bugs", "scenarios/regressions"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path.display().to_string());
            }
        }
    }
    assert!(files.len() >= 15, "{files:?}");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = shakedown(&repo(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Each kind of error: exit 254, and the first line starts with `bad.yaml:LINE:COL:`.
#[test]
fn each_error_kind_points_at_its_line() {
    let cases = [
        ("syntax error", "name: t\nduration: 30s\nworkload: [ { op: invest\n", 3, "invalid YAML"),
        ("unknown key", "name: t\nduration: 30s\nworkloda: []\n", 3, "unknown key `workloda`"),
        ("bad duration", "name: t\nduration: 30 seconds\nworkload: []\n", 2, "duration"),
        (
            "bad rate",
            "name: t\nduration: 30s\nworkload:\n  - { op: invest, rate: 10 per second }\n",
            4,
            "rate",
        ),
        (
            "misspelt host",
            &format!("{GOOD}faults: [ {{ at: 5s, crash: pg-primry, restart_after: 1s }} ]\n"),
            5,
            "pg-primry",
        ),
        (
            "unknown op",
            "name: t\nduration: 30s\nworkload:\n  - { op: buy, rate: 10/s }\n",
            4,
            "unknown value `buy`",
        ),
        (
            "fault after the end",
            &format!("{GOOD}faults: [ {{ at: 45s, crash: lb }} ]\n"),
            5,
            "after the end of the run",
        ),
    ];
    for (what, text, line, message) in cases {
        let (code, stderr) = validate_text(text);
        assert_eq!(code, 254, "{what}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        let prefix = format!("bad.yaml:{line}:");
        assert!(first.starts_with(&prefix), "{what}: expected `{prefix}…`, got {first:?}");
        assert!(first.contains(message), "{what}: {first:?} lacks {message:?}");
    }
}

#[test]
fn two_semantic_errors_are_both_reported() {
    let text = format!(
        "{GOOD}faults:\n  - {{ at: 5s, crash: lbb, restart_after: 1s }}\n  - {{ at: 50s, pause: lb, for: 1s }}\n"
    );
    let (code, stderr) = validate_text(&text);
    assert_eq!(code, 254);
    let located: Vec<&str> = stderr.lines().filter(|l| l.starts_with("bad.yaml:")).collect();
    assert_eq!(located.len(), 2, "{stderr}");
    assert!(located[0].starts_with("bad.yaml:6:") && located[0].contains("`lbb`"), "{stderr}");
    assert!(located[1].starts_with("bad.yaml:7:") && located[1].contains("end of the run"), "{stderr}");
    assert!(stderr.contains("hint: did you mean `lb`?"), "{stderr}");
}

/// Issue 14: a shape error (an unknown op) no longer hides the semantic ones elsewhere.
#[test]
fn issue_14_shape_and_semantic_errors_are_reported_together() {
    let text = format!(
        "{GOOD}  - {{ op: histroy, rate: 10/s }}\nfaults:\n  - {{ at: 5s, crash: lbb, restart_after: 1s }}\n  - {{ at: 50s, pause: lb, for: 1s }}\n"
    );
    let (code, stderr) = validate_text(&text);
    assert_eq!(code, 254);
    let located: Vec<&str> = stderr.lines().filter(|l| l.starts_with("bad.yaml:")).collect();
    assert_eq!(located.len(), 3, "{stderr}");
    assert!(located[0].starts_with("bad.yaml:5:") && located[0].contains("`histroy`"), "{stderr}");
    assert!(located[1].starts_with("bad.yaml:7:") && located[1].contains("`lbb`"), "{stderr}");
    assert!(located[2].starts_with("bad.yaml:8:") && located[2].contains("end of the run"), "{stderr}");
    assert!(stderr.contains("found 3 errors in bad.yaml"), "{stderr}");
}

#[test]
fn overrides_apply_and_a_bad_one_points_at_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), GOOD).unwrap();
    let ok = shakedown(dir.path(), &["validate", "s.yaml", "--set", "stack.replication=async"]);
    assert_eq!(ok.status.code(), Some(0));
    let bad = shakedown(dir.path(), &["validate", "s.yaml", "--set", "stack.replication=eventually"]);
    assert_eq!(bad.status.code(), Some(254));
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(stderr.starts_with("s.yaml: --set stack.replication=eventually:"), "{stderr}");
}

#[test]
fn schema_is_json_and_matches_the_committed_file() {
    let out = shakedown(&repo(), &["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["name", "duration", "stack", "workload", "faults", "checks", "expect"] {
        assert!(schema["properties"].get(key).is_some(), "schema lacks `{key}`");
    }
    let committed = std::fs::read_to_string(repo().join("schema/scenario.schema.json")).unwrap();
    assert_eq!(
        committed.trim(),
        String::from_utf8(out.stdout).unwrap().trim(),
        "schema/scenario.schema.json is stale: run `cargo run -- schema > schema/scenario.schema.json`"
    );
}

#[test]
fn list_shows_every_shipped_scenario_with_its_description() {
    let out = shakedown(&repo(), &["list"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("scenarios/steady-state.yaml") && stdout.contains("No faults."), "{stdout}");
    assert!(stdout.contains("scenarios/bugs/no-fencing.yaml"), "{stdout}");
}

#[test]
fn a_bad_flag_is_bad_input() {
    let out = shakedown(&repo(), &["validate", "--frobnicate", "x.yaml"]);
    assert_eq!(out.status.code(), Some(254));
    let out = shakedown(&repo(), &["validate", "does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[cfg(not(feature = "real"))]
#[test]
fn serve_without_the_real_adapters_says_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = shakedown(dir.path(), &["serve", "pricefeed"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--features real"));
}
