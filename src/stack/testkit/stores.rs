//! The saga participants' stores, the query store and the saga log, in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::stack::ports::{
    InventoryStore, OrderStore, PortError, QueryRow, QueryStore, ReportStore, Reserved, Restocked, SagaLog,
    SagaRequest,
};

#[derive(Clone, Debug)]
struct Reservation {
    sku: String,
    qty: u64,
    restocked: bool,
}

#[derive(Default)]
struct InventoryInner {
    stock: BTreeMap<String, u64>,
    reservations: BTreeMap<String, Reservation>,
    restocks: BTreeMap<String, u32>,
    fail_reserve: Option<PortError>,
    fail_restock: Option<PortError>,
}

/// Stock by SKU plus one reservation record per order id (kept after a restock).
#[derive(Default)]
pub struct MemInventory {
    inner: Mutex<InventoryInner>,
}

impl MemInventory {
    /// An inventory holding `stock`.
    pub fn with_stock(stock: &[(&str, u64)]) -> MemInventory {
        let inventory = MemInventory::default();
        inventory.lock().stock = stock.iter().map(|(s, q)| (s.to_string(), *q)).collect();
        inventory
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InventoryInner> {
        self.inner.lock().expect("inventory poisoned")
    }

    /// Make `reserve` fail with `err` (None: succeed again). Nothing is taken.
    pub fn fail_reserve(&self, err: Option<PortError>) {
        self.lock().fail_reserve = err;
    }

    /// Make `restock` fail with `err` (None: succeed again). Nothing is put back.
    pub fn fail_restock(&self, err: Option<PortError>) {
        self.lock().fail_restock = err;
    }

    /// On hand for one SKU.
    pub fn on_hand(&self, sku: &str) -> u64 {
        self.lock().stock.get(sku).copied().unwrap_or(0)
    }

    /// Stock currently taken by `order_id` (0 if none or restocked).
    pub fn reserved(&self, order_id: &str) -> u64 {
        self.lock().reservations.get(order_id).filter(|r| !r.restocked).map_or(0, |r| r.qty)
    }

    /// How many times `order_id` was restocked (more than one would be a bug).
    pub fn restocks(&self, order_id: &str) -> u32 {
        self.lock().restocks.get(order_id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl InventoryStore for MemInventory {
    async fn reserve(&self, order_id: &str, sku: &str, qty: u64) -> Result<Reserved, PortError> {
        let mut inner = self.lock();
        if let Some(err) = inner.fail_reserve.clone() {
            return Err(err);
        }
        match inner.reservations.get(order_id) {
            Some(r) if r.restocked => return Ok(Reserved::Released),
            Some(_) => return Ok(Reserved::AlreadyTaken),
            None => {}
        }
        let on_hand = inner.stock.get(sku).copied().unwrap_or(0);
        if on_hand < qty {
            return Ok(Reserved::OutOfStock);
        }
        inner.stock.insert(sku.to_string(), on_hand - qty);
        let reservation = Reservation { sku: sku.to_string(), qty, restocked: false };
        inner.reservations.insert(order_id.to_string(), reservation);
        Ok(Reserved::Taken)
    }

    async fn restock(&self, order_id: &str) -> Result<Restocked, PortError> {
        let mut inner = self.lock();
        if let Some(err) = inner.fail_restock.clone() {
            return Err(err);
        }
        let Some(reservation) = inner.reservations.get(order_id).cloned() else {
            // Tombstone: a reserve for this order arriving late must not take stock.
            let tombstone = Reservation { sku: String::new(), qty: 0, restocked: true };
            inner.reservations.insert(order_id.to_string(), tombstone);
            return Ok(Restocked::NothingTaken);
        };
        if reservation.restocked {
            return Ok(Restocked::AlreadyRestocked);
        }
        *inner.stock.entry(reservation.sku.clone()).or_default() += reservation.qty;
        inner.reservations.insert(order_id.to_string(), Reservation { restocked: true, ..reservation });
        *inner.restocks.entry(order_id.to_string()).or_default() += 1;
        Ok(Restocked::Restocked)
    }

    async fn stock(&self) -> Result<BTreeMap<String, u64>, PortError> {
        Ok(self.lock().stock.clone())
    }
}

/// A row's state in [`MemRows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    /// Created and live.
    Live,
    /// Cancelled (a tombstone: it cannot be created again).
    Cancelled,
}

#[derive(Default)]
struct RowsInner {
    rows: BTreeMap<String, RowState>,
    fail_create: Option<PortError>,
    fail_cancel: Option<PortError>,
    create_calls: u32,
}

/// Rows keyed by order id with tombstoning cancel: serves as the orders table and the reports
/// table (it implements both [`OrderStore`] and [`ReportStore`]).
#[derive(Default)]
pub struct MemRows {
    inner: Mutex<RowsInner>,
}

impl MemRows {
    fn lock(&self) -> std::sync::MutexGuard<'_, RowsInner> {
        self.inner.lock().expect("rows poisoned")
    }

    /// Make `create` fail with `err` (None: succeed again). With `Unavailable` the row is
    /// nevertheless written, like a commit whose answer was lost.
    pub fn fail_create(&self, err: Option<PortError>) {
        self.lock().fail_create = err;
    }

    /// Make `cancel` fail with `err` (None: succeed again). Nothing is cancelled.
    pub fn fail_cancel(&self, err: Option<PortError>) {
        self.lock().fail_cancel = err;
    }

    /// The row's state, if any.
    pub fn state(&self, order_id: &str) -> Option<RowState> {
        self.lock().rows.get(order_id).copied()
    }

    /// How many times `create` was called.
    pub fn create_calls(&self) -> u32 {
        self.lock().create_calls
    }

    fn create_row(&self, order_id: &str) -> Result<bool, PortError> {
        let mut inner = self.lock();
        inner.create_calls += 1;
        match inner.fail_create.clone() {
            Some(PortError::Unavailable(why)) => {
                inner.rows.entry(order_id.to_string()).or_insert(RowState::Live);
                return Err(PortError::Unavailable(why));
            }
            Some(err) => return Err(err),
            None => {}
        }
        match inner.rows.get(order_id) {
            Some(RowState::Live) => Ok(false),
            Some(RowState::Cancelled) => Err(PortError::Rejected(format!("{order_id} was cancelled"))),
            None => {
                inner.rows.insert(order_id.to_string(), RowState::Live);
                Ok(true)
            }
        }
    }

    fn cancel_row(&self, order_id: &str) -> Result<bool, PortError> {
        let mut inner = self.lock();
        if let Some(err) = inner.fail_cancel.clone() {
            return Err(err);
        }
        let was_live = inner.rows.get(order_id) == Some(&RowState::Live);
        inner.rows.insert(order_id.to_string(), RowState::Cancelled);
        Ok(was_live)
    }
}

#[async_trait]
impl OrderStore for MemRows {
    async fn create(&self, order_id: &str, _sku: &str, _qty: u64) -> Result<bool, PortError> {
        self.create_row(order_id)
    }

    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        self.cancel_row(order_id)
    }
}

#[async_trait]
impl ReportStore for MemRows {
    async fn create(&self, order_id: &str, _sku: &str, _qty: u64) -> Result<bool, PortError> {
        self.create_row(order_id)
    }

    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        self.cancel_row(order_id)
    }
}

#[derive(Default)]
struct QueriesInner {
    rows: BTreeMap<u64, QueryRow>,
    ids_by_key: BTreeMap<String, u64>,
    effects: BTreeMap<u64, u32>,
    fail_complete: u32,
}

/// Queries and their effect ledger.
#[derive(Default)]
pub struct MemQueries {
    inner: Mutex<QueriesInner>,
}

impl MemQueries {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueriesInner> {
        self.inner.lock().expect("queries poisoned")
    }

    /// Make the next `count` calls to `complete` answer `Unavailable` without committing.
    pub fn fail_complete(&self, count: u32) {
        self.lock().fail_complete = count;
    }

    /// How many times query `id`'s effect was applied.
    pub fn effects(&self, id: u64) -> u32 {
        self.lock().effects.get(&id).copied().unwrap_or(0)
    }

    /// A query row.
    pub fn row(&self, id: u64) -> Option<QueryRow> {
        self.lock().rows.get(&id).cloned()
    }
}

#[async_trait]
impl QueryStore for MemQueries {
    async fn create_pending(&self, key: &str, sku: &str) -> Result<(QueryRow, bool), PortError> {
        let mut inner = self.lock();
        if let Some(id) = inner.ids_by_key.get(key) {
            return Ok((inner.rows[id].clone(), true));
        }
        let id = inner.rows.len() as u64 + 1;
        let row = QueryRow { id, key: key.into(), sku: sku.into(), status: "pending".into(), result: None };
        inner.ids_by_key.insert(key.to_string(), id);
        inner.rows.insert(id, row.clone());
        Ok((row, false))
    }

    async fn get(&self, id: u64) -> Result<Option<QueryRow>, PortError> {
        Ok(self.lock().rows.get(&id).cloned())
    }

    async fn compute(&self, sku: &str) -> Result<String, PortError> {
        Ok(format!("{sku}: 42 sold"))
    }

    async fn complete(&self, id: u64, result: &str, once: bool) -> Result<bool, PortError> {
        let mut inner = self.lock();
        if inner.fail_complete > 0 {
            inner.fail_complete -= 1;
            return Err(PortError::Unavailable("injected".into()));
        }
        let Some(row) = inner.rows.get_mut(&id) else {
            return Err(PortError::Rejected(format!("no query {id}")));
        };
        if once && row.status == "completed" {
            return Ok(false);
        }
        row.status = "completed".into();
        row.result = Some(result.to_string());
        *inner.effects.entry(id).or_default() += 1;
        Ok(true)
    }
}

/// The saga log, its leases on tokio's clock.
#[derive(Default)]
pub struct MemSagaLog {
    inner: Mutex<MemSagaInner>,
}

#[derive(Default)]
struct MemSagaInner {
    traces: BTreeMap<String, Vec<String>>,
    sagas: BTreeMap<String, MemSaga>,
}

struct MemSaga {
    request: SagaRequest,
    owner: String,
    lease_until: tokio::time::Instant,
    outcome: Option<String>,
}

impl MemSagaInner {
    /// The unfinished saga `owner` holds.
    fn held(&mut self, order_id: &str, owner: &str) -> Option<&mut MemSaga> {
        self.sagas.get_mut(order_id).filter(|s| s.owner == owner && s.outcome.is_none())
    }
}

impl MemSagaLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemSagaInner> {
        self.inner.lock().expect("saga log poisoned")
    }

    /// Who holds an order's saga and its outcome, if it was begun.
    pub fn holder(&self, order_id: &str) -> Option<(String, Option<String>)> {
        self.lock().sagas.get(order_id).map(|s| (s.owner.clone(), s.outcome.clone()))
    }
}

#[async_trait]
impl SagaLog for MemSagaLog {
    async fn begin(&self, request: &SagaRequest, owner: &str, lease: Duration) -> Result<(), PortError> {
        let saga = MemSaga {
            request: request.clone(),
            owner: owner.into(),
            lease_until: tokio::time::Instant::now() + lease,
            outcome: None,
        };
        self.lock().sagas.insert(request.order_id.clone(), saga);
        Ok(())
    }

    async fn append(
        &self,
        order_id: &str,
        owner: &str,
        step: &str,
        lease: Duration,
    ) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.traces.entry(order_id.to_string()).or_default().push(step.to_string());
        if let Some(saga) = inner.held(order_id, owner) {
            saga.lease_until = tokio::time::Instant::now() + lease;
        }
        Ok(())
    }

    async fn finish(&self, order_id: &str, owner: &str, outcome: &str) -> Result<bool, PortError> {
        let mut inner = self.lock();
        let held = inner.held(order_id, owner);
        let finished = held.is_some();
        if let Some(saga) = held {
            saga.outcome = Some(outcome.into());
        }
        Ok(finished)
    }

    async fn claim(&self, owner: &str, lease: Duration, limit: u32) -> Result<Vec<SagaRequest>, PortError> {
        let now = tokio::time::Instant::now();
        let mut inner = self.lock();
        let claimable = inner.sagas.values_mut().filter(|s| s.outcome.is_none() && s.lease_until < now);
        Ok(claimable
            .take(limit as usize)
            .map(|saga| {
                saga.owner = owner.into();
                saga.lease_until = now + lease;
                saga.request.clone()
            })
            .collect())
    }

    async fn trace(&self, order_id: &str) -> Result<Vec<String>, PortError> {
        Ok(self.lock().traces.get(order_id).cloned().unwrap_or_default())
    }
}
