//! The store ports, the saga log and the admin port over the simulated database
//! ([`SimDb`]): each call is a framed request to a node's server or to `db-router` (`db.rs`),
//! bounded by the client's timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use http::Method;

use super::db::{Cluster, Read, ReadAnswer, now_ns};
use super::db_model::{Outcome, Role, Write};
use super::net::{SimHttp, from_postcard, to_postcard};
use crate::stack::ports::*;

/// Every store port, the saga log and the admin port, over the simulated network.
#[derive(Clone)]
pub struct SimDb {
    http: SimHttp,
    cluster: Cluster,
    timeout: Duration,
}

impl SimDb {
    /// Store clients with calls bounded by `timeout`.
    pub fn new(http: SimHttp, cluster: Cluster, timeout: Duration) -> SimDb {
        SimDb { http, cluster, timeout }
    }

    async fn call(&self, authority: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, PortError> {
        let request = HttpRequest {
            method: Method::POST,
            authority: authority.into(),
            path: path.into(),
            body: Some(body),
            headers: Vec::new(),
        };
        let response = self.http.send(request, self.timeout).await?;
        match response.status {
            200 => Ok(response.body),
            409 => Err(PortError::ReadOnly(String::from_utf8_lossy(&response.body).into_owned())),
            status => Err(PortError::Unavailable(format!("{authority} answered {status}"))),
        }
    }

    async fn write(&self, command: Write) -> Result<(Outcome, Lsn), PortError> {
        let body = self.call("db-router:80", "/write", to_postcard(&command)).await?;
        from_postcard(&body)
    }

    async fn read_at(&self, authority: &str, request: Read) -> Result<ReadAnswer, PortError> {
        let body = self.call(authority, "/read", to_postcard(&request)).await?;
        from_postcard(&body)
    }

    async fn read(&self, node: Option<DbNode>, request: Read) -> Result<ReadAnswer, PortError> {
        match node {
            Some(node) => self.read_at(&format!("{}:80", node.host()), request).await,
            None => self.read_at("db-router:80", request).await,
        }
    }

    /// `request` to `node`, bounded by `timeout`.
    async fn ask(&self, node: DbNode, request: Read, timeout: Duration) -> Result<ReadAnswer, PortError> {
        match tokio::time::timeout(timeout, self.read(Some(node), request)).await {
            Ok(answer) => answer,
            Err(_) => {
                Err(PortError::Unavailable(format!("{} did not answer the probe in time", node.host())))
            }
        }
    }

    /// The db-router's health check: does `node` take writes? Unlike [`DbAdmin::probe`], it
    /// leaves the node's report to the watchdog alone.
    pub async fn writable(&self, node: DbNode, timeout: Duration) -> Result<bool, PortError> {
        match self.ask(node, Read::Writable, timeout).await? {
            ReadAnswer::Writable(writable) => Ok(writable),
            _ => unexpected("writable"),
        }
    }
}

fn unexpected<T>(what: &str) -> Result<T, PortError> {
    Err(PortError::Unavailable(format!("unexpected answer to {what}")))
}

fn row(outcome: Outcome) -> Result<bool, PortError> {
    match outcome {
        Outcome::Row(Ok(changed)) => Ok(changed),
        Outcome::Row(Err(why)) => Err(PortError::Rejected(why)),
        _ => unexpected("a row write"),
    }
}

#[async_trait]
impl InvestStore for SimDb {
    async fn record(&self, investment: NewInvestment) -> Result<(Investment, bool), PortError> {
        match self.write(Write::Invest(investment)).await? {
            (Outcome::Invest(row, existed), _) => Ok((row, existed)),
            _ => unexpected("invest"),
        }
    }
    async fn applied_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        match self.read(Some(node), Read::AppliedLsn).await? {
            ReadAnswer::Lsn(lsn) => Ok(lsn),
            _ => unexpected("applied_lsn"),
        }
    }
    async fn history(&self, node: DbNode, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        match self.read(Some(node), Read::History { min_lsn, limit }).await? {
            ReadAnswer::History(page) => Ok(page),
            _ => unexpected("history"),
        }
    }
    async fn history_from_writer(&self, min_lsn: Lsn, limit: u32) -> Result<HistoryPage, PortError> {
        match self.read(None, Read::History { min_lsn, limit }).await? {
            ReadAnswer::History(page) => Ok(page),
            _ => unexpected("history"),
        }
    }
}

#[async_trait]
impl InventoryStore for SimDb {
    async fn reserve(&self, order_id: &str, sku: &str, qty: u64) -> Result<Reserved, PortError> {
        match self.write(Write::Reserve { order_id: order_id.into(), sku: sku.into(), qty }).await?.0 {
            Outcome::Reserved(r) => Ok(r),
            _ => unexpected("reserve"),
        }
    }
    async fn restock(&self, order_id: &str) -> Result<Restocked, PortError> {
        match self.write(Write::Restock { order_id: order_id.into() }).await?.0 {
            Outcome::Restocked(r) => Ok(r),
            _ => unexpected("restock"),
        }
    }
    async fn stock(&self) -> Result<BTreeMap<String, u64>, PortError> {
        match self.read(None, Read::Stock).await? {
            ReadAnswer::Stock(stock) => Ok(stock),
            _ => unexpected("stock"),
        }
    }
}

#[async_trait]
impl OrderStore for SimDb {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        row(self.write(Write::OrderCreate { order_id: order_id.into(), sku: sku.into(), qty }).await?.0)
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        row(self.write(Write::OrderCancel { order_id: order_id.into() }).await?.0)
    }
}

#[async_trait]
impl ReportStore for SimDb {
    async fn create(&self, order_id: &str, sku: &str, qty: u64) -> Result<bool, PortError> {
        row(self.write(Write::ReportCreate { order_id: order_id.into(), sku: sku.into(), qty }).await?.0)
    }
    async fn cancel(&self, order_id: &str) -> Result<bool, PortError> {
        row(self.write(Write::ReportCancel { order_id: order_id.into() }).await?.0)
    }
}

/// Simulated time `lease` from now, ns.
fn lease_until(lease: Duration) -> u64 {
    now_ns() + lease.as_nanos() as u64
}

#[async_trait]
impl SagaLog for SimDb {
    async fn begin(&self, request: &SagaRequest, owner: &str, lease: Duration) -> Result<(), PortError> {
        let write = Write::SagaBegin {
            request: request.clone(),
            owner: owner.into(),
            lease_until_ns: lease_until(lease),
        };
        self.write(write).await.map(|_| ())
    }
    async fn append(
        &self,
        order_id: &str,
        owner: &str,
        step: &str,
        lease: Duration,
    ) -> Result<(), PortError> {
        let write = Write::SagaAppend {
            order_id: order_id.into(),
            owner: owner.into(),
            step: step.into(),
            lease_until_ns: lease_until(lease),
        };
        self.write(write).await.map(|_| ())
    }
    async fn finish(&self, order_id: &str, owner: &str, outcome: &str) -> Result<bool, PortError> {
        let write =
            Write::SagaFinish { order_id: order_id.into(), owner: owner.into(), outcome: outcome.into() };
        match self.write(write).await?.0 {
            Outcome::Completed(finished) => Ok(finished),
            _ => unexpected("finish"),
        }
    }
    async fn claim(&self, owner: &str, lease: Duration, limit: u32) -> Result<Vec<SagaRequest>, PortError> {
        // Look before writing: a claim with nothing to take adds nothing to the WAL.
        match self.read(None, Read::SagaClaimable { now_ns: now_ns() }).await? {
            ReadAnswer::Count(0) => return Ok(Vec::new()),
            ReadAnswer::Count(_) => {}
            _ => return unexpected("claimable"),
        }
        let write = Write::SagaClaim {
            owner: owner.into(),
            now_ns: now_ns(),
            lease_until_ns: lease_until(lease),
            limit,
        };
        match self.write(write).await?.0 {
            Outcome::Claimed(claimed) => Ok(claimed),
            _ => unexpected("claim"),
        }
    }
    async fn trace(&self, order_id: &str) -> Result<Vec<String>, PortError> {
        match self.read(None, Read::SagaTrace { order_id: order_id.into() }).await? {
            ReadAnswer::Trace(trace) => Ok(trace),
            _ => unexpected("trace"),
        }
    }
}

#[async_trait]
impl QueryStore for SimDb {
    async fn create_pending(&self, key: &str, sku: &str) -> Result<(QueryRow, bool), PortError> {
        match self.write(Write::QueryCreate { key: key.into(), sku: sku.into() }).await?.0 {
            Outcome::Query(row, existed) => Ok((row, existed)),
            _ => unexpected("create_pending"),
        }
    }
    async fn get(&self, id: u64) -> Result<Option<QueryRow>, PortError> {
        match self.read(None, Read::QueryGet { id }).await? {
            ReadAnswer::Query(row) => Ok(row),
            _ => unexpected("get"),
        }
    }
    async fn compute(&self, sku: &str) -> Result<String, PortError> {
        match self.read(None, Read::QueryCompute { sku: sku.into() }).await? {
            ReadAnswer::Text(text) => Ok(text),
            _ => unexpected("compute"),
        }
    }
    async fn complete(&self, id: u64, result: &str, once: bool) -> Result<bool, PortError> {
        match self.write(Write::QueryComplete { id, result: result.into(), once }).await?.0 {
            Outcome::Completed(applied) => Ok(applied),
            _ => unexpected("complete"),
        }
    }
}

#[async_trait]
impl FileStore for SimDb {
    async fn create(&self, file: &NewFile) -> Result<(FileRow, bool), PortError> {
        match self.write(Write::FileCreate(file.clone())).await?.0 {
            Outcome::File(row, existed) => Ok((row, existed)),
            _ => unexpected("create file"),
        }
    }
    async fn get(&self, id: u64) -> Result<Option<FileRow>, PortError> {
        match self.read(None, Read::FileGet { id }).await? {
            ReadAnswer::File(row) => Ok(row),
            _ => unexpected("get file"),
        }
    }
    async fn set_thumbnail(&self, id: u64, thumbnail_key: &str) -> Result<bool, PortError> {
        row(self.write(Write::FileThumbnail { id, thumbnail: thumbnail_key.into() }).await?.0)
    }
    async fn audit(&self, id: u64, event: &str, once: bool) -> Result<bool, PortError> {
        match self.write(Write::FileAudit { id, event: event.into(), once }).await?.0 {
            Outcome::Completed(applied) => Ok(applied),
            _ => unexpected("audit"),
        }
    }
}

#[async_trait]
impl DbAdmin for SimDb {
    async fn probe(&self, node: DbNode, timeout: Duration) -> Result<NodeStatus, PortError> {
        match self.ask(node, Read::Probe, timeout).await? {
            ReadAnswer::Status(status) => Ok(status),
            _ => unexpected("probe"),
        }
    }
    async fn promote(&self, node: DbNode) -> Result<(), PortError> {
        self.call(&format!("{}:80", node.host()), "/promote", Vec::new()).await.map(|_| ())
    }
    async fn fence(&self, node: DbNode) -> Result<(), PortError> {
        // Out-of-band, like a STONITH switch: works whether the node is up, frozen or dead.
        let mut cluster = self.cluster.lock().expect("cluster lock");
        cluster.nodes.get_mut(&node).expect("node exists").fenced = true;
        cluster.changed.notify_waiters();
        tracing::info!(node = node.host(), "fenced");
        Ok(())
    }
    async fn set_writer(&self, node: DbNode) -> Result<(), PortError> {
        self.call("db-router:80", "/set_writer", to_postcard(&node)).await.map(|_| ())
    }
    /// A no-op: the simulated primary already runs Patroni's non-strict mode by itself. It
    /// commits alone only once a probe answer has told the watchdog its standby is not
    /// synchronous (`Node::may_acknowledge`), which is the order this call enforces on a real
    /// primary (the watchdog calls it after recording that answer). Obeying the call instead
    /// would add a network round trip per decision and change every `sync` run's history.
    async fn release_sync(&self, _primary: DbNode) -> Result<(), PortError> {
        Ok(())
    }
    /// A no-op, as [`DbAdmin::release_sync`] here: the simulated primary waits for its standby
    /// again by itself once it streams and has every commit acknowledged alone.
    async fn require_sync(&self, _primary: DbNode) -> Result<(), PortError> {
        Ok(())
    }
    async fn wal_lsn(&self, node: DbNode) -> Result<Lsn, PortError> {
        match self.read(Some(node), Read::AppliedLsn).await? {
            ReadAnswer::Lsn(lsn) => Ok(lsn),
            _ => unexpected("wal_lsn"),
        }
    }
    /// Out-of-band like [`DbAdmin::fence`]; refused for an old primary not yet rewound.
    async fn unfence(&self, node: DbNode) -> Result<(), PortError> {
        let mut cluster = self.cluster.lock().expect("cluster lock");
        // A fenced old primary beside a live one has not been rewound yet: unfencing it would
        // let both take writes. (Lifting a switchover's own fence, with no other primary, is fine.)
        if cluster.nodes[&node].role == Role::Primary && cluster.nodes[&node.peer()].writable() {
            return Err(PortError::Rejected(format!("{} has not rejoined as a standby yet", node.host())));
        }
        cluster.nodes.get_mut(&node).expect("node exists").fenced = false;
        cluster.changed.notify_waiters();
        tracing::info!(node = node.host(), "unfenced");
        Ok(())
    }
}
