//! What the checkers read of a compose stack: the invariants, evaluated every `every` during the
//! run (those `at: periodic`) and once at its end; the conservation checks' parts, once, after
//! the drain; and after the drain, the keys each `write` op left (through its
//! client: the node that accepts writes; and each `per_node` node directly), and whether each
//! accepted job of a `submit` op is done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::clients::{Client, Published, SqlClient, truthy};
use super::ops::{poll_once, select, send};
use crate::check::conservation::integer;
use crate::check::{InvariantSample, KeySet, NodeKeys, PartReading};
use crate::history::{EntryType, History};
use crate::scenario::Scenario;
use crate::scenario::declared::{ConservationPart, ConservationSpec, FinalRead, InvariantSpec, OpKind};
use crate::scenario::validate_declared::{Scheme, endpoint};
use crate::workload::template::Bindings;

/// How long the final read of a write op keeps retrying (a failover may still be settling after
/// the drain) before it fails the run.
const FINAL_READ_WAIT_MAX: Duration = Duration::from_secs(60);
/// Time between two attempts of a final read.
const FINAL_READ_RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long one final read (or one per-node read) may take.
const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most reads of one conservation part (the first and its retries) before it counts as unreadable.
const CONSERVATION_READ_ATTEMPTS_MAX: u32 = 5;
/// Most accepted jobs polled once more at the end; past it, the rest count as not done.
const FINAL_POLLS_MAX: usize = 100_000;

/// Evaluate one invariant now.
async fn evaluate(
    spec: &InvariantSpec,
    clients: &BTreeMap<String, Client>,
    at_ns: u64,
    last: bool,
) -> InvariantSample {
    let sample = |holds, detail: String| InvariantSample {
        name: spec.name.clone(),
        time_ns: at_ns,
        holds,
        detail: Some(detail),
        last,
    };
    let Some(Client::Sql(client)) = clients.get(&spec.client) else {
        return sample(None, "no such SQL client".into());
    };
    let reply = client.run(&spec.sql, &[]).await;
    if reply.kind != EntryType::Ok {
        return sample(None, reply.error.unwrap_or_default());
    }
    match reply.first_column.first() {
        Some(value) => match truthy(value) {
            Some(holds) => sample(Some(holds), format!("first column: {value}")),
            None => sample(None, format!("not a boolean: `{value}`")),
        },
        None => sample(None, "no row".into()),
    }
}

/// Evaluate every invariant every `every` until `stop` fires; the samples, in time order.
pub async fn sample_invariants(
    specs: Vec<InvariantSpec>,
    clients: Arc<BTreeMap<String, Client>>,
    start: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<InvariantSample> {
    // `at: end` invariants are read only by `last_invariants`.
    let specs: Vec<InvariantSpec> = specs.into_iter().filter(|s| s.at.is_periodic()).collect();
    let mut samples = Vec::new();
    let mut next: Vec<Instant> = specs.iter().map(|s| start + s.every.get()).collect();
    while let Some((i, due)) = next.iter().copied().enumerate().min_by_key(|(_, t)| *t) {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        let at_ns = start.elapsed().as_nanos() as u64;
        samples.push(evaluate(&specs[i], &clients, at_ns, false).await);
        next[i] = due + specs[i].every.get();
    }
    samples
}

/// The end-of-run evaluation of every invariant.
pub async fn last_invariants(
    specs: &[InvariantSpec],
    clients: &BTreeMap<String, Client>,
    start: Instant,
) -> Vec<InvariantSample> {
    let mut out = Vec::new();
    for spec in specs {
        out.push(evaluate(spec, clients, start.elapsed().as_nanos() as u64, true).await);
    }
    out
}

/// Each conservation check's parts, read once, in order, after the drain (by check name). A part
/// whose read fails is tried again, up to [`CONSERVATION_READ_ATTEMPTS_MAX`] times, 1 s apart: a
/// failover may still be settling.
pub async fn read_conservation(
    specs: &[ConservationSpec],
    clients: &BTreeMap<String, Client>,
) -> BTreeMap<String, Vec<PartReading>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let mut parts = Vec::new();
        for part in &spec.parts {
            let mut reading = read_part(part, clients).await;
            for _ in 1..CONSERVATION_READ_ATTEMPTS_MAX {
                if reading.value.is_some() {
                    break;
                }
                tokio::time::sleep(FINAL_READ_RETRY_EVERY).await;
                reading = read_part(part, clients).await;
            }
            parts.push(reading);
        }
        out.insert(spec.name.clone(), parts);
    }
    out
}

/// One conservation part: the integer in its query's first column.
async fn read_part(part: &ConservationPart, clients: &BTreeMap<String, Client>) -> PartReading {
    let reading = |value, error: Option<String>| PartReading { client: part.client.clone(), value, error };
    let Some(Client::Sql(client)) = clients.get(&part.client) else {
        return reading(None, Some("no such SQL client".into()));
    };
    let reply = client.run(&part.sql, &[]).await;
    if reply.kind != EntryType::Ok {
        return reading(None, Some(reply.error.unwrap_or_else(|| "the query failed".into())));
    }
    match reply.first_column.first() {
        Some(value) => match integer(value) {
            Some(n) => reading(Some(n), None),
            None => reading(None, Some(format!("not an integer: `{value}`"))),
        },
        None => reading(None, Some("no row".into())),
    }
}

/// The keys each `write` op left, by op name.
pub async fn read_sets(
    scenario: &Scenario,
    clients: &BTreeMap<String, Client>,
    published: &Published,
) -> Result<BTreeMap<String, KeySet>, String> {
    let mut sets = BTreeMap::new();
    for (op, read) in &scenario.final_state {
        let present = read_keys(op, read, clients).await?;
        let mut nodes = BTreeMap::new();
        for node in &read.per_node {
            nodes.insert(node.clone(), read_node(scenario, read, node, published).await);
        }
        let mut counted: BTreeMap<String, u32> = BTreeMap::new();
        for key in present {
            *counted.entry(key).or_default() += 1;
        }
        sets.insert(op.clone(), KeySet { present: counted, nodes });
    }
    Ok(sets)
}

/// One op's keys through its final read's client, retried until it answers.
async fn read_keys(
    op: &str,
    read: &FinalRead,
    clients: &BTreeMap<String, Client>,
) -> Result<Vec<String>, String> {
    let client =
        clients.get(&read.client).ok_or_else(|| format!("final_state.{op}: no client `{}`", read.client))?;
    let deadline = Instant::now() + FINAL_READ_WAIT_MAX;
    loop {
        let mut bindings = Bindings::new("", 0, 0);
        let attempt = tokio::time::timeout(
            FINAL_READ_TIMEOUT,
            send(client, read.sql.as_deref(), read.request.as_ref(), &mut bindings),
        );
        let why = match attempt.await {
            Ok(Ok(reply)) if reply.kind == EntryType::Ok => {
                return Ok(match (&read.keys_from, &reply.body) {
                    (Some(pattern), Some(body)) => select(body, pattern),
                    _ => reply.first_column,
                });
            }
            Ok(Ok(reply)) => reply.error.unwrap_or_default(),
            Ok(Err(message)) => message,
            Err(_) => "no answer within 30 s".into(),
        };
        if Instant::now() + FINAL_READ_RETRY_EVERY >= deadline {
            return Err(format!(
                "the final read of `{op}` failed for {} s: {why}",
                FINAL_READ_WAIT_MAX.as_secs()
            ));
        }
        tokio::time::sleep(FINAL_READ_RETRY_EVERY).await;
    }
}

/// One node's keys, read directly: the final read's first URL with the node as host.
async fn read_node(scenario: &Scenario, read: &FinalRead, node: &str, published: &Published) -> NodeKeys {
    let outcome = async {
        let spec = scenario.clients.get(&read.client).ok_or("no such client")?;
        let written = spec
            .sql
            .as_ref()
            .and_then(|u| u.items().first().map(|s| s.to_string()))
            .ok_or("not an SQL client")?;
        let scheme = endpoint(&written)?.scheme;
        let port = read.per_node_port.or(scheme.default_port()).unwrap_or(5432);
        let mut url = url::Url::parse(&written).map_err(|e| e.to_string())?;
        url.set_host(Some(node)).map_err(|e| e.to_string())?;
        url.set_port(Some(port)).map_err(|()| "cannot set the port".to_owned())?;
        let direct = published.rewrite(url.as_str(), None)?;
        let client = SqlClient::at(url.as_str(), &direct, FINAL_READ_TIMEOUT)?;
        let reply = client.run(read.sql.as_deref().unwrap_or_default(), &[]).await;
        client.close().await;
        match reply.kind {
            EntryType::Ok => Ok(reply.first_column.into_iter().collect::<BTreeSet<String>>()),
            _ => Err(reply.error.unwrap_or_default()),
        }
    };
    match outcome.await {
        Ok(keys) => NodeKeys { keys: Some(keys), error: None },
        Err(error) => NodeKeys { keys: None, error: Some(error) },
    }
}

/// The node a per-node read reaches: (service, container port), for publishing.
pub fn per_node_endpoints(scenario: &Scenario) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for read in scenario.final_state.values() {
        let Some(first) = scenario
            .clients
            .get(&read.client)
            .and_then(|c| c.sql.as_ref())
            .and_then(|u| u.items().first().map(|s| s.to_string()))
        else {
            continue;
        };
        let scheme = endpoint(&first).map(|e| e.scheme).unwrap_or(Scheme::Postgres);
        let port = read.per_node_port.or(scheme.default_port()).unwrap_or(5432);
        out.extend(read.per_node.iter().map(|node| (node.clone(), port)));
    }
    out
}

/// For every `submit` op: each job the history shows accepted, and whether a last poll finds
/// it done (jobs its op already saw done count as done).
pub async fn read_jobs(
    scenario: &Scenario,
    history: &History,
    clients: &BTreeMap<String, Client>,
) -> BTreeMap<String, BTreeMap<String, bool>> {
    let mut jobs: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    let submits: Vec<&crate::scenario::model::Load> =
        scenario.workload.iter().filter(|l| l.kind == Some(OpKind::Submit)).collect();
    for load in &submits {
        jobs.insert(load.op_name().to_owned(), BTreeMap::new());
    }
    let mut polled = 0;
    for (invoke, done) in history.ops() {
        let (Some(done), Some(load)) = (done, submits.iter().find(|l| l.op_name() == invoke.op.name()))
        else {
            continue;
        };
        let Some(job) = &done.value.job else { continue };
        let finished = if done.kind == EntryType::Ok {
            true
        } else if polled < FINAL_POLLS_MAX
            && let (Some(poll), Some(client)) =
                (&load.poll, load.client.as_ref().and_then(|c| clients.get(c)))
        {
            polled += 1;
            poll_once(client, poll, &mut Bindings::new("", 0, 0).with_id(job)).await
        } else {
            false
        };
        jobs.entry(load.op_name().to_owned()).or_default().insert(job.clone(), finished);
    }
    jobs
}
