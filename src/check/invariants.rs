//! `invariants`: every boolean query a compose scenario declares (`checks.invariants`) held at
//! every evaluation during the run and at the end (Jepsen's bank: a conserved total is one); an
//! `at: end` invariant is evaluated only at the end, so it has that one evaluation.
//!
//! A `false` at any point fails the check, with the time and the row. An evaluation that could
//! not run (the database was down, a query timed out) proves nothing either way: while a fault
//! is in force that is expected and ignored; outside every fault window, or at the end of the
//! run, it makes the check `unknown` — unless something else already failed it.

use serde_json::json;

use super::{CheckResult, EVIDENCE_MAX, FinalState, InvariantSample, Status, evidence, fault_context};
use crate::faults::Plan;
use crate::scenario::declared::InvariantSpec;

/// Judge every invariant's evaluations.
pub fn check(state: &FinalState, plan: &Plan, specs: &[InvariantSpec]) -> CheckResult {
    let mut violations = Vec::new();
    let mut unevaluated = Vec::new();
    let mut per_invariant = Vec::new();
    for spec in specs {
        let samples: Vec<&InvariantSample> =
            state.invariants.iter().filter(|s| s.name == spec.name).collect();
        let held = samples.iter().filter(|s| s.holds == Some(true)).count();
        let violated: Vec<&&InvariantSample> = samples.iter().filter(|s| s.holds == Some(false)).collect();
        let unknown_outside: Vec<&&InvariantSample> = samples
            .iter()
            .filter(|s| s.holds.is_none() && (s.last || !during_fault(plan, s.time_ns)))
            .collect();
        let has_last = samples.iter().any(|s| s.last && s.holds.is_some());
        for sample in &violated {
            violations.push(json!({
                "invariant": spec.name,
                "at_ms": sample.time_ns / 1_000_000,
                "end_of_run": sample.last,
                "row": sample.detail,
                "context": fault_context(plan, sample.time_ns),
            }));
        }
        for sample in &unknown_outside {
            unevaluated.push(json!({
                "invariant": spec.name,
                "at_ms": sample.time_ns / 1_000_000,
                "end_of_run": sample.last,
                "error": sample.detail,
            }));
        }
        per_invariant.push(json!({
            "name": spec.name,
            "at": if spec.at.is_periodic() { "periodic" } else { "end" },
            "evaluations_count": samples.len(),
            "held_count": held,
            "violated_count": violated.len(),
            "unevaluated_count": samples.len() - held - violated.len(),
            "evaluated_at_end": has_last,
        }));
    }
    let never_at_end: Vec<&str> = specs
        .iter()
        .filter(|spec| !state.invariants.iter().any(|s| s.name == spec.name && s.last && s.holds.is_some()))
        .map(|spec| spec.name.as_str())
        .collect();
    let details = json!({
        "invariants": per_invariant,
        "violations": evidence(violations.clone()),
        "unevaluated_outside_faults": evidence(unevaluated.clone()),
    });
    let (status, summary) = if let Some(first) = violations.first() {
        let name = first["invariant"].as_str().unwrap_or_default();
        let at = first["at_ms"].as_u64().unwrap_or_default();
        let row = first["row"].as_str().unwrap_or("(no row)");
        let more = if violations.len() > 1 {
            format!(" ({} violations in all)", violations.len())
        } else {
            String::new()
        };
        (Status::Fail, format!("`{name}` was false at {at} ms: {row}{more}"))
    } else if !never_at_end.is_empty() {
        (Status::Unknown, format!("not evaluated at the end of the run: {}", never_at_end.join(", ")))
    } else if !unevaluated.is_empty() {
        let count = unevaluated.len();
        (
            Status::Unknown,
            format!("{count} evaluation(s) outside any fault could not run (first {EVIDENCE_MAX} listed)"),
        )
    } else {
        let total: usize =
            specs.iter().map(|s| state.invariants.iter().filter(|x| x.name == s.name).count()).sum();
        (Status::Pass, format!("{} invariant(s) held at all {total} evaluations", specs.len()))
    };
    CheckResult { name: "invariants".into(), status, summary, details }
}

/// Whether a fault is in force at `time_ns`.
fn during_fault(plan: &Plan, time_ns: u64) -> bool {
    let t = std::time::Duration::from_nanos(time_ns);
    plan.faults.iter().any(|f| f.start <= t && f.end.unwrap_or(plan.duration) > t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::plan_with_crash as crash_plan;

    const MS: u64 = 1_000_000;

    fn spec(name: &str) -> InvariantSpec {
        InvariantSpec {
            name: name.into(),
            client: "db".into(),
            sql: "SELECT true".into(),
            every: Default::default(),
            at: Default::default(),
        }
    }

    fn sample(name: &str, at_ms: u64, holds: Option<bool>, last: bool) -> InvariantSample {
        InvariantSample { name: name.into(), time_ns: at_ms * MS, holds, detail: Some("row".into()), last }
    }

    fn state(samples: Vec<InvariantSample>) -> FinalState {
        FinalState { invariants: samples, ..FinalState::default() }
    }

    // Goal: an `at: end` invariant is judged on its one end-of-run evaluation: it passes when
    // that held, fails when it did not, and the report says when it is read. Method: one last
    // sample each way.
    #[test]
    fn an_end_only_invariant_is_judged_on_its_one_evaluation() {
        let plan = crash_plan();
        let mut settled = spec("settled");
        settled.at = crate::scenario::declared::InvariantAt::End;
        let held =
            check(&state(vec![sample("settled", 50_000, Some(true), true)]), &plan, &[settled.clone()]);
        assert_eq!(held.status, Status::Pass, "{}", held.summary);
        assert_eq!(held.details["invariants"][0]["at"], "end");
        assert_eq!(held.details["invariants"][0]["evaluations_count"], 1);
        let broken = check(&state(vec![sample("settled", 50_000, Some(false), true)]), &plan, &[settled]);
        assert_eq!(broken.status, Status::Fail, "{}", broken.summary);
    }

    /// The crash plan has pg-primary down from 20 s to 35 s.
    #[test]
    fn an_error_during_a_fault_is_ignored_and_one_false_fails() {
        let plan = crash_plan();
        let specs = [spec("stock")];
        let fine = state(vec![
            sample("stock", 1_000, Some(true), false),
            sample("stock", 25_000, None, false),
            sample("stock", 61_000, Some(true), true),
        ]);
        assert_eq!(check(&fine, &plan, &specs).status, Status::Pass);
        let broken = state(vec![
            sample("stock", 1_000, Some(true), false),
            sample("stock", 40_000, Some(false), false),
            sample("stock", 61_000, Some(true), true),
        ]);
        let result = check(&broken, &plan, &specs);
        assert_eq!(result.status, Status::Fail);
        assert!(result.summary.contains("40000 ms"), "{}", result.summary);
    }

    #[test]
    fn an_error_outside_faults_or_no_final_evaluation_is_unknown() {
        let plan = crash_plan();
        let specs = [spec("stock")];
        let outside =
            state(vec![sample("stock", 5_000, None, false), sample("stock", 61_000, Some(true), true)]);
        assert_eq!(check(&outside, &plan, &specs).status, Status::Unknown);
        let no_end = state(vec![sample("stock", 5_000, Some(true), false)]);
        assert_eq!(check(&no_end, &plan, &specs).status, Status::Unknown);
    }
}
