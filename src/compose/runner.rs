//! One run of a compose scenario, as numbered steps:
//!
//! 1. read the compose file; bring the project up with the ports the scenario names published
//!    on 127.0.0.1 (`containers::compose::Project::up`: sweep, build, `up -d`, healthchecks);
//! 2. wait for every `stack.ready` probe (`run.startup_ms` is bring-up plus this);
//! 3. build the clients; run `setup` once;
//! 4. drive the load open-loop (`workload::drive_declared`), the faults (`faults::drive` through
//!    [`ComposeFaults`]) and the invariant sampler on one clock; every fault is healed when the
//!    duration is up;
//! 5. drain ([`DRAIN`]), then read the final state: each write op's keys, each accepted job,
//!    each invariant once more (those `at: end` only then), each conservation check's parts;
//! 6. `down` — also on error, panic, Ctrl-C or SIGTERM (`Project::guarded`, and its `Drop`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::actuator::ComposeFaults;
use super::clients::{Client, Published};
use super::ops::{Ops, send};
use super::probes::{Roles, wait_ready};
use super::state::{last_invariants, read_conservation, read_jobs, read_sets, sample_invariants};
use crate::check::FinalState;
use crate::containers::compose::{Project, RunLabels};
use crate::faults::FaultKind;
use crate::history::{EntryType, History};
use crate::run::{BackendError, DRAIN, Observed};
use crate::scenario::Loaded;
use crate::scenario::compose_file::ComposeFile;
use crate::scenario::compose_path;
use crate::scenario::declared::READY_TIMEOUT_DEFAULT;
use crate::workload::template::Bindings;
use crate::workload::{Recorder, Schedule, drive_declared};

/// Lines of a service's log shown when it does not get ready.
const LOG_LINES: usize = 30;

fn error(message: impl Into<String>) -> BackendError {
    BackendError { backend: "containers", message: message.into() }
}

/// Step 1: the project up, its run labels made from `seed`.
async fn bring_up(
    loaded: &Loaded,
    seed: u64,
    publish: &[(String, u16)],
) -> Result<Arc<Project>, BackendError> {
    let compose = loaded.scenario.stack.compose.as_deref().ok_or_else(|| error("not a compose scenario"))?;
    let path = compose_path(&loaded.file, compose);
    let file =
        ComposeFile::load_with(&path, &loaded.scenario.stack.env).map_err(|e| error(e.0.to_string()))?;
    let labels = RunLabels::new(seed);
    eprintln!("  bringing up {} as compose project {}", path.display(), labels.project());
    let project = Project::up(&file, publish, &labels, |line| eprintln!("  {line}"))
        .await
        .map_err(|e| error(e.to_string()))?;
    Ok(Arc::new(project))
}

/// Run a compose scenario (steps 1 to 6).
pub async fn run(loaded: &Loaded, seed: u64, publish: Vec<(String, u16)>) -> Result<Observed, BackendError> {
    let begun = Instant::now();
    let project = bring_up(loaded, seed, &publish).await?;
    match project.guarded(drive(loaded, seed, project.clone(), begun)).await {
        Ok(outcome) => outcome,
        Err(e) => Err(error(e.to_string())),
    }
}

/// `shakedown up`: steps 1 to 3, the endpoints printed, then kept until a signal.
pub async fn up(loaded: &Loaded, publish: Vec<(String, u16)>) -> Result<String, BackendError> {
    let begun = Instant::now();
    let project = bring_up(loaded, loaded.scenario.seed, &publish).await?;
    let run = project.labels().run.clone();
    let serve = async {
        let _ready = ready_and_setup(loaded, &project).await?;
        println!(
            "shakedown up: run {run}: {} ready in {:.1} s (no load, no faults); Ctrl-C to stop",
            loaded.scenario.name,
            begun.elapsed().as_secs_f64()
        );
        for (service, container_port, host_port) in project.published().iter() {
            println!("  {service:<16} {container_port:>5} → 127.0.0.1:{host_port}");
        }
        println!("  faults by hand: shakedown fault crash|pause SERVICE [--for 10s] --run {run}");
        std::future::pending::<()>().await;
        Ok::<(), BackendError>(())
    };
    match project.guarded(serve).await {
        Ok(Ok(())) => Ok(format!("run {run} ended")),
        Ok(Err(e)) => Err(e),
        Err(e) => Ok(format!("{e}; run {run}'s containers, networks and volumes were removed")),
    }
}

/// Steps 2 and 3: readiness probes, the clients, `setup`.
async fn ready_and_setup(
    loaded: &Loaded,
    project: &Project,
) -> Result<(Published, Arc<BTreeMap<String, Client>>), BackendError> {
    let scenario = &loaded.scenario;
    let published =
        Published::new(project.published().iter().map(|(s, c, h)| ((s.to_owned(), c), h)).collect());
    let ready_for = scenario.stack.ready_timeout.unwrap_or(READY_TIMEOUT_DEFAULT).get();
    if let Err((i, why)) = wait_ready(&scenario.stack.ready, &published, Instant::now() + ready_for).await {
        let service = probe_service(&scenario.stack.ready[i]);
        let logs = project.logs_tail(&service, LOG_LINES).await;
        return Err(error(format!(
            "stack.ready[{i}] did not pass within {} s: {why}\n--- the last log lines of `{service}`:\n{logs}",
            ready_for.as_secs()
        )));
    }
    let mut clients = BTreeMap::new();
    for (name, spec) in &scenario.clients {
        clients.insert(
            name.clone(),
            Client::new(spec, &published).map_err(|e| error(format!("client `{name}`: {e}")))?,
        );
    }
    let clients = Arc::new(clients);
    setup(loaded, &clients).await?;
    Ok((published, clients))
}

/// Steps 2 to 5 on a project that is up.
async fn drive(
    loaded: &Loaded,
    seed: u64,
    project: Arc<Project>,
    begun: Instant,
) -> Result<Observed, BackendError> {
    let (published, clients) = ready_and_setup(loaded, &project).await?;
    let startup_ms = begun.elapsed().as_millis() as u64;
    eprintln!("  ready after {:.1} s", startup_ms as f64 / 1000.0);
    if loaded.plan.faults.iter().any(|f| matches!(f.kind, FaultKind::Partition { .. })) {
        project.prepare_partitions(&mut |line| eprintln!("  {line}")).map_err(|e| error(e.to_string()))?;
    }
    let mut observed = run_load(loaded, seed, project, &clients, published).await?;
    observed.startup_ms = Some(startup_ms);
    for client in clients.values() {
        if let Client::Sql(sql) = client {
            sql.close().await;
        }
    }
    Ok(observed)
}

/// The service a readiness probe waits for.
fn probe_service(probe: &crate::scenario::declared::Probe) -> String {
    let url = probe.sql.as_deref().or(probe.http.as_deref());
    match (url, &probe.tcp) {
        (Some(url), _) => {
            crate::scenario::validate_declared::endpoint(url).map(|e| e.service).unwrap_or_default()
        }
        (None, Some(tcp)) => tcp.rsplit_once(':').map(|(s, _)| s.to_owned()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Step 3's setup: each step once, in order; one that fails ends the run.
async fn setup(loaded: &Loaded, clients: &BTreeMap<String, Client>) -> Result<(), BackendError> {
    for (i, step) in loaded.scenario.setup.iter().enumerate() {
        let client = clients
            .get(&step.client)
            .ok_or_else(|| error(format!("setup[{i}]: no client `{}`", step.client)))?;
        let reply = send(client, step.sql.as_deref(), step.request.as_ref(), &mut Bindings::new("", 0, 0))
            .await
            .map_err(|e| error(format!("setup[{i}]: {e}")))?;
        if reply.kind != EntryType::Ok {
            return Err(error(format!("setup[{i}] failed: {}", reply.error.unwrap_or_default())));
        }
    }
    Ok(())
}

/// Steps 4 and 5.
async fn run_load(
    loaded: &Loaded,
    seed: u64,
    project: Arc<Project>,
    clients: &Arc<BTreeMap<String, Client>>,
    published: Published,
) -> Result<Observed, BackendError> {
    let scenario = &loaded.scenario;
    let duration = scenario.duration.get();
    let history = Arc::new(Mutex::new(History::new()));
    let recorder = Recorder::new(history.clone());
    let start = recorder.start();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_invariants(
        scenario.checks.invariants.clone(),
        clients.clone(),
        start,
        stopped.clone(),
    ));
    let shown = tokio::spawn(crate::containers::progress::show(
        loaded.plan.clone(),
        duration + DRAIN,
        start,
        history.clone(),
        stopped,
    ));
    let roles = || Roles::new(scenario.stack.roles.clone(), scenario.stack.groups.clone(), published.clone());
    let actuator = ComposeFaults::new(project, roles(), seed);
    let faults = crate::faults::drive(Arc::new(actuator), &loaded.plan, start, history.clone());
    let schedule = Schedule::new(scenario, seed);
    let workload = drive_declared(&schedule, scenario, Arc::new(Ops::new(clients.clone())), recorder);
    let (generator, effects) = tokio::join!(workload, faults);
    let fault_effects = effects.map_err(error)?;
    tokio::time::sleep_until(start + duration.max(start.elapsed()) + DRAIN).await;
    let _ = stop.send(true);
    let mut invariants = sampler.await.unwrap_or_default();
    let _ = shown.await;
    let simulated_ms = start.elapsed().as_millis() as u64;
    invariants.extend(last_invariants(&scenario.checks.invariants, clients, start).await);
    let history = std::mem::take(&mut *history.lock().expect("history lock"));
    let sets = read_sets(scenario, clients, &published).await.map_err(error)?;
    let jobs = read_jobs(scenario, &history, clients).await;
    let conservation = read_conservation(&scenario.checks.conservation, clients).await;
    let primary = final_holder(&roles()).await;
    let final_state = FinalState { primary, sets, jobs, invariants, conservation, ..FinalState::default() };
    Ok(Observed { history, final_state, fault_effects, generator, simulated_ms, startup_ms: None })
}

/// Who holds the first role at the end (`leader`), for the report; empty without roles.
async fn final_holder(roles: &Roles) -> String {
    match roles.first() {
        Some(role) => roles.holder(&role).await.unwrap_or_else(|| format!("no {role}")),
        None => String::new(),
    }
}
