//! The driver: issues the schedule's operations open-loop through the balancer and records each
//! invocation (at its intended start) and completion in the history.
//!
//! Each operation runs in its own task on a free *process* (a client session: at most one op in
//! flight, like a Jepsen process). Sessions carry read-your-writes state: a `history` read
//! presents the LSN and key of its session's last acknowledged investment. When every session is
//! busy a new one is opened, up to [`PROCESSES_MAX`]; beyond that the op is dropped and counted,
//! and the run's verdict becomes inconclusive.
//!
//! Outcome rules (the status codes are those of `stack::api`): a write is `ok` when acknowledged,
//! `fail` when it definitely did not happen (4xx, 503), and `info` when unknown (504, 502, a
//! timeout, a lost connection). A read is never `info`: anything but 200 is `fail`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::schedule::{Schedule, ScheduledOp};
use crate::history::{EntryOp, EntryType, History, Process, Value};
use crate::scenario::model::Op;
use crate::stack::api::{
    FileAccepted, HistoryResponse, IDEMPOTENCY_HEADER, InvestRequest, InvestResponse, OrderRequest,
    OrderResponse, QueryAccepted, QueryRequest, QueryStatus, upload_body,
};
use crate::stack::ports::{HttpClient, HttpRequest, HttpResponse, checksum};

/// Most client sessions open at once; past it, ops are dropped (and counted).
pub const PROCESSES_MAX: usize = 4096;

/// How often an accepted query is polled for completion.
const QUERY_POLL_EVERY: Duration = Duration::from_millis(100);

/// How many investments a `history` read asks for.
const HISTORY_LIMIT: u32 = 50;

/// Where completions are recorded: the shared history and the run's start (t = 0).
#[derive(Clone)]
pub struct Recorder {
    history: Arc<Mutex<History>>,
    start: Instant,
}

impl Recorder {
    /// A recorder whose t = 0 is now (tokio time: virtual under the simulation).
    pub fn new(history: Arc<Mutex<History>>) -> Recorder {
        Recorder { history, start: Instant::now() }
    }

    /// The run's t = 0, for whatever else must share the clock (a backend's fault scheduler).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since t = 0.
    pub fn now_ns(&self) -> u64 {
        Instant::now().duration_since(self.start).as_nanos() as u64
    }

    /// Append an entry to the history.
    pub fn push(
        &self,
        time_ns: u64,
        kind: EntryType,
        process: Process,
        op: EntryOp,
        value: Value,
        error: Option<String>,
    ) {
        self.history.lock().expect("history lock").push(time_ns, kind, process, op, value, error);
    }

    fn record(
        &self,
        time_ns: u64,
        kind: EntryType,
        process: u32,
        op: Op,
        value: Value,
        error: Option<String>,
    ) {
        let mut history = self.history.lock().expect("history lock");
        history.push(time_ns, kind, Process::Client(process), EntryOp::from(op), value, error);
    }
}

/// How far the generator kept to its schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorStats {
    /// Ops in the schedule.
    pub scheduled_count: u64,
    /// Ops sent.
    pub sent_count: u64,
    /// Ops dropped because [`PROCESSES_MAX`] sessions were busy.
    pub dropped_count: u64,
    /// Largest delay between an op's intended start and its send, ms.
    pub lag_ms_max: u64,
    /// Sessions opened.
    pub processes_count: u64,
}

/// One client session.
#[derive(Clone, Debug, Default)]
struct Session {
    busy: bool,
    /// The session's last acknowledged investment.
    last_write: Option<LastWrite>,
}

/// A session's last acknowledged investment, as its acknowledgement gave it.
#[derive(Clone, Debug)]
struct LastWrite {
    key: String,
    /// Where its commit is in the WAL (at or after the commit record).
    lsn: u64,
    /// Its row id: ids grow with insertion, which orders a history page.
    id: u64,
}

type Sessions = Arc<Mutex<Vec<Session>>>;

/// Issue every op of `schedule` at its intended time through `client` to `lb_authority`; return
/// once every op has completed or timed out.
pub async fn drive(
    schedule: &Schedule,
    client: Arc<dyn HttpClient>,
    lb_authority: String,
    recorder: Recorder,
) -> GeneratorStats {
    let sessions: Sessions = Arc::new(Mutex::new(Vec::new()));
    let mut stats = GeneratorStats { scheduled_count: schedule.ops.len() as u64, ..Default::default() };
    let mut tasks = tokio::task::JoinSet::new();
    for op in &schedule.ops {
        tokio::time::sleep_until(recorder.start + op.at).await;
        let lag = Instant::now().duration_since(recorder.start + op.at);
        stats.lag_ms_max = stats.lag_ms_max.max(lag.as_millis() as u64);
        let Some((process, last_write)) = take_session(&sessions) else {
            stats.dropped_count += 1;
            continue;
        };
        stats.sent_count += 1;
        let call =
            Call { client: client.clone(), lb: lb_authority.clone(), op: op.clone(), process, last_write };
        let (recorder, sessions) = (recorder.clone(), sessions.clone());
        let task = async move { call.run(&recorder, &sessions).await };
        // On the host's LocalSet under the simulation, as `crate::stack::spawn` explains.
        if turmoil::in_simulation() {
            tasks.spawn_local(task);
        } else {
            tasks.spawn(task);
        }
    }
    while tasks.join_next().await.is_some() {}
    stats.processes_count = sessions.lock().expect("sessions lock").len() as u64;
    stats
}

/// The lowest-numbered free session (deterministic), or a new one; `None` at the limit.
fn take_session(sessions: &Sessions) -> Option<(u32, Option<LastWrite>)> {
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
    Some((index as u32, sessions[index].last_write.clone()))
}

/// The outcome of one op: its entry type, payload and error.
type Outcome = (EntryType, Value, Option<String>);

struct Call {
    client: Arc<dyn HttpClient>,
    lb: String,
    op: ScheduledOp,
    process: u32,
    last_write: Option<LastWrite>,
}

impl Call {
    async fn run(self, recorder: &Recorder, sessions: &Sessions) {
        let intended_ns = self.op.at.as_nanos() as u64;
        let mut invoke = Value { key: Some(self.op.key.clone()), ..Value::default() };
        match self.op.builtin() {
            Op::Invest => invoke.qty = Some(self.op.amount),
            Op::Order => (invoke.sku, invoke.qty) = (Some(self.op.item.into()), Some(self.op.amount)),
            Op::Query => invoke.sku = Some(self.op.item.into()),
            Op::Upload => {
                invoke.qty = Some(self.op.amount);
                invoke.checksum = Some(checksum(&upload_body(&self.op.key, self.op.amount)));
            }
            Op::History => {
                invoke.key = None;
                if let Some(last) = &self.last_write {
                    (invoke.read_key, invoke.lsn) = (Some(last.key.clone()), Some(last.lsn));
                }
            }
        }
        recorder.record(intended_ns, EntryType::Invoke, self.process, self.op.builtin(), invoke, None);
        let deadline = Instant::now() + self.op.timeout;
        let (kind, mut value, error) = match tokio::time::timeout_at(deadline, self.execute(deadline)).await {
            Ok(outcome) => outcome,
            Err(_) => self.timed_out(),
        };
        // The row id rides in `value` from `invest` but stays out of the history.
        let row_id = if self.op.builtin() == Op::Invest { value.id.take() } else { None };
        let acked_write = match (kind == EntryType::Ok, value.lsn, row_id) {
            (true, Some(lsn), Some(id)) if self.op.builtin() == Op::Invest => Some((lsn, id)),
            _ => None,
        };
        recorder.record(recorder.now_ns(), kind, self.process, self.op.builtin(), value, error);
        let mut sessions = sessions.lock().expect("sessions lock");
        let session = &mut sessions[self.process as usize];
        session.busy = false;
        if let Some((lsn, id)) = acked_write {
            session.last_write = Some(LastWrite { key: self.op.key.clone(), lsn, id });
        }
    }

    /// What a timeout means: unknown for a write, a failure for a read.
    fn timed_out(&self) -> Outcome {
        let kind = if self.op.builtin() == Op::History { EntryType::Fail } else { EntryType::Info };
        (kind, self.key_value(), Some("timeout".into()))
    }

    fn key_value(&self) -> Value {
        match self.op.builtin() {
            Op::History => Value::default(),
            _ => Value { key: Some(self.op.key.clone()), ..Value::default() },
        }
    }

    async fn send(
        &self,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<HttpResponse, String> {
        let request = HttpRequest { method, authority: self.lb.clone(), path, body, headers: Vec::new() };
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.client.send(request, timeout).await.map_err(|e| e.to_string())
    }

    async fn execute(&self, deadline: Instant) -> Outcome {
        match self.op.builtin() {
            Op::Invest => self.invest(deadline).await,
            Op::History => self.history(deadline).await,
            Op::Order => self.order(deadline).await,
            Op::Query => self.query(deadline).await,
            Op::Upload => self.upload(deadline).await,
        }
    }

    async fn invest(&self, deadline: Instant) -> Outcome {
        let body = InvestRequest {
            key: self.op.key.clone(),
            coin: self.op.item.into(),
            amount_usd_cents: self.op.amount,
        };
        let sent = self.send(Method::POST, "/invest".into(), Some(json(&body)), deadline).await;
        let mut value = self.key_value();
        match sent {
            Ok(r) if r.status == 200 || r.status == 201 => {
                match serde_json::from_slice::<InvestResponse>(&r.body) {
                    Ok(answer) => {
                        value.lsn = Some(answer.lsn);
                        value.id = Some(answer.id);
                        (EntryType::Ok, value, None)
                    }
                    Err(e) => {
                        (EntryType::Info, value, Some(format!("{} with an unreadable body: {e}", r.status)))
                    }
                }
            }
            Ok(r) => (write_failure(r.status), value, Some(status_error(&r))),
            Err(e) => (EntryType::Info, value, Some(e)),
        }
    }

    async fn history(&self, deadline: Instant) -> Outcome {
        let min_lsn = self.last_write.as_ref().map_or(0, |last| last.lsn);
        let path = format!("/history?min_lsn={min_lsn}&limit={HISTORY_LIMIT}");
        let mut value = Value::default();
        match self.send(Method::GET, path, None, deadline).await {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<HistoryResponse>(&r.body) {
                Ok(answer) => {
                    if let Some(last) = &self.last_write {
                        value.read_key = Some(last.key.clone());
                        value.seen = Some(saw(&answer, last));
                    }
                    value.replica_lsn = Some(answer.replica_lsn);
                    value.served_by = Some(answer.served_by);
                    (EntryType::Ok, value, None)
                }
                Err(e) => (EntryType::Fail, value, Some(format!("unreadable body: {e}"))),
            },
            Ok(r) => (EntryType::Fail, value, Some(status_error(&r))),
            Err(e) => (EntryType::Fail, value, Some(e)),
        }
    }

    async fn order(&self, deadline: Instant) -> Outcome {
        let body = OrderRequest { key: self.op.key.clone(), sku: self.op.item.into(), qty: self.op.amount };
        let mut value = self.key_value();
        value.sku = Some(self.op.item.into());
        value.qty = Some(self.op.amount);
        match self.send(Method::POST, "/orders".into(), Some(json(&body)), deadline).await {
            Ok(r) if r.status == 201 || r.status == 200 => {
                let status =
                    serde_json::from_slice::<OrderResponse>(&r.body).map_or("completed".into(), |a| a.status);
                value.status = Some(status);
                (EntryType::Ok, value, None)
            }
            Ok(r) => {
                if let Ok(answer) = serde_json::from_slice::<OrderResponse>(&r.body) {
                    value.status = Some(answer.status);
                }
                (write_failure(r.status), value, Some(status_error(&r)))
            }
            Err(e) => (EntryType::Info, value, Some(e)),
        }
    }

    async fn upload(&self, deadline: Instant) -> Outcome {
        let body = upload_body(&self.op.key, self.op.amount);
        let request = HttpRequest {
            method: Method::POST,
            authority: self.lb.clone(),
            path: "/files".into(),
            body: Some(body),
            headers: vec![(IDEMPOTENCY_HEADER.into(), self.op.key.clone())],
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let mut value = self.key_value();
        match self.client.send(request, timeout).await {
            Ok(r) if r.status == 201 => match serde_json::from_slice::<FileAccepted>(&r.body) {
                Ok(accepted) => {
                    value.id = Some(accepted.id);
                    (EntryType::Ok, value, None)
                }
                Err(e) => (EntryType::Info, value, Some(format!("201 with an unreadable body: {e}"))),
            },
            Ok(r) => (write_failure(r.status), value, Some(status_error(&r))),
            Err(e) => (EntryType::Info, value, Some(e.to_string())),
        }
    }

    async fn query(&self, deadline: Instant) -> Outcome {
        let body = QueryRequest { key: self.op.key.clone(), sku: self.op.item.into() };
        let mut value = self.key_value();
        let id = match self.send(Method::POST, "/queries".into(), Some(json(&body)), deadline).await {
            Ok(r) if r.status == 202 => match serde_json::from_slice::<QueryAccepted>(&r.body) {
                Ok(accepted) => accepted.id,
                Err(e) => return (EntryType::Info, value, Some(format!("202 with an unreadable body: {e}"))),
            },
            Ok(r) => return (write_failure(r.status), value, Some(status_error(&r))),
            Err(e) => return (EntryType::Info, value, Some(e)),
        };
        value.id = Some(id);
        loop {
            if let Ok(r) = self.send(Method::GET, format!("/queries/{id}"), None, deadline).await
                && r.status == 200
                && let Ok(status) = serde_json::from_slice::<QueryStatus>(&r.body)
                && status.status == "completed"
            {
                value.status = Some(status.status);
                return (EntryType::Ok, value, None);
            }
            if Instant::now() + QUERY_POLL_EVERY >= deadline {
                return (EntryType::Info, value, Some("accepted, not completed in time".into()));
            }
            tokio::time::sleep(QUERY_POLL_EVERY).await;
        }
    }
}

/// Did a history answer show the session's write? The page holds the newest `HISTORY_LIMIT`
/// rows, so when it is full and every row on it was inserted after the write (a higher row id),
/// the write is simply off the page: the node's applied LSN decides.
///
/// Newer is judged by row id, not by LSN: on real PostgreSQL a row carries the WAL position of
/// its insert while the acknowledgement carries one at or after its commit, so a row inserted
/// after the write can show a smaller LSN than the one presented (on the simulation the two
/// orders agree). Judging by LSN flagged reads as stale that were not (found on containers,
/// replica-partition: a full page of newer rows, one with an insert LSN below the presented one).
fn saw(answer: &HistoryResponse, last: &LastWrite) -> bool {
    let listed = answer.investments.iter().any(|i| i.key == last.key);
    let off_the_page = answer.investments.len() >= HISTORY_LIMIT as usize
        && answer.investments.iter().all(|i| i.id > last.id);
    listed || (off_the_page && answer.replica_lsn >= last.lsn)
}

fn json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("request bodies serialise")
}

/// A write answered with a non-success status: 4xx and 503 mean it definitely did not happen;
/// 504, 502 and anything else are unknown.
fn write_failure(status: u16) -> EntryType {
    match status {
        400..=499 | 503 => EntryType::Fail,
        _ => EntryType::Info,
    }
}

fn status_error(response: &HttpResponse) -> String {
    let body = String::from_utf8_lossy(&response.body);
    let reason: String = body.chars().take(80).collect();
    if reason.is_empty() { format!("{}", response.status) } else { format!("{} {reason}", response.status) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::PortError;
    use async_trait::async_trait;

    /// Answers by path: invest → 201 (or 503 for coin `solana`, a hang for `cardano`);
    /// history → 200 listing every acknowledged key; orders → 409; queries → 202, completed on
    /// the second poll. Each answer takes 10 ms, except a hang.
    #[derive(Default)]
    struct Fake {
        acked: Mutex<Vec<String>>,
        polls: Mutex<u32>,
    }

    #[async_trait]
    impl HttpClient for Fake {
        async fn send(&self, request: HttpRequest, _timeout: Duration) -> Result<HttpResponse, PortError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let reply =
                |status: u16, body: Vec<u8>| Ok(HttpResponse { status, retry_after_secs: None, body });
            let path = request.path.as_str();
            if path == "/invest" {
                let req: InvestRequest = serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
                match req.coin.as_str() {
                    "solana" => return reply(503, b"price feed down".to_vec()),
                    "cardano" => std::future::pending::<()>().await,
                    _ => {}
                }
                self.acked.lock().unwrap().push(req.key.clone());
                let lsn = self.acked.lock().unwrap().len() as u64;
                let answer = InvestResponse {
                    id: lsn,
                    key: req.key,
                    coin: req.coin,
                    amount_usd_cents: 1,
                    price_usd_micros: 1,
                    lsn,
                };
                return reply(201, json(&answer));
            }
            if path.starts_with("/history") {
                let investments = self
                    .acked
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|k| InvestResponse {
                        id: 0,
                        key: k.clone(),
                        coin: "bitcoin".into(),
                        amount_usd_cents: 1,
                        price_usd_micros: 1,
                        lsn: 0,
                    })
                    .collect();
                let answer = HistoryResponse { replica_lsn: 7, served_by: "pg-replica".into(), investments };
                return reply(200, json(&answer));
            }
            if path == "/orders" {
                return reply(409, b"{\"order_id\":\"x\",\"status\":\"rejected\"}".to_vec());
            }
            if path == "/queries" {
                return reply(202, json(&QueryAccepted { id: 5 }));
            }
            let mut polls = self.polls.lock().unwrap();
            *polls += 1;
            let status = if *polls >= 2 { "completed" } else { "pending" };
            reply(200, json(&QueryStatus { id: 5, status: status.into(), result: None }))
        }
    }

    fn op(at_ms: u64, op: Op, key: &str, item: &'static str) -> ScheduledOp {
        ScheduledOp {
            at: Duration::from_millis(at_ms),
            op: op.into(),
            load: 0,
            draw_seed: 0,
            key: key.into(),
            item,
            amount: 1,
            timeout: Duration::from_secs(1),
        }
    }

    async fn run(ops: Vec<ScheduledOp>) -> (History, GeneratorStats) {
        let history = Arc::new(Mutex::new(History::new()));
        let recorder = Recorder::new(history.clone());
        let stats = drive(&Schedule { ops }, Arc::new(Fake::default()), "lb:80".into(), recorder).await;
        let history = history.lock().unwrap().clone();
        (history, stats)
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_are_classified_and_invocations_keep_their_intended_time() {
        let (history, stats) = run(vec![
            op(0, Op::Invest, "i-0", "cardano"), // hangs: info after the 1 s timeout
            op(5, Op::Invest, "i-1", "bitcoin"), // ok, although i-0 is still in flight
            op(6, Op::Invest, "i-2", "solana"),  // 503: fail
            op(100, Op::History, "h-0", ""),     // session 1 presents i-1: seen
            op(200, Op::Order, "o-0", "sku-1"),  // 409: fail
            op(300, Op::Query, "q-0", "sku-1"),  // ok after polling
        ])
        .await;
        assert_eq!(stats.sent_count, 6);
        let ops = history.ops();
        let outcome =
            |key: &str| ops.iter().find(|(i, _)| i.value.key.as_deref() == Some(key)).unwrap().1.unwrap();
        assert_eq!(outcome("i-0").kind, EntryType::Info);
        assert_eq!(outcome("i-0").error.as_deref(), Some("timeout"));
        assert_eq!(outcome("i-1").kind, EntryType::Ok);
        assert_eq!(outcome("i-2").kind, EntryType::Fail);
        assert_eq!(outcome("o-0").kind, EntryType::Fail);
        assert_eq!(outcome("q-0").kind, EntryType::Ok);
        assert_eq!(outcome("q-0").value.id, Some(5));
        let i1 = ops.iter().find(|(i, _)| i.value.key.as_deref() == Some("i-1")).unwrap();
        assert_eq!(i1.0.time_ns, 5_000_000, "invoked at its intended time");
        assert_eq!(i1.1.unwrap().time_ns, 15_000_000, "answered 10 ms later");
        let read = ops.iter().find(|(i, _)| i.op == EntryOp::History).unwrap();
        assert_eq!(read.0.value.read_key.as_deref(), Some("i-1"));
        assert_eq!(read.1.unwrap().value.seen, Some(true));
        assert_eq!(read.1.unwrap().value.served_by.as_deref(), Some("pg-replica"));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_are_reused_once_free() {
        let ops = (0..10).map(|i| op(i * 100, Op::Invest, &format!("i-{i}"), "bitcoin")).collect();
        let (history, stats) = run(ops).await;
        assert_eq!(stats.processes_count, 1, "each op finished before the next began");
        assert!(history.ops().iter().all(|(_, done)| done.unwrap().kind == EntryType::Ok));
    }
}
