//! What of a scenario with shape errors can still be validated, so one run reports a typo in one
//! place and a fault after the end of the run in another (STYLE.md 8: every error at once).
//!
//! The shape pass (`load::shape_errors`) reads each section and each list item on its own and
//! says which failed ([`Broken`]). [`salvage`] builds a value without them: a broken list item is
//! dropped (the others keep their original index, through [`Gaps`]), a broken section falls back
//! to its default (a required one to a placeholder), and `checks` keeps its readable SLO rows.
//! Semantic validation then runs on that value, told by [`Gaps`] what it lacks, and skips every
//! rule whose answer would depend on the missing part: an SLO on an op the workload "never
//! issues" is not reported when a workload item could not be read, nor a fault "after the end of
//! the run" when `duration` could not be read. What it does report is true of the file as written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The parts of a scenario the shape pass could not read.
#[derive(Clone, Debug, Default)]
pub(super) struct Broken {
    /// Top-level sections that could not be read (or required ones that are missing).
    pub(super) sections: BTreeSet<String>,
    /// Per list (`workload`, `faults`, `checks.slo`), the indexes of the items that could not be read.
    pub(super) items: BTreeMap<&'static str, BTreeSet<usize>>,
    /// Sections absent from the file that an unknown key probably meant (`chekcs` → `checks`):
    /// what they hold is unknown, not empty.
    pub(super) misspelt: BTreeSet<String>,
}

/// The lists whose items are read one by one.
pub(super) const LISTS: [&str; 3] = ["workload", "faults", "checks.slo"];

/// Sections without a default: a salvaged value gets a placeholder (never judged: it is a gap).
const REQUIRED: [(&str, &str); 3] = [("name", "unread"), ("duration", "1s"), ("workload", "[]")];

/// What a salvaged scenario lacks, for validation to skip the rules that would need it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gaps {
    unread: BTreeSet<String>,
    /// Per list, the original index of each item kept, in order. A list not listed kept all.
    kept: BTreeMap<&'static str, Vec<usize>>,
}

impl Gaps {
    /// Could the section not be read at all (it holds its default or a placeholder)?
    pub(crate) fn unread(&self, section: &str) -> bool {
        self.unread.contains(section)
    }

    /// Is anything of the section or list missing: unread, or some of its items dropped?
    pub(crate) fn incomplete(&self, section: &str) -> bool {
        self.unread(section) || self.kept.contains_key(section)
    }

    /// The path of item `i` of `list` as the file wrote it: `faults[3]` for the third item kept
    /// when an earlier one was dropped.
    pub(crate) fn item(&self, list: &'static str, i: usize) -> String {
        let original = self.kept.get(list).map_or(i, |kept| kept[i]);
        format!("{list}[{original}]")
    }
}

/// `value` without what `broken` names, and the gaps that leaves. `None` when the value is not a
/// mapping: nothing of it can be validated.
pub(super) fn salvage(value: &Value, broken: &Broken) -> Option<(Value, Gaps)> {
    let mut map = value.as_object()?.clone();
    let mut gaps = Gaps::default();
    for section in &broken.sections {
        gaps.unread.insert(section.clone());
        if section == "checks" {
            // Keep the SLO rows: each was read on its own.
            let slo = map.get("checks").and_then(|c| c.get("slo")).filter(|s| s.is_array()).cloned();
            map.remove("checks");
            if let Some(slo) = slo {
                map.insert("checks".into(), serde_json::json!({ "slo": slo }));
            }
        } else {
            map.remove(section);
        }
    }
    gaps.unread.extend(broken.misspelt.iter().cloned());
    for (section, placeholder) in REQUIRED {
        if !map.contains_key(section) {
            gaps.unread.insert(section.to_owned());
            map.insert(section.into(), serde_saphyr::from_str(placeholder).expect("placeholders are YAML"));
        }
    }
    for (list, dropped) in &broken.items {
        let slot = match *list {
            "checks.slo" => map.get_mut("checks").and_then(|c| c.get_mut("slo")),
            section => map.get_mut(section),
        };
        let Some(Value::Array(items)) = slot else { continue };
        let kept: Vec<usize> = (0..items.len()).filter(|i| !dropped.contains(i)).collect();
        *items = kept.iter().map(|&i| items[i].clone()).collect();
        gaps.kept.insert(list, kept);
    }
    Some((Value::Object(map), gaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: dropped items keep their original paths, broken sections become gaps, and the
    /// readable SLO rows of a broken `checks` survive.
    #[test]
    fn drops_broken_items_and_sections_and_remembers_where_they_were() {
        let value = serde_json::json!({
            "name": "t",
            "workload": [{ "op": "invest" }, { "op": "bogus" }, { "op": "history" }],
            "checks": { "durability": 7, "slo": [{ "op": "invest" }] },
            "stack": { "api_replica": 3 },
        });
        let broken = Broken {
            sections: ["checks".to_owned(), "stack".to_owned()].into(),
            items: [("workload", [1].into())].into(),
            misspelt: ["expect".to_owned()].into(),
        };
        let (salvaged, gaps) = salvage(&value, &broken).unwrap();
        assert_eq!(salvaged["workload"].as_array().unwrap().len(), 2);
        assert_eq!(gaps.item("workload", 1), "workload[2]");
        assert_eq!(gaps.item("faults", 0), "faults[0]");
        assert_eq!(salvaged["checks"], serde_json::json!({ "slo": [{ "op": "invest" }] }));
        assert!(salvaged.get("stack").is_none());
        assert!(gaps.unread("duration") && gaps.unread("stack") && gaps.unread("checks"));
        assert!(gaps.incomplete("workload") && !gaps.unread("workload"));
        assert!(!gaps.incomplete("faults") && !gaps.unread("name"));
        assert!(gaps.unread("expect") && salvaged.get("expect").is_none());
    }
}
