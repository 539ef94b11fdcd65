//! The simulated message broker: a durable, bounded queue (its state lives outside the host, so a
//! broker crash loses nothing that was confirmed), publisher confirms, reject-publish when full,
//! and consumers with a prefetch window and manual acks.
//!
//! Consumers long-poll `POST /consume` over the simulated network. A consumer that stops polling
//! for [`LEASE`] (its host crashed, or the network cut it off) is treated as a dead connection:
//! every message it held unacknowledged goes back to the head of the queue, marked redelivered —
//! RabbitMQ's behaviour when a channel closes with unacked deliveries.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use http::Method;
use serde::{Deserialize, Serialize};

use super::db::now_ns;
use super::net::SimHttp;
use crate::stack::ports::*;

/// How long a silent consumer keeps its unacknowledged messages.
pub const LEASE: Duration = Duration::from_secs(2);
/// How long one `consume` call waits for a message before answering empty.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// How often waiting calls and the lease sweeper look again.
const TICK: Duration = Duration::from_millis(5);

/// One consumer's connection.
#[derive(Debug, Default)]
struct Connection {
    last_seen_ns: u64,
    unacked: BTreeMap<u64, QueryMessage>,
}

/// The queue's durable state.
#[derive(Debug, Default)]
pub struct BrokerState {
    /// Messages ready for delivery, with their redelivered flag.
    ready: VecDeque<(QueryMessage, bool)>,
    connections: BTreeMap<String, Connection>,
    next_tag: u64,
    /// Ready messages the queue holds before rejecting publishes.
    pub capacity: usize,
    /// Publishes rejected because the queue was full.
    pub rejected_count: u64,
}

/// Shared handle to the broker's state.
pub type Broker = Arc<Mutex<BrokerState>>;

/// A new broker with `capacity`.
pub fn broker(capacity: usize) -> Broker {
    Arc::new(Mutex::new(BrokerState { capacity, ..BrokerState::default() }))
}

impl BrokerState {
    /// Return a dead connection's unacked messages to the head of the queue, redelivered.
    fn drop_connection(&mut self, id: &str) {
        if let Some(connection) = self.connections.remove(id) {
            for message in connection.unacked.into_values().rev() {
                self.ready.push_front((message, true));
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ConsumeRequest {
    consumer: String,
    prefetch: u32,
}

#[derive(Serialize, Deserialize)]
struct AckRequest {
    consumer: String,
    tag: u64,
}

/// The broker host: on (re)start every connection is gone, so unacked messages are requeued.
pub async fn broker_host(state: Broker) -> turmoil::Result {
    {
        let mut broker = state.lock().expect("broker lock");
        let ids: Vec<String> = broker.connections.keys().cloned().collect();
        for id in ids {
            broker.drop_connection(&id);
        }
    }
    crate::stack::spawn(sweep_leases(state.clone()));
    let router = Router::new()
        .route("/publish", post(publish))
        .route("/consume", post(consume))
        .route("/ack", post(ack))
        .with_state(state);
    super::net::serve(router).await
}

async fn sweep_leases(state: Broker) {
    loop {
        tokio::time::sleep(LEASE / 4).await;
        let now = now_ns();
        let mut broker = state.lock().expect("broker lock");
        let expired: Vec<String> = broker
            .connections
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_seen_ns) > LEASE.as_nanos() as u64)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(consumer = id, "consumer lease expired: requeueing its unacked messages");
            broker.drop_connection(&id);
        }
    }
}

async fn publish(State(state): State<Broker>, Json(message): Json<QueryMessage>) -> StatusCode {
    let mut broker = state.lock().expect("broker lock");
    if broker.ready.len() >= broker.capacity {
        broker.rejected_count += 1;
        return StatusCode::INSUFFICIENT_STORAGE;
    }
    broker.ready.push_back((message, false));
    StatusCode::OK
}

async fn consume(State(state): State<Broker>, Json(request): Json<ConsumeRequest>) -> Json<Vec<Delivery>> {
    let deadline = tokio::time::Instant::now() + POLL_WAIT;
    loop {
        {
            let mut broker = state.lock().expect("broker lock");
            let broker = &mut *broker;
            let connection = broker.connections.entry(request.consumer.clone()).or_default();
            connection.last_seen_ns = now_ns();
            let room = (request.prefetch as usize).saturating_sub(connection.unacked.len());
            let mut deliveries = Vec::new();
            while deliveries.len() < room {
                let Some((message, redelivered)) = broker.ready.pop_front() else { break };
                broker.next_tag += 1;
                connection.unacked.insert(broker.next_tag, message.clone());
                deliveries.push(Delivery { tag: broker.next_tag, redelivered, message });
            }
            if !deliveries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Json(deliveries);
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn ack(State(state): State<Broker>, Json(request): Json<AckRequest>) -> StatusCode {
    let mut broker = state.lock().expect("broker lock");
    let Some(connection) = broker.connections.get_mut(&request.consumer) else {
        return StatusCode::GONE;
    };
    connection.last_seen_ns = now_ns();
    match connection.unacked.remove(&request.tag) {
        Some(_) => StatusCode::OK,
        None => StatusCode::GONE,
    }
}

/// The publishing and consuming ports over the simulated network.
#[derive(Clone)]
pub struct SimBroker {
    http: SimHttp,
    /// Names consumers uniquely within the run (deterministic: one counter per host process).
    consumer_ids: Arc<AtomicU64>,
    host: String,
}

impl SimBroker {
    /// Ports for the services on `host`.
    pub fn new(http: SimHttp, host: &str) -> SimBroker {
        SimBroker { http, consumer_ids: Arc::new(AtomicU64::new(0)), host: host.into() }
    }

    async fn post(&self, path: &str, body: Vec<u8>, timeout: Duration) -> Result<HttpResponse, PortError> {
        let request = HttpRequest {
            method: Method::POST,
            authority: "broker:80".into(),
            path: path.into(),
            body: Some(body),
            headers: Vec::new(),
        };
        self.http.send(request, timeout).await
    }
}

#[async_trait]
impl Publisher for SimBroker {
    async fn publish(&self, message: QueryMessage, confirm_timeout: Duration) -> Result<(), PublishError> {
        let body = serde_json::to_vec(&message).expect("messages serialise");
        match self.post("/publish", body, confirm_timeout).await {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) if r.status == 507 => Err(PublishError::Full),
            Ok(r) => Err(PublishError::Unconfirmed(format!("broker answered {}", r.status))),
            Err(e) => Err(PublishError::Unconfirmed(e.to_string())),
        }
    }
}

/// One consumer connection.
struct SimConsumer {
    broker: SimBroker,
    id: String,
    prefetch: u32,
    buffer: VecDeque<Delivery>,
}

#[async_trait]
impl Consumer for SimConsumer {
    async fn next(&mut self) -> Result<Delivery, PortError> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return Ok(delivery);
            }
            let request = ConsumeRequest { consumer: self.id.clone(), prefetch: self.prefetch };
            let body = serde_json::to_vec(&request).expect("serialises");
            let response = self.broker.post("/consume", body, POLL_WAIT + Duration::from_millis(500)).await?;
            if response.status != 200 {
                return Err(PortError::Unavailable(format!("consume answered {}", response.status)));
            }
            let deliveries: Vec<Delivery> =
                serde_json::from_slice(&response.body).map_err(|e| PortError::Unavailable(e.to_string()))?;
            self.buffer.extend(deliveries);
        }
    }

    async fn ack(&mut self, tag: u64) -> Result<(), PortError> {
        let body = serde_json::to_vec(&AckRequest { consumer: self.id.clone(), tag }).expect("serialises");
        let response = self.broker.post("/ack", body, Duration::from_millis(500)).await?;
        match response.status {
            200 => Ok(()),
            status => Err(PortError::Unavailable(format!("ack answered {status}: the connection is gone"))),
        }
    }
}

#[async_trait]
impl ConsumerFactory for SimBroker {
    async fn connect(&self, prefetch: u32) -> Result<Box<dyn Consumer>, PortError> {
        let n = self.consumer_ids.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}#{n}", self.host);
        Ok(Box::new(SimConsumer { broker: self.clone(), id, prefetch, buffer: VecDeque::new() }))
    }
}
