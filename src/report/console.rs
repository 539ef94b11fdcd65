//! The words a reviewer scans first — one per run — and the one console line per run that
//! `run` and `replay` print. The index page uses the same words, so the console, the index and
//! the report never disagree about what happened.
//!
//! | word | when |
//! |---|---|
//! | `PASS` | every check passed |
//! | `FAIL` | a check failed that should have passed |
//! | `CAUGHT` | the checks a bug-zoo scenario expects to fail (its planted bug) failed, nothing else did |
//! | `MISSED` | a check expected to fail passed: the planted bug went unnoticed |
//! | `UNDECIDED` | a check could not decide (or the load generator fell behind), and none failed |

use super::model::{CheckEntry, Report};
use crate::check::Status;
use crate::check::slo::{describe, worst};
use crate::scenario::model::{Expectation, Phase};

/// What happened in a run, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Word {
    /// A check failed that should have passed.
    Fail,
    /// A planted bug went unnoticed.
    Missed,
    /// A check could not decide.
    Undecided,
    /// The planted bug was caught.
    Caught,
    /// Every check passed.
    Pass,
}

impl Word {
    /// The word as printed: `PASS`, `CAUGHT`, …
    pub fn text(self) -> &'static str {
        match self {
            Word::Pass => "PASS",
            Word::Fail => "FAIL",
            Word::Caught => "CAUGHT",
            Word::Missed => "MISSED",
            Word::Undecided => "UNDECIDED",
        }
    }

    /// The word of `report`.
    pub fn of(report: &Report) -> Word {
        match report.verdict.status {
            Status::Fail if report.checks.iter().any(failed) => Word::Fail,
            Status::Fail => Word::Missed,
            Status::Unknown => Word::Undecided,
            Status::Pass if report.checks.iter().any(caught) => Word::Caught,
            Status::Pass => Word::Pass,
        }
    }
}

/// Expected to pass, failed.
pub(super) fn failed(check: &CheckEntry) -> bool {
    check.expected == Expectation::Pass && check.status == Status::Fail
}

/// Expected to fail (a planted bug), failed.
pub(super) fn caught(check: &CheckEntry) -> bool {
    check.expected == Expectation::Fail && check.status == Status::Fail
}

/// Expected to fail, passed.
pub(super) fn missed(check: &CheckEntry) -> bool {
    check.expected == Expectation::Fail && check.status == Status::Pass
}

/// The worst broken SLO threshold in words: `invest p99 in steady: 812ms against <= 700ms`.
pub(super) fn worst_slo_miss(report: &Report) -> Option<String> {
    worst(report.slo.iter().filter(|e| !e.ok)).map(|(entry, _)| describe(entry))
}

/// One line for the console: the word, scenario, seed, key figures, and which checks failed,
/// missed, caught the planted bug or could not decide (a failed `slo` with its worst miss).
pub fn summary_line(report: &Report) -> String {
    let any_all = report.latency.iter().find(|r| r.op == "any" && r.phase == Phase::All);
    let (ops, errors) = any_all.map_or((0, 0), |r| (r.ops_count, r.fail_count + r.info_count));
    let worst_p99 = report
        .latency
        .iter()
        .filter(|r| r.op != "any" && r.phase == Phase::All)
        .filter_map(|r| r.latency_ms_p99.map(|p| (p, r.op.as_str())))
        .fold(
            None,
            |best: Option<(f64, &str)>, x| if best.is_none_or(|b| x.0 > b.0) { Some(x) } else { best },
        );
    let p99 = worst_p99.map_or(String::new(), |(p, op)| format!(", worst p99 {p:.0} ms ({op})"));
    let names = |pick: fn(&CheckEntry) -> bool| -> Vec<String> {
        report
            .checks
            .iter()
            .filter(|c| pick(c))
            .map(|c| match worst_slo_miss(report) {
                Some(miss) if c.name == "slo" && failed(c) => format!("slo ({miss})"),
                _ => c.name.clone(),
            })
            .collect()
    };
    let list = |label: &str, names: Vec<String>| {
        if names.is_empty() { String::new() } else { format!(", {label}: {}", names.join(" ")) }
    };
    let lists = [
        list("failed", names(failed)),
        list("missed", names(missed)),
        list("caught", names(caught)),
        list("undecided", names(|c| c.status == Status::Unknown)),
    ]
    .concat();
    let overrides = if report.scenario.overrides.is_empty() {
        String::new()
    } else {
        format!(", --set {}", report.scenario.overrides.join(" --set "))
    };
    format!(
        "{:<9} {} (seed {}{overrides}): {ops} ops, {errors} errors{p99}{lists}",
        Word::of(report).text(),
        report.scenario.name,
        report.seed
    )
}
