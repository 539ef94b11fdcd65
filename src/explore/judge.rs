//! How exploration judges one run: only the invariant checkers by default (durability,
//! staleness, saga, delivery, files), SLO and recovery checks too with `--slo`. A check's performance
//! targets count as SLOs: staleness's visibility-lag bound (a replica paused or cut off by a drawn
//! fault lags as long as the fault lasts, by design) is judged only with `--slo`; its
//! read-your-writes guarantee is an invariant. The scenario's `expect`
//! is ignored — exploration reports what the checkers saw, so a bug-zoo scenario "fails" here.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::check::{CheckResult, GENERATOR_LAG_MS_MAX, Status};
use crate::workload::GeneratorStats;

/// What a failure broke: the failing checks and, per check, which invariants. Failures with the
/// same signature are one group; only the group's first failure is shrunk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Signature(pub Vec<(String, Vec<String>)>);

impl Signature {
    /// The failing checks' names.
    pub fn checks(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(check, _)| check.as_str())
    }

    /// Does `other` fail every check this one fails, each with at least one of the same findings?
    /// (A restore that found no backup at all is not the archive gap that was being shrunk.)
    pub fn shared_by(&self, other: &Signature) -> bool {
        self.0.iter().all(|(check, findings)| {
            other.0.iter().any(|(c, found)| {
                c == check && (findings.is_empty() || findings.iter().any(|f| found.contains(f)))
            })
        })
    }

    /// A file-name-safe form: `durability-lost-acknowledged-write`.
    pub fn slug(&self) -> String {
        let text = self.0.iter().map(|(c, i)| format!("{c}-{}", i.join("-"))).collect::<Vec<_>>().join("--");
        let slug: String = text
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect();
        slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-").chars().take(80).collect()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(c, i)| format!("{c} ({})", i.join(", "))).collect();
        f.write_str(&parts.join("; "))
    }
}

/// One run's outcome for exploration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Judgement {
    /// Every judged check passed.
    Pass,
    /// A judged check failed.
    Fail {
        /// What broke.
        signature: Signature,
    },
    /// Nothing failed, but something could not be decided.
    Inconclusive {
        /// Why.
        reason: String,
    },
}

/// Checks judged without `--slo`.
pub const INVARIANT_CHECKS: [&str; 6] = ["durability", "staleness", "saga", "delivery", "files", "restore"];

/// Findings of an invariant check that are performance targets, judged only with `--slo`.
pub const PERFORMANCE_FINDINGS: [(&str, &str); 2] =
    [("staleness", "lag bound exceeded"), ("restore", "RTO over the objective")];

/// Judge one run's check results.
pub fn judge(results: &[CheckResult], generator: &GeneratorStats, slo: bool) -> Judgement {
    let judged = |name: &str| slo || INVARIANT_CHECKS.contains(&name);
    let failed: Vec<(String, Vec<String>)> = results
        .iter()
        .filter(|r| judged(&r.name) && r.status == Status::Fail)
        .map(|r| {
            let mut broken = invariants(r);
            if !slo {
                broken.retain(|found| !PERFORMANCE_FINDINGS.contains(&(r.name.as_str(), found.as_str())));
            }
            (r.name.clone(), broken)
        })
        .filter(|(_, broken)| !broken.is_empty())
        .collect();
    if !failed.is_empty() {
        return Judgement::Fail { signature: Signature(failed) };
    }
    let unknown: Vec<&str> = results
        .iter()
        .filter(|r| judged(&r.name) && r.status == Status::Unknown)
        .map(|r| r.name.as_str())
        .collect();
    if !unknown.is_empty() {
        return Judgement::Inconclusive { reason: format!("undecided: {}", unknown.join(", ")) };
    }
    if generator.dropped_count > 0 || generator.lag_ms_max > GENERATOR_LAG_MS_MAX {
        return Judgement::Inconclusive {
            reason: format!(
                "the load generator fell behind (lag {} ms, {} ops dropped)",
                generator.lag_ms_max, generator.dropped_count
            ),
        };
    }
    Judgement::Pass
}

/// Which invariants a failed check reports broken, from its details.
fn invariants(result: &CheckResult) -> Vec<String> {
    let details = &result.details;
    let mut found = BTreeSet::new();
    if let Some(items) = details.pointer("/violations/items").and_then(|v| v.as_array()) {
        found.extend(items.iter().filter_map(|v| v["kind"].as_str()).map(str::to_owned));
    }
    let counted: &[(&str, &str)] = match result.name.as_str() {
        "durability" => &[
            ("lost_count", "lost acknowledged write"),
            ("unexpected_count", "write nobody attempted"),
            ("duplicated_count", "write applied twice"),
            ("diverged_count", "write on a diverged primary"),
        ],
        "delivery" => &[
            ("lost_count", "lost accepted query"),
            ("duplicate_effect_count", "effect applied twice"),
            ("unexpected_count", "query nobody sent"),
        ],
        "staleness" => &[("read_your_writes_violation_count", "read-your-writes violated")],
        "files" => &[
            ("missing_row_count", "acknowledged upload without a row"),
            ("missing_object_count", "acknowledged upload without its object"),
            ("corrupt_count", "other bytes stored"),
            ("dangling_row_count", "row pointing at a missing object"),
            ("missing_thumbnail_count", "acknowledged upload without a thumbnail"),
            ("missed_audit_count", "missed event"),
            ("applied_twice_count", "subscriber effect applied twice"),
        ],
        // RPO is data loss, an invariant here; RTO is a performance target.
        "restore" => &[
            ("catalogue_broken_count", "catalogued backup missing or not verifying"),
            ("missing_count", "write missing after a restore"),
            ("no_base_count", "restore without a verified base backup"),
            ("rpo_exceeded_count", "RPO over the objective"),
            ("rto_exceeded_count", "RTO over the objective"),
        ],
        _ => &[],
    };
    for (field, name) in counted {
        if details[*field].as_u64().is_some_and(|n| n > 0) {
            found.insert((*name).to_owned());
        }
    }
    if found.is_empty() {
        found.insert(match result.name.as_str() {
            "staleness" => "lag bound exceeded".to_owned(),
            "files" => "orphans over orphans_max".to_owned(),
            other => other.to_owned(),
        });
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn result(name: &str, status: Status, details: serde_json::Value) -> CheckResult {
        CheckResult { name: name.into(), status, summary: String::new(), details }
    }

    #[test]
    fn a_files_failure_is_an_invariant_named_by_what_broke() {
        let results = [result("files", Status::Fail, json!({ "missed_audit_count": 2, "orphan_count": 5 }))];
        let Judgement::Fail { signature } = judge(&results, &GeneratorStats::default(), false) else {
            panic!()
        };
        assert_eq!(signature.0, vec![("files".to_owned(), vec!["missed event".to_owned()])]);
        let orphans = [result("files", Status::Fail, json!({ "orphan_count": 5 }))];
        let Judgement::Fail { signature } = judge(&orphans, &GeneratorStats::default(), false) else {
            panic!()
        };
        assert_eq!(signature.0, vec![("files".to_owned(), vec!["orphans over orphans_max".to_owned()])]);
    }

    #[test]
    fn a_lost_write_is_a_durability_failure_and_slo_counts_only_when_asked() {
        let results = [
            result("durability", Status::Fail, json!({ "lost_count": 3, "duplicated_count": 0 })),
            result("slo", Status::Fail, json!({})),
        ];
        let generator = GeneratorStats::default();
        let Judgement::Fail { signature } = judge(&results, &generator, false) else { panic!() };
        assert_eq!(signature.0, vec![("durability".to_owned(), vec!["lost acknowledged write".to_owned()])]);
        assert_eq!(signature.slug(), "durability-lost-acknowledged-write");
        let Judgement::Fail { signature } = judge(&results, &generator, true) else { panic!() };
        assert_eq!(signature.checks().collect::<Vec<_>>(), ["durability", "slo"]);
    }

    #[test]
    fn saga_invariants_come_from_violation_kinds_and_unknown_is_inconclusive() {
        let saga = json!({ "violations": { "items": [ { "kind": "compensated more than once" } ] } });
        let Judgement::Fail { signature } =
            judge(&[result("saga", Status::Fail, saga)], &GeneratorStats::default(), false)
        else {
            panic!()
        };
        assert_eq!(signature.to_string(), "saga (compensated more than once)");
        let unknown = [result("delivery", Status::Unknown, json!({}))];
        assert!(matches!(judge(&unknown, &GeneratorStats::default(), false), Judgement::Inconclusive { .. }));
        let behind = GeneratorStats { dropped_count: 1, ..GeneratorStats::default() };
        assert!(matches!(judge(&[], &behind, false), Judgement::Inconclusive { .. }));
        assert_eq!(
            judge(&[result("slo", Status::Fail, json!({}))], &GeneratorStats::default(), false),
            Judgement::Pass
        );
    }

    /// Staleness's lag bound is a performance target: judged with `--slo` only; a
    /// read-your-writes violation is judged always.
    #[test]
    fn a_lag_bound_counts_only_with_slo_and_read_your_writes_always() {
        let generator = GeneratorStats::default();
        let lag = [result("staleness", Status::Fail, json!({ "read_your_writes_violation_count": 0 }))];
        assert_eq!(judge(&lag, &generator, false), Judgement::Pass);
        let Judgement::Fail { signature } = judge(&lag, &generator, true) else { panic!() };
        assert_eq!(signature.to_string(), "staleness (lag bound exceeded)");
        let ryw = [result("staleness", Status::Fail, json!({ "read_your_writes_violation_count": 2 }))];
        let Judgement::Fail { signature } = judge(&ryw, &generator, false) else { panic!() };
        assert_eq!(signature.to_string(), "staleness (read-your-writes violated)");
    }
}
