//! Faults on real containers: each planned fault is a task that sleeps until its start, applies
//! it, sleeps until its end (or the end of the run: every fault is healed before the drain),
//! reverts it, and records `fault_start` / `fault_stop` in the history on the run's clock.
//!
//! | fault | applied as | reverted as |
//! |---|---|---|
//! | crash | SIGKILL of each host's container (no shutdown, like a power cut) | `docker start`: same filesystem and volumes, crash recovery |
//! | latency | every proxied link between the two sides delays each chunk by `delay ± jitter/2`, both ways (`proxy.rs`) | the links forward at once |
//!
//! Other kinds — and latency between hosts with no proxied link — are refused by
//! [`unsupported`] before anything starts (exit 254), not 40 s in.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::engine::Engine;
use super::layout::links_between;
use super::proxy::{LinkReport, Toxics};
use crate::faults::{FaultEffect, FaultKind, Plan, PlannedFault, record_event};
use crate::history::{EntryOp, History};
use crate::real::http::RealHttp;
use crate::stack::ports::{HttpClient, HttpRequest};

/// Upper bound on one call to the link proxy's admin API.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why each fault of `plan` cannot run on containers yet (empty: all can).
pub fn unsupported(plan: &Plan) -> Vec<String> {
    let mut reasons = Vec::new();
    for fault in &plan.faults {
        match &fault.kind {
            FaultKind::Crash { .. } => {}
            FaultKind::Latency { a, b, .. } if !links_between(a, b).is_empty() => {}
            FaultKind::Latency { a, b, .. } => reasons.push(format!(
                "faults[{}]: latency between {a:?} and {b:?}: on containers only the replication link (pg-replica → pg-primary) goes through the link proxy yet; run it with --backend sim",
                fault.index
            )),
            other => reasons.push(format!(
                "faults[{}]: `{}` is not supported on the containers backend yet (crash and latency are); run it with --backend sim, or drop it with --set",
                fault.index,
                other.name()
            )),
        }
    }
    reasons
}

/// What the fault tasks share with the run.
#[derive(Clone)]
pub(super) struct FaultState {
    /// Indices of the faults in force now (for the progress line).
    pub(super) active: Arc<Mutex<BTreeSet<usize>>>,
    /// What each fault hit, by index, as counted while it was in force.
    pub(super) effects: Arc<Mutex<Vec<FaultEffect>>>,
    /// The link proxy's admin address on 127.0.0.1 (`127.0.0.1:PORT`).
    pub(super) links_admin: String,
}

impl FaultState {
    pub(super) fn new(plan: &Plan, links_admin: String) -> FaultState {
        let count = plan.faults.iter().map(|f| f.index + 1).max().unwrap_or(0);
        FaultState {
            active: Arc::new(Mutex::new(BTreeSet::new())),
            effects: Arc::new(Mutex::new(vec![FaultEffect::default(); count])),
            links_admin,
        }
    }
}

/// Run one fault's life on the run's clock (`start` is t = 0). Errors applying or reverting a
/// fault are harness errors: they end the run.
pub(super) async fn run_fault(
    engine: Arc<Engine>,
    fault: PlannedFault,
    duration: Duration,
    start: Instant,
    history: Arc<Mutex<History>>,
    state: FaultState,
) -> Result<(), String> {
    tokio::time::sleep_until(start + fault.start).await;
    let before = delayed_count(&state.links_admin).await;
    apply(&engine, &fault, &state.links_admin).await?;
    state.active.lock().expect("active faults").insert(fault.index);
    let now = start.elapsed();
    record_event(&mut history.lock().expect("history lock"), now, EntryOp::FaultStart, &fault, None);
    let end = fault.end.unwrap_or(duration).min(duration);
    tokio::time::sleep_until(start + end).await;
    revert(&engine, &fault, &state.links_admin).await?;
    state.active.lock().expect("active faults").remove(&fault.index);
    let mut effect = FaultEffect::default();
    if matches!(fault.kind, FaultKind::Latency { .. }) {
        effect.messages_held_count = delayed_count(&state.links_admin).await.saturating_sub(before);
    }
    let now = start.elapsed();
    state.effects.lock().expect("fault effects")[fault.index] = effect.clone();
    record_event(&mut history.lock().expect("history lock"), now, EntryOp::FaultStop, &fault, Some(effect));
    Ok(())
}

async fn apply(engine: &Engine, fault: &PlannedFault, links_admin: &str) -> Result<(), String> {
    tracing::info!(fault = fault.index, kind = fault.kind.name(), hosts = ?fault.kind.hosts(), "fault starts");
    match &fault.kind {
        FaultKind::Crash { hosts } => {
            for host in hosts {
                engine.kill(&engine.names.container(host)).await?;
            }
            Ok(())
        }
        FaultKind::Latency { a, b, delay, jitter } => {
            let toxics = Toxics {
                delay_ms: delay.as_millis() as u64,
                jitter_ms: jitter.as_millis() as u64,
                cut: false,
            };
            set_links(links_admin, &links_between(a, b), toxics).await
        }
        other => Err(format!("`{}` is not supported on containers", other.name())),
    }
}

async fn revert(engine: &Engine, fault: &PlannedFault, links_admin: &str) -> Result<(), String> {
    tracing::info!(fault = fault.index, kind = fault.kind.name(), "fault ends");
    match &fault.kind {
        FaultKind::Crash { hosts } => {
            for host in hosts {
                engine.restart(&engine.names.container(host)).await?;
            }
            Ok(())
        }
        FaultKind::Latency { a, b, .. } => {
            set_links(links_admin, &links_between(a, b), Toxics::default()).await
        }
        other => Err(format!("`{}` is not supported on containers", other.name())),
    }
}

fn admin_request(admin: &str, method: http::Method, path: String, body: Option<Vec<u8>>) -> HttpRequest {
    HttpRequest { method, authority: admin.to_string(), path, body, headers: Vec::new() }
}

/// Set the toxics of each named link through the proxy's admin API.
async fn set_links(admin: &str, links: &[String], toxics: Toxics) -> Result<(), String> {
    let http = RealHttp::new(Default::default());
    for link in links {
        let body = serde_json::to_vec(&toxics).expect("toxics serialise");
        let request = admin_request(admin, http::Method::POST, format!("/links/{link}"), Some(body));
        let response = http.send(request, ADMIN_TIMEOUT).await.map_err(|e| format!("link proxy: {e}"))?;
        if response.status != 200 {
            return Err(format!("link proxy: {link}: {}", String::from_utf8_lossy(&response.body)));
        }
    }
    Ok(())
}

/// Chunks the proxy has delayed so far, over every link (0 if it cannot be asked).
async fn delayed_count(admin: &str) -> u64 {
    let http = RealHttp::new(Default::default());
    let request = admin_request(admin, http::Method::GET, "/links".into(), None);
    let Ok(response) = http.send(request, ADMIN_TIMEOUT).await else { return 0 };
    let links: Vec<LinkReport> = serde_json::from_slice(&response.body).unwrap_or_default();
    links.iter().map(|l| l.chunks_delayed_count).sum()
}
