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

/// Client operations invoked during the fault's window (until `duration` if it never ended)
/// that did not complete `ok`.
pub fn ops_failed_count(history: &History, fault: &PlannedFault, duration: Duration) -> u64 {
    let (start, end) = (fault.start.as_nanos() as u64, fault.end.unwrap_or(duration).as_nanos() as u64);
    history
        .ops()
        .iter()
        .filter(|(invoke, done)| {
            (start..end).contains(&invoke.time_ns) && done.is_none_or(|d| d.kind != EntryType::Ok)
        })
        .count() as u64
}
