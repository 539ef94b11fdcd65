//! The simulated message broker: durable, bounded queues (their state lives outside the host, so
//! a broker crash loses nothing that was confirmed) — the query queue, and one queue per files
//! subscriber group bound to the `files` fanout exchange — publisher confirms, reject-publish
//! when full (a fanout publish is nacked if any bound queue was full; the others keep their
//! copy, as RabbitMQ does), and consumers of one queue each with a prefetch window and manual
//! acks.
//!
//! A consumer opens a connection with `POST /connect`, and the broker names it: the name comes
//! from a counter in the broker's durable state, so no two connections of a run ever share one —
//! as an AMQP channel belongs to one TCP connection, never to the host that opened it. It then
//! long-polls `POST /consume` and acks with `POST /ack` under that name. A connection that stops
//! polling for [`LEASE`] (its host crashed, or the network cut it off) is treated as dead — the
//! heartbeat timeout of a real broker: every message it held unacknowledged goes back to the head
//! of the queue, marked redelivered (RabbitMQ's behaviour when a channel closes with unacked
//! deliveries), and the name is answered 410 Gone from then on, so its owner reconnects.
//!
//! Issue 18: consumers used to name themselves `host#n` with a counter that restarted at every
//! boot of their host. A worker that crashed and came back inside the lease reconnected under its
//! dead connection's name, inherited its unacknowledged messages (whose tags it never knew, and
//! which filled its prefetch window) and kept that lease alive by polling: those messages were
//! never delivered again, and their queries stayed pending for ever.

use std::collections::{BTreeMap, VecDeque};
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
/// How long a consumer waits for the broker to open its connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A message as the broker holds it: the publisher's JSON, decoded by the consumer.
type Payload = serde_json::Value;

/// The query queue's name.
pub const QUERIES: &str = "queries";

/// One consumer's connection, consuming one queue.
#[derive(Debug, Default)]
struct Connection {
    queue: String,
    last_seen_ns: u64,
    unacked: BTreeMap<u64, Payload>,
}

/// The broker's durable state: its queues (the query queue and one per subscriber group of the
/// files' fanout exchange), each bounded by `capacity`.
#[derive(Debug, Default)]
pub struct BrokerState {
    /// Messages ready for delivery per queue, with their redelivered flag.
    queues: BTreeMap<String, VecDeque<(Payload, bool)>>,
    connections: BTreeMap<String, Connection>,
    /// Connections opened so far in the run; names the next one. Never reset, not even by a
    /// broker restart, so a name is never reused.
    connections_opened_count: u64,
    next_tag: u64,
    /// Ready messages each queue holds before rejecting publishes.
    pub capacity: usize,
    /// Publishes rejected because a queue was full.
    pub rejected_count: u64,
}

/// Shared handle to the broker's state.
pub type Broker = Arc<Mutex<BrokerState>>;

/// A new broker with `capacity` per queue.
pub fn broker(capacity: usize) -> Broker {
    Arc::new(Mutex::new(BrokerState { capacity, ..BrokerState::default() }))
}

/// The queues a publish to `to` reaches: the fanout exchange's bound queues, or the queue itself.
fn routes(to: &str) -> Vec<String> {
    if to == FILES_EXCHANGE {
        SubscriberGroup::ALL.iter().map(|g| g.queue()).collect()
    } else {
        vec![to.to_owned()]
    }
}

impl BrokerState {
    /// Open a connection consuming `queue` for a consumer on `host`, under a name no other
    /// connection had.
    fn open_connection(&mut self, host: &str, queue: &str) -> String {
        self.connections_opened_count += 1;
        let id = format!("{host}#{}", self.connections_opened_count);
        let fresh = Connection { queue: queue.into(), last_seen_ns: now_ns(), unacked: BTreeMap::new() };
        let previous = self.connections.insert(id.clone(), fresh);
        assert!(previous.is_none(), "broker: connection name {id} reused");
        id
    }

    /// Return a dead connection's unacked messages to the head of its queue, redelivered.
    fn drop_connection(&mut self, id: &str) {
        if let Some(connection) = self.connections.remove(id) {
            let ready = self.queues.entry(connection.queue).or_default();
            for message in connection.unacked.into_values().rev() {
                ready.push_front((message, true));
            }
        }
    }

    /// Queue `message` on every queue `to` routes to that has room; false (a nack) if any was
    /// full — as RabbitMQ's `reject-publish`, the queues with room keep their copy.
    fn publish(&mut self, to: &str, message: Payload) -> bool {
        let mut confirmed = true;
        for queue in routes(to) {
            let ready = self.queues.entry(queue).or_default();
            if ready.len() >= self.capacity {
                confirmed = false;
            } else {
                ready.push_back((message.clone(), false));
            }
        }
        if !confirmed {
            self.rejected_count += 1;
        }
        confirmed
    }

    /// Messages ready on `queue`.
    #[cfg(test)]
    pub fn ready_count(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, VecDeque::len)
    }
}

#[derive(Serialize, Deserialize)]
struct PublishRequest {
    /// A queue, or the fanout exchange.
    to: String,
    message: Payload,
}

#[derive(Serialize, Deserialize)]
struct ConnectRequest {
    /// The consumer's host, for the connection's name (logs only).
    host: String,
    /// The queue it consumes.
    queue: String,
}

#[derive(Serialize, Deserialize)]
struct Connected {
    consumer: String,
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
        .route("/connect", post(connect))
        .route("/consume", post(consume))
        .route("/ack", post(ack))
        .with_state(state);
    super::net::serve_framed(router).await
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

async fn publish(State(state): State<Broker>, Json(request): Json<PublishRequest>) -> StatusCode {
    match state.lock().expect("broker lock").publish(&request.to, request.message) {
        true => StatusCode::OK,
        false => StatusCode::INSUFFICIENT_STORAGE,
    }
}

async fn connect(State(state): State<Broker>, Json(request): Json<ConnectRequest>) -> Json<Connected> {
    let consumer = state.lock().expect("broker lock").open_connection(&request.host, &request.queue);
    tracing::debug!(consumer, queue = request.queue, "consumer connected");
    Json(Connected { consumer })
}

/// Deliveries for a live connection, waiting up to [`POLL_WAIT`] for one; 410 Gone for a
/// connection the broker closed (its lease lapsed, or the broker restarted).
async fn consume(
    State(state): State<Broker>,
    Json(request): Json<ConsumeRequest>,
) -> Result<Json<Vec<Delivery<Payload>>>, StatusCode> {
    let deadline = tokio::time::Instant::now() + POLL_WAIT;
    loop {
        {
            let mut broker = state.lock().expect("broker lock");
            let broker = &mut *broker;
            let Some(connection) = broker.connections.get_mut(&request.consumer) else {
                return Err(StatusCode::GONE);
            };
            connection.last_seen_ns = now_ns();
            let room = (request.prefetch as usize).saturating_sub(connection.unacked.len());
            let ready = broker.queues.entry(connection.queue.clone()).or_default();
            let mut deliveries = Vec::new();
            while deliveries.len() < room {
                let Some((message, redelivered)) = ready.pop_front() else { break };
                broker.next_tag += 1;
                connection.unacked.insert(broker.next_tag, message.clone());
                deliveries.push(Delivery { tag: broker.next_tag, redelivered, message });
            }
            if !deliveries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Json(deliveries));
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

/// The publishing and consuming ports over the simulated network, for one destination: the
/// query queue ([`SimBroker::new`]), the files' fanout exchange ([`SimBroker::files`]) or a
/// subscriber group's queue ([`SimBroker::group`]).
#[derive(Clone)]
pub struct SimBroker {
    http: SimHttp,
    host: String,
    /// Where publishes go and what consumers consume.
    route: String,
}

impl SimBroker {
    /// The query queue's ports for the services on `host`.
    pub fn new(http: SimHttp, host: &str) -> SimBroker {
        SimBroker { http, host: host.into(), route: QUERIES.into() }
    }

    /// Publishing `file.uploaded` events on the fanout exchange, from `host`.
    pub fn files(http: SimHttp, host: &str) -> SimBroker {
        SimBroker { http, host: host.into(), route: FILES_EXCHANGE.into() }
    }

    /// Consuming `group`'s queue, from `host`.
    pub fn group(http: SimHttp, host: &str, group: SubscriberGroup) -> SimBroker {
        SimBroker { http, host: host.into(), route: group.queue() }
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
impl<M: Message> Publisher<M> for SimBroker {
    async fn publish(&self, message: M, confirm_timeout: Duration) -> Result<(), PublishError> {
        let message = serde_json::to_value(&message).expect("messages serialise");
        let body =
            serde_json::to_vec(&PublishRequest { to: self.route.clone(), message }).expect("serialises");
        match self.post("/publish", body, confirm_timeout).await {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) if r.status == 507 => Err(PublishError::Full),
            Ok(r) => Err(PublishError::Unconfirmed(format!("broker answered {}", r.status))),
            Err(e) => Err(PublishError::Unconfirmed(e.to_string())),
        }
    }
}

/// One consumer connection.
struct SimConsumer<M> {
    broker: SimBroker,
    id: String,
    prefetch: u32,
    buffer: VecDeque<Delivery<M>>,
}

#[async_trait]
impl<M: Message> Consumer<M> for SimConsumer<M> {
    async fn next(&mut self) -> Result<Delivery<M>, PortError> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return Ok(delivery);
            }
            let request = ConsumeRequest { consumer: self.id.clone(), prefetch: self.prefetch };
            let body = serde_json::to_vec(&request).expect("serialises");
            let response = self.broker.post("/consume", body, POLL_WAIT + Duration::from_millis(500)).await?;
            match response.status {
                200 => {}
                410 => {
                    return Err(PortError::Unavailable(format!(
                        "the broker closed connection {} (its lease lapsed, or the broker restarted)",
                        self.id
                    )));
                }
                status => return Err(PortError::Unavailable(format!("consume answered {status}"))),
            }
            let bad = |e: serde_json::Error| PortError::Unavailable(e.to_string());
            let deliveries: Vec<Delivery<Payload>> = serde_json::from_slice(&response.body).map_err(bad)?;
            for Delivery { tag, redelivered, message } in deliveries {
                let message = serde_json::from_value(message).map_err(bad)?;
                self.buffer.push_back(Delivery { tag, redelivered, message });
            }
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
impl<M: Message> ConsumerFactory<M> for SimBroker {
    async fn connect(&self, prefetch: u32) -> Result<Box<dyn Consumer<M>>, PortError> {
        let request = ConnectRequest { host: self.host.clone(), queue: self.route.clone() };
        let body = serde_json::to_vec(&request).expect("serialises");
        let response = self.post("/connect", body, CONNECT_TIMEOUT).await?;
        if response.status != 200 {
            return Err(PortError::Unavailable(format!("connect answered {}", response.status)));
        }
        let Connected { consumer: id } =
            serde_json::from_slice(&response.body).map_err(|e| PortError::Unavailable(e.to_string()))?;
        Ok(Box::new(SimConsumer { broker: self.clone(), id, prefetch, buffer: VecDeque::new() }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::sim::net::NetCounters;

    fn message(id: u64) -> QueryMessage {
        QueryMessage { id, sku: "widget".into() }
    }

    /// Issue 18: a consumer host that crashes holding unacknowledged messages and comes back well
    /// inside the lease must not keep them stranded. Method: five messages are queued; the worker
    /// host's first boot takes all five (prefetch 5) and never acks; it is crashed and restarted
    /// 100 ms later, and its second boot consumes and acks whatever it is given. Every message must
    /// reach the second boot, marked redelivered, within a lease and a margin. Before the fix the
    /// restarted host reconnected under its old consumer id, inherited the dead connection's five
    /// unacked messages (so no room under its prefetch), kept that lease alive by polling, and got
    /// nothing for ever.
    #[test]
    fn a_consumer_restarted_inside_the_lease_gets_the_dead_connections_messages() {
        let state = broker(100);
        for id in 1..=5 {
            assert!(state.lock().unwrap().publish(QUERIES, serde_json::to_value(message(id)).unwrap()));
        }
        let mut sim = turmoil::Builder::new()
            .rng_seed(1)
            .epoch(std::time::UNIX_EPOCH)
            .tick_duration(Duration::from_millis(2))
            .min_message_latency(Duration::from_micros(200))
            .max_message_latency(Duration::from_millis(2))
            .simulation_duration(LEASE * 4)
            .build();
        let broker_state = state.clone();
        sim.host("broker", move || broker_host(broker_state.clone()));
        let boots = Arc::new(AtomicU32::new(0));
        let redelivered: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
        let (boots_in, seen) = (boots.clone(), redelivered.clone());
        sim.host("worker", move || {
            let boot = boots_in.fetch_add(1, Ordering::Relaxed);
            let seen = seen.clone();
            let consumers = SimBroker::new(SimHttp::new(Arc::new(NetCounters::default())), "worker");
            async move {
                let mut consumer = ConsumerFactory::<QueryMessage>::connect(&consumers, 5).await?;
                loop {
                    let delivery = consumer.next().await?;
                    if boot > 0 {
                        seen.lock().unwrap().push((delivery.message.id, delivery.redelivered));
                        consumer.ack(delivery.tag).await?;
                    }
                }
            }
        });
        let mut bounced = false;
        // No client host, so `step`'s "done" means nothing here: run until the deadline.
        while sim.elapsed() < LEASE * 3 {
            sim.step().unwrap();
            let now = sim.elapsed();
            if !bounced && now >= Duration::from_millis(300) {
                assert_eq!(state.lock().unwrap().ready_count(QUERIES), 0, "the first boot took all five");
                sim.crash("worker");
                bounced = true;
            }
            if bounced && boots.load(Ordering::Relaxed) == 1 && now >= Duration::from_millis(400) {
                sim.bounce("worker");
            }
            if redelivered.lock().unwrap().len() == 5 {
                break;
            }
        }
        assert_eq!(boots.load(Ordering::Relaxed), 2, "the worker host restarted once");
        let seen = redelivered.lock().unwrap().clone();
        assert_eq!(seen, (1..=5).map(|id| (id, true)).collect::<Vec<_>>(), "at {:?}", sim.elapsed());
        assert!(sim.elapsed() <= LEASE + Duration::from_secs(1), "redelivered after {:?}", sim.elapsed());
    }
}
