//! What both backends write about a fault: its `fault_start` / `fault_stop` history entries and
//! the effect only the finished history can tell (operations that failed during its window).

use std::time::Duration;

use super::{FaultEffect, PlannedFault};
use crate::history::{EntryOp, EntryType, History, Process, Value};

/// Append a fault's start or stop (with its effect) to the history at `now`.
pub fn record_event(
    history: &mut History,
    now: Duration,
    op: EntryOp,
    fault: &PlannedFault,
    effect: Option<FaultEffect>,
) {
    let value = Value {
        fault: Some(fault.index),
        kind: Some(fault.kind.name().into()),
        hosts: Some(fault.kind.hosts()),
        effect,
        ..Value::default()
    };
    history.push(now.as_nanos() as u64, EntryType::Info, Process::Nemesis, op, value, None);
}

/// Queries the gateway turned away because the queue rejected their publish (`503 … queue
/// full`), invoked during the fault's window: what a backend that cannot count the broker's
/// rejections itself (real RabbitMQ does not) reports as `publishes_rejected_count`.
pub fn publishes_rejected_count(history: &History, fault: &PlannedFault, duration: Duration) -> u64 {
    let full = crate::stack::ports::PublishError::Full.to_string();
    in_window(history, fault, duration)
        .filter(|(_, done)| {
            done.is_some_and(|d| {
                d.kind == EntryType::Fail && d.error.as_ref().is_some_and(|e| e.contains(&full))
            })
        })
        .count() as u64
}

/// The client operations (invocation, completion) invoked during the fault's window.
fn in_window<'h>(
    history: &'h History,
    fault: &PlannedFault,
    duration: Duration,
) -> impl Iterator<Item = (&'h crate::history::Entry, Option<&'h crate::history::Entry>)> + 'h {
    let (start, end) = (fault.start.as_nanos() as u64, fault.end.unwrap_or(duration).as_nanos() as u64);
    history.ops().into_iter().filter(move |(invoke, _)| (start..end).contains(&invoke.time_ns))
}

/// Client operations invoked during the fault's window (until `duration` if it never ended)
/// that did not complete `ok`.
pub fn ops_failed_count(history: &History, fault: &PlannedFault, duration: Duration) -> u64 {
    in_window(history, fault, duration)
        .filter(|(_, done)| done.is_none_or(|d| d.kind != EntryType::Ok))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultKind;

    const S: u64 = 1_000_000_000;

    /// Three queries: one turned away by a full queue inside the window, one failing otherwise
    /// inside it, one turned away after it.
    #[test]
    fn rejected_publishes_are_the_queue_full_failures_in_the_window() {
        let mut history = History::new();
        let query = |h: &mut History, p: u32, at: u64, error: Option<&str>| {
            let process = Process::Client(p);
            h.push(at, EntryType::Invoke, process, EntryOp::Query, Value::default(), None);
            let kind = if error.is_some() { EntryType::Fail } else { EntryType::Ok };
            h.push(at + 1000, kind, process, EntryOp::Query, Value::default(), error.map(String::from));
        };
        query(&mut history, 0, 2 * S, Some(r#"503 {"error":"publishing query 7: queue full"}"#));
        query(&mut history, 1, 3 * S, Some("503 the database is unavailable"));
        query(&mut history, 2, 4 * S, None);
        query(&mut history, 3, 9 * S, Some(r#"503 {"error":"publishing query 9: queue full"}"#));
        let fault = PlannedFault {
            index: 0,
            start: Duration::from_secs(1),
            end: Some(Duration::from_secs(5)),
            kind: FaultKind::Pause { hosts: vec!["worker-1".into()] },
        };
        assert_eq!(publishes_rejected_count(&history, &fault, Duration::from_secs(10)), 1);
        assert_eq!(ops_failed_count(&history, &fault, Duration::from_secs(10)), 2);
    }
}
