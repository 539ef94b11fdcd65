//! The live line of a container run, which lasts real minutes: elapsed / duration, operations
//! acknowledged and failed, and the faults in force. On a terminal it redraws in place
//! (indicatif); otherwise (CI logs) it prints a plain line every [`PLAIN_EVERY`].

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::faults::Plan;
use crate::history::{EntryOp, EntryType, History, Process};

/// How often the terminal line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(500);
/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Counts for the progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) ok: u64,
    pub(super) failed: u64,
}

/// Acknowledged and failed (or unknown) client completions so far, and the faults in force
/// (started, not yet stopped), by index.
pub(super) fn tally(history: &History) -> (Tally, std::collections::BTreeSet<usize>) {
    let mut tally = Tally::default();
    let mut in_force = std::collections::BTreeSet::new();
    for entry in history.entries() {
        if entry.process == Process::Nemesis {
            let index = entry.value.fault.expect("a fault event names its fault");
            match entry.op {
                EntryOp::FaultStart => in_force.insert(index),
                _ => in_force.remove(&index),
            };
            continue;
        }
        match entry.kind {
            EntryType::Ok => tally.ok += 1,
            EntryType::Fail | EntryType::Info => tally.failed += 1,
            EntryType::Invoke => {}
        }
    }
    (tally, in_force)
}

/// The line's text.
fn line(elapsed: Duration, total: Duration, tally: Tally, faults: &[String]) -> String {
    let in_force = if faults.is_empty() { "no fault".to_string() } else { faults.join(", ") };
    format!(
        "{:>3}s / {}s · {} ok · {} failed · {in_force}",
        elapsed.as_secs(),
        total.as_secs(),
        tally.ok,
        tally.failed
    )
}

/// Draw progress until `stop` fires. `total` is the scenario's duration plus the drain.
pub(crate) async fn show(
    plan: Plan,
    total: Duration,
    start: Instant,
    history: Arc<Mutex<History>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let bar = ProgressBar::new(total.as_secs());
        bar.set_style(ProgressStyle::with_template("{bar:24} {msg}").expect("a valid template"));
        Some(bar)
    } else {
        None
    };
    let mut last_plain = Instant::now();
    loop {
        let elapsed = start.elapsed();
        let (tally, in_force) = tally(&history.lock().expect("history lock"));
        let active: Vec<String> = in_force
            .iter()
            .filter_map(|i| plan.faults.iter().find(|f| f.index == *i))
            .map(|f| format!("{} {}", f.kind.name(), f.kind.hosts().join(" ")))
            .collect();
        let text = line(elapsed, total, tally, &active);
        match &bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs().min(total.as_secs()));
                bar.set_message(text);
            }
            None if last_plain.elapsed() >= PLAIN_EVERY => {
                eprintln!("  {text}");
                last_plain = Instant::now();
            }
            None => {}
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = tokio::time::sleep(REDRAW_EVERY) => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_time_counts_and_faults() {
        let tally = Tally { ok: 840, failed: 3 };
        let text =
            line(Duration::from_secs(12), Duration::from_secs(70), tally, &["crash pg-primary".into()]);
        assert_eq!(text, " 12s / 70s · 840 ok · 3 failed · crash pg-primary");
        assert!(line(Duration::ZERO, Duration::from_secs(70), Tally::default(), &[]).ends_with("no fault"));
    }
}
