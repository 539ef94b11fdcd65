//! The backup catalogue (the `redis` host) on a real Redis: the [`Catalogue`] port as one Redis
//! hash, [`CATALOGUE_KEY`], whose fields are entry ids and whose values are the entries as JSON
//! ([`CatalogueEntry`]'s serde form, the one the simulation's catalogue keeps).
//!
//! - One hash, so `put` and `remove` are single commands (`HSET`, `HDEL`) and each is atomic on
//!   the server; `list` is `HLEN` (refused past [`LIST_ENTRIES_MAX`]) then `HGETALL`, sorted by id.
//! - Every call is bounded by [`RedisCatalogue::timeout`] (default [`REDIS_CALL_TIMEOUT`]): the
//!   connection's own connect and response timeouts, and a `tokio` timeout around the whole call.
//!   One multiplexed connection is made on first use and shared; after any failure it is dropped
//!   and the next call connects again, so a restarted server is picked up without a restart here.
//! - Errors follow the port contract: no answer, a dropped connection, a timeout, or a server
//!   that is loading or asks for a retry is `Unavailable` (the command may or may not have run); a
//!   replica's `READONLY` is `ReadOnly`; any other error reply (a wrong type under the key, an ACL
//!   refusal) and an entry that does not parse are `Rejected`.
//! - Durability is the server's: `scripts/real-services.sh` runs it append-only, fsynced every
//!   second, so a `put` acknowledged less than a second before a machine crash can be lost, never
//!   a half-written entry.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands as _, AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::Mutex;

use crate::stack::ports::{Catalogue, CatalogueEntry, PortError};

/// The Redis key of the catalogue's hash.
pub const CATALOGUE_KEY: &str = "shakedown:catalogue";
/// Longest wait for one call (connecting included) by default.
pub const REDIS_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Most entries `list` reads: past it, the listing fails naming this limit (a catalogue that
/// large needs pruning, not one `HGETALL`).
pub const LIST_ENTRIES_MAX: usize = 100_000;
/// The server `scripts/real-services.sh` starts, when `SHAKEDOWN_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:56379";

/// The [`Catalogue`] port on a Redis server.
pub struct RedisCatalogue {
    client: redis::Client,
    url: String,
    timeout: Duration,
    /// The shared connection, made on first use and dropped after a failure.
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisCatalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCatalogue").field("url", &self.url).field("timeout", &self.timeout).finish()
    }
}

impl RedisCatalogue {
    /// The catalogue at `url` (`redis://host:port[/db]`), without connecting: a server that is
    /// down is not an error yet. A URL that does not parse is `Rejected`.
    pub fn new(url: &str) -> Result<RedisCatalogue, PortError> {
        let client =
            redis::Client::open(url).map_err(|e| PortError::Rejected(format!("Redis URL {url}: {e}")))?;
        Ok(RedisCatalogue {
            client,
            url: url.to_owned(),
            timeout: REDIS_CALL_TIMEOUT,
            connection: Mutex::new(None),
        })
    }

    /// `SHAKEDOWN_REDIS_URL`, default [`DEFAULT_REDIS_URL`] (`scripts/real-services.sh`'s server).
    pub fn from_env() -> Result<RedisCatalogue, PortError> {
        let url = std::env::var("SHAKEDOWN_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into());
        RedisCatalogue::new(&url)
    }

    /// Bound every call by `timeout` instead of [`REDIS_CALL_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> RedisCatalogue {
        self.timeout = timeout;
        self
    }

    /// The longest wait for one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `call` on the shared connection within the timeout; on any failure drop the
    /// connection so the next call makes a new one.
    async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, PortError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let connection = self.connection().await?;
            call(connection).await
        };
        let outcome = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => port_error(&error, &format!("Redis {what} at {}", self.url)),
            Err(_) => PortError::Unavailable(format!(
                "Redis {what} at {}: no answer within {:?} (the catalogue's call timeout)",
                self.url, self.timeout
            )),
        };
        *self.connection.lock().await = None;
        Err(outcome)
    }

    /// The shared connection, made if there is none (a clone: it multiplexes).
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

#[async_trait]
impl Catalogue for RedisCatalogue {
    async fn put(&self, entry: &CatalogueEntry) -> Result<(), PortError> {
        let json = serde_json::to_string(entry).expect("a catalogue entry serializes");
        let id = entry.id.clone();
        self.call("HSET", |mut c| async move { c.hset::<_, _, _, ()>(CATALOGUE_KEY, id, json).await }).await
    }

    async fn remove(&self, id: &str) -> Result<(), PortError> {
        let id = id.to_owned();
        self.call("HDEL", |mut c| async move { c.hdel::<_, _, ()>(CATALOGUE_KEY, id).await }).await
    }

    async fn list(&self) -> Result<Vec<CatalogueEntry>, PortError> {
        let count: usize = self.call("HLEN", |mut c| async move { c.hlen(CATALOGUE_KEY).await }).await?;
        if count > LIST_ENTRIES_MAX {
            return Err(PortError::Rejected(format!(
                "the catalogue {CATALOGUE_KEY} at {} holds {count} entries, more than LIST_ENTRIES_MAX ({LIST_ENTRIES_MAX})",
                self.url
            )));
        }
        let fields: BTreeMap<String, String> =
            self.call("HGETALL", |mut c| async move { c.hgetall(CATALOGUE_KEY).await }).await?;
        fields.into_iter().map(|(id, json)| parse_entry(&id, &json)).collect()
    }
}

/// One field of the hash back into an entry; its id must be its field's name.
fn parse_entry(id: &str, json: &str) -> Result<CatalogueEntry, PortError> {
    let entry: CatalogueEntry = serde_json::from_str(json)
        .map_err(|e| PortError::Rejected(format!("catalogue entry {id} in {CATALOGUE_KEY}: {e}: {json}")))?;
    if entry.id != id {
        return Err(PortError::Rejected(format!(
            "catalogue entry under {id} in {CATALOGUE_KEY} names itself {}",
            entry.id
        )));
    }
    Ok(entry)
}

/// A Redis error as the port contract reads it (module docs).
fn port_error(error: &RedisError, what: &str) -> PortError {
    let message = format!("{what}: {error}");
    match error.kind() {
        ErrorKind::Server(ServerErrorKind::ReadOnly) => PortError::ReadOnly(message),
        ErrorKind::Server(
            ServerErrorKind::ResponseError | ServerErrorKind::NoPerm | ServerErrorKind::NoScript,
        )
        | ErrorKind::Extension
        | ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::UnexpectedReturnType => PortError::Rejected(message),
        _ => PortError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::{BackupKind, BackupState};

    fn entry(id: &str) -> CatalogueEntry {
        CatalogueEntry {
            id: id.into(),
            kind: BackupKind::Wal,
            start_lsn: 16 << 20,
            stop_lsn: 32 << 20,
            time_ns: 1,
            stop_time_ns: 2,
            size: 16 << 20,
            checksum: "ab".into(),
            state: BackupState::Done,
        }
    }

    #[test]
    fn an_entry_round_trips_through_its_field_and_a_mismatched_id_is_rejected() {
        let json = serde_json::to_string(&entry("wal-1")).unwrap();
        assert_eq!(parse_entry("wal-1", &json).unwrap(), entry("wal-1"));
        let error = parse_entry("wal-2", &json).unwrap_err();
        assert!(matches!(&error, PortError::Rejected(m) if m.contains("names itself wal-1")), "{error}");
        let error = parse_entry("wal-1", "{").unwrap_err();
        assert!(matches!(&error, PortError::Rejected(m) if m.contains("catalogue entry wal-1")), "{error}");
    }

    #[test]
    fn a_bad_url_is_rejected_before_any_connection() {
        let error = RedisCatalogue::new("not a url").unwrap_err();
        assert!(matches!(&error, PortError::Rejected(m) if m.contains("not a url")), "{error}");
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_unavailable_within_the_timeout() {
        // A loopback port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let catalogue = RedisCatalogue::new(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let error = catalogue.list().await.unwrap_err();
        assert!(matches!(error, PortError::Unavailable(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
