//! Compose's variable interpolation, as the compose file reader applies it to the values it
//! reads: `${VAR}`, `${VAR:-default}`, `$$` and the rest, from the process environment over the
//! `.env` file beside the compose file (Compose's own precedence).

use std::collections::BTreeMap;
use std::path::Path;

/// Where `${VAR}` gets its values: the process environment first, then the `.env` file beside
/// the compose file (Compose's precedence).
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process environment over `dir/.env`.
    pub fn for_dir(dir: &Path) -> Environment {
        let mut vars = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(dir.join(".env")) {
            vars.extend(dotenv(&text));
        }
        vars.extend(std::env::vars());
        Environment { vars }
    }

    /// Set `vars` over what is there.
    pub fn extend(&mut self, vars: &BTreeMap<String, String>) {
        self.vars.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// Exactly these variables (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Environment {
        Environment { vars: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    /// `text` with `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?msg}`
    /// and `${VAR?msg}` replaced as Compose does; an unset variable is empty. Err: what is
    /// malformed, or the message of a `?` form whose variable is missing.
    pub fn interpolate(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                out.push('$');
                rest = after;
            } else if let Some(braced) = rest.strip_prefix('{') {
                let end = closing_brace(braced)
                    .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
                out.push_str(&self.expand(&braced[..end])?);
                rest = &braced[end + 1..];
            } else {
                let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                if len == 0 {
                    return Err(format!("a lone `$` in `{text}`: write `$$` for a dollar sign"));
                }
                out.push_str(self.vars.get(&rest[..len]).map_or("", String::as_str));
                rest = &rest[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// One `${…}` body.
    fn expand(&self, body: &str) -> Result<String, String> {
        let name_len = body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(body.len());
        let (name, op) = body.split_at(name_len);
        if name.is_empty() {
            return Err(format!("`${{{body}}}` names no variable"));
        }
        let value = self.vars.get(name);
        let set = value.is_some_and(|v| !v.is_empty());
        let value = value.cloned().unwrap_or_default();
        let expanded = match op {
            "" => value,
            _ if op.starts_with(":-") => {
                if set {
                    value
                } else {
                    self.interpolate(&op[2..])?
                }
            }
            _ if op.starts_with('-') => {
                if self.vars.contains_key(name) {
                    value
                } else {
                    self.interpolate(&op[1..])?
                }
            }
            _ if op.starts_with(":?") || op.starts_with('?') => {
                let unset = if op.starts_with(':') { !set } else { !self.vars.contains_key(name) };
                if unset {
                    return Err(format!("`{name}` is required: {}", op.trim_start_matches([':', '?'])));
                }
                value
            }
            _ => return Err(format!("`${{{body}}}`: unsupported substitution `{op}`")),
        };
        Ok(expanded)
    }
}

/// Where the `}` closing a `${` is in `text` (what follows the `{`): nested `${…}` in a
/// default count.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(at),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `KEY=VALUE` lines of a `.env` file (comments, blank lines and surrounding quotes dropped).
fn dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("export ").unwrap_or(line).split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            (key.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_follows_compose() {
        let env = Environment::from_pairs([("A", "1"), ("EMPTY", "")]);
        assert_eq!(env.interpolate("x${A}y$A-$$A").unwrap(), "x1y1-$A");
        assert_eq!(env.interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET}").unwrap(), "d  d ");
        assert_eq!(env.interpolate("${UNSET:-${A}}").unwrap(), "1");
        assert!(env.interpolate("${UNSET:?set it}").unwrap_err().contains("set it"));
        assert!(env.interpolate("${A").is_err());
        assert!(env.interpolate("a $ b").is_err());
        assert_eq!(
            dotenv("# c\nexport K=\"v w\"\n\nL=1\n"),
            [("K".into(), "v w".into()), ("L".into(), "1".into())]
        );
    }
}
