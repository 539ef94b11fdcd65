//! The documentation's commands and figures cannot go stale: every command the README and the
//! book (`docs/*.md`) show with its output is run here, and its output compared.
//!
//! Method. A fenced block tagged `console` holds commands and what they print:
//!
//! ```text
//! $ shakedown run scenarios/primary-crash.yaml
//! running scenarios/primary-crash.yaml on the simulation…
//! PASS      primary-crash (seed 7): 6627 ops, 379 errors, worst p99 678 ms (query)
//!         report: reports/primary-crash/7/report.html
//! ```
//!
//! Each line starting with `$ shakedown ` is run with the built binary (stdout and stderr into
//! one file, in the order a terminal shows them), in a fresh directory holding links to the
//! repository's `scenarios/`, `examples/`, `schema/` and `docs/`, so the default `--out reports`
//! writes there and the paths printed are the ones a reader sees. The lines after it, up to the
//! next `$ ` line or the end of the block, are the expected output, compared by snapbox: `[..]`
//! stands for any text within a line, a line `...` for any lines. A last line `[exit N]` gives
//! the expected exit code (default 0). Lines starting with `$ ` and another program (`$ make …`)
//! are left alone, with their output. Keep checked commands to simulation runs and `validate`,
//! which take seconds: the simulation is deterministic per seed, so the output is stable.
//!
//! Also: every repository path the docs name (`scenarios/…`, `examples/…`, `src/…`, …) exists,
//! and no issue number appears.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Top-level directories a checked command may read, linked into its working directory.
const LINKED: [&str; 4] = ["scenarios", "examples", "schema", "docs"];

/// Path prefixes whose mentions in the docs must exist in the repository.
const PATH_PREFIXES: [&str; 10] = [
    "scenarios/",
    "examples/",
    "src/",
    "tests/",
    "docs/",
    "schema/",
    "deploy/",
    "docker/",
    "scripts/",
    "migrations/",
];

/// Paths the docs name that a build makes: not in a clone.
const GENERATED: [&str; 1] = ["docs/book"];

/// One documented command and what it must print.
struct Case {
    /// `FILE:LINE` of the `$ ` line.
    place: String,
    /// The words after `shakedown`.
    args: Vec<String>,
    expected_output: String,
    expected_code: i32,
}

/// README.md and every Markdown file of the book.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut files = vec![root.join("README.md")];
    let mut book: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    book.sort();
    files.extend(book);
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT).unwrap_or(path).display().to_string()
}

/// The checked commands of one document, in order.
fn cases(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).expect("a readable document");
    let mut cases = Vec::new();
    let mut in_console = false;
    let mut current: Option<(Case, Vec<String>)> = None;
    for (index, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        if !in_console {
            in_console = fence && line.trim() == "```console";
            continue;
        }
        if fence || line.starts_with("$ ") {
            if let Some((case, lines)) = current.take() {
                cases.push(finish(case, lines));
            }
            if fence {
                in_console = false;
                continue;
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_owned());
            continue;
        }
        if let Some(command) = line.strip_prefix("$ shakedown ") {
            let place = format!("{}:{}", relative(path), index + 1);
            let args = split_words(command, &place);
            let case = Case { place, args, expected_output: String::new(), expected_code: 0 };
            current = Some((case, Vec::new()));
        }
    }
    assert!(!in_console, "{}: a console block is not closed", relative(path));
    cases
}

/// The expected output and exit code from the lines after a command.
fn finish(mut case: Case, mut lines: Vec<String>) -> Case {
    while lines.last().is_some_and(|line| line.trim().is_empty()) {
        lines.pop();
    }
    if let Some(code) = lines.last().and_then(|l| l.strip_prefix("[exit ")).and_then(|l| l.strip_suffix(']'))
    {
        case.expected_code = code.parse().unwrap_or_else(|_| panic!("{}: `[exit {code}]`", case.place));
        lines.pop();
    }
    case.expected_output = lines.iter().map(|line| format!("{line}\n")).collect();
    case
}

/// A command line split as a shell would, for the quoting the docs use ('…' and "…"); anything
/// that would need a shell (pipes, redirections, substitutions, comments) is refused.
fn split_words(command: &str, place: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '|' | '>' | '<' | '&' | ';' | '$' | '`' | '#') => {
                panic!("{place}: a checked command runs without a shell; `{c}` needs one: {command}")
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "{place}: an unclosed quote: {command}");
    if in_word {
        words.push(word);
    }
    words
}

/// Runs `shakedown ARGS` in a fresh directory; its merged output and exit code.
fn run(args: &[String]) -> (String, i32) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for name in LINKED {
        std::os::unix::fs::symlink(Path::new(ROOT).join(name), dir.path().join(name)).expect("a link");
    }
    let output_path = dir.path().join("output.txt");
    let output = File::create(&output_path).expect("an output file");
    let status = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        // One file for both: the lines interleave as they do on a terminal.
        .stdout(output.try_clone().expect("a second handle"))
        .stderr(output)
        .status()
        .expect("shakedown runs");
    let text = std::fs::read_to_string(&output_path).expect("the output");
    (text, status.code().unwrap_or(-1))
}

/// Every documented command prints what the docs say it prints, and exits as they say.
#[test]
fn documented_commands_print_what_the_docs_show() {
    let cases: Vec<Case> = documents().iter().flat_map(|path| cases(path)).collect();
    assert!(
        cases.iter().any(|case| case.place.starts_with("README.md")),
        "README.md shows no checked command: the quick start's output would go unchecked"
    );
    // A command shown in several places runs once.
    let mut outcomes: BTreeMap<Vec<String>, (String, i32)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (output, code) = outcomes.entry(case.args.clone()).or_insert_with(|| run(&case.args)).clone();
        let shown = format!("$ shakedown {}", case.args.join(" "));
        if code != case.expected_code {
            failures.push(format!(
                "{}: `{shown}` exited {code}, the docs say {}; it printed:\n{output}",
                case.place, case.expected_code
            ));
        }
        let expected = snapbox::Data::text(case.expected_output.clone());
        let actual = snapbox::Data::text(output);
        if let Err(error) = snapbox::Assert::new().try_eq(Some(&case.place), actual, expected) {
            failures
                .push(format!("{}: `{shown}` printed other output than the docs show:\n{error}", case.place));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented commands differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// The repository paths a document names, with their line numbers: words starting with one of
/// `PATH_PREFIXES`, not inside a longer path or URL, up to the first character a path here never
/// holds; a trailing `.` or `,` ends the sentence, not the path. Patterns (`*`, `<name>`, `…`)
/// are skipped.
fn named_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for prefix in PATH_PREFIXES {
            for (at, _) in line.match_indices(prefix) {
                let before = line[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || "/._-~:".contains(c)) {
                    continue;
                }
                let rest = &line[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-*<>…".contains(c)))
                    .unwrap_or(rest.len());
                let path = rest[..end].trim_end_matches(['.', ',']);
                if path.contains(['*', '<', '>', '…']) {
                    continue;
                }
                found.push((index + 1, path.to_owned()));
            }
        }
    }
    found
}

/// Every `scenarios/…`, `examples/…` or other repository path the docs name exists.
#[test]
fn every_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut named = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).expect("a readable document");
        for (line, path) in named_paths(&text) {
            named += 1;
            if GENERATED.iter().any(|generated| path.starts_with(generated)) {
                continue;
            }
            if !Path::new(ROOT).join(&path).exists() {
                missing.push(format!("{}:{line}: `{path}` does not exist", relative(&document)));
            }
        }
    }
    assert!(named > 10, "only {named} paths found: is the scan broken?");
    assert!(missing.is_empty(), "the docs name paths that do not exist:\n{}", missing.join("\n"));
}

/// No issue numbers: the docs describe the tool, not the history of its development.
#[test]
fn the_docs_carry_no_issue_numbers() {
    let mut found = Vec::new();
    for document in documents() {
        let text = std::fs::read_to_string(&document).expect("a readable document");
        for (index, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let issue = lower
                .match_indices("issue ")
                .any(|(at, word)| lower[at + word.len()..].starts_with(|c: char| c.is_ascii_digit()));
            let hash = line
                .match_indices('#')
                .any(|(at, _)| line[at + 1..].starts_with(|c: char| c.is_ascii_digit()));
            if issue || hash {
                found.push(format!("{}:{}: {line}", relative(&document), index + 1));
            }
        }
    }
    assert!(found.is_empty(), "issue numbers in the docs:\n{}", found.join("\n"));
}

/// The scanners themselves: a checked block yields its commands, outputs and exit codes, and
/// path mentions are found where a reader would see them.
#[test]
fn the_scanners_find_what_they_should() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let doc = dir.path().join("doc.md");
    let text = "text\n```console\n$ shakedown validate 'a b.yaml'\nline one\n[exit 254]\n$ make x\nignored\n$ shakedown list\n```\n```sh\n$ shakedown not-checked\n```\n";
    std::fs::write(&doc, text).expect("write");
    let found = cases(&doc);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].args, ["validate", "a b.yaml"]);
    assert_eq!(found[0].expected_output, "line one\n");
    assert_eq!(found[0].expected_code, 254);
    assert_eq!(found[1].args, ["list"]);
    assert_eq!(found[1].expected_code, 0);
    let paths = named_paths(
        "see `scenarios/primary-crash.yaml`, examples/patroni/. And scenarios/*.yaml, https://x/src/a.rs",
    );
    let paths: Vec<&str> = paths.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(paths, ["scenarios/primary-crash.yaml", "examples/patroni/"]);
}
