//! The link proxy (Toxiproxy's model, built in because this kernel has no `netem`): one TCP
//! listener per *link* — a directed connection path such as `pg-replica→pg-primary` — that
//! forwards to the link's target and, on demand, delays every chunk in both directions by
//! `delay` plus a uniform draw in `0..jitter` (the scenario language's meaning) or cuts the link (existing connections closed, new ones refused).
//!
//! It runs as the run's `links` container (`shakedown serve links`); the hosts at a link's source
//! dial the proxy instead of the target. The harness steers it over HTTP:
//! `GET /links` (every link's state and counters), `POST /links/{name}` with a [`Toxics`] body,
//! `GET /health`.
//!
//! Delay keeps order: a chunk read at `t` is written at `max(t + delay + jitter, previous due)`,
//! and chunks are queued, not slept on in the reader, so a delayed link keeps its throughput.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Most connections one link carries at once; more are refused (and counted).
pub const CONNECTIONS_MAX: usize = 256;
/// Most chunks queued in one direction of one connection before the reader waits.
const QUEUE_MAX: usize = 1024;
/// Read buffer per direction.
const CHUNK_BYTES: usize = 16 * 1024;

/// One link as the command line gives it: `NAME=LISTEN_PORT:TARGET_HOST:TARGET_PORT`, e.g.
/// `pg-replica~pg-primary=15432:sd-ab12-pg-primary:5432`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// `source~target` (the hosts of the topology).
    pub name: String,
    /// Port the proxy listens on.
    pub listen_port: u16,
    /// `host:port` it forwards to.
    pub target: String,
}

impl LinkSpec {
    /// Parse `NAME=LISTEN_PORT:HOST:PORT`.
    pub fn parse(text: &str) -> Result<LinkSpec, String> {
        let hint = "expected NAME=LISTEN_PORT:HOST:PORT, e.g. pg-replica~pg-primary=15432:pg-primary:5432";
        let (name, rest) = text.split_once('=').ok_or_else(|| format!("--link {text}: {hint}"))?;
        let (port, target) = rest.split_once(':').ok_or_else(|| format!("--link {text}: {hint}"))?;
        let listen_port =
            port.parse().map_err(|_| format!("--link {text}: `{port}` is not a port; {hint}"))?;
        if !target.contains(':') {
            return Err(format!("--link {text}: the target needs a port; {hint}"));
        }
        Ok(LinkSpec { name: name.into(), listen_port, target: target.into() })
    }
}

/// What is done to a link now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toxics {
    /// Added one-way delay per chunk, ms.
    #[serde(default)]
    pub delay_ms: u64,
    /// Extra random delay: each chunk gets `delay` plus a uniform draw in `0..jitter`, ms.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Close every connection and refuse new ones.
    #[serde(default)]
    pub cut: bool,
}

/// A link's state and what it carried, for `GET /links`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkReport {
    /// `source~target`.
    pub name: String,
    /// Where it forwards.
    pub target: String,
    /// What is done to it now.
    pub toxics: Toxics,
    /// Connections accepted.
    pub connections_count: u64,
    /// Connections closed because the link was cut, or refused while cut or full.
    pub connections_reset_count: u64,
    /// Chunks that were held back by a delay.
    pub chunks_delayed_count: u64,
}

struct Link {
    spec: LinkSpec,
    toxics: watch::Sender<Toxics>,
    open: AtomicU64,
    connections: AtomicU64,
    resets: AtomicU64,
    delayed: AtomicU64,
}

type Links = Arc<BTreeMap<String, Arc<Link>>>;

/// Serve every link and the admin API on `admin` until the process ends.
pub async fn serve(links: Vec<LinkSpec>, admin: &str) -> Result<(), String> {
    let mut table = BTreeMap::new();
    for spec in links {
        let listener = TcpListener::bind(("0.0.0.0", spec.listen_port))
            .await
            .map_err(|e| format!("link {}: listen on {}: {e}", spec.name, spec.listen_port))?;
        let link = Arc::new(Link {
            spec: spec.clone(),
            toxics: watch::channel(Toxics::default()).0,
            open: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        });
        crate::stack::spawn(accept_loop(listener, link.clone()));
        table.insert(spec.name, link);
    }
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/links", get(list))
        .route("/links/{name}", post(set))
        .with_state(Arc::new(table));
    let listener = TcpListener::bind(admin).await.map_err(|e| format!("listen on {admin}: {e}"))?;
    axum::serve(listener, router).await.map_err(|e| e.to_string())
}

async fn list(State(links): State<Links>) -> Json<Vec<LinkReport>> {
    Json(links.values().map(|l| report(l)).collect())
}

fn report(link: &Link) -> LinkReport {
    LinkReport {
        name: link.spec.name.clone(),
        target: link.spec.target.clone(),
        toxics: *link.toxics.borrow(),
        connections_count: link.connections.load(Ordering::Relaxed),
        connections_reset_count: link.resets.load(Ordering::Relaxed),
        chunks_delayed_count: link.delayed.load(Ordering::Relaxed),
    }
}

async fn set(
    State(links): State<Links>,
    Path(name): Path<String>,
    Json(toxics): Json<Toxics>,
) -> Result<Json<LinkReport>, (axum::http::StatusCode, String)> {
    let Some(link) = links.get(&name) else {
        let known: Vec<&String> = links.keys().collect();
        return Err((axum::http::StatusCode::NOT_FOUND, format!("no link `{name}`; known: {known:?}")));
    };
    link.toxics.send_replace(toxics);
    tracing::info!(link = name, ?toxics, "link toxics set");
    Ok(Json(report(link)))
}

async fn accept_loop(listener: TcpListener, link: Arc<Link>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let full = link.open.load(Ordering::Relaxed) as usize >= CONNECTIONS_MAX;
        if link.toxics.borrow().cut || full {
            link.resets.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        link.connections.fetch_add(1, Ordering::Relaxed);
        crate::stack::spawn(connection(client, link.clone()));
    }
}

/// One proxied connection: two pumps, ended together when either side closes or the link is cut.
async fn connection(client: TcpStream, link: Arc<Link>) {
    let Ok(upstream) = TcpStream::connect(&link.spec.target).await else {
        link.resets.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    link.open.fetch_add(1, Ordering::Relaxed);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut toxics = link.toxics.subscribe();
    let seed = link.connections.load(Ordering::Relaxed);
    tokio::select! {
        biased;
        _ = async { while toxics.changed().await.is_ok() { if toxics.borrow().cut { break } } } => {
            link.resets.fetch_add(1, Ordering::Relaxed);
        }
        _ = pump(client_read, upstream_write, link.clone(), seed * 2) => {}
        _ = pump(upstream_read, client_write, link.clone(), seed * 2 + 1) => {}
    }
    link.open.fetch_sub(1, Ordering::Relaxed);
}

/// Copy one direction, each chunk released at its due time.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
    seed: u64,
) {
    let (queue, mut due) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_MAX);
    let reader = async move {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let toxics = *link.toxics.borrow();
            let delay = chunk_delay(toxics, rng.random::<f64>());
            if !delay.is_zero() {
                link.delayed.fetch_add(1, Ordering::Relaxed);
            }
            last_due = last_due.max(Instant::now() + delay);
            if queue.send((last_due, buffer[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            // A timer fires on a 1 ms tick: sleeping until a moment already past would hold
            // every chunk of an undelayed link for up to a millisecond.
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// The delay of one chunk: `delay + jitter * u` for a uniform `u` in `[0, 1)`, as the scenario
/// language defines jitter (`0..jitter` on top of the delay).
fn chunk_delay(toxics: Toxics, u: f64) -> Duration {
    let ms = toxics.delay_ms as f64 + toxics.jitter_ms as f64 * u;
    Duration::from_secs_f64(ms / 1000.0)
}

/// Upper bound on one call to the proxy's admin API.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The harness's side of the admin API: every link's state and counters (`GET /links` on
/// `admin`, `127.0.0.1:PORT`).
pub async fn list_links(admin: &str) -> Result<Vec<LinkReport>, String> {
    let response = admin_call(admin, http::Method::GET, "/links".into(), None).await?;
    serde_json::from_slice(&response.body).map_err(|e| format!("link proxy: GET /links: {e}"))
}

/// Set the toxics of each named link (`POST /links/{name}` on `admin`).
pub async fn set_toxics(admin: &str, links: &[String], toxics: Toxics) -> Result<(), String> {
    let body = serde_json::to_vec(&toxics).expect("toxics serialise");
    for link in links {
        let path = format!("/links/{link}");
        let response = admin_call(admin, http::Method::POST, path, Some(body.clone())).await?;
        if response.status != 200 {
            return Err(format!("link proxy: {link}: {}", String::from_utf8_lossy(&response.body)));
        }
    }
    Ok(())
}

async fn admin_call(
    admin: &str,
    method: http::Method,
    path: String,
    body: Option<Vec<u8>>,
) -> Result<crate::stack::ports::HttpResponse, String> {
    use crate::stack::ports::{HttpClient, HttpRequest};
    let request = HttpRequest { method, authority: admin.into(), path, body, headers: Vec::new() };
    let http = crate::real::http::RealHttp::new(BTreeMap::new());
    http.send(request, ADMIN_TIMEOUT).await.map_err(|e| format!("link proxy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One echo round trip (the proxy's test measures what a delay adds to it).
    async fn round_trip(s: &mut TcpStream) -> Duration {
        let started = std::time::Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
        started.elapsed()
    }

    #[test]
    fn link_specs_parse_and_bad_ones_say_how() {
        let spec = LinkSpec::parse("pg-replica~pg-primary=15432:sd-x-pg-primary:5432").unwrap();
        assert_eq!(spec.listen_port, 15432);
        assert_eq!(spec.target, "sd-x-pg-primary:5432");
        assert!(LinkSpec::parse("a~b=x:h:1").unwrap_err().contains("not a port"));
        assert!(LinkSpec::parse("a~b=1:h").unwrap_err().contains("needs a port"));
    }

    #[test]
    fn jitter_adds_zero_to_jitter_on_top_of_the_delay() {
        let toxics = Toxics { delay_ms: 100, jitter_ms: 40, cut: false };
        assert_eq!(chunk_delay(toxics, 0.0), Duration::from_millis(100));
        assert_eq!(chunk_delay(toxics, 0.5), Duration::from_millis(120));
        assert!(chunk_delay(toxics, 0.999) < Duration::from_millis(140));
    }

    /// Through the proxy on loopback: an echo's round trip grows by twice the delay (once each
    /// way), within 10% or 2 ms; a cut closes the open connection and refuses new ones.
    #[tokio::test]
    async fn delay_is_added_each_way_and_a_cut_closes_connections() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let spec = LinkSpec { name: "a~b".into(), listen_port: port, target: echo_addr.to_string() };
        tokio::spawn(async move { serve(vec![spec], &format!("127.0.0.1:{admin_port}")).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let base = round_trip(&mut stream).await;
        let admin = crate::real::http::RealHttp::new(BTreeMap::new());
        let set = |toxics: Toxics| crate::stack::ports::HttpRequest {
            method: http::Method::POST,
            authority: format!("127.0.0.1:{admin_port}"),
            path: "/links/a~b".into(),
            body: Some(serde_json::to_vec(&toxics).unwrap()),
            headers: vec![],
        };
        use crate::stack::ports::HttpClient;
        let answer = admin
            .send(set(Toxics { delay_ms: 50, ..Toxics::default() }), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        let delayed = round_trip(&mut stream).await;
        let added = delayed.saturating_sub(base).as_secs_f64() * 1000.0;
        assert!((added - 100.0).abs() <= 10.0_f64.max(2.0), "asked 2 x 50 ms, added {added:.1} ms");
        admin.send(set(Toxics { cut: true, ..Toxics::default() }), Duration::from_secs(2)).await.unwrap();
        let mut b = [0u8; 4];
        let _ = stream.write_all(b"ping").await;
        assert!(matches!(stream.read(&mut b).await, Ok(0) | Err(_)), "the open connection is closed");
    }
}
