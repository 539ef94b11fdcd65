//! The operation history: every client operation's invocation and completion, plus fault
//! events, in the order they happened. Jepsen-shaped, one JSON object per line in
//! `history.jsonl`, written to disk before any checker runs.
//!
//! An invocation's `time_ns` is the operation's *intended* start (the open-loop schedule), so
//! `completion.time_ns - invocation.time_ns` is its latency without coordinated omission.
//! Invariant (asserted when recorded and again when read back): every invocation has at most one
//! completion, on the same process, after it.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::scenario::declared::OpName;
use crate::scenario::model::Op;

/// The kind of a history entry, as Jepsen names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    /// An operation was invoked (at its intended start).
    Invoke,
    /// It definitely happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened (a timed-out write). Also every fault event.
    Info,
}

/// What an entry is about: a client op (built-in or declared), or a fault starting or stopping.
/// Written as its name (`"invest"`, `"put"`, `"fault_start"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryOp {
    /// `POST /invest`.
    Invest,
    /// `GET /history`.
    History,
    /// `POST /orders`.
    Order,
    /// `POST /queries` + polling.
    Query,
    /// `POST /files`.
    Upload,
    /// An op a compose scenario declares (`workload: [{ name: put, … }]`).
    Declared(OpName),
    /// A fault began (process `nemesis`).
    FaultStart,
    /// A fault was reverted (process `nemesis`).
    FaultStop,
}

impl From<Op> for EntryOp {
    fn from(op: Op) -> EntryOp {
        match op {
            Op::Invest => EntryOp::Invest,
            Op::History => EntryOp::History,
            Op::Order => EntryOp::Order,
            Op::Query => EntryOp::Query,
            Op::Upload => EntryOp::Upload,
        }
    }
}

impl EntryOp {
    /// The built-in client op, or `None` for declared ops and fault events.
    pub fn op(self) -> Option<Op> {
        match self {
            EntryOp::Invest => Some(Op::Invest),
            EntryOp::History => Some(Op::History),
            EntryOp::Order => Some(Op::Order),
            EntryOp::Query => Some(Op::Query),
            EntryOp::Upload => Some(Op::Upload),
            EntryOp::Declared(_) | EntryOp::FaultStart | EntryOp::FaultStop => None,
        }
    }

    /// Whether this is a client op (built-in or declared), not a fault event.
    pub fn is_client_op(self) -> bool {
        !matches!(self, EntryOp::FaultStart | EntryOp::FaultStop)
    }

    /// The name in `history.jsonl` and reports.
    pub fn name(self) -> &'static str {
        match self {
            EntryOp::Declared(name) => name.as_str(),
            EntryOp::FaultStart => "fault_start",
            EntryOp::FaultStop => "fault_stop",
            builtin => builtin.op().expect("a built-in op").name(),
        }
    }

    /// The entry op a name stands for: a built-in op or fault event, else a declared op.
    pub fn named(name: &str) -> EntryOp {
        match name {
            "fault_start" => EntryOp::FaultStart,
            "fault_stop" => EntryOp::FaultStop,
            _ => Op::ALL
                .into_iter()
                .find(|op| op.name() == name)
                .map_or_else(|| EntryOp::Declared(OpName::new(name)), EntryOp::from),
        }
    }
}

impl Serialize for EntryOp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EntryOp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(EntryOp::named(&name))
    }
}

/// Who issued an entry: a client process (a logical session of the generator), or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    /// A client session.
    Client(u32),
    /// The fault injector.
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(n) => serializer.serialize_u32(*n),
            Process::Nemesis => serializer.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Process;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a process number or \"nemesis\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Process, E> {
                u32::try_from(n).map(Process::Client).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Process, E> {
                match s {
                    "nemesis" => Ok(Process::Nemesis),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The payload of an entry. One struct for every op keeps the JSONL flat and the checkers fast;
/// each field says which ops fill it. Absent fields are omitted from the JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Value {
    /// The client-chosen idempotency key (invest, order, query): unique per logical write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// invest ok: the commit's LSN. history invoke: the LSN the read presents (the session's last
    /// acknowledged write), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
    /// history invoke: the key of the session's last acknowledged write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_key: Option<String>,
    /// history ok: whether `read_key` was in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<bool>,
    /// history ok: the LSN the answering replica had applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_lsn: Option<u64>,
    /// history ok: which node answered (`pg-replica`, or `pg-primary` on fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// order: the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// order: how many; invest: amount in US cents; upload: size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<u64>,
    /// order ok: `completed` or `compensated`; query ok: `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// upload invoke: the SHA-256 of the bytes sent (`ports::checksum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Declared `submit` ops: the accepted job's id (`id_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// query ok: the gateway's id for the query; upload ok: the file's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// fault events: the fault's index in the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<usize>,
    /// fault events: the fault's kind (`crash`, `partition`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// fault events: the hosts it hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// fault stop: what the fault actually hit while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<FaultEffect>,
}

/// What a fault actually hit: the `effect` of its `fault_stop` entry and of its line in the
/// report. A fault whose effect is all zeros was vacuous: the report flags it.
///
/// Each field has one definition, computed in one place in `faults/` for every backend (the
/// table in `faults/mod.rs`): the backend only supplies its raw counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEffect {
    /// Client operations invoked during the fault's window that did not complete `ok`
    /// (from the finished history).
    pub ops_failed_count: u64,
    /// Connections reset or refused because of the fault: the backend's counter over what the
    /// fault touches, from just before it was applied to just before it was reverted.
    pub connections_reset_count: u64,
    /// Messages dropped or held on cut or slowed links: the backend's counter, over the same
    /// span.
    pub messages_held_count: u64,
    /// Acknowledged writes the final primary lacks that this fault answers for (charged after
    /// the checks).
    pub writes_lost_count: u64,
    /// Client operations invoked during the fault's window that failed because the queue
    /// rejected their publish (`503 … queue full`; from the finished history).
    pub publishes_rejected_count: u64,
}

impl FaultEffect {
    /// True when the fault hit nothing at all.
    pub fn is_vacuous(&self) -> bool {
        *self == FaultEffect::default()
    }
}

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the history, from 0, without gaps.
    pub index: u64,
    /// Simulated (or real) time since the start of the run. For an invocation: the intended start.
    pub time_ns: u64,
    /// invoke / ok / fail / info.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Who.
    pub process: Process,
    /// What.
    pub op: EntryOp,
    /// The payload.
    #[serde(default)]
    pub value: Value,
    /// For fail and info: why, in a few words (`timeout`, `503 queue full`, `connection refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole history, in index order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<Entry>,
    /// For each client process, the index of its open invocation, if any.
    open: std::collections::BTreeMap<u32, u64>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Append an entry, assigning its index. Panics (a harness bug) if a completion has no open
    /// invocation on its process, or an invocation is made while one is open.
    pub fn push(
        &mut self,
        time_ns: u64,
        kind: EntryType,
        process: Process,
        op: EntryOp,
        value: Value,
        error: Option<String>,
    ) -> u64 {
        let index = self.entries.len() as u64;
        if let Process::Client(p) = process {
            match kind {
                EntryType::Invoke => {
                    let previous = self.open.insert(p, index);
                    assert!(previous.is_none(), "process {p} invoked while op #{previous:?} is open");
                }
                _ => {
                    let invoked = self.open.remove(&p);
                    let invoked =
                        invoked.unwrap_or_else(|| panic!("process {p} completed an op it never invoked"));
                    assert_eq!(self.entries[invoked as usize].op, op, "process {p} completed a different op");
                }
            }
        }
        self.entries.push(Entry { index, time_ns, kind, process, op, value, error });
        index
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Pairs of (invocation, completion) for client ops, in invocation order. An invocation that
    /// never completed (the run ended) is paired with `None`.
    pub fn ops(&self) -> Vec<(&Entry, Option<&Entry>)> {
        // The pending invocation's slot per client process; processes are small dense numbers.
        let mut pending: Vec<Option<usize>> = Vec::new();
        let mut pairs: Vec<(&Entry, Option<&Entry>)> = Vec::with_capacity(self.entries.len() / 2 + 1);
        for entry in &self.entries {
            let Process::Client(p) = entry.process else { continue };
            let p = p as usize;
            if p >= pending.len() {
                pending.resize(p + 1, None);
            }
            if entry.kind == EntryType::Invoke {
                pending[p] = Some(pairs.len());
                pairs.push((entry, None));
            } else if let Some(slot) = pending[p].take() {
                pairs[slot].1 = Some(entry);
            }
        }
        pairs
    }

    /// Write as JSON lines.
    pub fn write_jsonl(&self, out: &mut (impl Write + ?Sized)) -> io::Result<()> {
        for entry in &self.entries {
            serde_json::to_writer(&mut *out, entry)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Read JSON lines back, re-checking the history's invariants.
    pub fn read_jsonl(input: impl BufRead) -> io::Result<History> {
        let mut history = History::new();
        for (n, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: Entry = serde_json::from_str(&line).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("history line {}: {e}", n + 1))
            })?;
            if entry.index != history.entries.len() as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("history line {}: index {} out of order", n + 1, entry.index),
                ));
            }
            history.push(entry.time_ns, entry.kind, entry.process, entry.op, entry.value, entry.error);
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_jsonl() {
        let mut history = History::new();
        let key = Value { key: Some("i-1".into()), ..Value::default() };
        history.push(10, EntryType::Invoke, Process::Client(1), EntryOp::Invest, key.clone(), None);
        history.push(
            15,
            EntryType::Info,
            Process::Nemesis,
            EntryOp::FaultStart,
            Value { fault: Some(0), ..Value::default() },
            None,
        );
        history.push(
            30,
            EntryType::Ok,
            Process::Client(1),
            EntryOp::Invest,
            Value { lsn: Some(7), ..key },
            None,
        );
        let mut bytes = Vec::new();
        history.write_jsonl(&mut bytes).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"index":0,"time_ns":10,"type":"invoke","process":1,"op":"invest","value":{"key":"i-1"}}"#
            ),
            "{text}"
        );
        assert!(text.contains(r#""process":"nemesis""#));
        let back = History::read_jsonl(&bytes[..]).unwrap();
        assert_eq!(back, history);
        assert_eq!(back.ops().len(), 1);
        assert_eq!(back.ops()[0].1.unwrap().value.lsn, Some(7));
    }

    #[test]
    #[should_panic(expected = "never invoked")]
    fn a_completion_without_invocation_is_a_harness_bug() {
        let mut history = History::new();
        history.push(1, EntryType::Ok, Process::Client(1), EntryOp::Invest, Value::default(), None);
    }
}
