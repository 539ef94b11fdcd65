//! Probes of a compose stack: the readiness probes that must all answer before setup and load
//! (never a sleep), and the role probes that find, when a fault starts, which member of a group
//! holds a role (`leader`: the member whose Patroni API answers `GET /primary` with 200).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::clients::{HttpClient, Published, SqlClient, truthy};
use crate::history::EntryType;
use crate::scenario::declared::{Probe, RoleSpec};
use crate::scenario::validate_declared::endpoint;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time between two rounds of readiness probes.
const READY_RETRY_EVERY: Duration = Duration::from_millis(500);

/// One probe's answer: `Ok` when it passed, else why not.
async fn probe(probe: &Probe, published: &Published) -> Result<(), String> {
    if let Some(url) = &probe.sql {
        let client = SqlClient::at(url, &published.rewrite(url, None)?, PROBE_TIMEOUT)?;
        let reply = client.run(probe.query.as_deref().unwrap_or("SELECT 1"), &[]).await;
        client.close().await;
        return match reply.kind {
            EntryType::Ok => Ok(()),
            _ => Err(reply.error.unwrap_or_default()),
        };
    }
    if let Some(url) = &probe.http {
        return http_status(url, None, published, probe.status.unwrap_or(200)).await;
    }
    if let Some(target) = &probe.tcp {
        let (service, port) = target.rsplit_once(':').ok_or("not service:port")?;
        let port: u16 = port.parse().map_err(|_| "not a port")?;
        let address = published.address(service, port)?;
        return match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no connection within 2 s".into()),
        };
    }
    Err("a probe with nothing to probe (validation refuses it)".into())
}

/// `GET url` (with `{host}` = `member`) answers `status`.
async fn http_status(
    url: &str,
    member: Option<&str>,
    published: &Published,
    status: u16,
) -> Result<(), String> {
    let url = member.map_or_else(|| url.to_owned(), |m| url.replace("{host}", m));
    let e = endpoint(&url)?;
    let parsed = url::Url::parse(&url).map_err(|e| e.to_string())?;
    let path = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let client = HttpClient::new(published.address(&e.service, e.port)?, String::new(), PROBE_TIMEOUT);
    let reply = client.send("GET", &path, None, &[]).await;
    match reply.status {
        Some(got) if got == status => Ok(()),
        Some(got) => Err(format!("answered {got}, not {status}")),
        None => Err(reply.error.unwrap_or_default()),
    }
}

/// Wait until every readiness probe passes, each round at most every [`READY_RETRY_EVERY`].
/// Err after `deadline` with the probe that still failed and why.
pub async fn wait_ready(
    probes: &[Probe],
    published: &Published,
    deadline: Instant,
) -> Result<(), (usize, String)> {
    let mut pending: Vec<usize> = (0..probes.len()).collect();
    loop {
        let mut still = Vec::new();
        let mut last = String::new();
        for &i in &pending {
            if let Err(why) = probe(&probes[i], published).await {
                last = why;
                still.push(i);
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() + READY_RETRY_EVERY >= deadline {
            return Err((still[0], last));
        }
        pending = still;
        tokio::time::sleep(READY_RETRY_EVERY).await;
    }
}

/// The roles a scenario declares, and how to find who holds each.
pub struct Roles {
    specs: BTreeMap<String, RoleSpec>,
    groups: BTreeMap<String, Vec<String>>,
    published: Published,
}

impl Roles {
    /// The roles of a scenario's stack.
    pub fn new(
        specs: BTreeMap<String, RoleSpec>,
        groups: BTreeMap<String, Vec<String>>,
        published: Published,
    ) -> Roles {
        Roles { specs, groups, published }
    }

    /// The first role by name, if any.
    pub fn first(&self) -> Option<String> {
        self.specs.keys().next().cloned()
    }

    /// Whether `name` is a role (rather than a service).
    pub fn is_role(&self, name: &str) -> bool {
        self.specs.contains_key(name)
    }

    /// The member of the role's group that holds it now: the first, in the group's order, whose
    /// probe qualifies. `None` when no member does (the fault is vacuous).
    pub async fn holder(&self, role: &str) -> Option<String> {
        let spec = self.specs.get(role)?;
        for member in self.groups.get(&spec.of)? {
            if self.holds(spec, member).await {
                return Some(member.clone());
            }
        }
        None
    }

    async fn holds(&self, spec: &RoleSpec, member: &str) -> bool {
        if let Some(url) = &spec.http {
            return http_status(url, Some(member), &self.published, spec.status.unwrap_or(200)).await.is_ok();
        }
        let (Some(url), Some(query)) = (&spec.sql, &spec.query) else { return false };
        let Ok(rewritten) = self.published.rewrite(url, Some(member)) else { return false };
        let Ok(client) = SqlClient::at(url, &rewritten, PROBE_TIMEOUT) else { return false };
        let reply = client.run(query, &[]).await;
        client.close().await;
        reply.kind == EntryType::Ok && reply.first_column.first().is_some_and(|v| truthy(v) == Some(true))
    }
}
