//! The declared clients, reaching a compose stack through the ports it publishes on 127.0.0.1:
//! HTTP (hyper) and SQL (sqlx, PostgreSQL and MySQL/MariaDB), each with the outcome rules of the
//! history model.
//!
//! | what happened | a write | a read |
//! |---|---|---|
//! | no connection (refused, no route, pool full) | `fail`: nothing was sent | `fail` |
//! | HTTP 2xx / the statement ran | `ok` | `ok` |
//! | HTTP 4xx | `fail`: the server refused it | `fail` |
//! | HTTP 5xx | `info`: a proxy's 503 and an app's half-done 500 look alike | `fail` |
//! | SQL error from the server (constraint, read-only, syntax) | `fail`: a refused statement has no effect | `fail` |
//! | SQL error of class 08 (connection), 57 (operator intervention: the server shut down) or XX | `info`: the commit may have happened | `fail` |
//! | connection lost after sending, timeout | `info` | `fail` |
//!
//! A connection the server closed before answering is never a failure of the stack: idempotent
//! requests (GET, PUT, DELETE) go on pooled connections, idle at most [`HTTP_IDLE_MAX`], and are
//! sent again on a new one when the server closed theirs unanswered; POST and PATCH get a new
//! connection each.
//!
//! A multi-URL SQL client with `target: read-write` uses the first server that accepts writes
//! (`SELECT NOT pg_is_in_recovery()`; MySQL `SELECT @@global.read_only = 0`) and looks again after
//! any failure, as libpq's `target_session_attrs=read-write` does.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sqlx::Row;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::history::EntryType;
use crate::scenario::declared::{ClientSpec, Target};
use crate::scenario::validate_declared::{Endpoint, Scheme, endpoint};
use crate::workload::template::Bound;

/// Most connections one SQL client holds per server. An op that finds them all busy waits for
/// one until its own timeout (then it was never sent: `fail`).
const SQL_CONNECTIONS_MAX: u32 = 64;
/// Longest answer body kept from an HTTP request (a bigger one is an error).
const HTTP_BODY_MAX: usize = 16 << 20;
/// Longest an HTTP connection waits idle in the pool before it is dropped rather than reused.
/// Shorter than any common server's keep-alive (uvicorn and Node 5 s, gunicorn 2 s): a server
/// closes an idle connection when its keep-alive runs out, and a request written on it at that
/// moment is lost without an answer — `info` for a write the server never saw. Not retried
/// instead: the client cannot tell whether the request was read, and a POST is not idempotent.
const HTTP_IDLE_MAX: Duration = Duration::from_secs(1);
/// Most times an idempotent request is sent again after the server closed its connection
/// unanswered (each stale pooled connection is dropped as it fails).
const HTTP_RESENDS_MAX: u32 = 3;

/// Where each (service, container port) the scenario names is published on 127.0.0.1.
#[derive(Clone, Debug, Default)]
pub struct Published {
    ports: BTreeMap<(String, u16), u16>,
}

impl Published {
    /// The published ports.
    pub fn new(ports: BTreeMap<(String, u16), u16>) -> Published {
        Published { ports }
    }

    /// `127.0.0.1:PORT` for a service's container port.
    pub fn address(&self, service: &str, port: u16) -> Result<String, String> {
        self.ports
            .get(&(service.to_owned(), port))
            .map(|p| format!("127.0.0.1:{p}"))
            .ok_or_else(|| format!("port {port} of `{service}` is not published (a harness bug)"))
    }

    /// `url` with its host and port replaced by where they are published; `{host}` is `member`.
    pub fn rewrite(&self, url: &str, member: Option<&str>) -> Result<String, String> {
        let url = member.map_or_else(|| url.to_owned(), |m| url.replace("{host}", m));
        let Endpoint { service, port, .. } = endpoint(&url)?;
        let published = self
            .ports
            .get(&(service.clone(), port))
            .ok_or_else(|| format!("port {port} of `{service}` is not published (a harness bug)"))?;
        let mut parsed = url::Url::parse(&url).map_err(|e| e.to_string())?;
        parsed.set_host(Some("127.0.0.1")).map_err(|e| e.to_string())?;
        parsed.set_port(Some(*published)).map_err(|()| "cannot set the port".to_owned())?;
        Ok(parsed.to_string())
    }
}

/// What an op's request or statement came back with.
#[derive(Clone, Debug)]
pub struct Reply {
    /// ok / fail / info, by the table above, for a write (a read turns every non-ok into fail).
    pub kind: EntryType,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// An HTTP body (JSON), if any.
    pub body: Option<serde_json::Value>,
    /// SQL rows: each row's first column as text.
    pub first_column: Vec<String>,
    /// Why it is not ok.
    pub error: Option<String>,
}

impl Reply {
    fn failed(kind: EntryType, error: String) -> Reply {
        Reply { kind, status: None, body: None, first_column: Vec::new(), error: Some(error) }
    }
}

/// One declared client.
pub enum Client {
    /// An HTTP base URL.
    Http(Box<HttpClient>),
    /// One or several SQL servers.
    Sql(SqlClient),
}

impl Client {
    /// Build `spec`'s client against the published ports. SQL pools connect lazily.
    pub fn new(spec: &ClientSpec, published: &Published) -> Result<Client, String> {
        if let Some(url) = &spec.http {
            let e = endpoint(url)?;
            let base_path =
                url::Url::parse(url).map_err(|e| e.to_string())?.path().trim_end_matches('/').to_owned();
            let authority = published.address(&e.service, e.port)?;
            return Ok(Client::Http(Box::new(HttpClient::new(authority, base_path, spec.timeout.get()))));
        }
        let urls =
            spec.sql.as_ref().ok_or("a client with neither `http` nor `sql` (validation refuses it)")?;
        let servers = urls
            .items()
            .into_iter()
            .map(|url| SqlServer::lazy(url, &published.rewrite(url, None)?, spec.timeout.get()))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Client::Sql(SqlClient { servers, target: spec.target, current: Mutex::new(None) }))
    }
}

/// An HTTP service, by its published address.
pub struct HttpClient {
    authority: String,
    base_path: String,
    timeout: Duration,
    /// Idempotent requests: pooled connections, retried on a connection the server closed.
    client: HyperClient<HttpConnector, Full<Bytes>>,
    /// Other requests (POST, PATCH): a new connection each, never an ambiguous reuse.
    fresh: HyperClient<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    /// A client of the service at `authority` (`127.0.0.1:PORT`), paths under `base_path`.
    pub fn new(authority: String, base_path: String, timeout: Duration) -> HttpClient {
        HttpClient::with_idle(authority, base_path, timeout, HTTP_IDLE_MAX)
    }

    fn with_idle(authority: String, base_path: String, timeout: Duration, idle: Duration) -> HttpClient {
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(idle)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build_http();
        let fresh = HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http();
        HttpClient { authority, base_path, timeout, client, fresh }
    }

    /// Send one request; a JSON body is sent with `content-type: application/json`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(String, String)],
    ) -> Reply {
        let uri = format!("http://{}{}{path}", self.authority, self.base_path);
        let mut builder = http::Request::builder().method(method).uri(uri);
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serialises")).unwrap_or_default();
        let request = match builder.body(Full::new(Bytes::from(bytes))) {
            Ok(request) => request,
            Err(e) => return Reply::failed(EntryType::Fail, format!("bad request: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(reply) => reply,
            Err(_) => Reply::failed(EntryType::Info, "timeout".into()),
        }
    }

    /// Send `request` and read its answer. An idempotent request goes on a pooled connection
    /// and is sent again (at most [`HTTP_RESENDS_MAX`] times) when the server closed that
    /// connection without answering — servers close kept-alive connections at will (uvicorn
    /// after every 500), and HTTP lets a client resend an idempotent request then. Any other
    /// request gets a connection of its own, so a close is never ambiguous between the
    /// server's keep-alive and our request.
    async fn exchange(&self, request: http::Request<Full<Bytes>>) -> Reply {
        let idempotent = request.method().is_idempotent();
        let mut resends = 0;
        let response = loop {
            let attempt = match idempotent {
                true => self.client.request(clone_request(&request)).await,
                false => self.fresh.request(clone_request(&request)).await,
            };
            match attempt {
                Ok(response) => break response,
                Err(e) if e.is_connect() => return Reply::failed(EntryType::Fail, format!("connect: {e}")),
                Err(e) if idempotent && resends < HTTP_RESENDS_MAX && closed_unanswered(&e) => resends += 1,
                Err(e) => return Reply::failed(EntryType::Info, format!("connection lost: {e}")),
            }
        };
        let status = response.status().as_u16();
        let body = match http_body_util::Limited::new(response.into_body(), HTTP_BODY_MAX).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Reply::failed(EntryType::Info, format!("{status}, body lost: {e}")),
        };
        let json = serde_json::from_slice(&body).ok();
        let kind = match status {
            200..=299 => EntryType::Ok,
            400..=499 => EntryType::Fail,
            _ => EntryType::Info,
        };
        let error = (kind != EntryType::Ok).then(|| {
            let text: String = String::from_utf8_lossy(&body).chars().take(80).collect();
            format!("{status} {text}").trim_end().to_owned()
        });
        Reply { kind, status: Some(status), body: json, first_column: Vec::new(), error }
    }
}

/// `request` again (its body is a shared buffer).
fn clone_request(request: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// The connection closed before any answer came (hyper's "incomplete message").
fn closed_unanswered(error: &hyper_util::client::legacy::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<hyper::Error>())
        .is_some_and(hyper::Error::is_incomplete_message)
}

/// A pool per SQL server.
enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

struct SqlServer {
    /// As written (for messages).
    written: String,
    pool: Pool,
}

impl SqlServer {
    fn lazy(written: &str, url: &str, timeout: Duration) -> Result<SqlServer, String> {
        let scheme = endpoint(written)?.scheme;
        let pool = match scheme {
            Scheme::Postgres => Pool::Pg(
                PgPoolOptions::new()
                    .max_connections(SQL_CONNECTIONS_MAX)
                    .acquire_timeout(timeout)
                    .connect_lazy(url)
                    .map_err(|e| format!("{written}: {e}"))?,
            ),
            Scheme::MySql => Pool::My(
                MySqlPoolOptions::new()
                    .max_connections(SQL_CONNECTIONS_MAX)
                    .acquire_timeout(timeout)
                    .connect_lazy(url)
                    .map_err(|e| format!("{written}: {e}"))?,
            ),
            other => return Err(format!("{written}: not an SQL URL ({other:?})")),
        };
        Ok(SqlServer { written: written.to_owned(), pool })
    }

    fn dialect(&self) -> crate::workload::template::Dialect {
        match self.pool {
            Pool::Pg(_) => crate::workload::template::Dialect::Postgres,
            Pool::My(_) => crate::workload::template::Dialect::MySql,
        }
    }

    /// Run `sql` with `values` bound; rows' first columns as text.
    async fn run(&self, sql: &str, values: &[Bound]) -> Reply {
        match &self.pool {
            Pool::Pg(pool) => {
                let mut connection = match pool.acquire().await {
                    Ok(c) => c,
                    Err(e) => return Reply::failed(EntryType::Fail, format!("connect: {e}")),
                };
                let mut query = sqlx::query(sql);
                for value in values {
                    query = match value {
                        Bound::Int(n) => query.bind(*n),
                        Bound::Text(s) => query.bind(s.clone()),
                    };
                }
                match query.fetch_all(&mut *connection).await {
                    Ok(rows) => ok_rows(rows.iter().map(pg_text).collect()),
                    Err(e) => Reply::failed(sql_error_kind(&e), e.to_string()),
                }
            }
            Pool::My(pool) => {
                let mut connection = match pool.acquire().await {
                    Ok(c) => c,
                    Err(e) => return Reply::failed(EntryType::Fail, format!("connect: {e}")),
                };
                let mut query = sqlx::query(sql);
                for value in values {
                    query = match value {
                        Bound::Int(n) => query.bind(*n),
                        Bound::Text(s) => query.bind(s.clone()),
                    };
                }
                match query.fetch_all(&mut *connection).await {
                    Ok(rows) => ok_rows(rows.iter().map(my_text).collect()),
                    Err(e) => Reply::failed(sql_error_kind(&e), e.to_string()),
                }
            }
        }
    }

    /// Does this server accept writes now?
    async fn writable(&self) -> bool {
        let probe = match self.pool {
            Pool::Pg(_) => "SELECT NOT pg_is_in_recovery()",
            Pool::My(_) => "SELECT @@global.read_only = 0",
        };
        let reply = self.run(probe, &[]).await;
        reply.kind == EntryType::Ok && reply.first_column.first().is_some_and(|v| truthy(v) == Some(true))
    }
}

fn ok_rows(first_column: Vec<String>) -> Reply {
    Reply { kind: EntryType::Ok, status: None, body: None, first_column, error: None }
}

/// A PostgreSQL row's first column as text (text, integer or boolean; NULL as empty).
fn pg_text(row: &sqlx::postgres::PgRow) -> String {
    if row.columns().is_empty() {
        return String::new();
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(0) {
        return s;
    }
    if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(0) {
        return n.to_string();
    }
    if let Ok(Some(n)) = row.try_get::<Option<i32>, _>(0) {
        return n.to_string();
    }
    if let Ok(Some(b)) = row.try_get::<Option<bool>, _>(0) {
        return b.to_string();
    }
    String::new()
}

/// A MySQL row's first column as text (MySQL answers a boolean expression as an integer, and
/// `SUM` as a DECIMAL, which travels as its decimal text: read as such, unchecked, since sqlx
/// maps no Rust string type to DECIMAL).
fn my_text(row: &sqlx::mysql::MySqlRow) -> String {
    use sqlx::{Column, TypeInfo};
    if row.columns().is_empty() {
        return String::new();
    }
    if row.columns()[0].type_info().name() == "DECIMAL"
        && let Ok(Some(s)) = row.try_get_unchecked::<Option<String>, _>(0)
    {
        return s;
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(0) {
        return s;
    }
    if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(0) {
        return n.to_string();
    }
    if let Ok(Some(n)) = row.try_get::<Option<u64>, _>(0) {
        return n.to_string();
    }
    if let Ok(Some(b)) = row.try_get::<Option<bool>, _>(0) {
        return b.to_string();
    }
    String::new()
}

/// A boolean from a first column: `true`/`t`/`1` or `false`/`f`/`0`.
pub fn truthy(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

/// What a failed statement means for a write (see the module's table).
fn sql_error_kind(error: &sqlx::Error) -> EntryType {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // PostgreSQL SQLSTATE classes; MySQL's numeric codes are refusals.
            if code.starts_with("08") || code.starts_with("57") || code.starts_with("XX") {
                EntryType::Info
            } else {
                EntryType::Fail
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => EntryType::Fail,
        _ => EntryType::Info,
    }
}

/// One or several SQL servers.
pub struct SqlClient {
    servers: Vec<SqlServer>,
    target: Target,
    /// The server in use (`read-write`: the one last found writable).
    current: Mutex<Option<usize>>,
}

impl SqlClient {
    /// The dialect of its servers (validation makes them all one).
    pub fn dialect(&self) -> crate::workload::template::Dialect {
        self.servers[0].dialect()
    }

    /// Run a statement on the server in use (`read-write`: finding a writable one first).
    pub async fn run(&self, sql: &str, values: &[Bound]) -> Reply {
        let index = match self.pick().await {
            Some(index) => index,
            None => {
                let names: Vec<&str> = self.servers.iter().map(|s| s.written.as_str()).collect();
                return Reply::failed(
                    EntryType::Fail,
                    format!("no server accepts writes: {}", names.join(", ")),
                );
            }
        };
        let reply = self.servers[index].run(sql, values).await;
        if reply.kind != EntryType::Ok {
            *self.current.lock().expect("current server lock") = None; // look again next time
        }
        reply
    }

    async fn pick(&self) -> Option<usize> {
        if let Some(index) = *self.current.lock().expect("current server lock") {
            return Some(index);
        }
        let found = match self.target {
            Target::Any => Some(0),
            Target::ReadWrite => {
                let mut found = None;
                for (index, server) in self.servers.iter().enumerate() {
                    if server.writable().await {
                        found = Some(index);
                        break;
                    }
                }
                found
            }
        };
        *self.current.lock().expect("current server lock") = found;
        found
    }

    /// One server of this client's kind at another URL (`per_node` final reads, role probes).
    pub fn at(url_written: &str, url: &str, timeout: Duration) -> Result<SqlClient, String> {
        let server = SqlServer::lazy(url_written, url, timeout)?;
        Ok(SqlClient { servers: vec![server], target: Target::Any, current: Mutex::new(None) })
    }

    /// Close every pool (the end of a run).
    pub async fn close(&self) {
        for server in &self.servers {
            match &server.pool {
                Pool::Pg(pool) => pool.close().await,
                Pool::My(pool) => pool.close().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_to_their_published_ports() {
        let published = Published::new(
            [(("haproxy".to_string(), 5000), 41000), (("pg1".to_string(), 8008), 41001)].into(),
        );
        assert_eq!(
            published.rewrite("postgres://u:p@haproxy:5000/db?sslmode=disable", None).unwrap(),
            "postgres://u:p@127.0.0.1:41000/db?sslmode=disable"
        );
        assert_eq!(
            published.rewrite("http://{host}:8008/primary", Some("pg1")).unwrap(),
            "http://127.0.0.1:41001/primary"
        );
        assert!(published.rewrite("http://pg2:8008/", None).unwrap_err().contains("not published"));
    }

    /// A server that answers the first request on each connection (keep-alive) and drops the
    /// connection without answering any later one: what a server whose keep-alive just ran out
    /// does to a request that arrives as it closes. Its address, and how many connections it took.
    async fn one_answer_per_connection() -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let answer =
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.read(&mut buffer).await; // the second request: dropped
                });
            }
        });
        (address, accepted)
    }

    // Goal: a connection that sat idle is not reused, so a server that closed it at the end of
    // its keep-alive cannot swallow the next request (an `info` the stack did not cause).
    // Method: a server that never answers a second request on a connection; two GETs apart by
    // more than the idle limit both succeed, on two connections.
    #[tokio::test]
    async fn an_idle_connection_is_not_reused_past_the_idle_limit() {
        let idle = Duration::from_millis(100);
        let (address, accepted) = one_answer_per_connection().await;
        let client = HttpClient::with_idle(address.clone(), String::new(), Duration::from_secs(2), idle);
        assert_eq!(client.send("GET", "/a", None, &[]).await.kind, EntryType::Ok);
        tokio::time::sleep(idle * 3).await;
        let second = client.send("GET", "/b", None, &[]).await;
        assert_eq!(second.kind, EntryType::Ok, "{:?}", second.error);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    // Goal: a server that closes a kept-alive connection (uvicorn does after every 500) costs
    // no spurious failure. Method: the same server, a pool that keeps connections 90 s; a GET
    // on the closed connection is sent again on a new one; POSTs never share a connection.
    #[tokio::test]
    async fn a_get_is_resent_on_a_closed_connection_and_a_post_never_reuses_one() {
        let (address, accepted) = one_answer_per_connection().await;
        let client =
            HttpClient::with_idle(address, String::new(), Duration::from_secs(2), Duration::from_secs(90));
        assert_eq!(client.send("GET", "/a", None, &[]).await.kind, EntryType::Ok);
        let second = client.send("GET", "/b", None, &[]).await;
        assert_eq!(second.kind, EntryType::Ok, "{:?}", second.error);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2, "resent on a new connection");
        let body = serde_json::json!({});
        for _ in 0..3 {
            let post = client.send("POST", "/c", Some(&body), &[]).await;
            assert_eq!(post.kind, EntryType::Ok, "{:?}", post.error);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5, "a connection per POST");
    }

    #[test]
    fn booleans_read_from_either_engine() {
        assert_eq!(truthy("t"), Some(true));
        assert_eq!(truthy("1"), Some(true));
        assert_eq!(truthy("false"), Some(false));
        assert_eq!(truthy("maybe"), None);
    }
}
