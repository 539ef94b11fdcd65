//! The first pass of loading: YAML text → a tree that remembers where every key and value was
//! written, turned into a `serde_json::Value` (for `--set` and typed deserialisation) plus a
//! [`SpanIndex`] from YAML paths (`faults[2].crash`) to positions.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::diagnostic::Position;

/// A YAML node with the positions of its children.
enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<String>, Spanned<Tree>)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tree, D::Error> {
        struct AnyNode;
        impl<'de> Visitor<'de> for AnyNode {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::Uint(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
                Ok(Tree::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Tree::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Tree::Map(entries))
            }
        }
        deserializer.deserialize_any(AnyNode)
    }
}

/// Where a key and its value were written, and a scalar value's text as written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spot {
    key: Option<Position>,
    value: Position,
    text: Option<String>,
}

/// YAML path → position, for every key and value in a scenario.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanIndex {
    spots: BTreeMap<String, Spot>,
}

impl SpanIndex {
    /// Where the value at `path` was written; falls back to the nearest enclosing path.
    pub(crate) fn value(&self, path: &str) -> Position {
        self.find(path, |spot| spot.value.clone())
    }

    /// Where the key of `path` was written (for unknown or misplaced keys); falls back to the value.
    pub(crate) fn key(&self, path: &str) -> Position {
        self.find(path, |spot| spot.key.clone().unwrap_or_else(|| spot.value.clone()))
    }

    /// The scalar at `path` as the file (or an override) wrote it — `90s`, not the `1.5m` its
    /// value prints as — for messages that quote it. `None` for a map, a list or a missing path.
    pub(crate) fn text(&self, path: &str) -> Option<&str> {
        self.spots.get(path).and_then(|spot| spot.text.as_deref())
    }

    /// Does the file (or an override) mention `path`?
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.spots.contains_key(path)
    }

    /// Mark `path` and everything under it as set by `--set TEXT`, whose value is `scalar` when
    /// it is one.
    pub(crate) fn mark_override(&mut self, path: &str, text: &str, scalar: Option<String>) {
        let nested: Vec<String> =
            self.spots.keys().filter(|k| k.starts_with(path) && is_under(k, path)).cloned().collect();
        for key in nested {
            self.spots.remove(&key);
        }
        let position = Position::Override(text.to_owned());
        self.spots
            .insert(path.to_owned(), Spot { key: Some(position.clone()), value: position, text: scalar });
    }

    fn find(&self, path: &str, pick: impl Fn(&Spot) -> Position) -> Position {
        let mut current = path;
        loop {
            if let Some(spot) = self.spots.get(current) {
                return pick(spot);
            }
            match parent(current) {
                Some(up) => current = up,
                None => return self.spots.get("").map_or(Position::File, |s| s.value.clone()),
            }
        }
    }
}

/// `path` with its last segment removed (`faults[2].crash` → `faults[2]` → `faults` → ``).
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

fn is_under(candidate: &str, path: &str) -> bool {
    candidate.len() == path.len() || matches!(candidate.as_bytes().get(path.len()), Some(b'.') | Some(b'['))
}

/// Join a child segment onto a path.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn position(location: &serde_saphyr::Location) -> Position {
    Position::At { line: location.line(), col: location.column() }
}

/// One problem in the YAML text itself: where, what, and a hint.
pub(crate) type Problem = (Position, String, Option<String>);

/// A parsed file: its value, the positions of everything in it, and each duplicated key found
/// (the value keeps the first occurrence, so the rest of the file is still checked).
pub(crate) type Parsed = (serde_json::Value, SpanIndex, Vec<Problem>);

/// Parse YAML text into a JSON value and the positions of everything in it, with a problem for
/// each duplicated key. On failure, the syntax error or breached parser budget.
///
/// Duplicate keys are passed through by the parser and found here, so the message can name the
/// key's path and where it was first set (the parser's own error names neither), and so a
/// duplicate does not hide the file's other errors.
pub(crate) fn parse(text: &str) -> Result<Parsed, Vec<Problem>> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    let root: Spanned<Tree> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let at = e.location().map_or(Position::File, |l| position(&l));
        let (message, hint) = in_words(&e);
        vec![(at, message, hint)]
    })?;
    let mut index = SpanIndex::default();
    index
        .spots
        .insert(String::new(), Spot { key: None, value: Position::At { line: 1, col: 1 }, text: None });
    let mut duplicates = Vec::new();
    let value = convert(root.value, "", &mut index, &mut duplicates);
    Ok((value, index, duplicates))
}

/// A parser error as a user should read it. Budget breaches (an alias bomb, say) are named in
/// words; anything else keeps the parser's message without its "line L column C" prefix and
/// source snippet (the diagnostic prints the position).
fn in_words(error: &serde_saphyr::Error) -> (String, Option<String>) {
    use serde_saphyr::Error;
    use serde_saphyr::budget::BudgetBreach;
    let mut inner = error;
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = inner {
        inner = error;
    }
    let aliases_hint = Some(
        "an alias (`*name`) repeats everything its anchor (`&name`) holds, so nested aliases multiply; write the values out instead".to_owned(),
    );
    let limits = serde_saphyr::Budget::default();
    let message = match inner {
        Error::Budget { breach: BudgetBreach::Nodes { .. }, .. } => format!(
            "the file expands to more than {} YAML nodes once its aliases are replayed; a scenario needs a few hundred",
            limits.max_nodes
        ),
        Error::Budget { breach: BudgetBreach::Events { .. }, .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. } => {
            "the file expands to too much YAML once its aliases are replayed".to_owned()
        }
        Error::Budget { breach: BudgetBreach::Aliases { .. }, .. } => {
            format!("the file uses more than {} YAML aliases", limits.max_aliases)
        }
        Error::Budget { breach: BudgetBreach::Depth { .. }, .. }
        | Error::AliasReplayStackDepthExceeded { .. } => {
            format!("the YAML nests deeper than {} levels", limits.max_depth)
        }
        Error::Budget { breach, .. } => format!("the file is too large for a scenario ({breach:?})"),
        _ => return (format!("invalid YAML: {}", parser_message(error)), None),
    };
    (message, aliases_hint)
}

/// The parser's message without its "error: line L column C: " prefix and source snippet.
fn parser_message(error: &serde_saphyr::Error) -> String {
    let message = error.to_string();
    let first = message.lines().next().unwrap_or(&message);
    let trimmed = first.split_once(": ").map_or(first, |(_, rest)| rest);
    trimmed.split_once(": ").filter(|(p, _)| p.starts_with("line ")).map_or(trimmed, |(_, r)| r).to_owned()
}

/// A scalar's text: a string as written, a number or boolean as YAML would print it.
fn scalar_text(tree: &Tree) -> Option<String> {
    match tree {
        Tree::Str(s) => Some(s.clone()),
        Tree::Int(i) => Some(i.to_string()),
        Tree::Uint(u) => Some(u.to_string()),
        Tree::Float(f) => Some(f.to_string()),
        Tree::Bool(b) => Some(b.to_string()),
        Tree::Null | Tree::Seq(_) | Tree::Map(_) => None,
    }
}

fn convert(
    tree: Tree,
    path: &str,
    index: &mut SpanIndex,
    duplicates: &mut Vec<Problem>,
) -> serde_json::Value {
    use serde_json::Value;
    match tree {
        Tree::Null => Value::Null,
        Tree::Bool(b) => Value::Bool(b),
        Tree::Int(i) => Value::from(i),
        Tree::Uint(u) => Value::from(u),
        Tree::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Tree::Str(s) => Value::String(s),
        Tree::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let spot =
                    Spot { key: None, value: position(&item.referenced), text: scalar_text(&item.value) };
                index.spots.insert(item_path.clone(), spot);
                out.push(convert(item.value, &item_path, index, duplicates));
            }
            Value::Array(out)
        }
        Tree::Map(entries) => {
            let mut out = serde_json::Map::new();
            let mut first_at: BTreeMap<String, Position> = BTreeMap::new();
            for (key, value) in entries {
                let entry_path = child(path, &key.value);
                let key_at = position(&key.referenced);
                if let Some(Position::At { line, col }) = first_at.get(&key.value) {
                    let message = format!(
                        "duplicate key `{entry_path}`: it is already set at line {line}, column {col}"
                    );
                    let hint = "a key may appear once in a mapping; keep the value you mean and delete the other (the rest of the file is checked with the first)";
                    duplicates.push((key_at, message, Some(hint.into())));
                    continue;
                }
                first_at.insert(key.value.clone(), key_at.clone());
                let spot = Spot {
                    key: Some(key_at),
                    value: position(&value.referenced),
                    text: scalar_text(&value.value),
                };
                index.spots.insert(entry_path.clone(), spot);
                out.insert(key.value, convert(value.value, &entry_path, index, duplicates));
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_values_and_items() {
        let (value, index, _) =
            parse("name: x\nstack:\n  api_replicas: 2\nfaults:\n  - { at: 20s }\n  - at: 30s\n").unwrap();
        assert_eq!(value["faults"][1]["at"], "30s");
        assert_eq!(index.value("stack.api_replicas"), Position::At { line: 3, col: 17 });
        assert_eq!(index.key("stack.api_replicas"), Position::At { line: 3, col: 3 });
        assert_eq!(index.key("faults[1].at"), Position::At { line: 6, col: 5 });
        // An unknown path falls back to its nearest parent.
        assert_eq!(index.key("faults[0].nope"), Position::At { line: 5, col: 5 });
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (at, message, _) = parse("name: [unclosed\n").unwrap_err().remove(0);
        assert_eq!(at, Position::At { line: 1, col: 7 });
        assert!(message.starts_with("invalid YAML"), "{message}");
    }
}
