//! The compose backend: a user's own docker-compose stack under test — the same scenario file,
//! history, checkers and reports as the built-in stack, on real containers. The stack is the
//! user's; the ops, final state and invariants are declared in the scenario (HTTP requests and
//! SQL statements); the faults go through the one fault lifecycle (`faults/`) with an actuator
//! of their own. Bringing the project up and down, and the fault primitives on its containers,
//! are `containers::compose` (the compose driver); this module only uses them.
//!
//! | file | owns |
//! |---|---|
//! | `runner.rs` | one run: bring-up, readiness, setup, load + faults + invariants, drain, final state, down |
//! | `clients.rs` | the declared clients (HTTP, PostgreSQL, MySQL/MariaDB) and their outcome rules |
//! | `ops.rs` | one declared op: templates rendered, sent, its reply read for its kind (keys, job id, polls) |
//! | `probes.rs` | readiness probes; which member holds a role |
//! | `actuator.rs` | crash, stop, pause, partition and exec on services and roles |
//! | `state.rs` | invariants sampled during the run; keys, jobs and invariants read at the end |
//!
//! Must not: run on the simulation (a user's stack is real processes); touch anything of the
//! user's but the containers of its own run.

mod actuator;
mod clients;
mod ops;
mod probes;
mod runner;
mod state;

use crate::run::{Backend, BackendError, Observed};
use crate::scenario::Loaded;
use crate::scenario::validate_declared::endpoint;

/// The backend of compose scenarios: real containers, from the user's compose file.
pub struct Compose;

impl Backend for Compose {
    fn name(&self) -> &'static str {
        "containers"
    }

    fn check(&self, loaded: &Loaded) -> Vec<String> {
        let mut reasons = Vec::new();
        if !loaded.scenario.stack.is_compose() {
            reasons.push("this scenario tests the built-in stack, not a compose file".to_owned());
        }
        reasons.extend(crate::containers::image::check_docker().err().map(|e| e.to_string()));
        reasons
    }

    fn run(&self, loaded: &Loaded, seed: u64) -> Result<Observed, BackendError> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(
                |e| BackendError { backend: "containers", message: format!("a tokio runtime: {e}") },
            )?;
        runtime.block_on(runner::run(loaded, seed, published_ports(loaded)))
    }
}

/// Every (service, container port) a run reaches from the host: its clients', probes', role
/// members' and per-node reads'.
pub fn published_ports(loaded: &Loaded) -> Vec<(String, u16)> {
    let scenario = &loaded.scenario;
    let stack = &scenario.stack;
    let mut urls: Vec<(String, Option<String>)> = Vec::new();
    for client in scenario.clients.values() {
        urls.extend(client.http.iter().map(|u| (u.clone(), None)));
        if let Some(sql) = &client.sql {
            urls.extend(sql.items().into_iter().map(|u| (u.to_owned(), None)));
        }
    }
    for probe in &stack.ready {
        urls.extend(probe.sql.iter().chain(&probe.http).map(|u| (u.clone(), None)));
    }
    for role in stack.roles.values() {
        let members = stack.groups.get(&role.of).cloned().unwrap_or_default();
        for url in role.http.iter().chain(&role.sql) {
            urls.extend(members.iter().map(|m| (url.clone(), Some(m.clone()))));
        }
    }
    let mut out: Vec<(String, u16)> = Vec::new();
    for (url, member) in urls {
        let url = member.map_or(url.clone(), |m| url.replace("{host}", &m));
        if let Ok(e) = endpoint(&url) {
            out.push((e.service, e.port));
        }
    }
    for probe in &stack.ready {
        if let Some((service, port)) = probe.tcp.as_ref().and_then(|t| t.rsplit_once(':'))
            && let Ok(port) = port.parse()
        {
            out.push((service.to_owned(), port));
        }
    }
    out.extend(state::per_node_endpoints(scenario));
    out.sort();
    out.dedup();
    out
}

/// `shakedown up FILE` for a compose scenario: the stack up and ready, `setup` run, its
/// published endpoints printed, kept until Ctrl-C / SIGTERM (or `shakedown down`), then removed.
/// Faults by hand from another terminal: `shakedown fault crash SERVICE` and `pause` act on its
/// services by name.
pub fn up(loaded: &Loaded) -> Result<String, BackendError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BackendError { backend: "containers", message: format!("a tokio runtime: {e}") })?;
    runtime.block_on(runner::up(loaded, published_ports(loaded)))
}
