//! RabbitMQ through lapin: the query queue as the gateway publishes to it and the workers
//! consume from it.
//!
//! - The queue is durable and bounded: `x-max-length` with `x-overflow: reject-publish`, so a
//!   full queue nacks the publish ([`PublishError::Full`]), it never drops a queued message.
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

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::stack::ports::{
    Consumer, ConsumerFactory, Delivery, PortError, PublishError, Publisher, QueryMessage,
};

/// Where the broker is and what the queue is called.
#[derive(Clone, Debug)]
pub struct RabbitConfig {
    /// `amqp://guest:guest@127.0.0.1:55672/%2f`.
    pub uri: String,
    /// The queue's name.
    pub queue: String,
    /// Ready messages the queue holds before it rejects publishes.
    pub capacity: u32,
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

async fn channel(config: &RabbitConfig, uri: &str) -> Result<(Connection, Channel), lapin::Error> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = Connection::connect(uri, properties).await?;
    let channel = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongInt(config.capacity as i32));
    arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    channel
        .queue_declare(
            &config.queue,
            QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
            arguments,
        )
        .await?;
    Ok((connection, channel))
}

/// The gateway's side: one connection with a confirm-mode channel, reopened on the next publish
/// once it is lost (a broker restart must not leave the gateway answering 503 for ever; the
/// simulation's publisher reaches its broker afresh on every call, too).
pub struct RabbitPublisher {
    config: RabbitConfig,
    link: tokio::sync::Mutex<Option<Link>>,
}

struct Link {
    _connection: Connection,
    channel: Channel,
}

async fn link(config: &RabbitConfig) -> Result<Link, lapin::Error> {
    let (connection, channel) = channel(config, &config.uri).await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(Link { _connection: connection, channel })
}

impl RabbitPublisher {
    /// Connect and declare the queue (an unreachable broker is an error now, not at the first
    /// publish).
    pub async fn connect(config: &RabbitConfig) -> Result<RabbitPublisher, PortError> {
        let first = link(config).await.map_err(unavailable)?;
        Ok(RabbitPublisher { config: config.clone(), link: tokio::sync::Mutex::new(Some(first)) })
    }

    /// The live channel, reconnecting if the last one was lost.
    async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut link_now = self.link.lock().await;
        if let Some(live) = link_now.as_ref().filter(|l| l.channel.status().connected()) {
            return Ok(live.channel.clone());
        }
        *link_now = None;
        let fresh = link(&self.config).await?;
        tracing::info!(queue = %self.config.queue, "publisher: reconnected to the broker");
        let channel = fresh.channel.clone();
        *link_now = Some(fresh);
        Ok(channel)
    }
}

#[async_trait]
impl Publisher for RabbitPublisher {
    async fn publish(&self, message: QueryMessage, confirm_timeout: Duration) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(&message).expect("messages serialise");
        // Reconnecting counts against the same bound: the caller waits `confirm_timeout` at most.
        let confirm = async {
            let channel = self.channel().await?;
            let pending = channel
                .basic_publish(
                    "",
                    &self.config.queue,
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

/// Opens one connection per worker consumer.
pub struct RabbitConsumers {
    config: RabbitConfig,
}

impl RabbitConsumers {
    /// Consumers of `config`'s queue.
    pub fn new(config: RabbitConfig) -> RabbitConsumers {
        RabbitConsumers { config }
    }
}

struct RabbitConsumer {
    _connection: Connection,
    channel: Channel,
    deliveries: lapin::Consumer,
}

#[async_trait]
impl ConsumerFactory for RabbitConsumers {
    async fn connect(&self, prefetch: u32) -> Result<Box<dyn Consumer>, PortError> {
        let uri = with_heartbeat(&self.config.uri, CONSUMER_HEARTBEAT_SECS);
        let (connection, channel) = channel(&self.config, &uri).await.map_err(unavailable)?;
        channel
            .basic_qos(prefetch.min(u32::from(u16::MAX)) as u16, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let deliveries = channel
            .basic_consume(&self.config.queue, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(unavailable)?;
        Ok(Box::new(RabbitConsumer { _connection: connection, channel, deliveries }))
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn next(&mut self) -> Result<Delivery, PortError> {
        loop {
            let delivery = match self.deliveries.next().await {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(unavailable(error)),
                None => return Err(PortError::Unavailable("the consumer was cancelled".into())),
            };
            match serde_json::from_slice::<QueryMessage>(&delivery.data) {
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
