//! Table tests for loading: each snippet must be refused with the message and the position given.

use indoc::indoc;

use super::{Position, load_str};

const BASE: &str = indoc! {"
    name: t
    duration: 60s
    workload:
      - { op: invest, rate: 50/s }
      - { op: history, rate: 10/s }
"};

/// Load `BASE` + `extra`, expect failure, and return `(line, col, message, hint)` per error.
fn errors(extra: &str, overrides: &[&str]) -> Vec<(u64, u64, String, String)> {
    let text = format!("{BASE}{extra}");
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let diagnostics = load_str(&text, "t.yaml", &overrides).expect_err("must be refused");
    diagnostics
        .0
        .into_iter()
        .map(|d| {
            let (line, col) = match d.position {
                Position::At { line, col } => (line, col),
                _ => (0, 0),
            };
            (line, col, d.message, d.hint.unwrap_or_default())
        })
        .collect()
}

fn expect_one(extra: &str, line: u64, message: &str, hint: &str) {
    let found = errors(extra, &[]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (l, _, m, h) = &found[0];
    assert_eq!(*l, line, "{found:#?}");
    assert!(m.contains(message), "message {m:?} lacks {message:?}");
    assert!(h.contains(hint), "hint {h:?} lacks {hint:?}");
}

#[test]
fn the_base_loads_and_plans() {
    let loaded = load_str(BASE, "t.yaml", &[]).unwrap();
    assert_eq!(loaded.scenario.workload.len(), 2);
    assert_eq!(loaded.plan.phases.len(), 1);
    assert_eq!(loaded.source_sha256.len(), 64);
}

#[test]
fn syntax_error() {
    expect_one("faults: [ { at: 5s\n", 6, "invalid YAML: unclosed bracket", "");
}

#[test]
fn unknown_keys_suggest_the_nearest() {
    expect_one(
        "stack: { api_replica: 3 }\n",
        6,
        "unknown key `api_replica` in `stack`",
        "did you mean `api_replicas`?",
    );
    expect_one("seeed: 3\n", 6, "unknown key `seeed`", "did you mean `seed`?");
}

#[test]
fn bad_units() {
    expect_one("faults: [ { at: 20 parsecs, crash: lb, restart_after: 1s } ]\n", 6, "duration", "");
    let found = errors("", &["workload[0].rate=50"]);
    assert!(found[0].2.contains("rate such as"), "{found:?}");
    // Issue 14: `max_lag` takes PostgreSQL's memory units, and says so.
    expect_one(
        "stack: { watchdog: { max_lag: 16mb } }\n",
        6,
        "case-sensitive, as in postgresql.conf: `MB`",
        "",
    );
    expect_one("stack: { watchdog: { max_lag: 1048576 } }\n", 6, "expected a size with a unit", "");
    let loaded =
        load_str(&format!("{BASE}stack: {{ watchdog: {{ max_lag: 16MB }} }}\n"), "t.yaml", &[]).unwrap();
    assert_eq!(loaded.scenario.stack.watchdog.max_lag.bytes(), 16 << 20);
}

#[test]
fn unknown_op_suggests_the_nearest() {
    let text = BASE.replace("op: invest", "op: invset");
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    assert_eq!(d.0.len(), 1);
    assert_eq!(d.0[0].position, Position::At { line: 4, col: 11 });
    assert!(d.0[0].hint.as_deref().unwrap().contains("did you mean `invest`?"), "{d}");
}

#[test]
fn misspelt_host_and_group() {
    expect_one(
        "faults: [ { at: 5s, crash: pg-primray, restart_after: 5s } ]\n",
        6,
        "unknown host or group `pg-primray`",
        "did you mean `pg-primary`?",
    );
    expect_one(
        "faults: [ { at: 5s, partition: [[apii], [db]], for: 5s } ]\n",
        6,
        "`apii`",
        "did you mean `api`?",
    );
    expect_one("faults: [ { at: 5s, crash: client } ]\n", 6, "cannot be faulted", "");
}

#[test]
fn faults_outside_the_run() {
    expect_one("faults: [ { at: 60s, crash: lb } ]\n", 6, "at or after the end of the run", "lasts `60s`");
    expect_one("faults: [ { at: 50s, pause: lb, for: 20s } ]\n", 6, "past the end of the run", "");
}

#[test]
fn fault_shapes() {
    expect_one("faults: [ { at: 5s, for: 5s } ]\n", 6, "no kind", "add one of");
    expect_one(
        "faults: [ { at: 5s, crash: lb, pause: lb, restart_after: 1s } ]\n",
        6,
        "exactly one kind",
        "",
    );
    expect_one("faults: [ { at: 5s, pause: lb } ]\n", 6, "needs `for`", "for: 5s");
    expect_one("faults: [ { at: 5s, partition: [[api]], for: 5s } ]\n", 6, "two non-empty sides", "");
    expect_one("faults: [ { at: 5s, partition: [[api], [api-1]], for: 5s } ]\n", 6, "on both sides", "");
}

#[test]
fn overlapping_crashes_of_one_host() {
    let faults = "faults:\n  - { at: 5s, crash: pg-primary, restart_after: 10s }\n  - { at: 10s, crash: db, restart_after: 2s }\n";
    expect_one(faults, 8, "`pg-primary` is already down", "disjoint");
}

#[test]
fn slo_on_an_op_never_issued_and_zero_rate() {
    let text = BASE.replace("rate: 10/s", "rate: 0/s") + "checks:\n  slo:\n    - { op: order, p99: 1s }\n";
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    let messages: Vec<String> = d.0.iter().map(|d| d.to_string()).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].starts_with("t.yaml:5:"), "{messages:#?}");
    assert!(messages[0].contains("rate of `history` is zero"));
    assert!(messages[1].starts_with("t.yaml:8:"));
    assert!(messages[1].contains("never issues"));
}

#[test]
fn expect_needs_a_configured_check() {
    expect_one("expect: { durability: fail }\n", 6, "not configured", "add `durability` under `checks`");
}

#[test]
fn overrides_apply_before_validation_and_point_at_the_flag() {
    let loaded =
        load_str(BASE, "t.yaml", &["stack.replication=async".into(), "workload[1].rate=5/s".into()]).unwrap();
    assert_eq!(loaded.scenario.stack.replication, super::model::Replication::Async);
    assert_eq!(loaded.scenario.workload[1].rate.per_second(), 5.0);
    let d = load_str(BASE, "t.yaml", &["stack.replication=asink".into()]).unwrap_err();
    assert_eq!(d.0[0].position, Position::Override("stack.replication=asink".into()));
    assert!(d.to_string().starts_with("t.yaml: --set stack.replication=asink:"), "{d}");
    assert!(load_str(BASE, "t.yaml", &["nonsense".into()]).is_err());
    assert!(
        load_str(BASE, "t.yaml", &["workload[9].rate=1/s".into()])
            .unwrap_err()
            .to_string()
            .contains("out of range")
    );
}

#[test]
fn a_missing_required_key_is_named() {
    let d = load_str("name: t\nworkload: []\n", "t.yaml", &[]).unwrap_err();
    assert!(d.to_string().contains("missing key `duration`"), "{d}");
}

/// Issue 18: `-5/s` was accepted by the unit parser and then reported as a zero rate.
#[test]
fn issue_18_a_negative_rate_is_called_negative() {
    let text = BASE.replace("rate: 50/s", "rate: -5/s");
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].position, Position::At { line: 4, col: 25 });
    assert!(d.0[0].message.contains("the rate `-5/s` is negative"), "{d}");
    assert!(!d.to_string().contains("zero"), "{d}");
    let found = errors("", &["workload[0].timeout=-1s"]);
    assert!(found[0].2.contains("the duration `-1s` is negative"), "{found:?}");
    let found = errors("checks:\n  slo:\n    - { op: invest, availability: -5% }\n", &[]);
    assert!(found[0].2.contains("the percentage `-5%` is negative"), "{found:?}");
}

/// Issue 18: a duplicate key was reported with the YAML library's own advice ("set
/// DuplicateKeyPolicy in Options"); say which key, at its second occurrence, and where the first is.
#[test]
fn issue_18_a_duplicate_key_names_the_key_and_its_first_occurrence() {
    let found = errors("duration: 30s\nstack:\n  workers: 2\n  workers: 3\n", &[]);
    assert_eq!(found.len(), 2, "{found:#?}");
    let (line, col, message, hint) = &found[0];
    assert_eq!((*line, *col), (6, 1), "{found:#?}");
    assert_eq!(message, "duplicate key `duration`: it is already set at line 2, column 1");
    assert!(hint.contains("a key may appear once in a mapping"), "{hint}");
    let (line, col, message, _) = &found[1];
    assert_eq!((*line, *col), (9, 3), "{found:#?}");
    assert_eq!(message, "duplicate key `stack.workers`: it is already set at line 8, column 3");
    let all = format!("{found:?}");
    assert!(!all.contains("DuplicateKeyPolicy"), "{all}");
}

/// Issue 18: a file that is not UTF-8 got "check the path; `shakedown list` shows the shipped
/// scenarios"; say what is wrong with it and where the first bad byte is.
#[test]
fn issue_18_a_file_that_is_not_utf8_says_where_the_first_bad_byte_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.extend_from_slice(b"description: caf\xe9 cr\xe8me\n");
    std::fs::write(&path, bytes).unwrap();
    let d = super::load_file(&path, &[]).unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].position, Position::At { line: 6, col: 17 }, "{d}");
    assert!(d.0[0].message.contains("not UTF-8 text"), "{d}");
    assert!(d.0[0].message.contains("byte 0xe9"), "{d}");
    assert!(!d.to_string().contains("shakedown list"), "{d}");
    let missing = super::load_file(&dir.path().join("nope.yaml"), &[]).unwrap_err();
    assert!(missing.to_string().contains("check the path"), "a missing file keeps its hint: {missing}");
}

/// Issue 18: an alias bomb was refused as "budget breached: Nodes { nodes: 250001 }"; say in
/// words that the file expands to too many YAML nodes through its aliases.
#[test]
fn issue_18_an_alias_bomb_is_refused_in_words() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let aliases = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{aliases}]\n"));
    }
    text.push_str(BASE);
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    let message = &d.0[0].message;
    assert!(message.contains("expands to more than 250000 YAML nodes"), "{d}");
    assert!(message.contains("aliases"), "{d}");
    assert!(!message.contains("Nodes {") && !message.contains("budget breached"), "{d}");
}

/// Issue 18: `duration: 99999h` was accepted and would have run for months of simulated time.
/// Durations (and op timeouts) above `duration_max` (default 24h) are refused; the file or
/// `--set duration_max=…` raises the limit.
#[test]
fn issue_18_a_run_longer_than_duration_max_is_refused_unless_raised() {
    let text = BASE.replace("duration: 60s", "duration: 99999h");
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].position, Position::At { line: 2, col: 11 });
    assert!(d.0[0].message.contains("`duration` (`99999h`) is longer than `duration_max` (`24h`)"), "{d}");
    assert!(d.0[0].hint.as_deref().unwrap().contains("--set duration_max=99999h"), "{d}");
    // At 60 ops/s, so long a run also plans more operations than `ops_max` allows.
    let raised = ["duration_max=100000h".to_owned(), "ops_max=30000000000".to_owned()];
    assert!(load_str(&text, "t.yaml", &raised).is_ok());
    assert!(load_str(&format!("{text}duration_max: 99999h\nops_max: 30000000000\n"), "t.yaml", &[]).is_ok());
    let d = load_str(&text, "t.yaml", &raised[..1]).unwrap_err();
    assert!(d.to_string().contains("more than `ops_max`"), "{d}");
    let long_timeout = errors("", &["workload[0].timeout=48h"]);
    assert!(long_timeout[0].2.contains("timeout of `invest` (`48h`) is longer than `duration_max` (`24h`)"));
    let lowered = errors("", &["duration_max=30s"]);
    assert!(lowered[0].2.contains("`duration` (`60s`) is longer than `duration_max` (`30s`)"), "{lowered:?}");
}

/// Issue 14: a file with a shape error and a semantic error reported only the first. Each row is
/// a snippet after `BASE` and every error it must give, in file order: (line, part of the
/// message). Shape errors leave their section or list item out of validation, and a rule that
/// would need what was left out is skipped rather than guessed.
#[test]
fn issue_14_shape_and_semantic_errors_are_reported_together() {
    // (what the row shows, the snippet, every error: (line, part of its message))
    type Row = (&'static str, &'static str, &'static [(u64, &'static str)]);
    let table: &[Row] = &[
        (
            "an unknown op and a fault after the end",
            "  - { op: invset, rate: 5/s }\nfaults: [ { at: 90s, crash: lb, restart_after: 1s } ]\n",
            &[(6, "unknown value `invset`"), (7, "at or after the end of the run")],
        ),
        (
            "a typo in `stack` and an unknown host; `api-3` may exist, so it is not judged",
            "stack: { api_replica: 3 }\nfaults:\n  - { at: 5s, crash: lbb, restart_after: 1s }\n  - { at: 5s, crash: api-3, restart_after: 1s }\n",
            &[(6, "unknown key `api_replica` in `stack`"), (8, "unknown host or group `lbb`")],
        ),
        (
            "a broken fault keeps the next one at its own path",
            "faults:\n  - { at: 5s, crash: lb, restart_afterr: 1s }\n  - { at: 70s, pause: lb, for: 1s }\n",
            &[(7, "unknown key `restart_afterr`"), (8, "at or after the end of the run")],
        ),
        (
            "an overlap names the fault by its path in the file",
            "faults:\n  - { at: 1x, crash: lb }\n  - { at: 5s, crash: pg-primary, restart_after: 10s }\n  - { at: 10s, crash: db, restart_after: 2s }\n",
            &[(7, "duration"), (9, "already down or paused by faults[1]")],
        ),
        (
            "an SLO on the op of an unreadable workload item is not called unissued",
            "  - { op: order, rate: 5/s, timeot: 1s }\nchecks:\n  slo:\n    - { op: order, p99: 1s }\n    - { op: history }\n",
            &[(6, "unknown key `timeot`"), (10, "sets no threshold")],
        ),
        (
            "a misspelt `checks` hides the checks `expect` names; an unknown key elsewhere does not",
            "chekcs: { durability: {} }\nexpect: { durability: fail }\n",
            &[(6, "unknown key `chekcs`")],
        ),
        (
            "an unknown top-level key beside an `expect` on an unconfigured check",
            "tags: [a]\nexpect: { durability: fail }\n",
            &[(6, "unknown key `tags`"), (7, "not configured under `checks`")],
        ),
    ];
    for (what, extra, expected) in table {
        let found = errors(extra, &[]);
        let got: Vec<(u64, &str)> =
            found.iter().map(|(line, _, message, _)| (*line, message.as_str())).collect();
        assert_eq!(got.len(), expected.len(), "{what}: {found:#?}");
        for ((line, message), (want_line, want)) in got.iter().zip(expected.iter()) {
            assert_eq!(line, want_line, "{what}: {found:#?}");
            assert!(message.contains(want), "{what}: {message:?} lacks {want:?}");
        }
    }
    // With `duration` itself unreadable, a fault at 90s is not judged against it.
    let text = BASE.replace("duration: 60s", "duration: 1 fortnight")
        + "faults: [ { at: 90s, crash: lb, restart_after: 1s } ]\nchecks: { recovery: { rto: 0s } }\n";
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    let messages: Vec<&str> = d.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{d}");
    assert!(messages[0].contains("`duration`"), "{d}");
    assert!(messages[1].contains("`checks.recovery.rto` is 0"), "{d}");
    // A missing required key is named beside the other errors.
    let d = load_str(
        "name: t\nworkload: [ { op: invest, rate: 1/s } ]\nfaults: [ { at: 1s, crash: lbb } ]\n",
        "t.yaml",
        &[],
    )
    .unwrap_err();
    assert_eq!(d.0.len(), 2, "{d}");
    assert!(d.0[0].message.contains("missing key `duration`"), "{d}");
    assert!(d.0[1].message.contains("unknown host or group `lbb`"), "{d}");
    // A misspelt required key is one error, not also a missing one.
    let d = load_str("name: t\nduration: 5s\nworklaod: [ { op: invest, rate: 1/s } ]\n", "t.yaml", &[])
        .unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    assert!(d.0[0].hint.as_deref().unwrap_or("").contains("did you mean `workload`?"), "{d}");
}

/// Issue 15: backup actions need `stack.backup`, lose only database nodes, restore to an earlier
/// time, and happen at one instant.
#[test]
fn backup_actions_are_checked_where_they_are_written() {
    expect_one(
        "faults:\n  - { at: 10s, disaster: { lose: [pg-primary] } }\n",
        7,
        "a disaster without backups loses everything",
        "backup: { every: 20s",
    );
    expect_one(
        "faults:\n  - { at: 10s, crash: backup }\n",
        7,
        "`backup` runs only when backups",
        "under `stack`",
    );
    let with_backups = "stack: { backup: { every: 5s } }\nfaults:\n";
    expect_one(
        &format!("{with_backups}  - {{ at: 10s, disaster: {{ lose: [pg-primary, lb] }} }}\n"),
        8,
        "`lb` is not a database node",
        "lose: [pg-primary, pg-replica]",
    );
    expect_one(
        &format!("{with_backups}  - {{ at: 10s, restore: {{ to: 20s }} }}\n"),
        8,
        "cannot recover to `20s`, which is later",
        "`latest`",
    );
    expect_one(
        &format!("{with_backups}  - {{ at: 10s, failback: pg-primray }}\n"),
        8,
        "not a database node",
        "pg-primary",
    );
    expect_one(
        &format!("{with_backups}  - {{ at: 10s, failback: pg-primary, for: 5s }}\n"),
        8,
        "happens at one instant",
        "",
    );
    let restore = format!(
        "{BASE}{with_backups}  - {{ at: 10s, disaster: {{ lose: [pg-primary] }} }}\n  - {{ at: 12s, restore: {{ to: latest }} }}\n"
    );
    let plan = load_str(&restore, "t.yaml", &[]).unwrap().plan;
    let ends: Vec<_> = plan.faults.iter().map(|f| f.end.map(|e| e.as_secs())).collect();
    assert_eq!(ends, [Some(12), Some(12)], "a disaster lasts until the restore; a restore is an instant");
}

/// A duplicate key was reported alone, hiding every other error of the file. Method: the file
/// of the report that found it — a duplicate `duration`, a negative rate, a misspelt op, a
/// misspelt host and a fault after the end — must give all five, each at its line.
#[test]
fn a_duplicate_key_does_not_hide_the_other_errors() {
    let text = indoc! {"
        name: t
        duration: 30s
        duration: 40s
        workload:
          - { op: invest, rate: -5/s }
          - { op: histroy, rate: 5/s }
        faults:
          - { at: 5s, crash: lbb, restart_after: 1s }
          - { at: 50s, pause: lb, for: 1s }
    "};
    let d = load_str(text, "t.yaml", &[]).unwrap_err();
    let got: Vec<(u64, &str)> =
        d.0.iter()
            .map(|d| match d.position {
                Position::At { line, .. } => (line, d.message.as_str()),
                _ => (0, d.message.as_str()),
            })
            .collect();
    let want = [
        (3, "duplicate key `duration`"),
        (5, "the rate `-5/s` is negative"),
        (6, "unknown value `histroy`"),
        (8, "unknown host or group `lbb`"),
        (9, "at or after the end of the run"),
    ];
    assert_eq!(got.len(), want.len(), "{d}");
    for ((line, message), (want_line, want)) in got.iter().zip(want) {
        assert_eq!(*line, want_line, "{d}");
        assert!(message.contains(want), "{message:?} lacks {want:?}");
    }
}

/// A rate of a billion a second validated, then the run aborted allocating 11 GB. The planned
/// operations (rate × how long each stream runs, summed) are bounded by `ops_max`, named in the
/// error with the way to raise it, like `duration_max`.
#[test]
fn planned_operations_are_bounded_by_ops_max() {
    let text = BASE.replace("rate: 50/s", "rate: 1000000000/s");
    let d = load_str(&text, "t.yaml", &[]).unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].position, Position::At { line: 4, col: 25 }, "{d}");
    assert_eq!(
        d.0[0].message,
        "the workload plans about 60,000,000,600 operations, more than `ops_max` (1,000,000); the most from `invest` at `1000000000/s`"
    );
    assert!(d.0[0].hint.as_deref().unwrap().contains("`--set ops_max=60000000600`"), "{d}");
    assert!(load_str(&text, "t.yaml", &["ops_max=60000000600".into()]).is_ok());
    // The sum counts: two streams each under the limit, together over it.
    let two = BASE.replace("rate: 50/s", "rate: 9000/s").replace("rate: 10/s", "rate: 9000/s");
    let d = load_str(&two, "t.yaml", &[]).unwrap_err();
    assert!(d.0[0].message.contains("plans about 1,080,000 operations"), "{d}");
    // A stream that stops early plans less.
    let early = BASE.replace("rate: 50/s", "rate: 9000/s, stop: 30s").replace("rate: 10/s", "rate: 9000/s");
    assert!(load_str(&early, "t.yaml", &[]).is_ok());
    // `1e9/s` says what form is wanted.
    let exponent = errors("", &["workload[0].rate=1e9/s"]);
    assert!(exponent[0].2.contains("write the number in digits: `1000000000/s`"), "{exponent:?}");
}

/// An empty file and a file holding a list both said "expected a mapping of scenario keys": say
/// what the file holds.
#[test]
fn an_empty_file_and_a_list_say_what_they_hold() {
    for (text, want) in [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- name: a\n- name: b\n", "the file holds a list (2 items), not a mapping of scenario keys"),
        ("just words\n", "the file holds a single value (\"just words\")"),
    ] {
        let d = load_str(text, "t.yaml", &[]).unwrap_err();
        assert_eq!(d.0.len(), 1, "{text:?}: {d}");
        assert!(d.0[0].message.contains(want), "{text:?}: {d}");
    }
}

/// Messages quote a value as the file wrote it: the fault at `90s`, not at "1.5m".
#[test]
fn messages_quote_values_as_written() {
    let found = errors("faults: [ { at: 90s, crash: lb, restart_after: 1s } ]\n", &[]);
    assert!(found[0].2.contains("the fault starts at `90s`"), "{found:?}");
    assert!(found[0].3.contains("the run lasts `60s`"), "{found:?}");
    let found = errors("faults: [ { at: 50s, pause: lb, for: 90000ms } ]\n", &[]);
    assert!(found[0].2.contains("from `50s`"), "{found:?}");
    let found = errors("", &["workload[0].start=120s"]);
    assert!(found[0].2.contains("`start` (`120s`) is not before `stop` (`60s`)"), "{found:?}");
}

/// A `files` check without uploads, and a crash of `objects` when nothing uploads, passed
/// validation and ended "undecided" or vacuous, while an SLO on an op never issued was refused.
/// Every check needs an op to judge, and every fault something the workload uses.
#[test]
fn checks_and_faults_that_cannot_act_are_refused() {
    // (the snippet after BASE, the line of the error, part of its message, part of its hint)
    let table = [
        (
            "checks: { files: {} }\n",
            6,
            "the `files` check has nothing to judge: the workload issues no `upload`",
            "op: upload",
        ),
        ("checks: { saga: {} }\n", 6, "no `order`", "or remove the check"),
        ("checks: { delivery: {} }\n", 6, "no `query`", ""),
        (
            "faults: [ { at: 5s, crash: objects, restart_after: 1s } ]\n",
            6,
            "this `crash` can do nothing: no op of the workload reaches `objects` (`upload` would)",
            "remove the fault",
        ),
        (
            "faults: [ { at: 5s, pause: workers, for: 1s } ]\n",
            6,
            "reaches `workers` (`query` or `upload` would)",
            "",
        ),
        (
            "faults: [ { at: 5s, partition: [[api], [inventory]], for: 1s } ]\n",
            6,
            "this `partition` can do nothing",
            "",
        ),
        (
            "faults: [ { at: 5s, backpressure: { consumers: pause }, for: 1s } ]\n",
            6,
            "no op of the workload uses the queue",
            "",
        ),
    ];
    for (extra, line, message, hint) in table {
        expect_one(extra, line, message, hint);
    }
    let history_only = "name: t\nduration: 10s\nworkload: [ { op: history, rate: 5/s } ]\nfaults: [ { at: 1s, pricefeed_outage: {}, for: 1s } ]\n";
    let d = load_str(history_only, "t.yaml", &[]).unwrap_err();
    assert!(d.0[0].message.contains("a price-feed outage can do nothing"), "{d}");
    // Reached hosts, groups and shipped scenarios still load.
    assert!(load_str(&format!("{BASE}checks: {{ durability: {{}}, staleness: {{}} }}\nfaults: [ {{ at: 5s, crash: pricefeed, restart_after: 1s }} ]\n"), "t.yaml", &[]).is_ok());
    for file in super::shipped_files() {
        super::load_file(&file, &[]).unwrap_or_else(|d| panic!("{}: {d}", file.display()));
    }
}
