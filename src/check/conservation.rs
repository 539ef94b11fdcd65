//! `conservation`: for each check a compose scenario declares (`checks.conservation`), the parts
//! read from several clients after the drain add up to its constant `total` — a conserved
//! quantity that lives in more than one engine (stock in MariaDB, units ordered in PostgreSQL),
//! which no single `checks.invariants` query can see.
//!
//! The parts are read one after the other, not atomically across engines: the sum means
//! something only once nothing moves any more, which is why it is read after the drain and only
//! then. A part that could not be read (an error, no row, a value that is not an integer) fails
//! the check as a wrong sum does: the scenario promised the quantity is there to be counted.

use serde_json::json;

use super::{CheckResult, FinalState, PartReading, Status};
use crate::scenario::declared::ConservationSpec;

/// Judge every conservation check on the parts read after the drain.
pub fn check(state: &FinalState, specs: &[ConservationSpec]) -> CheckResult {
    let mut failures = Vec::new();
    let mut per_check = Vec::new();
    for spec in specs {
        let readings = state.conservation.get(&spec.name).map(Vec::as_slice).unwrap_or_default();
        let (detail, failure) = judge(spec, readings);
        per_check.push(detail);
        failures.extend(failure);
    }
    let details = json!({ "conservation": per_check });
    let (status, summary) = match failures.first() {
        Some(first) => {
            let more = if failures.len() > 1 {
                format!(" ({} checks failed)", failures.len())
            } else {
                String::new()
            };
            (Status::Fail, format!("{first}{more}"))
        }
        None => (Status::Pass, format!("{} conserved total(s) held after the drain", specs.len())),
    };
    CheckResult { name: "conservation".into(), status, summary, details }
}

/// One check: its report entry, and the failure's summary if it failed.
fn judge(spec: &ConservationSpec, readings: &[PartReading]) -> (serde_json::Value, Option<String>) {
    let parts: Vec<serde_json::Value> = spec
        .parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let reading = readings.get(i);
            json!({
                "client": part.client,
                "sql": part.sql,
                "value": reading.and_then(|r| r.value),
                "error": reading.map_or(Some("not read"), |r| r.error.as_deref()),
            })
        })
        .collect();
    let values: Option<Vec<i64>> =
        (0..spec.parts.len()).map(|i| readings.get(i).and_then(|r| r.value)).collect();
    let sum = values.map(|v| v.iter().map(|&x| i128::from(x)).sum::<i128>());
    let failure = match sum {
        None => {
            let i =
                (0..spec.parts.len()).find(|&i| readings.get(i).and_then(|r| r.value).is_none()).unwrap_or(0);
            let why = readings.get(i).and_then(|r| r.error.clone()).unwrap_or_else(|| "not read".into());
            Some(format!("`{}`: part {i} ({}) could not be read: {why}", spec.name, spec.parts[i].client))
        }
        Some(sum) if sum != i128::from(spec.total) => {
            let shown: Vec<String> =
                readings.iter().map(|r| r.value.map(|v| v.to_string()).unwrap_or_default()).collect();
            Some(format!(
                "`{}`: the parts add up to {sum} ({}), not {} (off by {})",
                spec.name,
                shown.join(" + "),
                spec.total,
                sum - i128::from(spec.total)
            ))
        }
        Some(_) => None,
    };
    let detail = json!({
        "name": spec.name,
        "total": spec.total,
        "sum": sum.map(|s| s.to_string()),
        "holds": failure.is_none(),
        "parts": parts,
    });
    (detail, failure)
}

/// The integer a part's first column holds: `1000`, `-3`, or a decimal with a zero fraction
/// (`1000.00`, as MySQL's `SUM` over integers answers); anything else is not a count.
pub fn integer(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let (whole, fraction) = text.split_once('.')?;
    (!fraction.is_empty() && fraction.bytes().all(|b| b == b'0')).then(|| whole.parse::<i64>().ok())?
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scenario::declared::ConservationPart;

    fn spec(total: i64) -> ConservationSpec {
        ConservationSpec {
            name: "stock-plus-ordered".into(),
            total,
            parts: vec![
                ConservationPart {
                    client: "inventory-db".into(),
                    sql: "SELECT SUM(stock) FROM products".into(),
                },
                ConservationPart {
                    client: "orders-db".into(),
                    sql: "SELECT SUM(quantity) FROM orders".into(),
                },
            ],
        }
    }

    fn read(client: &str, value: Option<i64>, error: Option<&str>) -> PartReading {
        PartReading { client: client.into(), value, error: error.map(Into::into) }
    }

    fn state(parts: Vec<PartReading>) -> FinalState {
        FinalState {
            conservation: BTreeMap::from([("stock-plus-ordered".into(), parts)]),
            ..FinalState::default()
        }
    }

    // Goal: parts that add up to the total pass, and the report shows each part, the sum and the
    // total. Method: 700 + 300 against 1000.
    #[test]
    fn parts_that_add_up_pass() {
        let result = check(
            &state(vec![read("inventory-db", Some(700), None), read("orders-db", Some(300), None)]),
            &[spec(1000)],
        );
        assert_eq!(result.status, Status::Pass, "{}", result.summary);
        let entry = &result.details["conservation"][0];
        assert_eq!(entry["sum"], "1000");
        assert_eq!(entry["total"], 1000);
        assert_eq!(entry["parts"][0]["value"], 700);
        assert_eq!(entry["parts"][1]["client"], "orders-db");
    }

    // Goal: a wrong sum fails, naming the parts and the difference — stock sold on a replica the
    // old primary never saw shows as units ordered with no stock taken for them. Method: 760 + 300.
    #[test]
    fn a_wrong_sum_fails_with_each_part_and_the_difference() {
        let result = check(
            &state(vec![read("inventory-db", Some(760), None), read("orders-db", Some(300), None)]),
            &[spec(1000)],
        );
        assert_eq!(result.status, Status::Fail);
        assert!(result.summary.contains("1060 (760 + 300), not 1000 (off by 60)"), "{}", result.summary);
        assert_eq!(result.details["conservation"][0]["holds"], false);
    }

    // Goal: a part that could not be read fails the check (it is not a pass by default, nor a
    // sum of what was read). Method: the second part's read failed; no readings at all.
    #[test]
    fn an_unreadable_or_missing_part_fails() {
        let result = check(
            &state(vec![
                read("inventory-db", Some(1000), None),
                read("orders-db", None, Some("connection refused")),
            ]),
            &[spec(1000)],
        );
        assert_eq!(result.status, Status::Fail);
        assert!(
            result.summary.contains("part 1 (orders-db) could not be read: connection refused"),
            "{}",
            result.summary
        );
        let result = check(&FinalState::default(), &[spec(0)]);
        assert_eq!(result.status, Status::Fail, "{}", result.summary);
        assert!(result.summary.contains("not read"), "{}", result.summary);
    }

    // Goal: the values engines answer for a sum parse as integers, and nothing else does.
    #[test]
    fn integers_as_engines_answer_them() {
        assert_eq!(integer("1000"), Some(1000));
        assert_eq!(integer(" -3 "), Some(-3));
        assert_eq!(integer("1000.00"), Some(1000));
        assert_eq!(integer("12.5"), None);
        assert_eq!(integer("12."), None);
        assert_eq!(integer("t"), None);
        assert_eq!(integer(""), None);
    }
}
