//! How every field of a [`FaultEffect`] is computed — the one definition both backends (and
//! any new actuator) share: the table in the module doc of `faults/`. Also the `fault_start` /
//! `fault_stop` history entries.
//!
//! Two sources: the backend's raw [`Counters`], read by the lifecycle just before a fault is
//! applied and just before it is reverted ([`counted`]); and the finished history, read once
//! after the drain for every fault ([`complete_effects`]). `writes_lost_count` comes last, after
//! the checks (`lost.rs`).

use std::time::Duration;

use super::{FaultEffect, Plan, PlannedFault};
use crate::history::{EntryOp, EntryType, History, Process, Value};

/// A backend's raw counters over what one fault touches, as its actuator reads them. Each only
/// grows while the fault is in force; the lifecycle takes the difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections reset or refused (`connections_reset_count`).
    pub connections_reset: u64,
    /// Messages or packets dropped or held back (`messages_held_count`).
    pub messages_held: u64,
}

/// The part of an effect the backend counted: readings `before` the fault was applied and
/// `during` it (just before it was reverted).
pub fn counted(before: Counters, during: Counters) -> FaultEffect {
    FaultEffect {
        connections_reset_count: during.connections_reset.saturating_sub(before.connections_reset),
        messages_held_count: during.messages_held.saturating_sub(before.messages_held),
        ..FaultEffect::default()
    }
}

/// Fill in what only the finished history can tell, for every fault of `plan` (`effects` is
/// indexed by `PlannedFault::index`): `ops_failed_count` and `publishes_rejected_count`. The run
/// calls it once for every backend, after the drain (`run::run_loaded`).
pub fn complete_effects(effects: &mut [FaultEffect], plan: &Plan, history: &History) {
    for fault in &plan.faults {
        let effect = effects.get_mut(fault.index);
        let effect = effect.unwrap_or_else(|| panic!("no effect for fault #{}", fault.index));
        effect.ops_failed_count = ops_failed_count(history, fault, plan.duration);
        effect.publishes_rejected_count = publishes_rejected_count(history, fault, plan.duration);
    }
}

/// Append a fault's start or stop (with its counted effect) to the history at `now`; `hosts`
/// are the ones it hit, as its actuator resolved them when it started.
pub(super) fn record_event(
    history: &mut History,
    now: Duration,
    op: EntryOp,
    fault: &PlannedFault,
    hosts: &[String],
    effect: Option<FaultEffect>,
) {
    let value = Value {
        fault: Some(fault.index),
        kind: Some(fault.kind.name().into()),
        hosts: Some(hosts.to_vec()),
        effect,
        ..Value::default()
    };
    history.push(now.as_nanos() as u64, EntryType::Info, Process::Nemesis, op, value, None);
}

/// Client operations invoked during the fault's window (until `duration` if it never ended)
/// that failed because the queue rejected their publish (`503 … queue full`): what the clients
/// saw of the broker's rejections, the same on every backend (real RabbitMQ keeps no count).
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
