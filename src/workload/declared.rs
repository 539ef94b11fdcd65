//! The driver for ops a compose scenario declares: issues the schedule open-loop, as `drive`
//! does for the built-in ops, through an [`Executor`] that speaks the op's protocol (HTTP or
//! SQL; `compose::ops` on containers), and records every invocation and completion.
//!
//! What an outcome means comes from the op's `kind`:
//!
//! | kind | invocation records | completion records | on timeout |
//! |---|---|---|---|
//! | `write` | `key` (`{key}`; none with `key_from`) | `key` (the server's with `key_from`) | `info` |
//! | `read` | `read_key`: the session's last acknowledged write of the op it lists (`of`) | `seen`: whether the answer showed it | `fail` |
//! | `submit` | `key` | `job`: the accepted job's id, also when it is not done in time (`info`) | `info` |
//! | none | — | — | `info` |
//!
//! A read *saw* its session's write when the answer lists the key, or when the op declares a
//! `page` of N newest keys, the answer is full and every key on it was scheduled after the
//! write (its `{seq}` is larger): the write is then simply off the page.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::time::Instant;

use super::drive::{GeneratorStats, PROCESSES_MAX, Recorder};
use super::schedule::{Schedule, ScheduledOp};
use super::template::Bindings;
use crate::history::{EntryType, Process, Value};
use crate::scenario::declared::OpKind;
use crate::scenario::model::{Load, Scenario};

/// What an executor found running one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// ok (it happened), fail (it certainly did not), info (unknown).
    pub kind: EntryType,
    /// A write's key from the answer (`key_from`).
    pub key: Option<String>,
    /// A submit's job id (`id_from`), once accepted.
    pub job: Option<String>,
    /// A read's keys (`keys_from`, or the first SQL column).
    pub keys: Option<Vec<String>>,
    /// Why it failed or is unknown, in a few words.
    pub error: Option<String>,
}

impl Answer {
    /// An outcome with nothing else to say.
    pub fn of(kind: EntryType, error: Option<String>) -> Answer {
        Answer { kind, key: None, job: None, keys: None, error }
    }
}

/// Runs one declared op against the stack. The timeout is the driver's: an executor may run
/// until `deadline` and is then abandoned.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Run `op` (its stream is `load`) with its placeholders bound by `bindings`.
    async fn execute(&self, op: &ScheduledOp, load: &Load, bindings: Bindings, deadline: Instant) -> Answer;
}

/// A session's last acknowledged write of each write op: (key, `{seq}`).
#[derive(Clone, Debug, Default)]
struct Session {
    busy: bool,
    last_write: BTreeMap<String, (String, u64)>,
}

type Sessions = Arc<Mutex<Vec<Session>>>;

/// Issue every op of `schedule` at its intended time through `executor`; return once every op
/// has completed or timed out.
pub async fn drive_declared(
    schedule: &Schedule,
    scenario: &Scenario,
    executor: Arc<dyn Executor>,
    recorder: Recorder,
) -> GeneratorStats {
    let sessions: Sessions = Arc::new(Mutex::new(Vec::new()));
    let loads: Arc<Vec<Load>> = Arc::new(scenario.workload.clone());
    let mut stats = GeneratorStats { scheduled_count: schedule.ops.len() as u64, ..Default::default() };
    let mut tasks = tokio::task::JoinSet::new();
    for (seq, op) in schedule.ops.iter().enumerate() {
        tokio::time::sleep_until(recorder.start() + op.at).await;
        let lag = Instant::now().duration_since(recorder.start() + op.at);
        stats.lag_ms_max = stats.lag_ms_max.max(lag.as_millis() as u64);
        let Some(process) = take_session(&sessions) else {
            stats.dropped_count += 1;
            continue;
        };
        stats.sent_count += 1;
        let call = Call { op: op.clone(), seq: seq as u64, process, loads: loads.clone() };
        let (executor, recorder, sessions) = (executor.clone(), recorder.clone(), sessions.clone());
        tasks.spawn(async move { call.run(executor.as_ref(), &recorder, &sessions).await });
    }
    while tasks.join_next().await.is_some() {}
    stats.processes_count = sessions.lock().expect("sessions lock").len() as u64;
    stats
}

/// The lowest-numbered free session, or a new one; `None` at [`PROCESSES_MAX`].
fn take_session(sessions: &Sessions) -> Option<u32> {
    let mut sessions = sessions.lock().expect("sessions lock");
    let index = match sessions.iter().position(|s| !s.busy) {
        Some(index) => index,
        None if sessions.len() < PROCESSES_MAX => {
            sessions.push(Session::default());
            sessions.len() - 1
        }
        None => return None,
    };
    sessions[index].busy = true;
    Some(index as u32)
}

struct Call {
    op: ScheduledOp,
    seq: u64,
    process: u32,
    loads: Arc<Vec<Load>>,
}

impl Call {
    async fn run(self, executor: &dyn Executor, recorder: &Recorder, sessions: &Sessions) {
        let load = &self.loads[self.op.load];
        let kind = load.kind;
        let presented = match (kind, read_of(load, &self.loads)) {
            (Some(OpKind::Read), Some(of)) => {
                sessions.lock().expect("sessions lock")[self.process as usize].last_write.get(of).cloned()
            }
            _ => None,
        };
        let mut invoke = Value::default();
        match kind {
            Some(OpKind::Write) if load.key_from.is_none() => invoke.key = Some(self.op.key.clone()),
            Some(OpKind::Submit) => invoke.key = Some(self.op.key.clone()),
            Some(OpKind::Read) => invoke.read_key = presented.as_ref().map(|(key, _)| key.clone()),
            _ => {}
        }
        let intended_ns = self.op.at.as_nanos() as u64;
        let process = Process::Client(self.process);
        recorder.push(intended_ns, EntryType::Invoke, process, self.op.op, invoke, None);
        let deadline = Instant::now() + self.op.timeout;
        let bindings = Bindings::new(&self.op.key, self.seq, self.op.draw_seed);
        let run = executor.execute(&self.op, load, bindings, deadline);
        let answer = match tokio::time::timeout_at(deadline, run).await {
            Ok(answer) => answer,
            Err(_) => {
                let kind = if kind == Some(OpKind::Read) { EntryType::Fail } else { EntryType::Info };
                Answer::of(kind, Some("timeout".into()))
            }
        };
        let mut done = Value::default();
        match kind {
            Some(OpKind::Write) => done.key = answer.key.clone().or_else(|| Some(self.op.key.clone())),
            Some(OpKind::Submit) => (done.key, done.job) = (Some(self.op.key.clone()), answer.job.clone()),
            Some(OpKind::Read) if answer.kind == EntryType::Ok => {
                if let (Some((key, seq)), Some(keys)) = (&presented, &answer.keys) {
                    done.seen = Some(saw(keys, key, *seq, load.page));
                }
            }
            _ => {}
        }
        if load.key_from.is_some() && answer.kind != EntryType::Ok && answer.key.is_none() {
            done.key = None; // the server never said which key it made
        }
        recorder.push(recorder.now_ns(), answer.kind, process, self.op.op, done.clone(), answer.error);
        let mut sessions = sessions.lock().expect("sessions lock");
        let session = &mut sessions[self.process as usize];
        session.busy = false;
        if kind == Some(OpKind::Write)
            && answer.kind == EntryType::Ok
            && let Some(key) = done.key
        {
            session.last_write.insert(load.op_name().to_owned(), (key, self.seq));
        }
    }
}

/// The write op a read lists: its `of`, or the only write op.
pub fn read_of<'l>(read: &'l Load, loads: &'l [Load]) -> Option<&'l str> {
    if let Some(of) = &read.of {
        return Some(of);
    }
    let mut writes = loads.iter().filter(|l| l.kind == Some(OpKind::Write));
    match (writes.next(), writes.next()) {
        (Some(only), None) => only.name.as_deref(),
        _ => None,
    }
}

/// Did an answer listing `keys` show the write `key` (scheduled at `seq`)?
fn saw(keys: &[String], key: &str, seq: u64, page: Option<u32>) -> bool {
    if keys.iter().any(|k| k == key) {
        return true;
    }
    let full = page.is_some_and(|p| keys.len() >= p as usize);
    full && keys.iter().all(|k| seq_of(k).is_some_and(|s| s > seq))
}

/// The `{seq}` a key made by `{key}` carries (`put-000042` → 42).
fn seq_of(key: &str) -> Option<u64> {
    key.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EntryOp, History};
    use crate::scenario::validate_declared::tests::load_with;
    use std::time::Duration;

    /// Acknowledges writes after 10 ms (all but `put-000002`, which hangs), lists every key
    /// acknowledged so far on reads, except that the second read misses the newest.
    #[derive(Default)]
    struct Fake {
        acked: Mutex<Vec<String>>,
        reads: Mutex<u32>,
    }

    #[async_trait]
    impl Executor for Fake {
        async fn execute(&self, op: &ScheduledOp, load: &Load, _: Bindings, _: Instant) -> Answer {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match load.kind {
                Some(OpKind::Write) if op.key.ends_with("-000002") => std::future::pending().await,
                Some(OpKind::Write) => {
                    self.acked.lock().unwrap().push(op.key.clone());
                    Answer::of(EntryType::Ok, None)
                }
                _ => {
                    let mut reads = self.reads.lock().unwrap();
                    *reads += 1;
                    let mut keys = self.acked.lock().unwrap().clone();
                    if *reads == 2 {
                        keys.pop();
                    }
                    Answer { keys: Some(keys), ..Answer::of(EntryType::Ok, None) }
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_follow_the_kind_and_reads_are_judged_against_their_session() {
        let text = "name: t\nduration: 10s\nstack: { compose: docker-compose.yml }\nclients: { db: { sql: 'postgres://db:5432/x' } }\nworkload:\n  - { name: put, client: db, kind: write, rate: 1/s, sql: 'INSERT {key}' }\n  - { name: get, client: db, kind: read, rate: 1/s, sql: 'SELECT k' }\n";
        let compose = "services:\n  db: { image: x, expose: [\"5432\"] }\n";
        let scenario = load_with(text, compose).unwrap_or_else(|e| panic!("{e}")).scenario;
        let op = |at_ms: u64, load: usize, n: u64| ScheduledOp {
            at: Duration::from_millis(at_ms),
            op: super::super::schedule::entry_op(&scenario.workload[load]),
            load,
            draw_seed: 0,
            key: format!("{}-{n:06}", scenario.workload[load].op_name()),
            item: "",
            amount: 0,
            timeout: Duration::from_secs(1),
        };
        // Write 0, read 1 (sees put-0), write 2 (hangs), write 3, read 4 (misses put-3).
        let schedule =
            Schedule { ops: vec![op(0, 0, 0), op(100, 1, 1), op(200, 0, 2), op(300, 0, 3), op(400, 1, 4)] };
        let history = Arc::new(Mutex::new(History::new()));
        let stats =
            drive_declared(&schedule, &scenario, Arc::new(Fake::default()), Recorder::new(history.clone()))
                .await;
        assert_eq!(stats.sent_count, 5);
        let history = history.lock().unwrap().clone();
        let ops = history.ops();
        let put = EntryOp::Declared(crate::scenario::declared::OpName::new("put"));
        assert_eq!(ops[0].0.op, put);
        assert_eq!(ops[0].1.unwrap().kind, EntryType::Ok);
        assert_eq!(ops[1].0.value.read_key.as_deref(), Some("put-000000"));
        assert_eq!(ops[1].1.unwrap().value.seen, Some(true));
        assert_eq!(ops[2].1.unwrap().kind, EntryType::Info, "a hung write is unknown");
        assert_eq!(ops[4].0.value.read_key.as_deref(), Some("put-000003"), "the session's newest write");
        assert_eq!(ops[4].1.unwrap().value.seen, Some(false));
    }

    #[test]
    fn a_write_off_a_full_page_of_newer_keys_was_seen() {
        let keys: Vec<String> = (10..13).map(|n| format!("put-{n:06}")).collect();
        assert!(saw(&keys, "put-000005", 5, Some(3)), "off the page");
        assert!(!saw(&keys, "put-000005", 5, Some(4)), "the page is not full");
        assert!(!saw(&keys, "put-000005", 5, None), "no page declared");
        assert!(!saw(&keys, "put-000011", 11, Some(3)) || keys.contains(&"put-000011".to_string()));
    }
}
