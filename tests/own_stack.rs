//! A compose scenario as a user meets it before anything runs: the shipped examples validate; a
//! bad name in any of the new sections exits 254 at its FILE:LINE:COL with a hint; the
//! simulation refuses a compose stack with a sentence that says why. No Docker needed.

mod common;

use common::{repo, shakedown};

/// Every scenario under `examples/` (the Patroni stack and the seed systems).
fn example_scenarios() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && std::fs::read_to_string(&path).unwrap().contains("compose:")
            {
                files.push(path.display().to_string());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_scenario_validates() {
    let files = example_scenarios();
    assert!(files.len() >= 3, "{files:?}");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = shakedown(&repo(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Copy the Patroni example into a temporary directory with `edit` applied to its scenario,
/// validate it there; (exit code, stderr).
fn validate_edited(edit: impl Fn(&str) -> String) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let source = repo().join("examples/patroni");
    std::fs::copy(source.join("docker-compose.yml"), dir.path().join("docker-compose.yml")).unwrap();
    let text = std::fs::read_to_string(source.join("leader-crash.yaml")).unwrap();
    std::fs::write(dir.path().join("s.yaml"), edit(&text)).unwrap();
    let out = shakedown(dir.path(), &["validate", "s.yaml"]);
    (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// The line (from 1) of `needle`'s first occurrence in the Patroni scenario.
fn line_of(needle: &str) -> usize {
    let text = std::fs::read_to_string(repo().join("examples/patroni/leader-crash.yaml")).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in the file")) + 1
}

#[test]
fn each_bad_name_exits_254_at_its_place_with_a_hint() {
    let cases: [(&str, &str, &str, &str, &str); 4] = [
        (
            "a client naming no service",
            "@haproxy:5000/postgres\", timeout",
            "@haproxx:5000/postgres\", timeout",
            "`haproxx` is not a service of the compose file",
            "did you mean `haproxy`?",
        ),
        (
            "a port not exposed",
            "http://{host}:8008/primary",
            "http://{host}:8009/primary",
            "port 8009 of `pg1` is not exposed",
            "expose: [\"8009\"]",
        ),
        (
            "a role with no members",
            "db: [pg1, pg2, pg3]",
            "db: []",
            "the group `db` has no members",
            "list its services",
        ),
        (
            "a fault on an unknown service",
            "crash: leader",
            "crash: pg4",
            "unknown service, group or role `pg4`",
            "did you mean",
        ),
    ];
    for (what, from, to, message, hint) in cases {
        let (code, stderr) = validate_edited(|text| text.replacen(from, to, 1));
        assert_eq!(code, 254, "{what}: {stderr}");
        let line = line_of(from);
        let at = format!("s.yaml:{line}:");
        let first =
            stderr.lines().find(|l| l.contains(message)).unwrap_or_else(|| panic!("{what}: {stderr}"));
        assert!(first.starts_with(&at), "{what}: `{first}` is not at line {line}");
        assert!(stderr.contains(hint), "{what}: no hint `{hint}` in {stderr}");
    }
}

#[test]
fn the_simulation_refuses_a_compose_stack_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = repo().join("examples/patroni/leader-crash.yaml");
    let out = shakedown(dir.path(), &["run", file.to_str().unwrap(), "--backend", "sim"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert!(stderr.contains("a compose stack runs on containers only"), "{stderr}");
}
