//! Placeholders in a declared op's SQL statement, request path, header values and JSON body:
//!
//! | placeholder | value |
//! |---|---|
//! | `{key}` | the op's fresh unique key (`put-000042`) |
//! | `{seq}` | the op's position in the run's schedule (a number, increasing with intended start) |
//! | `{int:A..B}` | a number drawn uniformly from `A..=B` |
//! | `{choice:a\|b\|c}` | one of the words, drawn uniformly |
//! | `{id}` | (`poll` only) the job's id from the acceptance |
//!
//! `{{` and `}}` stand for literal braces. Draws come from the op's `draw_seed`, itself drawn
//! from the scenario seed by the schedule, so a seed fixes every value. In SQL a placeholder
//! becomes a bind parameter (`$1` for PostgreSQL, `?` for MySQL), never text pasted into the
//! statement; so it must not be written inside quotes.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// `{key}`.
    Key,
    /// `{seq}`.
    Seq,
    /// `{id}`.
    Id,
    /// `{int:A..B}`, inclusive.
    Int(i64, i64),
    /// `{choice:a|b}`.
    Choice(Vec<String>),
}

impl Piece {
    fn is_placeholder(&self) -> bool {
        !matches!(self, Piece::Text(_))
    }
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// A template that does not parse: what is wrong, at which byte of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset into the template's text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// What a placeholder is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Text (`{key}`, `{choice:…}`, `{id}`).
    Text(String),
    /// A number (`{seq}`, `{int:…}`).
    Int(i64),
}

impl Bound {
    /// As text.
    pub fn text(&self) -> String {
        match self {
            Bound::Text(s) => s.clone(),
            Bound::Int(n) => n.to_string(),
        }
    }
}

/// The SQL dialect a statement's bind parameters are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `$1, $2, …`
    Postgres,
    /// `?, ?, …`
    MySql,
}

/// The values one op binds: its key, its sequence number, the job id (polls), and the stream of
/// draws for `{int}` and `{choice}`.
pub struct Bindings {
    key: String,
    seq: u64,
    id: Option<String>,
    rng: SmallRng,
}

impl Bindings {
    /// The bindings of one scheduled op.
    pub fn new(key: &str, seq: u64, draw_seed: u64) -> Bindings {
        Bindings { key: key.to_owned(), seq, id: None, rng: SmallRng::seed_from_u64(draw_seed) }
    }

    /// With `{id}` bound (a `submit` op's polls).
    pub fn with_id(mut self, id: &str) -> Bindings {
        self.id = Some(id.to_owned());
        self
    }

    fn bind(&mut self, piece: &Piece) -> Bound {
        match piece {
            Piece::Text(text) => Bound::Text(text.clone()),
            Piece::Key => Bound::Text(self.key.clone()),
            Piece::Seq => Bound::Int(self.seq as i64),
            Piece::Id => Bound::Text(self.id.clone().unwrap_or_default()),
            Piece::Int(lo, hi) => Bound::Int(self.rng.random_range(*lo..=*hi)),
            Piece::Choice(words) => Bound::Text(words[self.rng.random_range(0..words.len())].clone()),
        }
    }
}

impl Template {
    /// Parse `text`; `id_allowed` says whether `{id}` may appear (only in a poll).
    pub fn parse(text: &str, id_allowed: bool) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let brace = &rest[i..];
            if brace.starts_with("{{") || brace.starts_with("}}") {
                literal.push(brace.as_bytes()[0] as char);
                (rest, offset) = (&brace[2..], offset + i + 2);
                continue;
            }
            if brace.starts_with('}') {
                let message = "a lone `}`: write `}}` for a literal brace".to_owned();
                return Err(TemplateError { offset: offset + i, message });
            }
            let Some(close) = brace.find('}') else {
                let message = "a `{` that is never closed: write `{{` for a literal brace".to_owned();
                return Err(TemplateError { offset: offset + i, message });
            };
            let piece = placeholder(&brace[1..close], id_allowed)
                .map_err(|message| TemplateError { offset: offset + i, message })?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            (rest, offset) = (&brace[close + 1..], offset + i + close + 1);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Every placeholder substituted as text (paths, header values, strings in a body).
    pub fn render_text(&self, bindings: &mut Bindings) -> String {
        self.pieces.iter().map(|piece| bindings.bind(piece).text()).collect()
    }

    /// The statement with each placeholder replaced by a bind parameter, and the values to bind.
    pub fn render_sql(&self, bindings: &mut Bindings, dialect: Dialect) -> (String, Vec<Bound>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => sql.push_str(text),
                placeholder => {
                    values.push(bindings.bind(placeholder));
                    match dialect {
                        Dialect::Postgres => sql.push_str(&format!("${}", values.len())),
                        Dialect::MySql => sql.push('?'),
                    }
                }
            }
        }
        (sql, values)
    }

    /// A JSON string value: a string that is exactly one numeric placeholder becomes a number.
    pub fn render_json(&self, bindings: &mut Bindings) -> serde_json::Value {
        if let [only] = self.pieces.as_slice()
            && only.is_placeholder()
            && let Bound::Int(n) = bindings.bind(only)
        {
            return serde_json::Value::from(n);
        }
        serde_json::Value::String(self.render_text(bindings))
    }

    /// Byte offsets (into the text) of placeholders written inside single quotes, which SQL
    /// would read as literal text rather than a parameter.
    pub fn quoted_placeholders(text: &str) -> Vec<usize> {
        let mut quoted = false;
        let mut found = Vec::new();
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\'' => quoted = !quoted,
                b'{' if quoted && bytes.get(i + 1) != Some(&b'{') && (i == 0 || bytes[i - 1] != b'{') => {
                    found.push(i)
                }
                _ => {}
            }
        }
        found
    }
}

/// Render every string in a JSON body (keys stay as written).
pub fn render_body(
    body: &serde_json::Value,
    bindings: &mut Bindings,
) -> Result<serde_json::Value, TemplateError> {
    use serde_json::Value;
    Ok(match body {
        Value::String(text) => Template::parse(text, bindings.id.is_some())?.render_json(bindings),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render_body(v, bindings)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render_body(v, bindings)?))).collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Every string of a JSON body, for validation.
pub fn body_strings(body: &serde_json::Value) -> Vec<&str> {
    use serde_json::Value;
    match body {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().flat_map(body_strings).collect(),
        Value::Object(map) => map.values().flat_map(body_strings).collect(),
        _ => Vec::new(),
    }
}

fn placeholder(inner: &str, id_allowed: bool) -> Result<Piece, String> {
    let known = "known: `{key}`, `{seq}`, `{int:1..100}`, `{choice:a|b|c}`";
    match inner.split_once(':') {
        None => match inner {
            "key" => Ok(Piece::Key),
            "seq" => Ok(Piece::Seq),
            "id" if id_allowed => Ok(Piece::Id),
            "id" => Err("`{id}` is the job id, known only in a `poll` request".to_owned()),
            other => Err(format!("unknown placeholder `{{{other}}}`; {known}")),
        },
        Some(("int", range)) => {
            let parsed = range
                .split_once("..")
                .and_then(|(lo, hi)| Some((lo.trim().parse::<i64>().ok()?, hi.trim().parse::<i64>().ok()?)));
            match parsed {
                Some((lo, hi)) if lo <= hi => Ok(Piece::Int(lo, hi)),
                Some((lo, hi)) => {
                    Err(format!("`{{int:{lo}..{hi}}}` is empty: the first bound must not exceed the second"))
                }
                None => Err(format!(
                    "`{{int:{range}}}` is not a range: write e.g. `{{int:1..100}}` (both ends included)"
                )),
            }
        }
        Some(("choice", words)) => {
            let words: Vec<String> = words.split('|').map(str::to_owned).collect();
            if words.iter().any(String::is_empty) {
                return Err("an empty word in `{choice:…}`: write e.g. `{choice:a|b|c}`".to_owned());
            }
            Ok(Piece::Choice(words))
        }
        Some((other, _)) => Err(format!("unknown placeholder `{{{other}:…}}`; {known}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_placeholders_become_bind_parameters_in_each_dialect() {
        let t =
            Template::parse("INSERT INTO kv (key, n, c) VALUES ({key}, {seq}, {choice:a|b})", false).unwrap();
        let (sql, values) = t.render_sql(&mut Bindings::new("put-000007", 7, 1), Dialect::Postgres);
        assert_eq!(sql, "INSERT INTO kv (key, n, c) VALUES ($1, $2, $3)");
        assert_eq!(values[0], Bound::Text("put-000007".into()));
        assert_eq!(values[1], Bound::Int(7));
        assert!(matches!(&values[2], Bound::Text(w) if w == "a" || w == "b"));
        let (sql, _) = t.render_sql(&mut Bindings::new("k", 7, 1), Dialect::MySql);
        assert_eq!(sql, "INSERT INTO kv (key, n, c) VALUES (?, ?, ?)");
    }

    #[test]
    fn the_same_draw_seed_draws_the_same_values_and_another_differs() {
        let t = Template::parse("{int:1..1000000}-{int:1..1000000}", false).unwrap();
        let a = t.render_text(&mut Bindings::new("k", 1, 42));
        assert_eq!(a, t.render_text(&mut Bindings::new("k", 1, 42)));
        assert_ne!(a, t.render_text(&mut Bindings::new("k", 1, 43)));
    }

    #[test]
    fn a_body_string_that_is_one_number_becomes_a_number() {
        let body =
            serde_json::json!({ "qty": "{int:3..3}", "sku": "sku-{int:1..1}", "n": "{seq}", "k": "{key}" });
        let out = render_body(&body, &mut Bindings::new("order-000001", 1, 5)).unwrap();
        assert_eq!(out, serde_json::json!({ "qty": 3, "sku": "sku-1", "n": 1, "k": "order-000001" }));
    }

    #[test]
    fn bad_placeholders_say_where_and_what() {
        let e = Template::parse("SELECT {nope}", false).unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("unknown placeholder `{nope}`"), "{}", e.message);
        assert!(Template::parse("/x/{id}", false).unwrap_err().message.contains("poll"));
        assert!(Template::parse("{int:5..1}", false).unwrap_err().message.contains("empty"));
        assert!(Template::parse("{int:a..b}", false).unwrap_err().message.contains("not a range"));
        assert!(Template::parse("a { b", false).unwrap_err().message.contains("never closed"));
        assert_eq!(
            Template::parse("{{literal}}", false).unwrap().pieces(),
            &[Piece::Text("{literal}".into())]
        );
    }

    #[test]
    fn placeholders_inside_quotes_are_found() {
        assert_eq!(Template::quoted_placeholders("VALUES ('{key}', {seq})"), vec![9]);
        assert!(Template::quoted_placeholders("VALUES ({key}, '{{json}}')").is_empty());
    }
}
