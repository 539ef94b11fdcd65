//! Scenario errors as users read them: `FILE:LINE:COL: message`, one per line, with an optional
//! `  hint: …` line under each. All errors of a file are collected and reported together.

use std::fmt;

/// Where an error points.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Position {
    /// A line and column in the file (1-based).
    At {
        /// Line, from 1.
        line: u64,
        /// Column, from 1.
        col: u64,
    },
    /// A `--set` override on the command line (the text as given).
    Override(String),
    /// The file as a whole (it could not be read, or a required key is missing everywhere).
    File,
}

/// One error in a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The scenario file.
    pub file: String,
    /// Where in it.
    pub position: Position,
    /// What is wrong: what was found, what was expected.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Position::At { line, col } => write!(f, "{}:{line}:{col}: {}", self.file, self.message)?,
            Position::Override(text) => write!(f, "{}: --set {text}: {}", self.file, self.message)?,
            Position::File => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found in one scenario, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// Errors printed of one file; the rest are counted ("… and 17 more errors"). A file of random
/// text can hold a hundred thousand errors, and the first few say what is wrong.
pub const SHOWN_MAX: usize = 20;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().take(SHOWN_MAX).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        if let Some(file) = self.0.first().map(|d| &d.file)
            && self.0.len() > SHOWN_MAX
        {
            let more = self.0.len() - SHOWN_MAX;
            let errors = if more == 1 { "error" } else { "errors" };
            write!(f, "\n{file}: … and {more} more {errors} (the first {SHOWN_MAX} are shown)")?;
        }
        Ok(())
    }
}

/// "did you mean `x`?" for the known name closest to `found`, if any is close enough.
pub(crate) fn did_you_mean<'a>(found: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    nearest(found, known).map(|name| format!("did you mean `{name}`?"))
}

/// The known name closest to `found`, if any is close enough to be what was meant.
pub(crate) fn nearest<'a>(found: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let best = known
        .into_iter()
        .map(|name| (strsim::damerau_levenshtein(found, name), name))
        .filter(|&(distance, name)| distance <= (name.len().max(found.len()) / 3).max(2))
        .min();
    best.map(|(_, name)| name)
}

/// A list of names for a hint: "`a`, `b` or `c`".
pub(crate) fn one_of<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_file_line_col_with_hint() {
        let d = Diagnostic {
            file: "s.yaml".into(),
            position: Position::At { line: 3, col: 5 },
            message: "unknown host `pg-primray`".into(),
            hint: did_you_mean("pg-primray", ["pg-primary", "pg-replica"]),
        };
        assert_eq!(
            d.to_string(),
            "s.yaml:3:5: unknown host `pg-primray`\n  hint: did you mean `pg-primary`?"
        );
        assert_eq!(did_you_mean("zzzzzz", ["pg-primary"]), None);
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }

    /// Goal: a file with thousands of errors prints the first 20 and a count of the rest.
    #[test]
    fn long_error_lists_are_capped() {
        let one = |i: u64| Diagnostic {
            file: "s.yaml".into(),
            position: Position::At { line: i, col: 1 },
            message: format!("unknown key `k{i}`"),
            hint: None,
        };
        let text = Diagnostics((1..=1000).map(one).collect()).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), SHOWN_MAX + 1, "{text}");
        assert_eq!(lines[SHOWN_MAX], "s.yaml: … and 980 more errors (the first 20 are shown)");
        assert_eq!(Diagnostics((1..=20).map(one).collect()).to_string().lines().count(), 20);
    }
}
