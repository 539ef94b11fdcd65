//! Writing a scenario back as a user would write it: only what differs from the defaults, in the
//! shipped files' style — top-level keys as a block, `stack` and `checks` one key a line, workload
//! streams, faults and SLO rows as block lists of flow mappings (`- { op: invest, rate: 50/s }`).
//!
//! What "differs from the defaults" means is decided by the loader itself, not by a second list of
//! defaults that could drift from the types: a key is left out only when the scenario read back
//! without it serialises exactly as before. So the written text always loads to the same
//! `Scenario` (`explore`'s shrunk files rely on it; the tests below check it on every shipped file).

use serde_json::{Map, Value};

use super::model::Scenario;

/// `scenario` as compact YAML (no header comment; the caller adds one).
pub fn to_compact_yaml(scenario: &Scenario) -> String {
    let full = serde_json::to_value(scenario).expect("scenarios serialise");
    let mut lean = full.clone();
    strip_defaults(&mut lean, &mut Vec::new(), &full);
    let mut out = String::new();
    for (key, value) in lean.as_object().expect("a scenario is a mapping") {
        block(&mut out, key, value, 0);
    }
    out
}

/// A step into a JSON document: a mapping's key or a list's index.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Remove, depth first, every key of `doc` under `path` whose absence deserialises to the same
/// scenario as `full`. List items are never removed (that would change the list), but keys inside
/// them are (`timeout: 2s` in a stream).
fn strip_defaults(doc: &mut Value, path: &mut Vec<Step>, full: &Value) {
    let node = at(doc, path).clone();
    match node {
        Value::Object(map) => {
            for key in map.keys() {
                path.push(Step::Key(key.clone()));
                strip_defaults(doc, path, full);
                path.pop();
                let Value::Object(parent) = at_mut(doc, path) else { unreachable!("a mapping stays one") };
                let value = parent.shift_remove(key).expect("the key is there");
                if !same_scenario(doc, full) {
                    let Value::Object(parent) = at_mut(doc, path) else {
                        unreachable!("a mapping stays one")
                    };
                    parent.insert(key.clone(), value);
                    sort_like(parent, &map);
                }
            }
        }
        Value::Array(items) => {
            for index in 0..items.len() {
                path.push(Step::Index(index));
                strip_defaults(doc, path, full);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Put `map`'s keys back in `order`'s order (a re-inserted key went to the end).
fn sort_like(map: &mut Map<String, Value>, order: &Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
    entries.sort_by_key(|(key, _)| order.keys().position(|k| k == key));
    map.extend(entries);
}

fn at<'a>(doc: &'a Value, path: &[Step]) -> &'a Value {
    path.iter().fold(doc, |node, step| match step {
        Step::Key(key) => &node[key.as_str()],
        Step::Index(index) => &node[*index],
    })
}

fn at_mut<'a>(doc: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(doc, |node, step| match step {
        Step::Key(key) => &mut node[key.as_str()],
        Step::Index(index) => &mut node[*index],
    })
}

fn same_scenario(doc: &Value, full: &Value) -> bool {
    serde_json::from_value::<Scenario>(doc.clone())
        .is_ok_and(|scenario| serde_json::to_value(&scenario).is_ok_and(|again| &again == full))
}

/// One `key: value` at `indent`: a top-level mapping as a block of its keys, a non-empty list of
/// mappings as a block list of flow mappings, anything else in flow style on the key's line.
fn block(out: &mut String, key: &str, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if indent == 0 && !map.is_empty() => {
            out.push_str(&format!("{pad}{key}:\n"));
            for (key, value) in map {
                block(out, key, value, indent + 2);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            out.push_str(&format!("{pad}{key}:\n"));
            for item in items {
                out.push_str(&format!("{pad}  - {}\n", flow(item)));
            }
        }
        _ => out.push_str(&format!("{pad}{key}: {}\n", flow(value))),
    }
}

/// A value in flow style: `{ a: 1, b: [x, y] }`.
fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let entries: Vec<String> =
                map.iter().map(|(k, v)| format!("{}: {}", scalar(k), flow(v))).collect();
            format!("{{ {} }}", entries.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::String(text) => scalar(text),
        other => other.to_string(),
    }
}

/// A string plain when YAML reads it back as the same string, double-quoted (JSON's escapes are
/// YAML's) otherwise.
fn scalar(text: &str) -> String {
    let plain_chars = |c: char| c.is_ascii_alphanumeric() || "._/%-".contains(c);
    let reserved = ["true", "false", "null", "yes", "no", "on", "off", "y", "n", "inf", "nan"];
    let plain = text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && text.chars().all(plain_chars)
        && !reserved.contains(&text.to_ascii_lowercase().as_str())
        && text.parse::<f64>().is_err()
        && !text.starts_with("0x")
        && !text.starts_with("0o");
    if plain { text.to_owned() } else { serde_json::to_string(text).expect("a string serialises") }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::scenario::{load_file, load_str};

    fn yaml(scenario: &Scenario) -> String {
        serde_saphyr::to_string(scenario).unwrap()
    }

    /// Goal: the compact form loads back to exactly the scenario it was written from. Method: every
    /// shipped scenario (and a bug-zoo one with an override) through `to_compact_yaml` and
    /// `load_str`; the reloaded scenario and its plan must equal the original's.
    #[test]
    fn every_shipped_scenario_round_trips_through_the_compact_form() {
        for file in crate::scenario::shipped_files() {
            let loaded = load_file(&file, &["stack.queue.prefetch=3".into()]).unwrap();
            let text = to_compact_yaml(&loaded.scenario);
            let again =
                load_str(&text, "compact", &[]).unwrap_or_else(|d| panic!("{}: {d}\n{text}", file.display()));
            assert_eq!(yaml(&again.scenario), yaml(&loaded.scenario), "{}\n{text}", file.display());
            assert_eq!(format!("{:?}", again.plan), format!("{:?}", loaded.plan), "{}", file.display());
        }
    }

    /// Goal: defaults are left out and the shipped style is kept. Method: a scenario spelling out
    /// defaults (a stream's `timeout: 2s`, `replication: sync`, `report.html: true`) is written
    /// without them, with flow mappings for streams and faults.
    #[test]
    fn defaults_are_left_out_and_lists_are_flow_mappings() {
        let text = "name: t\ndescription: \"Bug zoo: a test.\"\nseed: 7\nduration: 12s\nstack: { replication: sync, queue: { capacity: 50, prefetch: 10 }, bugs: [skip-compensation] }\nworkload:\n  - { op: order, rate: 4/s, timeout: 2s }\nfaults:\n  - { at: 1.5s, crash: reports, restart_after: 800ms }\n  - { at: 5s, partition: [[api-1], [pg-replica]], for: 1s }\nchecks: { saga: {}, slo: [ { op: any, phase: all, availability: 99.5% } ] }\nreport: { html: true }\n";
        let scenario = load_str(text, "t.yaml", &[]).unwrap().scenario;
        let compact = to_compact_yaml(&scenario);
        assert_eq!(
            compact,
            "name: t\ndescription: \"Bug zoo: a test.\"\nseed: 7\nduration: 12s\nstack:\n  queue: { capacity: 50 }\n  bugs: [skip-compensation]\nworkload:\n  - { op: order, rate: 4/s }\nfaults:\n  - { at: 1.5s, crash: reports, restart_after: 800ms }\n  - { at: 5s, for: 1s, partition: [[api-1], [pg-replica]] }\nchecks:\n  saga: {}\n  slo:\n    - { op: any, availability: 99.5% }\n"
        );
    }

    #[test]
    fn strings_that_yaml_would_read_as_something_else_are_quoted() {
        for (text, written) in [
            ("api-1", "api-1"),
            ("true", "\"true\""),
            ("12", "\"12\""),
            ("a: b", "\"a: b\""),
            ("", "\"\""),
            ("1e5", "\"1e5\""),
        ] {
            assert_eq!(scalar(text), written);
        }
    }
}
