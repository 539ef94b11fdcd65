//! Running the configured checks and turning their results into the run's verdict, applying the
//! scenario's `expect` (a check expected to fail passes the run by failing) and the precedence
//! Fail > Unknown > Pass. A generator that fell behind its schedule makes a passing run
//! inconclusive: the stack did not see the load the scenario asked for.

use serde::{Deserialize, Serialize};

use super::{
    CheckResult, FinalState, Status, delivery, durability, files, invariants, recovery, restore, saga, slo,
    staleness,
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
        let result = match name {
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
            CheckName::Invariants => {
                (!checks.invariants.is_empty()).then(|| invariants::check(state, plan, &checks.invariants))
            }
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

/// Combine the results into the verdict.
pub fn verdict(results: &[CheckResult], scenario: &Scenario, generator: &GeneratorStats) -> Verdict {
    let mut status = Status::Pass;
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for result in results {
        let expected = expectation(scenario, &result.name);
        match judged(result, expected) {
            Status::Fail if expected == Expectation::Fail => {
                failed.push(format!("{} (expected to fail, but passed)", result.name))
            }
            Status::Fail => failed.push(result.name.clone()),
            Status::Unknown => unknown.push(result.name.clone()),
            Status::Pass => {}
        }
        status = status.combine(judged(result, expected));
    }
    let behind = generator.dropped_count > 0 || generator.lag_ms_max > GENERATOR_LAG_MS_MAX;
    if behind {
        status = status.combine(Status::Unknown);
    }
    // Failed and undecided checks are listed apart: an undecided check is never called failed,
    // and it never turns a verdict into a failure on its own (Fail > Unknown > Pass above).
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(failed.join(", "));
    }
    if !unknown.is_empty() {
        parts.push(format!("undecided: {}", unknown.join(", ")));
    }
    if behind {
        parts.push(format!(
            "the load generator fell behind (lag {} ms, {} ops dropped)",
            generator.lag_ms_max, generator.dropped_count
        ));
    }
    let summary = match status {
        Status::Fail => format!("FAIL: {}", parts.join("; ")),
        Status::Unknown => format!("UNKNOWN: {}", parts.join("; ")),
        Status::Pass if results.is_empty() => "PASS: no checks configured".to_owned(),
        Status::Pass => {
            let demonstrated =
                results.iter().filter(|r| expectation(scenario, &r.name) == Expectation::Fail).count();
            if demonstrated > 0 {
                format!("PASS: {} checks as expected ({demonstrated} caught the planted bug)", results.len())
            } else {
                format!("PASS: all {} checks passed", results.len())
            }
        }
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
            "name: t\nduration: 30s\nworkload: [ {{ op: invest, rate: 1/s }} ]\nchecks: {{ durability: {{}}, saga: {{}} }}\n{expect}"
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
            (Status::Unknown, 2, "UNKNOWN: undecided: durability")
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
        assert!(v.summary.contains("undecided: durability; the load generator fell behind"), "{}", v.summary);
    }

    #[test]
    fn expect_turns_a_failure_into_a_demonstration() {
        let s = scenario("expect: { durability: fail }\n");
        let calm = GeneratorStats::default();
        let caught = verdict(&[result("durability", Status::Fail), result("saga", Status::Pass)], &s, &calm);
        assert_eq!(caught.status, Status::Pass, "{}", caught.summary);
        assert!(caught.summary.contains("caught the planted bug"));
        let missed = verdict(&[result("durability", Status::Pass), result("saga", Status::Pass)], &s, &calm);
        assert_eq!(missed.status, Status::Fail);
        assert!(missed.summary.contains("expected to fail, but passed"), "{}", missed.summary);
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
