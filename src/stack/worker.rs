//! A queue worker (hosts `worker-1` … `worker-M`): consume query messages with bounded prefetch,
//! compute each answer from the product table, mark the query completed and record its effect
//! in one transaction (`QueryStore::complete(.., once = true)`), and acknowledge only after that
//! commit. A redelivered message (the previous consumer died before acking) therefore completes
//! a second time as a no-op: processed at most once in effect.
//!
//! When the connection is lost the worker reconnects with exponential backoff
//! (`reconnect_backoff` doubling up to `reconnect_backoff_max`). When a message cannot be
//! committed after `process_attempts_max` tries, the worker drops its connection so the broker
//! redelivers everything it held to a healthier consumer.
//!
//! The same consume loop ([`run_handler`]) runs the files' subscriber groups on the workers
//! (`files::Thumbnails`, `files::Audit`): a [`Handler`] commits one delivery's effect, the loop
//! acks after it, retries, reconnects and obeys the [`WorkerControl`].
//!
//! A [`WorkerControl`] shared with the backend pauses or slows consumption (the `backpressure`
//! fault) — of the query queue and the subscribers alike.
//!
//! Bug planted here: `non_idempotent_worker` (`complete(.., once = false)`: every delivery
//! applies the effect again).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::sleep;

use super::bugs::Bugs;
use super::invest::bounded;
use super::ports::{Consumer, ConsumerFactory, Delivery, Message, PortError, QueryMessage, QueryStore};
use crate::scenario::model::{ConsumerMode, StackConfig};

/// What the workers are told to do by the backpressure fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkerMode {
    /// Consume normally.
    #[default]
    Running,
    /// Consume nothing (deliveries already held stay unacknowledged).
    Paused,
    /// Take this much longer per message.
    Slow(Duration),
}

impl WorkerMode {
    /// The mode a `backpressure` fault asks for (`slow_by` is used only when slow).
    pub fn from_fault(consumers: ConsumerMode, slow_by: Duration) -> WorkerMode {
        match consumers {
            ConsumerMode::Pause => WorkerMode::Paused,
            ConsumerMode::Slow => WorkerMode::Slow(slow_by),
        }
    }
}

/// The switch the backend flips; every worker watching it reacts at once. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkerControl {
    mode: Arc<watch::Sender<WorkerMode>>,
}

impl Default for WorkerControl {
    fn default() -> Self {
        WorkerControl { mode: Arc::new(watch::Sender::new(WorkerMode::Running)) }
    }
}

impl WorkerControl {
    /// Set the mode (`Running` ends a backpressure window).
    pub fn set(&self, mode: WorkerMode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn get(&self) -> WorkerMode {
        *self.mode.borrow()
    }

    fn watch(&self) -> watch::Receiver<WorkerMode> {
        self.mode.subscribe()
    }
}

/// How a worker behaves. Defaults on each field.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Unacknowledged deliveries the broker may hand this worker. Default 10
    /// (`stack.queue.prefetch`).
    pub prefetch: u32,
    /// First pause before reconnecting. Default 50 ms.
    pub reconnect_backoff: Duration,
    /// Longest pause between reconnects. Default 2 s.
    pub reconnect_backoff_max: Duration,
    /// Upper bound on one store call. Default 1 s.
    pub store_timeout: Duration,
    /// Tries to compute and commit one message before giving up on the connection. Default 3.
    pub process_attempts_max: u32,
    /// Pause between those tries. Default 50 ms.
    pub process_retry_every: Duration,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            prefetch: 10,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(2),
            store_timeout: Duration::from_secs(1),
            process_attempts_max: 3,
            process_retry_every: Duration::from_millis(50),
            bugs: Bugs::default(),
        }
    }
}

impl WorkerConfig {
    /// The defaults, with the stack's prefetch and bug switches.
    pub fn for_stack(stack: &StackConfig) -> WorkerConfig {
        WorkerConfig {
            prefetch: stack.queue.prefetch,
            bugs: Bugs::from_list(&stack.bugs),
            ..WorkerConfig::default()
        }
    }
}

/// What a consumer does with each delivery: commit its effect, idempotently. The consume loop
/// acks only once `handle` returned `Ok`, retrying it a bounded number of times
/// (`process_attempts_max`) before giving up the connection so the broker redelivers.
#[async_trait]
pub trait Handler<M: Message>: Send + Sync + 'static {
    /// Commit one delivery's effect. `Ok` also for a delivery that can never commit (dropped).
    async fn handle(&self, delivery: &Delivery<M>) -> Result<(), PortError>;

    /// Ack before handling (the `autoack_subscriber` bug): what the handler then fails to
    /// commit is lost.
    fn ack_on_receipt(&self) -> bool {
        false
    }
}

/// Run one worker of the query queue forever (see [`run_handler`]).
pub async fn run(
    consumers: Arc<dyn ConsumerFactory>,
    store: Arc<dyn QueryStore>,
    config: WorkerConfig,
    control: WorkerControl,
) {
    let once = !config.bugs.non_idempotent_worker;
    let handler = Arc::new(Queries { store, timeout: config.store_timeout, once });
    run_handler(consumers, handler, config, control).await
}

/// Run one consumer forever: connect, consume with `handler` until the connection is lost,
/// back off, reconnect.
pub async fn run_handler<M: Message>(
    consumers: Arc<dyn ConsumerFactory<M>>,
    handler: Arc<dyn Handler<M>>,
    config: WorkerConfig,
    control: WorkerControl,
) {
    let mut backoff = config.reconnect_backoff;
    loop {
        match consumers.connect(config.prefetch).await {
            Ok(consumer) => {
                backoff = config.reconnect_backoff;
                let why = consume(consumer, &*handler, &config, &control).await;
                tracing::info!(%why, "worker lost its consumer; reconnecting");
            }
            Err(err) => tracing::info!(%err, ?backoff, "worker could not connect to the broker"),
        }
        sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(config.reconnect_backoff_max);
    }
}

/// Consume until the connection is lost or a message cannot be committed; returns why.
async fn consume<M: Message>(
    mut consumer: Box<dyn Consumer<M>>,
    handler: &dyn Handler<M>,
    config: &WorkerConfig,
    control: &WorkerControl,
) -> PortError {
    let mut mode = control.watch();
    loop {
        // Paused: hold what we have, take nothing new, until the mode changes.
        while *mode.borrow_and_update() == WorkerMode::Paused {
            if mode.changed().await.is_err() {
                break;
            }
        }
        let delivery = match consumer.next().await {
            Ok(delivery) => delivery,
            Err(err) => return err,
        };
        if let WorkerMode::Slow(extra) = control.get() {
            sleep(extra).await;
        }
        if handler.ack_on_receipt() {
            // Bug: acknowledged before its effect; a failure below loses the message.
            if let Err(err) = consumer.ack(delivery.tag).await {
                return err;
            }
            if let Err(err) = process(&delivery, handler, config).await {
                tracing::info!(%err, "worker: an acknowledged message was not processed");
                return err;
            }
            continue;
        }
        if let Err(err) = process(&delivery, handler, config).await {
            return err;
        }
        if let Err(err) = consumer.ack(delivery.tag).await {
            return err;
        }
    }
}

/// Handle one delivery, retrying a bounded number of times. `Ok` once committed (or found
/// already committed); the caller acks only then.
async fn process<M: Message>(
    delivery: &Delivery<M>,
    handler: &dyn Handler<M>,
    config: &WorkerConfig,
) -> Result<(), PortError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match handler.handle(delivery).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt >= config.process_attempts_max => return Err(err),
            Err(err) => tracing::debug!(%err, attempt, "delivery not committed; retrying"),
        }
        sleep(config.process_retry_every).await;
    }
}

/// The query queue's handler: compute the answer from the product table, mark the query
/// completed and record its effect in one transaction.
struct Queries {
    store: Arc<dyn QueryStore>,
    timeout: Duration,
    /// Apply the effect at most once per query (false: the `non_idempotent_worker` bug).
    once: bool,
}

#[async_trait]
impl Handler<QueryMessage> for Queries {
    async fn handle(&self, delivery: &Delivery) -> Result<(), PortError> {
        let message = &delivery.message;
        let result = match bounded(self.timeout, self.store.compute(&message.sku)).await {
            Ok(result) => result,
            Err(PortError::Rejected(why)) => format!("error: {why}"),
            Err(err) => return Err(err),
        };
        match bounded(self.timeout, self.store.complete(message.id, &result, self.once)).await {
            Ok(applied) => {
                tracing::debug!(
                    id = message.id,
                    applied,
                    redelivered = delivery.redelivered,
                    "query completed"
                );
                Ok(())
            }
            Err(PortError::Rejected(why)) => {
                // Nothing can ever commit it (an unknown id): drop it rather than loop forever.
                tracing::warn!(id = message.id, %why, "query rejected by the store; dropping the message");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::Publisher;
    use crate::stack::testkit::MemBroker;
    use crate::stack::testkit::MemQueries;

    async fn setup(queries: u64) -> (Arc<MemQueries>, MemBroker) {
        let store = Arc::new(MemQueries::default());
        let broker = MemBroker::new(100);
        for i in 0..queries {
            let (row, _) = store.create_pending(&format!("q{i}"), "widget").await.unwrap();
            broker
                .publish(QueryMessage { id: row.id, sku: row.sku }, Duration::from_millis(100))
                .await
                .unwrap();
        }
        (store, broker)
    }

    fn spawn(store: &Arc<MemQueries>, broker: &MemBroker, bugs: Bugs, control: &WorkerControl) {
        let config = WorkerConfig { prefetch: 2, bugs, ..WorkerConfig::default() };
        tokio::spawn(run(Arc::new(broker.clone()), store.clone(), config, control.clone()));
    }

    #[tokio::test(start_paused = true)]
    async fn worker_completes_every_query_and_acks_each() {
        let (store, broker) = setup(5).await;
        spawn(&store, &broker, Bugs::default(), &WorkerControl::default());
        sleep(Duration::from_millis(100)).await;
        for id in 1..=5 {
            assert_eq!(store.row(id).unwrap().status, "completed");
            assert_eq!(store.effects(id), 1);
        }
        assert_eq!((broker.acks(), broker.ready_count(), broker.unacked_count()), (5, 0, 0));
    }

    /// The commit fails, so no ack: the message stays unacknowledged until the worker gives up
    /// the connection after `process_attempts_max` tries; the redelivery then commits once.
    /// A redelivery of an already-completed query is acked with no second effect.
    #[tokio::test(start_paused = true)]
    async fn acks_after_commit_and_redelivery_applies_at_most_once() {
        let (store, broker) = setup(1).await;
        store.fail_complete(WorkerConfig::default().process_attempts_max);
        spawn(&store, &broker, Bugs::default(), &WorkerControl::default());
        sleep(Duration::from_millis(60)).await;
        assert_eq!((store.effects(1), broker.acks(), broker.unacked_count()), (0, 0, 1));
        sleep(Duration::from_millis(500)).await;
        assert_eq!((store.effects(1), broker.acks(), broker.unacked_count()), (1, 1, 0));
        // Redeliver an already-completed query, as after a consumer crash between commit and ack.
        broker
            .publish(QueryMessage { id: 1, sku: "widget".into() }, Duration::from_millis(100))
            .await
            .unwrap();
        sleep(Duration::from_millis(100)).await;
        assert_eq!((store.effects(1), broker.acks()), (1, 2));
    }

    /// A paused worker takes nothing; a lost connection is reconnected and redelivered.
    #[tokio::test(start_paused = true)]
    async fn paused_worker_consumes_nothing_and_reconnects_after_a_lost_connection() {
        let (store, broker) = setup(3).await;
        let control = WorkerControl::default();
        control.set(WorkerMode::Paused);
        spawn(&store, &broker, Bugs::default(), &control);
        sleep(Duration::from_secs(1)).await;
        assert_eq!((broker.ready_count(), store.effects(1)), (3, 0));
        broker.kill_connections();
        control.set(WorkerMode::Running);
        sleep(Duration::from_secs(1)).await;
        assert_eq!((store.effects(1), store.effects(2), store.effects(3)), (1, 1, 1));
    }

    /// A slowed worker takes `slow_by` longer per message.
    #[tokio::test(start_paused = true)]
    async fn slowed_worker_takes_longer_per_message() {
        let (store, broker) = setup(3).await;
        let control = WorkerControl::default();
        control.set(WorkerMode::from_fault(ConsumerMode::Slow, Duration::from_millis(100)));
        spawn(&store, &broker, Bugs::default(), &control);
        sleep(Duration::from_millis(250)).await;
        assert_eq!((store.effects(1), store.effects(2), store.effects(3)), (1, 1, 0));
        sleep(Duration::from_millis(100)).await;
        assert_eq!(store.effects(3), 1);
    }

    /// Bug `non_idempotent_worker`: a redelivered message applies its effect again.
    #[tokio::test(start_paused = true)]
    async fn bug_non_idempotent_worker_applies_a_redelivery_twice() {
        for (bugs, effects) in
            [(Bugs::default(), 1), (Bugs { non_idempotent_worker: true, ..Bugs::default() }, 2)]
        {
            let (store, broker) = setup(1).await;
            spawn(&store, &broker, bugs, &WorkerControl::default());
            sleep(Duration::from_millis(50)).await;
            broker
                .publish(QueryMessage { id: 1, sku: "widget".into() }, Duration::from_millis(100))
                .await
                .unwrap();
            sleep(Duration::from_millis(50)).await;
            assert_eq!(store.effects(1), effects);
        }
    }
}
