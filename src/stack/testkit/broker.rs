//! A broker in memory: a bounded queue (`reject-publish` when full), consumers with manual acks
//! and bounded prefetch, and redelivery of every unacknowledged message when a connection dies.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::stack::ports::{
    Consumer, ConsumerFactory, Delivery, Message, PortError, PublishError, Publisher, QueryMessage,
};

struct Connection<M> {
    alive: bool,
    next_tag: u64,
    unacked: BTreeMap<u64, (M, bool)>,
}

struct BrokerInner<M> {
    ready: VecDeque<(M, bool)>,
    capacity: usize,
    connections: BTreeMap<u64, Connection<M>>,
    next_connection: u64,
    publish_error: Option<PublishError>,
    published: Vec<M>,
    acks: u32,
}

struct Shared<M> {
    inner: Mutex<BrokerInner<M>>,
    changed: Notify,
}

/// The broker of one queue of `M`s: implements [`Publisher`] and [`ConsumerFactory`]. Cheap to
/// clone (shared).
pub struct MemBroker<M = QueryMessage> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for MemBroker<M> {
    fn clone(&self) -> Self {
        MemBroker { shared: self.shared.clone() }
    }
}

impl<M: Message> MemBroker<M> {
    /// A broker whose queue holds at most `capacity` ready messages.
    pub fn new(capacity: usize) -> MemBroker<M> {
        let inner = BrokerInner {
            ready: VecDeque::new(),
            capacity,
            connections: BTreeMap::new(),
            next_connection: 0,
            publish_error: None,
            published: Vec::new(),
            acks: 0,
        };
        MemBroker { shared: Arc::new(Shared { inner: Mutex::new(inner), changed: Notify::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerInner<M>> {
        self.shared.inner.lock().expect("broker poisoned")
    }

    /// Make every publish fail with `err` without queueing (None: normal again).
    pub fn fail_publish(&self, err: Option<PublishError>) {
        self.lock().publish_error = err;
    }

    /// Every message queued by a publish, in order.
    pub fn published(&self) -> Vec<M> {
        self.lock().published.clone()
    }

    /// Messages waiting for a consumer.
    pub fn ready_count(&self) -> usize {
        self.lock().ready.len()
    }

    /// Messages delivered and not yet acknowledged, over every live connection.
    pub fn unacked_count(&self) -> usize {
        self.lock().connections.values().filter(|c| c.alive).map(|c| c.unacked.len()).sum()
    }

    /// Acknowledgements received.
    pub fn acks(&self) -> u32 {
        self.lock().acks
    }

    /// Kill every connection: their unacknowledged messages go back to the front of the queue,
    /// marked redelivered, and their consumers' next call fails.
    pub fn kill_connections(&self) {
        self.close(|_| true);
    }

    /// Close the connections `which` selects, returning their unacknowledged messages.
    fn close(&self, which: impl Fn(u64) -> bool) {
        let mut inner = self.lock();
        let mut returned = Vec::new();
        for (id, connection) in inner.connections.iter_mut() {
            if connection.alive && which(*id) {
                connection.alive = false;
                returned.extend(std::mem::take(&mut connection.unacked).into_values().map(|(m, _)| m));
            }
        }
        for message in returned.into_iter().rev() {
            inner.ready.push_front((message, true));
        }
        drop(inner);
        self.shared.changed.notify_waiters();
    }
}

#[async_trait]
impl<M: Message> Publisher<M> for MemBroker<M> {
    async fn publish(&self, message: M, _confirm_timeout: Duration) -> Result<(), PublishError> {
        let mut inner = self.lock();
        if let Some(err) = inner.publish_error.clone() {
            return Err(err);
        }
        if inner.ready.len() >= inner.capacity {
            return Err(PublishError::Full);
        }
        inner.published.push(message.clone());
        inner.ready.push_back((message, false));
        drop(inner);
        self.shared.changed.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl<M: Message> ConsumerFactory<M> for MemBroker<M> {
    async fn connect(&self, prefetch: u32) -> Result<Box<dyn Consumer<M>>, PortError> {
        let mut inner = self.lock();
        let id = inner.next_connection;
        inner.next_connection += 1;
        inner.connections.insert(id, Connection { alive: true, next_tag: 1, unacked: BTreeMap::new() });
        Ok(Box::new(MemConsumer { broker: self.clone(), id, prefetch: prefetch.max(1) as usize }))
    }
}

struct MemConsumer<M: Message> {
    broker: MemBroker<M>,
    id: u64,
    prefetch: usize,
}

impl<M: Message> Drop for MemConsumer<M> {
    /// Dropping a consumer closes its connection, as a real client does.
    fn drop(&mut self) {
        let id = self.id;
        self.broker.close(|c| c == id);
    }
}

impl<M: Message> MemConsumer<M> {
    /// Take the next delivery if one is allowed now; `Err` if the connection is dead.
    fn try_take(&self) -> Result<Option<Delivery<M>>, PortError> {
        let mut inner = self.broker.lock();
        let BrokerInner { ready, connections, .. } = &mut *inner;
        let connection = connections.get_mut(&self.id).expect("connection exists");
        if !connection.alive {
            return Err(PortError::Unavailable("connection closed".into()));
        }
        if connection.unacked.len() >= self.prefetch {
            return Ok(None);
        }
        let Some((message, redelivered)) = ready.pop_front() else { return Ok(None) };
        let tag = connection.next_tag;
        connection.next_tag += 1;
        connection.unacked.insert(tag, (message.clone(), redelivered));
        Ok(Some(Delivery { tag, redelivered, message }))
    }
}

#[async_trait]
impl<M: Message> Consumer<M> for MemConsumer<M> {
    async fn next(&mut self) -> Result<Delivery<M>, PortError> {
        loop {
            let changed = self.broker.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(delivery) = self.try_take()? {
                return Ok(delivery);
            }
            changed.await;
        }
    }

    async fn ack(&mut self, tag: u64) -> Result<(), PortError> {
        let mut inner = self.broker.lock();
        let connection = inner.connections.get_mut(&self.id).expect("connection exists");
        if !connection.alive {
            return Err(PortError::Unavailable("connection closed".into()));
        }
        if connection.unacked.remove(&tag).is_none() {
            return Err(PortError::Rejected(format!("unknown delivery tag {tag}")));
        }
        inner.acks += 1;
        drop(inner);
        self.broker.shared.changed.notify_waiters();
        Ok(())
    }
}
