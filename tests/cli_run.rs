//! `shakedown run` as users read its outcome: the console line, `report.json`, the HTML banner
//! and `junit.xml` must agree on which checks failed and which could not decide, and the exit
//! code must follow the README (1 for a failed check, 2 for undecided checks alone). Each test
//! runs the built binary in a fresh temporary directory.

mod common;

use common::shakedown;

/// A run of `text` as `s.yaml`: (exit code, stdout, report.json, report.html, junit.xml).
fn run_text(text: &str) -> (i32, String, serde_json::Value, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), text).unwrap();
    let out = shakedown(dir.path(), &["run", "s.yaml", "--out", "out", "--quiet"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let run_dir = dir.path().join("out/s/1");
    let read = |name: &str| {
        std::fs::read_to_string(run_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
    };
    let report = serde_json::from_str(&read("report.json")).unwrap();
    let (html, junit) = (read("report.html"), read("junit.xml"));
    (out.status.code().unwrap(), stdout, report, html, junit)
}

/// Issue 18: a workload with no `invest` leaves the durability check undecided ("no write was
/// acknowledged"). Method: once with a planted bug that makes delivery fail (exit 1), once with
/// nothing wrong (exit 2); every output names durability as undecided and never as failed.
#[test]
fn issue_18_an_undecided_check_is_never_called_failed() {
    let failing = "name: s\nduration: 8s\nstack:\n  queue: { capacity: 5 }\n  bugs: [unconfirmed-publish]\nworkload:\n  - { op: query, rate: 40/s }\nfaults:\n  - { at: 2s, backpressure: { consumers: pause }, for: 4s }\nchecks: { durability: {}, delivery: {} }\n";
    let (code, line, report, html, junit) = run_text(failing);
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("FAIL "), "{line}");
    assert!(line.contains(", failed: delivery, undecided: durability"), "{line}");
    assert_eq!(report["verdict"]["summary"], "FAIL: delivery; undecided: durability");
    assert!(html.contains("<p>FAIL: delivery; undecided: durability</p>"), "the banner says both");
    assert!(junit.contains("<property name=\"verdict\" value=\"FAIL: delivery; undecided: durability\"/>"));
    assert!(junit.contains("<skipped message=\"undecided: no write was acknowledged"), "{junit}");
    assert!(junit.contains("failures=\"1\" skipped=\"1\""), "{junit}");

    let undecided_only = "name: s\nduration: 8s\nworkload:\n  - { op: query, rate: 10/s }\nchecks: { durability: {}, delivery: {} }\n";
    let (code, line, report, html, junit) = run_text(undecided_only);
    assert_eq!(code, 2, "undecided checks alone are inconclusive, not a failure: {line}");
    assert!(line.starts_with("UNKNOWN ") && !line.contains("failed"), "{line}");
    assert!(line.ends_with(", undecided: durability\n"), "{line}");
    assert_eq!(report["verdict"]["summary"], "UNKNOWN: undecided: durability");
    assert!(html.contains("<p>UNKNOWN: undecided: durability</p>"));
    assert!(junit.contains("failures=\"0\" skipped=\"1\""), "{junit}");
}
