//! Running the configured checks and turning their results into the run's verdict, applying the
//! scenario's `expect` (a check expected to fail passes the run by failing) and the precedence
//! Fail > Unknown > Pass. A generator that fell behind its schedule makes a passing run
//! inconclusive: the stack did not see the load the scenario asked for.

use serde::{Deserialize, Serialize};

use super::{
    CheckResult, FinalState, Status, conservation, delivery, durability, files, invariants, recovery,
    restore, saga, slo, staleness,
};
use crate::exit;
use crate::faults::Plan;
use crate::history::History;
use crate::scenario::model::{CheckName, Expectation, Scenario};
use crate::workload::GeneratorStats;

/// Largest tolerated delay between an op's intended start and its send before the verdict
/// becomes inconclusive.
pub const GENERATOR_LAG_MS_MAX: u64 = 1_000;

/// Every configured check's result, in report order, plus the latency table and SLO entries.
pub struct Checked {
    /// One result per configured check.
    pub results: Vec<CheckResult>,
    /// Per op per phase figures (always computed).
    pub latency: Vec<slo::LatencyRow>,
    /// Every SLO threshold, evaluated.
    pub slo: Vec<slo::SloEntry>,
    /// The acknowledged writes missing from the final primary, as the durability check counts
    /// them (found whether or not that check is configured): what the run attributes to faults
    /// as their `writes_lost_count`.
    pub lost_writes: Vec<durability::LostWrite>,
}

/// Run every check the scenario configures.
pub fn run_all(history: &History, state: &FinalState, plan: &Plan, scenario: &Scenario) -> Checked {
    let checks = &scenario.checks;
    let latency = slo::latency_table(history, plan);
    let entries = slo::evaluate(&checks.slo, &latency);
    let tally = durability::tally(history, state);
    let mut results = Vec::new();
    for name in CheckName::ALL {
        let result =
            match name {
                CheckName::Durability => {
                    checks.durability.as_ref().map(|_| durability::judge(&tally, state, plan))
                }
                CheckName::Staleness => checks.staleness.as_ref().map(|c| staleness::check(history, plan, c)),
                CheckName::Saga => checks.saga.as_ref().map(|_| saga::check(history, state)),
                CheckName::Delivery => checks.delivery.as_ref().map(|_| delivery::check(history, state)),
                CheckName::Files => checks.files.as_ref().map(|c| files::check(history, state, c)),
                CheckName::Slo => (!checks.slo.is_empty()).then(|| slo::check(&entries)),
                CheckName::Recovery => checks.recovery.as_ref().map(|c| recovery::check(history, plan, c)),
                CheckName::Restore => checks.restore.as_ref().map(|c| restore::check(history, state, c)),
                CheckName::Invariants => (!checks.invariants.is_empty())
                    .then(|| invariants::check(state, plan, &checks.invariants)),
                CheckName::Conservation => (!checks.conservation.is_empty())
                    .then(|| conservation::check(state, &checks.conservation)),
            };
        results.extend(result);
    }
    Checked { results, latency, slo: entries, lost_writes: tally.lost_writes() }
}

/// The run's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// pass / fail / unknown after `expect`.
    pub status: Status,
    /// 0, 1 or 2.
    pub exit_code: u8,
    /// One sentence for a reviewer.
    pub summary: String,
}

/// What a scenario expects of the check named `name`.
pub fn expectation(scenario: &Scenario, name: &str) -> Expectation {
    CheckName::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .and_then(|c| scenario.expect.get(&c).copied())
        .unwrap_or(Expectation::Pass)
}

/// A check's contribution to the verdict once its expectation is applied.
pub fn judged(result: &CheckResult, expected: Expectation) -> Status {
    match (expected, result.status) {
        (_, Status::Unknown) => Status::Unknown,
        (Expectation::Pass, status) => status,
        (Expectation::Fail, Status::Fail) => Status::Pass,
        (Expectation::Fail, Status::Pass) => Status::Fail,
    }
}

/// A failed check's name, and for `slo` its worst miss: `slo (invest p99 in steady: 812ms
/// against <= 700ms)`.
fn with_worst_miss(result: &CheckResult) -> String {
    match result.details.get("worst").and_then(serde_json::Value::as_str) {
        Some(worst) if result.name == "slo" => format!("slo ({worst})"),
        _ => result.name.clone(),
    }
}

/// Combine the results into the verdict. Its summary says what happened in the words a reviewer
/// scans for: `PASS`, `FAIL` (a check failed that should have passed), `CAUGHT` (every check
/// expected to fail — a planted bug — failed, and nothing else did), `MISSED` (a check expected
/// to fail passed: the planted bug went unnoticed) and `UNDECIDED` (a check could not decide, or
/// the load generator fell behind).
pub fn verdict(results: &[CheckResult], scenario: &Scenario, generator: &GeneratorStats) -> Verdict {
    let mut status = Status::Pass;
    let (mut failed, mut missed, mut caught, mut unknown) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for result in results {
        let expected = expectation(scenario, &result.name);
        let name = result.name.clone();
        match (judged(result, expected), expected) {
            (Status::Fail, Expectation::Fail) => missed.push(name),
            (Status::Fail, Expectation::Pass) => failed.push(with_worst_miss(result)),
            (Status::Unknown, _) => unknown.push(name),
            (Status::Pass, Expectation::Fail) => caught.push(name),
            (Status::Pass, Expectation::Pass) => {}
        }
        status = status.combine(judged(result, expected));
    }
    let behind = generator.dropped_count > 0 || generator.lag_ms_max > GENERATOR_LAG_MS_MAX;
    if behind {
        status = status.combine(Status::Unknown);
    }
    // Failed, missed and undecided checks are listed apart: an undecided check is never called
    // failed, and it never turns a verdict into a failure on its own (Fail > Unknown > Pass).
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(failed.join(", "));
    }
    if !missed.is_empty() {
        let label = if failed.is_empty() { "" } else { "missed: " };
        parts.push(format!("{label}{} expected to fail (the planted bug), but passed", missed.join(", ")));
    }
    if !unknown.is_empty() {
        let label = if status == Status::Unknown { "" } else { "undecided: " };
        parts.push(format!("{label}{}", unknown.join(", ")));
    }
    if behind {
        parts.push(format!(
            "the load generator fell behind (lag {} ms, {} ops dropped)",
            generator.lag_ms_max, generator.dropped_count
        ));
    }
    let others = results.len() - caught.len();
    let summary = match status {
        Status::Fail if failed.is_empty() => format!("MISSED: {}", parts.join("; ")),
        Status::Fail => format!("FAIL: {}", parts.join("; ")),
        Status::Unknown => format!("UNDECIDED: {}", parts.join("; ")),
        Status::Pass if results.is_empty() => "PASS: no checks configured".to_owned(),
        Status::Pass if !caught.is_empty() => format!(
            "CAUGHT: {} failed as expected (the planted bug){}",
            caught.join(", "),
            match others {
                0 => String::new(),
                1 => "; the other check passed".to_owned(),
                n => format!("; the other {n} checks passed"),
            }
        ),
        Status::Pass if results.len() == 1 => "PASS: the only check passed".to_owned(),
        Status::Pass => format!("PASS: all {} checks passed", results.len()),
    };
    let exit_code = match status {
        Status::Pass => exit::PASS,
        Status::Fail => exit::FAIL,
        Status::Unknown => exit::UNKNOWN,
    };
    Verdict { status, exit_code, summary }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    fn scenario(expect: &str) -> Scenario {
        let text = format!(
            "name: t\nduration: 30s\nworkload: [ {{ op: invest, rate: 1/s }}, {{ op: order, rate: 1/s }} ]\nchecks: {{ durability: {{}}, saga: {{}} }}\n{expect}"
        );
        load_str(&text, "t.yaml", &[]).unwrap().scenario
    }

    fn result(name: &str, status: Status) -> CheckResult {
        CheckResult { name: name.into(), status, summary: String::new(), details: serde_json::Value::Null }
    }

    #[test]
    fn precedence_and_exit_codes() {
        let s = scenario("");
        let calm = GeneratorStats::default();
        let v = verdict(&[result("durability", Status::Pass), result("saga", Status::Pass)], &s, &calm);
        assert_eq!((v.status, v.exit_code), (Status::Pass, 0));
        let v = verdict(&[result("durability", Status::Unknown), result("saga", Status::Pass)], &s, &calm);
        assert_eq!((v.status, v.exit_code), (Status::Unknown, 2));
        let v = verdict(&[result("durability", Status::Unknown), result("saga", Status::Fail)], &s, &calm);
        assert_eq!((v.status, v.exit_code), (Status::Fail, 1));
    }

    /// Issue 18: an undecided check is named as undecided, apart from the failed ones, and on its
    /// own it gives exit 2, never 1 — even when the scenario expected it to fail.
    #[test]
    fn undecided_checks_are_listed_apart_and_never_fail_a_run_alone() {
        let s = scenario("");
        let calm = GeneratorStats::default();
        let v = verdict(&[result("durability", Status::Unknown), result("saga", Status::Fail)], &s, &calm);
        assert_eq!(v.summary, "FAIL: saga; undecided: durability");
        let v = verdict(&[result("durability", Status::Unknown), result("saga", Status::Pass)], &s, &calm);
        assert_eq!(
            (v.status, v.exit_code, v.summary.as_str()),
            (Status::Unknown, 2, "UNDECIDED: durability")
        );
        let expecting = scenario("expect: { durability: fail }\n");
        let v = verdict(
            &[result("durability", Status::Unknown), result("saga", Status::Pass)],
            &expecting,
            &calm,
        );
        assert_eq!((v.status, v.exit_code), (Status::Unknown, 2), "{}", v.summary);
        let behind = GeneratorStats { dropped_count: 3, ..Default::default() };
        let v = verdict(&[result("durability", Status::Unknown), result("saga", Status::Pass)], &s, &behind);
        assert_eq!(v.exit_code, 2);
        assert!(
            v.summary.starts_with("UNDECIDED: durability; the load generator fell behind"),
            "{}",
            v.summary
        );
    }

    /// Goal: a bug-zoo run says what happened to its planted bug — caught (the expected failure)
    /// or missed (expected to fail, passed) — and never calls a check that passed "failed".
    /// Method: the four combinations of a durability check expected to fail, beside a saga check.
    #[test]
    fn expect_turns_a_failure_into_a_demonstration() {
        let s = scenario("expect: { durability: fail }\n");
        let calm = GeneratorStats::default();
        let caught = verdict(&[result("durability", Status::Fail), result("saga", Status::Pass)], &s, &calm);
        assert_eq!(caught.status, Status::Pass, "{}", caught.summary);
        assert_eq!(
            caught.summary,
            "CAUGHT: durability failed as expected (the planted bug); the other check passed"
        );
        let missed = verdict(&[result("durability", Status::Pass), result("saga", Status::Pass)], &s, &calm);
        assert_eq!((missed.status, missed.exit_code), (Status::Fail, 1));
        assert_eq!(missed.summary, "MISSED: durability expected to fail (the planted bug), but passed");
        assert!(!missed.summary.contains("FAIL"), "{}", missed.summary);
        let both = verdict(&[result("durability", Status::Pass), result("saga", Status::Fail)], &s, &calm);
        assert_eq!(
            both.summary,
            "FAIL: saga; missed: durability expected to fail (the planted bug), but passed"
        );
        let plain = verdict(&[result("durability", Status::Pass)], &scenario(""), &calm);
        assert_eq!(plain.summary, "PASS: the only check passed", "one check is not `all 1 checks`");
    }

    /// Goal: a failed SLO check names its worst miss in the verdict.
    #[test]
    fn a_failed_slo_names_its_worst_miss() {
        let mut slo = result("slo", Status::Fail);
        slo.details = serde_json::json!({ "worst": "invest p99 in steady: 812ms against <= 700ms" });
        let v = verdict(&[slo], &scenario(""), &GeneratorStats::default());
        assert_eq!(v.summary, "FAIL: slo (invest p99 in steady: 812ms against <= 700ms)");
    }

    #[test]
    fn a_generator_that_fell_behind_makes_a_pass_inconclusive() {
        let s = scenario("");
        let behind = GeneratorStats { lag_ms_max: GENERATOR_LAG_MS_MAX + 1, ..Default::default() };
        let v = verdict(&[result("durability", Status::Pass)], &s, &behind);
        assert_eq!(v.status, Status::Unknown);
        assert!(v.summary.contains("fell behind"), "{}", v.summary);
    }
}
