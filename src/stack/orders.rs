//! The orders saga middleware, served on every `api-N` host: `POST /orders {key, sku, qty}`
//! orchestrates inventory (`POST /reserve`) → ordersvc (`POST /orders`) → reports
//! (`POST /reports`), each call retried a bounded number of times while its outcome is unknown.
//!
//! When a later step fails definitely, or stays unknown after its retries, the saga compensates
//! in reverse: it cancels the report and the order (`DELETE /reports/{id}`, `DELETE /orders/{id}`,
//! which leave tombstones so a late create cannot resurrect them) — both, whatever step this run
//! reached, since another run of the same saga (a recovery, a client's retry) may have gone
//! further — and only once both are confirmed cancelled does it restock (`POST /restock`). So
//! stock is never put back while the order may still exist, and never left taken for an order
//! known not to exist. A retry of a compensated order finds its reservation released (inventory
//! answers 410) and answers `compensated` again without touching anything.
//!
//! Answers: 201 `completed`; 409 `rejected` (out of stock, or inventory refused: nothing taken)
//! or `compensated` (stock restored); 504 `unknown` when a compensation could not be confirmed
//! (stock then stays taken, since the order may exist).
//!
//! The step trace (`reserve ok`, `order unknown`, `cancel-order ok`, `restock ok`, …) is appended
//! to the [`SagaLog`] port as the saga goes (best effort, bounded by `log_timeout`), and returned
//! in the response's `reason` for non-completed orders.
//!
//! Crash safety: before its first step a saga is recorded in the log, held by this orchestrator
//! (`owner`) for a `lease` that every appended step renews. [`recover`] runs beside the routes on
//! every orchestrator: each `recovery_every` it claims sagas left unfinished with their lease run
//! out — their orchestrator crashed, or is paused or cut off from the log — and compensates them.
//! Recovery never moves a saga forward: the original may still be running (a pause outlives a
//! lease), and two runs that both only ever compensate after the first cancel cannot disagree —
//! cancels leave tombstones, so the original's late creates fail, and restock waits for both
//! cancels. (Recovery completing a saga beside a thawed original that then compensated half of it
//! is exactly what the swarm campaign caught in a first version.) A saga answers definitely only
//! once its outcome is recorded by the orchestrator that still holds it; otherwise it answers 504
//! `unknown`, and a saga whose compensation gave up stays unfinished for recovery to finish. So
//! no order stays in flight for ever, and no client is told an outcome a takeover could
//! contradict.
//!
//! Bug planted here: `skip_compensation` (never restock, still answer `compensated`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tokio::time::sleep;

use super::api::OrderResponse;
use super::bugs::Bugs;
use super::invest::bounded;
use super::ports::{HttpClient, HttpRequest, PortError, SagaLog};
use super::wire::{self, Called, OrderRef, StepRequest};
use crate::scenario::model::StackConfig;

/// How the saga middleware behaves. Defaults on each field.
#[derive(Clone, Debug)]
pub struct OrdersConfig {
    /// Inventory's `host:port`. Default `inventory:80`.
    pub inventory_authority: String,
    /// The orders service's `host:port`. Default `ordersvc:80`.
    pub ordersvc_authority: String,
    /// The reports service's `host:port`. Default `reports:80`.
    pub reports_authority: String,
    /// How long one call to a participant may take. Default 500 ms.
    pub step_timeout: Duration,
    /// Attempts per step while its outcome is unknown (or the participant answers 503).
    /// Default 3.
    pub step_attempts_max: u32,
    /// Pause before the first retry, doubled for each further one. Default 20 ms.
    pub retry_backoff: Duration,
    /// How long compensation keeps retrying before it gives up (answering 504). Default 30 s.
    pub compensation_deadline: Duration,
    /// Pause before compensation's first retry, doubled for each further one up to 2 s.
    /// Default 250 ms.
    pub compensation_retry_every: Duration,
    /// How long one call to the saga log may take (a step appended after it is dropped). Default
    /// 200 ms.
    pub log_timeout: Duration,
    /// This orchestrator's name in the saga log: its host (`api-1`, …). Default `orders`.
    pub owner: String,
    /// How long a saga stays held by its orchestrator after its last logged step; past it, a
    /// recovery may take it over. Longer than the longest pause between two steps (a compensation
    /// pause plus a step's retries, under 4 s). Default 5 s.
    pub lease: Duration,
    /// How often recovery looks for sagas to take over. Default 1 s.
    pub recovery_every: Duration,
    /// Most sagas one recovery pass takes over. Default 16.
    pub recovery_batch_max: u32,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            inventory_authority: "inventory:80".into(),
            ordersvc_authority: "ordersvc:80".into(),
            reports_authority: "reports:80".into(),
            step_timeout: Duration::from_millis(500),
            step_attempts_max: 3,
            retry_backoff: Duration::from_millis(20),
            log_timeout: Duration::from_millis(200),
            compensation_deadline: Duration::from_secs(30),
            compensation_retry_every: Duration::from_millis(250),
            owner: "orders".into(),
            lease: Duration::from_secs(5),
            recovery_every: Duration::from_secs(1),
            recovery_batch_max: 16,
            bugs: Bugs::default(),
        }
    }
}

impl OrdersConfig {
    /// The defaults, with the stack's bug switches, for the orchestrator on `host`.
    pub fn for_stack(stack: &StackConfig, host: &str) -> OrdersConfig {
        OrdersConfig { bugs: Bugs::from_list(&stack.bugs), owner: host.into(), ..OrdersConfig::default() }
    }
}

/// The saga middleware's state.
#[derive(Clone)]
pub struct OrdersState {
    http: Arc<dyn HttpClient>,
    log: Arc<dyn SagaLog>,
    config: Arc<OrdersConfig>,
}

impl OrdersState {
    /// Build from the HTTP client (to the participants), the saga log and the config.
    pub fn new(http: Arc<dyn HttpClient>, log: Arc<dyn SagaLog>, config: OrdersConfig) -> OrdersState {
        OrdersState { http, log, config: Arc::new(config) }
    }
}

/// The route `POST /orders`.
pub fn router(state: OrdersState) -> Router {
    Router::new().route("/orders", post(create_order)).with_state(state)
}

#[derive(Deserialize)]
struct OrderBody {
    #[serde(default)]
    key: Option<String>,
    sku: String,
    qty: u64,
}

async fn create_order(State(state): State<OrdersState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: OrderBody = match wire::parse("POST /orders", &body) {
        Ok(body) => body,
        Err(resp) => return *resp,
    };
    let Some(key) = wire::idempotency_key(body.key, &headers) else {
        return wire::error(
            StatusCode::BAD_REQUEST,
            "POST /orders needs a `key` or an idempotency-key header",
        );
    };
    if body.qty == 0 {
        return wire::error(StatusCode::UNPROCESSABLE_ENTITY, "POST /orders: qty must be at least 1");
    }
    let step = StepRequest { order_id: key, sku: body.sku, qty: body.qty };
    // The saga runs in its own task: if the client gives up and its connection closes, axum drops
    // this handler, and a saga dropped between "stock taken" and "order created" would leave
    // stock decremented for an order that does not exist (the saga checker caught exactly that).
    let saga = crate::stack::spawn(async move { Saga::new(&state, step).answer().await });
    match saga.await {
        Ok((status, answer)) => (status, axum::Json(answer)).into_response(),
        Err(e) => wire::error(StatusCode::INTERNAL_SERVER_ERROR, format!("the saga task failed: {e}")),
    }
}

/// Take over, every `recovery_every`, the sagas whose orchestrator left them unfinished (see the
/// module doc), and compensate each in its own task. Runs for ever, beside the routes.
pub async fn recover(state: OrdersState) {
    let config = state.config.clone();
    loop {
        sleep(config.recovery_every).await;
        let claim = state.log.claim(&config.owner, config.lease, config.recovery_batch_max);
        let claimed = match bounded(config.log_timeout, claim).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::debug!(owner = %config.owner, %err, "saga recovery: the log is unreachable");
                continue;
            }
        };
        for request in claimed {
            tracing::info!(owner = %config.owner, order = %request.order_id, "saga recovery: taking over");
            let state = state.clone();
            crate::stack::spawn(async move {
                let mut saga = Saga::new(&state, request);
                saga.note(&format!("resumed by {}", state.config.owner)).await;
                let (status, answer) = saga.finish(Run::Compensate).await;
                tracing::info!(order = %answer.order_id, status = %status, outcome = %answer.status, "saga recovery: done");
            });
        }
    }
}

/// The longest pause between two compensation attempts.
const COMPENSATION_PAUSE_MAX: Duration = Duration::from_secs(2);

/// What a run of a saga does: every step (a client's request), or only compensate (recovery).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Forward,
    Compensate,
}

/// One run of the saga for one order.
struct Saga<'a> {
    state: &'a OrdersState,
    step: StepRequest,
    trace: Vec<String>,
}

/// What one step's calls came to.
struct StepOutcome {
    last: Called,
}

impl<'a> Saga<'a> {
    fn new(state: &'a OrdersState, step: StepRequest) -> Saga<'a> {
        Saga { state, step, trace: Vec::new() }
    }

    /// Record the saga in the log, run it, and answer. A saga the log could not record is not
    /// run: 503 when it definitely was not recorded, 504 when it may have been (recovery may then
    /// run it later, so the client must not be told it failed).
    async fn answer(mut self) -> (StatusCode, OrderResponse) {
        let config = &self.state.config;
        let begin = self.state.log.begin(&self.step, &config.owner, config.lease);
        match bounded(config.log_timeout, begin).await {
            Ok(()) => self.finish(Run::Forward).await,
            Err(err @ PortError::Unavailable(_)) => {
                self.trace.push(format!("saga log begin unknown: {err}"));
                self.respond(StatusCode::GATEWAY_TIMEOUT, "unknown")
            }
            Err(err) => {
                self.trace.push(format!("saga log refused the saga: {err}"));
                self.respond(StatusCode::SERVICE_UNAVAILABLE, "rejected")
            }
        }
    }

    /// Run the saga and record its outcome. A definite outcome is answered only once this
    /// orchestrator recorded it while still holding the saga; an unknown one (a compensation that
    /// gave up) is left unfinished for recovery.
    async fn finish(&mut self, run: Run) -> (StatusCode, OrderResponse) {
        let (status, outcome) = match run {
            Run::Forward => self.run().await,
            Run::Compensate => self.compensate().await,
        };
        if status == StatusCode::GATEWAY_TIMEOUT {
            return self.respond(status, outcome);
        }
        let config = &self.state.config;
        let finish = self.state.log.finish(&self.step.order_id, &config.owner, outcome);
        match bounded(config.log_timeout, finish).await {
            Ok(true) => self.respond(status, outcome),
            Ok(false) => {
                self.trace.push(format!("{outcome}, but another orchestrator took the saga over"));
                self.respond(StatusCode::GATEWAY_TIMEOUT, "unknown")
            }
            Err(err) => {
                self.trace.push(format!("{outcome}, but the saga log did not record it: {err}"));
                self.respond(StatusCode::GATEWAY_TIMEOUT, "unknown")
            }
        }
    }

    /// The answer: the trace is the reason for anything but `completed`.
    fn respond(&self, status: StatusCode, outcome: &str) -> (StatusCode, OrderResponse) {
        let reason = (outcome != "completed").then(|| self.trace.join(", "));
        (status, OrderResponse { order_id: self.step.order_id.clone(), status: outcome.into(), reason })
    }

    /// Run every step; the status and the `OrderResponse::status` to answer with.
    async fn run(&mut self) -> (StatusCode, &'static str) {
        let config = self.state.config.clone();
        let body = serde_json::to_vec(&self.step).expect("a step serialises");
        let reserve =
            self.call(http::Method::POST, &config.inventory_authority, "/reserve", Some(body.clone())).await;
        match &reserve.last {
            Called::Ok(_) => self.note("reserve ok").await,
            Called::Definite(resp) if resp.status == 409 => {
                self.note("reserve out-of-stock").await;
                return (StatusCode::CONFLICT, "rejected");
            }
            Called::Definite(resp) if resp.status == 410 => {
                // An earlier run of this order was compensated: its stock is back already.
                self.note("reserve released").await;
                return (StatusCode::CONFLICT, "compensated");
            }
            Called::Definite(resp) => {
                self.note(&format!("reserve refused {}", resp.status)).await;
                return (StatusCode::CONFLICT, "rejected");
            }
            Called::Unknown(_) => {
                self.note("reserve unknown").await;
                return self.compensate().await;
            }
        }
        let order =
            self.call(http::Method::POST, &config.ordersvc_authority, "/orders", Some(body.clone())).await;
        if !self.judge("order", &order).await {
            return self.compensate().await;
        }
        let report = self.call(http::Method::POST, &config.reports_authority, "/reports", Some(body)).await;
        if !self.judge("report", &report).await {
            return self.compensate().await;
        }
        (StatusCode::CREATED, "completed")
    }

    /// Cancel a row with `DELETE path` (a tombstone when there is no row); true once confirmed.
    async fn undo(&mut self, name: &str, authority: &str, path: &str) -> bool {
        let outcome = self.call(http::Method::DELETE, authority, path, None).await;
        self.judge(name, &outcome).await
    }

    /// Record a step's outcome; true if it succeeded.
    async fn judge(&mut self, name: &str, outcome: &StepOutcome) -> bool {
        let word = match &outcome.last {
            Called::Ok(_) => "ok",
            Called::Definite(_) => "fail",
            Called::Unknown(_) => "unknown",
        };
        self.note(&format!("{name} {word}")).await;
        word == "ok"
    }

    /// Undo every step reached, retrying the whole (idempotent) compensation with backoff until
    /// it is confirmed or `compensation_deadline` passes: a participant that is down for a while
    /// must not leave stock taken for an order that does not exist.
    async fn compensate(&mut self) -> (StatusCode, &'static str) {
        let config = self.state.config.clone();
        let deadline = tokio::time::Instant::now() + config.compensation_deadline;
        let mut pause = config.compensation_retry_every;
        loop {
            if let Some(answer) = self.compensate_once().await {
                return answer;
            }
            if tokio::time::Instant::now() + pause >= deadline {
                self.note("compensation abandoned at its deadline").await;
                return (StatusCode::GATEWAY_TIMEOUT, "unknown");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(COMPENSATION_PAUSE_MAX);
        }
    }

    /// One attempt at compensation, last step first: cancel the report and the order, then
    /// restock once both are confirmed. `None` when a step could not be confirmed.
    async fn compensate_once(&mut self) -> Option<(StatusCode, &'static str)> {
        let config = self.state.config.clone();
        let id = wire::encode(&self.step.order_id);
        if !self.undo("cancel-report", &config.reports_authority, &format!("/reports/{id}")).await {
            return None;
        }
        if !self.undo("cancel-order", &config.ordersvc_authority, &format!("/orders/{id}")).await {
            return None;
        }
        let id = self.step.order_id.clone();
        if config.bugs.skip_compensation {
            self.note("restock skipped").await;
            return Some((StatusCode::CONFLICT, "compensated"));
        }
        let body = serde_json::to_vec(&OrderRef { order_id: id }).expect("an order ref serialises");
        let restock =
            self.call(http::Method::POST, &config.inventory_authority, "/restock", Some(body)).await;
        if !self.judge("restock", &restock).await {
            return None;
        }
        Some((StatusCode::CONFLICT, "compensated"))
    }

    /// Call a participant, retrying (bounded) while the outcome is unknown or the answer is 503.
    /// An unknown attempt is noted in the trace only by the caller; a definite refusal after an
    /// unknown attempt is reported as unknown, since the earlier attempt may have applied.
    async fn call(
        &mut self,
        method: http::Method,
        authority: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> StepOutcome {
        let config = &self.state.config;
        let mut maybe_applied = false;
        let mut backoff = config.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = HttpRequest {
                method: method.clone(),
                authority: authority.to_string(),
                path: path.to_string(),
                body: body.clone(),
                headers: vec![("content-type".into(), "application/json".into())],
            };
            let last = wire::classify(self.state.http.send(request, config.step_timeout).await);
            let retry = match &last {
                Called::Ok(_) => false,
                Called::Unknown(_) => {
                    maybe_applied = true;
                    true
                }
                Called::Definite(resp) => resp.status == 503,
            };
            if !retry || attempt >= config.step_attempts_max {
                let last = match last {
                    Called::Definite(resp) if maybe_applied && resp.status != 409 && resp.status != 410 => {
                        Called::Unknown(format!("status {} after an unknown attempt", resp.status))
                    }
                    other => other,
                };
                return StepOutcome { last };
            }
            sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    /// Append a step to the trace and, best effort, to the saga log (renewing the lease).
    async fn note(&mut self, step: &str) {
        self.trace.push(step.to_string());
        let config = &self.state.config;
        let log = self.state.log.append(&self.step.order_id, &config.owner, step, config.lease);
        if let Err(err) = bounded(config.log_timeout, log).await {
            tracing::warn!(order = %self.step.order_id, %step, %err, "saga log append failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::{HttpResponse, InventoryStore, PortError, SagaLog};
    use crate::stack::testkit::{
        MemHttp, MemInventory, MemRows, MemSagaLog, RowState, json_request, oneshot,
    };
    use crate::stack::wire::ParticipantConfig;
    use crate::stack::{inventory, ordersvc, reports};
    use serde_json::json;

    struct Fixture {
        inventory: Arc<MemInventory>,
        orders: Arc<MemRows>,
        reports: Arc<MemRows>,
        log: Arc<MemSagaLog>,
        state: OrdersState,
        router: Router,
    }

    fn fixture(bugs: Bugs) -> Fixture {
        fixture_with(bugs, |log| log)
    }

    /// A fixture whose orchestrator `api-1` reaches the saga log through `wrap(log)`.
    fn fixture_with(bugs: Bugs, wrap: impl FnOnce(Arc<MemSagaLog>) -> Arc<dyn SagaLog>) -> Fixture {
        let inventory_store = Arc::new(MemInventory::with_stock(&[("widget", 10)]));
        let orders_store = Arc::new(MemRows::default());
        let reports_store = Arc::new(MemRows::default());
        let http = Arc::new(MemHttp::default());
        let pc = ParticipantConfig::default;
        http.route(
            "inventory:80",
            inventory::router(inventory::InventoryState::new(inventory_store.clone(), pc())),
        );
        http.route("ordersvc:80", ordersvc::router(ordersvc::OrderSvcState::new(orders_store.clone(), pc())));
        http.route("reports:80", reports::router(reports::ReportsState::new(reports_store.clone(), pc())));
        let log = Arc::new(MemSagaLog::default());
        let config = OrdersConfig { bugs, owner: "api-1".into(), ..OrdersConfig::default() };
        let state = OrdersState::new(http, wrap(log.clone()), config);
        let router = router(state.clone());
        Fixture {
            inventory: inventory_store,
            orders: orders_store,
            reports: reports_store,
            log,
            state,
            router,
        }
    }

    async fn order(f: &Fixture, key: &str, qty: u64) -> (u16, OrderResponse) {
        let body = json!({"key": key, "sku": "widget", "qty": qty});
        let resp: HttpResponse =
            oneshot(f.router.clone(), json_request(http::Method::POST, "/orders", Some(body))).await;
        (resp.status, serde_json::from_slice(&resp.body).expect("an OrderResponse"))
    }

    async fn trace(f: &Fixture, key: &str) -> Vec<String> {
        f.log.trace(key).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn happy_path_takes_stock_and_creates_order_and_report() {
        let f = fixture(Bugs::default());
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (201, "completed"));
        assert_eq!(f.inventory.on_hand("widget"), 7);
        assert_eq!(f.inventory.reserved("o1"), 3);
        assert_eq!(f.orders.state("o1"), Some(RowState::Live));
        assert_eq!(f.reports.state("o1"), Some(RowState::Live));
        assert_eq!(trace(&f, "o1").await, ["reserve ok", "order ok", "report ok"]);
        // A retry of a completed order completes again without taking more stock.
        assert_eq!(order(&f, "o1", 3).await.0, 201);
        assert_eq!(f.inventory.on_hand("widget"), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_stock_is_rejected_and_takes_nothing() {
        let f = fixture(Bugs::default());
        let (status, answer) = order(&f, "o1", 11).await;
        assert_eq!((status, answer.status.as_str()), (409, "rejected"));
        assert_eq!(f.inventory.on_hand("widget"), 10);
        assert_eq!(f.orders.create_calls(), 0);
    }

    /// The order step fails definitely: stock goes back, the order is tombstoned, and a client
    /// retry of the same key stays compensated without restocking twice.
    #[tokio::test(start_paused = true)]
    async fn failed_order_step_restores_stock_and_answers_compensated() {
        let f = fixture(Bugs::default());
        f.orders.fail_create(Some(PortError::Rejected("constraint".into())));
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (409, "compensated"));
        assert_eq!(f.inventory.on_hand("widget"), 10);
        assert_eq!(f.inventory.reserved("o1"), 0);
        assert_eq!(
            trace(&f, "o1").await,
            ["reserve ok", "order fail", "cancel-report ok", "cancel-order ok", "restock ok"]
        );
        f.orders.fail_create(None);
        let creates = f.orders.create_calls();
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (409, "compensated"));
        assert_eq!(answer.reason.as_deref(), Some("reserve released"));
        assert_eq!(f.inventory.on_hand("widget"), 10);
        assert_eq!(f.inventory.restocks("o1"), 1);
        assert_eq!(f.orders.create_calls(), creates, "a compensated order is never created on retry");
        assert_eq!(f.orders.state("o1"), Some(RowState::Cancelled));
    }

    /// Even when this run's order step failed definitely, restock waits until the order is
    /// confirmed cancelled: another run of the saga (a recovery, a client's retry) may have
    /// created it. Until then stock stays taken and the answer is 504.
    #[tokio::test(start_paused = true)]
    async fn restock_waits_until_the_order_is_confirmed_cancelled() {
        let f = fixture(Bugs::default());
        f.orders.fail_create(Some(PortError::ReadOnly("fenced".into())));
        f.orders.fail_cancel(Some(PortError::ReadOnly("fenced".into())));
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (504, "unknown"));
        assert_eq!(f.inventory.on_hand("widget"), 7);
        assert_eq!(f.inventory.restocks("o1"), 0);
    }

    /// The report step's outcome stays unknown (the row was written, the answer lost): the saga
    /// removes the report, cancels the order, then restocks.
    #[tokio::test(start_paused = true)]
    async fn failed_report_step_cancels_the_order_and_restocks() {
        let f = fixture(Bugs::default());
        f.reports.fail_create(Some(PortError::Unavailable("timeout".into())));
        // A key that needs escaping in the compensation's DELETE path.
        let key = "o/1 x";
        let (status, answer) = order(&f, key, 3).await;
        assert_eq!((status, answer.status.as_str()), (409, "compensated"));
        assert_eq!(f.orders.state(key), Some(RowState::Cancelled));
        assert_eq!(f.reports.state(key), Some(RowState::Cancelled));
        assert_eq!(f.inventory.on_hand("widget"), 10);
        assert_eq!(f.reports.create_calls(), OrdersConfig::default().step_attempts_max);
        let steps = trace(&f, key).await;
        assert_eq!(
            steps,
            ["reserve ok", "order ok", "report unknown", "cancel-report ok", "cancel-order ok", "restock ok"]
        );
        assert!(answer.reason.unwrap().contains("report unknown"));
    }

    /// If the order may exist and cannot be cancelled, stock stays taken and the answer is 504:
    /// restocking then could leave an order without its stock.
    #[tokio::test(start_paused = true)]
    async fn unconfirmed_cancel_never_restocks() {
        let f = fixture(Bugs::default());
        f.orders.fail_create(Some(PortError::Unavailable("timeout".into())));
        f.orders.fail_cancel(Some(PortError::Unavailable("timeout".into())));
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (504, "unknown"));
        assert_eq!(f.orders.state("o1"), Some(RowState::Live));
        assert_eq!(f.inventory.on_hand("widget"), 7);
    }

    /// The orchestrator that began a saga died after taking stock: once its lease runs out, a live
    /// orchestrator's recovery takes the saga over and compensates it, once.
    #[tokio::test(start_paused = true)]
    async fn a_saga_whose_orchestrator_died_is_taken_over_and_compensated() {
        let f = fixture(Bugs::default());
        let request = StepRequest { order_id: "o1".into(), sku: "widget".into(), qty: 3 };
        let lease = OrdersConfig::default().lease;
        f.log.begin(&request, "api-dead", lease).await.unwrap();
        f.inventory.reserve("o1", "widget", 3).await.unwrap();
        f.log.append("o1", "api-dead", "reserve ok", lease).await.unwrap();
        tokio::spawn(recover(f.state.clone()));
        sleep(lease - Duration::from_millis(500)).await;
        assert_eq!(f.log.holder("o1"), Some(("api-dead".into(), None)), "a live lease is not taken");
        sleep(Duration::from_secs(2)).await;
        assert_eq!(f.log.holder("o1"), Some(("api-1".into(), Some("compensated".into()))));
        let rows = (f.orders.state("o1"), f.reports.state("o1"));
        assert_eq!(rows, (Some(RowState::Cancelled), Some(RowState::Cancelled)), "tombstones");
        assert_eq!((f.inventory.on_hand("widget"), f.inventory.restocks("o1")), (10, 1));
        let steps = trace(&f, "o1").await;
        assert_eq!(
            steps,
            ["reserve ok", "resumed by api-1", "cancel-report ok", "cancel-order ok", "restock ok"]
        );
        sleep(lease * 3).await;
        assert_eq!(trace(&f, "o1").await.len(), 5, "a finished saga is never taken again");
    }

    /// A compensation that gives up at its deadline answers 504 and leaves the saga unfinished;
    /// once the participant is back, recovery finishes the compensation.
    #[tokio::test(start_paused = true)]
    async fn an_abandoned_compensation_is_finished_by_recovery() {
        let f = fixture(Bugs::default());
        f.orders.fail_create(Some(PortError::Unavailable("timeout".into())));
        f.orders.fail_cancel(Some(PortError::Unavailable("timeout".into())));
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (504, "unknown"));
        assert_eq!(f.log.holder("o1"), Some(("api-1".into(), None)), "left for recovery");
        f.orders.fail_create(None);
        f.orders.fail_cancel(None);
        tokio::spawn(recover(f.state.clone()));
        sleep(OrdersConfig::default().lease + Duration::from_secs(2)).await;
        assert_eq!(f.log.holder("o1"), Some(("api-1".into(), Some("compensated".into()))));
        assert_eq!(f.orders.state("o1"), Some(RowState::Cancelled));
        assert_eq!((f.inventory.on_hand("widget"), f.inventory.restocks("o1")), (10, 1));
    }

    /// A saga log that says another orchestrator took the saga over when this one finishes it.
    struct TakenOver(Arc<MemSagaLog>);

    #[async_trait::async_trait]
    impl SagaLog for TakenOver {
        async fn begin(&self, request: &StepRequest, owner: &str, lease: Duration) -> Result<(), PortError> {
            self.0.begin(request, owner, lease).await
        }
        async fn append(&self, id: &str, owner: &str, step: &str, lease: Duration) -> Result<(), PortError> {
            self.0.append(id, owner, step, lease).await
        }
        async fn finish(&self, _: &str, _: &str, _: &str) -> Result<bool, PortError> {
            Ok(false)
        }
        async fn claim(
            &self,
            owner: &str,
            lease: Duration,
            limit: u32,
        ) -> Result<Vec<StepRequest>, PortError> {
            self.0.claim(owner, lease, limit).await
        }
        async fn trace(&self, id: &str) -> Result<Vec<String>, PortError> {
            self.0.trace(id).await
        }
    }

    /// An orchestrator that lost its saga to a takeover answers 504 `unknown`, never a definite
    /// outcome the new holder could contradict.
    #[tokio::test(start_paused = true)]
    async fn a_saga_taken_over_answers_unknown() {
        let f = fixture_with(Bugs::default(), |log| Arc::new(TakenOver(log)));
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (504, "unknown"));
        assert!(answer.reason.unwrap().contains("another orchestrator took the saga over"));
    }

    /// A read-only inventory refuses definitely: nothing is taken, the order is rejected.
    #[tokio::test(start_paused = true)]
    async fn refused_reservation_is_rejected() {
        let f = fixture(Bugs::default());
        f.inventory.fail_reserve(Some(PortError::ReadOnly("standby".into())));
        let (status, answer) = order(&f, "o1", 3).await;
        assert_eq!((status, answer.status.as_str()), (409, "rejected"));
        assert_eq!(f.inventory.on_hand("widget"), 10);
    }

    /// Bug `skip_compensation`: the answer says compensated, but the stock is never put back.
    #[tokio::test(start_paused = true)]
    async fn bug_skip_compensation_leaks_stock() {
        for (bugs, on_hand) in
            [(Bugs::default(), 10), (Bugs { skip_compensation: true, ..Bugs::default() }, 7)]
        {
            let f = fixture(bugs);
            f.orders.fail_create(Some(PortError::Rejected("constraint".into())));
            let (status, answer) = order(&f, "o1", 3).await;
            assert_eq!((status, answer.status.as_str()), (409, "compensated"));
            assert_eq!(f.inventory.on_hand("widget"), on_hand);
        }
    }
}
