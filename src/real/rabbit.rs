//! RabbitMQ through lapin: the query queue as the gateway publishes to it and the workers
//! consume from it, and the files' fanout exchange as the api publishes `file.uploaded` to it and
//! each subscriber group consumes its own queue. One implementation, generic over the message,
//! serves both; what differs is the route: a queue, or a [`Fanout`] exchange and a group's queue.
//!
//! - Every queue is durable and bounded: `x-max-length` with `x-overflow: reject-publish`, so a
//!   full queue nacks the publish ([`PublishError::Full`]), it never drops a queued message. For
//!   the fanout, RabbitMQ nacks when any bound queue rejected: the other groups' queues may hold
//!   the event, so a publisher that retries can deliver it to them twice (subscribers are
//!   idempotent on the file).
//! - The fanout exchange is durable, and every connection to it — publisher or consumer —
//!   declares the exchange and *every* group's queue, bound: RabbitMQ confirms a publish that no
//!   queue is bound to and drops it, so a group whose consumers have not connected yet must
//!   still have its queue.
//! - Publishes are persistent and wait for the publisher confirm (`confirm_select`); no confirm
//!   within the timeout is [`PublishError::Unconfirmed`] (it may or may not be queued). A lost
//!   connection is reopened by the next publish, within that publish's timeout.
//! - Consumers use manual acks and `basic_qos` prefetch; one AMQP connection per consumer, so
//!   dropping a consumer (or killing its process) makes RabbitMQ redeliver what it had not acked.
//!   A consumer's connection asks for a [`CONSUMER_HEARTBEAT_SECS`] heartbeat, so one that is cut
//!   off or frozen (no FIN is sent) is declared dead — and its messages handed to another
//!   consumer — within a few seconds, as the simulated broker's lease (`sim::broker::LEASE`);
//!   at the server's default of 60 s a frozen consumer still held its message after two minutes
//!   (`tests/real.rs`), and a 5 s partition redelivered nothing (`bugs/non-idempotent-worker`
//!   on containers). Publishers keep the default: a publish waits for its confirm anyway.

use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::stack::ports::{
    Consumer, ConsumerFactory, Delivery, FILES_EXCHANGE, FileEvent, Message, PortError, PublishError,
    Publisher, QueryMessage, SubscriberGroup,
};

/// Where the broker is and what the query queue is called.
#[derive(Clone, Debug)]
pub struct RabbitConfig {
    /// `amqp://guest:guest@127.0.0.1:55672/%2f`.
    pub uri: String,
    /// The query queue's name (the files' names are the [`Fanout`]'s).
    pub queue: String,
    /// Ready messages each queue holds before it rejects publishes.
    pub capacity: u32,
}

/// The files' fanout: a durable fanout exchange and one queue per [`SubscriberGroup`] bound to
/// it, named `EXCHANGE.GROUP` — [`FILES_EXCHANGE`] and [`SubscriberGroup::queue`] in a run; a
/// test names a fresh exchange so that tests do not share queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// The exchange's name.
    pub exchange: String,
}

impl Fanout {
    /// [`FILES_EXCHANGE`].
    pub fn files() -> Fanout {
        Fanout { exchange: FILES_EXCHANGE.into() }
    }

    /// `group`'s queue.
    pub fn queue(&self, group: SubscriberGroup) -> String {
        format!("{}.{}", self.exchange, group.name())
    }
}

/// What a connection declares, and where a publisher sends.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    /// One queue, published to through the default exchange.
    Queue(String),
    /// The fanout exchange (and every group's queue, bound), published to by name.
    Fanout(Fanout),
}

impl Route {
    /// `(exchange, routing key)` of a publish.
    fn publish_to(&self) -> (&str, &str) {
        match self {
            Route::Queue(queue) => ("", queue),
            Route::Fanout(fanout) => (&fanout.exchange, ""),
        }
    }

    fn name(&self) -> &str {
        match self {
            Route::Queue(queue) => queue,
            Route::Fanout(fanout) => &fanout.exchange,
        }
    }
}

impl RabbitConfig {
    /// `scripts/real-services.sh`'s broker (`SHAKEDOWN_AMQP_URL` overrides) and `queue`.
    pub fn from_env(queue: &str, capacity: u32) -> RabbitConfig {
        RabbitConfig {
            uri: std::env::var("SHAKEDOWN_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:55672/%2f".into()),
            queue: queue.into(),
            capacity,
        }
    }
}

fn unavailable(error: lapin::Error) -> PortError {
    PortError::Unavailable(error.to_string())
}

/// The heartbeat a consumer's connection asks for, s: RabbitMQ closes a connection after two
/// missed heartbeats and requeues what its consumers had not acknowledged. RabbitMQ warns that
/// heartbeats under 5 s can close a connection that is only slow; here that costs a redelivery
/// (the worker is idempotent), never a lost message.
pub const CONSUMER_HEARTBEAT_SECS: u16 = 1;

/// `uri` asking for a `secs` heartbeat, unless it names one already.
fn with_heartbeat(uri: &str, secs: u16) -> String {
    if uri.contains("heartbeat=") {
        uri.to_string()
    } else {
        let separator = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{separator}heartbeat={secs}")
    }
}

/// A connection to `uri` and a channel on it, with `route`'s exchange and queues declared.
async fn channel(
    config: &RabbitConfig,
    route: &Route,
    uri: &str,
) -> Result<(Connection, Channel), lapin::Error> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = Connection::connect(uri, properties).await?;
    let channel = connection.create_channel().await?;
    match route {
        Route::Queue(queue) => declare_queue(&channel, queue, config.capacity).await?,
        Route::Fanout(fanout) => {
            let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
            channel
                .exchange_declare(&fanout.exchange, ExchangeKind::Fanout, durable, FieldTable::default())
                .await?;
            for group in SubscriberGroup::ALL {
                let queue = fanout.queue(group);
                declare_queue(&channel, &queue, config.capacity).await?;
                channel
                    .queue_bind(
                        &queue,
                        &fanout.exchange,
                        "",
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
    }
    Ok((connection, channel))
}

/// A durable queue holding at most `capacity` ready messages, rejecting publishes past that.
async fn declare_queue(channel: &Channel, queue: &str, capacity: u32) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongInt(capacity as i32));
    arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue, durable, arguments).await?;
    Ok(())
}

/// The publishing side (the gateway's queries, the api's file events): one connection with a
/// confirm-mode channel, reopened on the next publish once it is lost (a broker restart must not
/// leave the gateway answering 503 for ever; the simulation's publisher reaches its broker afresh
/// on every call, too).
pub struct RabbitPublisher<M = QueryMessage> {
    config: RabbitConfig,
    route: Route,
    link: tokio::sync::Mutex<Option<Link>>,
    message: PhantomData<fn(M)>,
}

struct Link {
    _connection: Connection,
    channel: Channel,
}

async fn link(config: &RabbitConfig, route: &Route) -> Result<Link, lapin::Error> {
    let (connection, channel) = channel(config, route, &config.uri).await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(Link { _connection: connection, channel })
}

impl RabbitPublisher {
    /// A publisher to `config`'s query queue, connected, the queue declared (an unreachable
    /// broker is an error now, not at the first publish).
    pub async fn connect(config: &RabbitConfig) -> Result<RabbitPublisher, PortError> {
        RabbitPublisher::open(config, Route::Queue(config.queue.clone())).await
    }
}

impl RabbitPublisher<FileEvent> {
    /// A publisher of `file.uploaded` to `fanout`'s exchange, connected, the exchange and every
    /// group's queue declared and bound.
    pub async fn fanout(
        config: &RabbitConfig,
        fanout: &Fanout,
    ) -> Result<RabbitPublisher<FileEvent>, PortError> {
        RabbitPublisher::open(config, Route::Fanout(fanout.clone())).await
    }
}

impl<M: Message> RabbitPublisher<M> {
    async fn open(config: &RabbitConfig, route: Route) -> Result<RabbitPublisher<M>, PortError> {
        let first = link(config, &route).await.map_err(unavailable)?;
        Ok(RabbitPublisher {
            config: config.clone(),
            route,
            link: tokio::sync::Mutex::new(Some(first)),
            message: PhantomData,
        })
    }

    /// The live channel, reconnecting if the last one was lost.
    async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut link_now = self.link.lock().await;
        if let Some(live) = link_now.as_ref().filter(|l| l.channel.status().connected()) {
            return Ok(live.channel.clone());
        }
        *link_now = None;
        let fresh = link(&self.config, &self.route).await?;
        tracing::info!(route = %self.route.name(), "publisher: reconnected to the broker");
        let channel = fresh.channel.clone();
        *link_now = Some(fresh);
        Ok(channel)
    }
}

#[async_trait]
impl<M: Message> Publisher<M> for RabbitPublisher<M> {
    async fn publish(&self, message: M, confirm_timeout: Duration) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(&message).expect("messages serialise");
        let (exchange, routing_key) = self.route.publish_to();
        // Reconnecting counts against the same bound: the caller waits `confirm_timeout` at most.
        let confirm = async {
            let channel = self.channel().await?;
            let pending = channel
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            pending.await
        };
        match tokio::time::timeout(confirm_timeout, confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => Ok(()),
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Full),
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::Unconfirmed("confirms are off".into())),
            Ok(Err(error)) => Err(PublishError::Unconfirmed(error.to_string())),
            Err(_) => Err(PublishError::Unconfirmed(format!(
                "no confirm within {} ms",
                confirm_timeout.as_millis()
            ))),
        }
    }
}

/// Opens one connection per consumer (a worker, or a subscriber of a group).
pub struct RabbitConsumers<M = QueryMessage> {
    config: RabbitConfig,
    /// What each connection declares.
    route: Route,
    /// The queue it consumes.
    queue: String,
    message: PhantomData<fn(M)>,
}

impl RabbitConsumers {
    /// Consumers of `config`'s query queue.
    pub fn new(config: RabbitConfig) -> RabbitConsumers {
        let queue = config.queue.clone();
        RabbitConsumers { config, route: Route::Queue(queue.clone()), queue, message: PhantomData }
    }
}

impl RabbitConsumers<FileEvent> {
    /// Consumers of `group`'s queue of `fanout` (competing with every other consumer of it).
    pub fn group(
        config: RabbitConfig,
        fanout: &Fanout,
        group: SubscriberGroup,
    ) -> RabbitConsumers<FileEvent> {
        let queue = fanout.queue(group);
        RabbitConsumers { config, route: Route::Fanout(fanout.clone()), queue, message: PhantomData }
    }
}

struct RabbitConsumer<M> {
    _connection: Connection,
    channel: Channel,
    deliveries: lapin::Consumer,
    message: PhantomData<fn() -> M>,
}

#[async_trait]
impl<M: Message> ConsumerFactory<M> for RabbitConsumers<M> {
    async fn connect(&self, prefetch: u32) -> Result<Box<dyn Consumer<M>>, PortError> {
        let uri = with_heartbeat(&self.config.uri, CONSUMER_HEARTBEAT_SECS);
        let (connection, channel) = channel(&self.config, &self.route, &uri).await.map_err(unavailable)?;
        channel
            .basic_qos(prefetch.min(u32::from(u16::MAX)) as u16, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let deliveries = channel
            .basic_consume(&self.queue, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(unavailable)?;
        Ok(Box::new(RabbitConsumer { _connection: connection, channel, deliveries, message: PhantomData }))
    }
}

#[async_trait]
impl<M: Message> Consumer<M> for RabbitConsumer<M> {
    async fn next(&mut self) -> Result<Delivery<M>, PortError> {
        loop {
            let delivery = match self.deliveries.next().await {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(unavailable(error)),
                None => return Err(PortError::Unavailable("the consumer was cancelled".into())),
            };
            match serde_json::from_slice::<M>(&delivery.data) {
                Ok(message) => {
                    return Ok(Delivery {
                        tag: delivery.delivery_tag,
                        redelivered: delivery.redelivered,
                        message,
                    });
                }
                // Not ours to process: acknowledge it away rather than loop on it forever.
                Err(error) => {
                    tracing::warn!(%error, "dropping a malformed message");
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                }
            }
        }
    }

    async fn ack(&mut self, tag: u64) -> Result<(), PortError> {
        self.channel.basic_ack(tag, BasicAckOptions::default()).await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_ask_for_a_short_heartbeat_unless_the_uri_names_one() {
        assert_eq!(with_heartbeat("amqp://h:5672/%2f", 1), "amqp://h:5672/%2f?heartbeat=1");
        assert_eq!(
            with_heartbeat("amqp://h/%2f?frame_max=8192", 1),
            "amqp://h/%2f?frame_max=8192&heartbeat=1"
        );
        assert_eq!(with_heartbeat("amqp://h/%2f?heartbeat=30", 1), "amqp://h/%2f?heartbeat=30");
    }
}
