//! One run, end to end — the pipeline of DESIGN.md as numbered steps:
//!
//! 1. load and validate the scenario (`scenario::load_file`), apply `--seed`;
//! 2. run it on the backend (`sim::run`), which builds the stack, drives the workload, injects
//!    the plan's faults and reads the final state;
//! 3. write `history.jsonl` — before any checker runs;
//! 4. run the checkers (`check::run_all`) and apply `expect` (`check::verdict`);
//! 5. build the `Report` and write `report.json`, `report.html`, `junit.xml`.
//!
//! Output goes to `OUT/<scenario>/<seed>/`, written into a temporary directory that is renamed
//! into place at the end, so a crashed run never leaves a half-written report behind.
//! `run_file` is the library entry point users call from their own tests.

use std::path::{Path, PathBuf};

use crate::history::History;

/// The first place two histories of the same seed differ, for `--check-determinism`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based line of `history.jsonl` where they first differ.
    pub line: usize,
    /// That line in the first run (`None` if the first run's history ended earlier).
    pub first: Option<String>,
    /// That line in the second run.
    pub second: Option<String>,
}

/// Compare two runs' histories line by line; `None` when they are byte-identical.
pub fn first_divergence(first: &History, second: &History) -> Option<Divergence> {
    let render = |history: &History| -> Vec<String> {
        let mut bytes = Vec::new();
        history.write_jsonl(&mut bytes).expect("writing to memory cannot fail");
        String::from_utf8(bytes).expect("JSON is UTF-8").lines().map(str::to_owned).collect()
    };
    let (a, b) = (render(first), render(second));
    let length = a.len().max(b.len());
    (0..length).find(|&i| a.get(i) != b.get(i)).map(|i| Divergence {
        line: i + 1,
        first: a.get(i).cloned(),
        second: b.get(i).cloned(),
    })
}

/// Where a run's files go: `OUT/<scenario name>/<seed>/`.
pub fn run_dir(out: &Path, scenario_name: &str, seed: u64) -> PathBuf {
    out.join(scenario_name).join(seed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EntryOp, EntryType, Process, Value};

    #[test]
    fn divergence_names_the_first_differing_line() {
        let mut a = History::new();
        a.push(1, EntryType::Invoke, Process::Client(0), EntryOp::Invest, Value::default(), None);
        let mut b = a.clone();
        assert_eq!(first_divergence(&a, &b), None);
        a.push(5, EntryType::Ok, Process::Client(0), EntryOp::Invest, Value::default(), None);
        b.push(6, EntryType::Ok, Process::Client(0), EntryOp::Invest, Value::default(), None);
        let divergence = first_divergence(&a, &b).unwrap();
        assert_eq!(divergence.line, 2);
        assert!(divergence.first.unwrap().contains("\"time_ns\":5"));
        assert!(divergence.second.unwrap().contains("\"time_ns\":6"));
    }
}
