//! The compose stack's actuator for the one fault lifecycle (`faults::drive`): faults on a
//! user's services, with roles resolved when a fault starts.
//!
//! | fault | applied as | reverted as |
//! |---|---|---|
//! | crash | SIGKILL of each service's container | `docker start` (same volumes; crash recovery) |
//! | stop | Docker's stop: SIGTERM, SIGKILL after [`STOP_GRACE`] | `docker start` |
//! | pause | the cgroup freezer | thawed |
//! | partition | DROP rules in each side's own network namespace, from a helper container (`containers::compose::net`) | the rules deleted; the packets they dropped are its `messages_held_count` |
//! | exec | `run` in each service's container; a non-zero exit fails the run | `revert`, if given |
//!
//! A role (`crash: leader`) is resolved by its probe when the fault starts; the fault's
//! `fault_start` records the service it was. When no member holds the role the fault is
//! vacuous: recorded, not applied. For a partition, a service on both sides after resolution
//! (`[[leader], [db]]`) stays only on the first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::probes::Roles;
use crate::containers::compose::{Cut, Project};
use crate::faults::{Actuator, Counters, FaultKind, PlannedFault};

/// How long a `stop` lets a service shut down before SIGKILL (Docker's default).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A partition's two sides, as resolved when it started.
type Sides = (Vec<String>, Vec<String>);

/// Faults on a compose project.
pub struct ComposeFaults {
    project: Arc<Project>,
    roles: Roles,
    /// Each partition's sides as resolved when it started, by fault index.
    sides: Mutex<BTreeMap<usize, Sides>>,
    /// Each partition in force, by fault index.
    cuts: Mutex<BTreeMap<usize, Cut>>,
    /// Packets each partition's rules dropped, counted when it was healed.
    dropped: Mutex<BTreeMap<usize, u64>>,
}

impl ComposeFaults {
    /// The actuator of `project`, resolving `roles`.
    pub fn new(project: Arc<Project>, roles: Roles) -> ComposeFaults {
        ComposeFaults {
            project,
            roles,
            sides: Mutex::default(),
            cuts: Mutex::default(),
            dropped: Mutex::default(),
        }
    }

    /// Names resolved to services: a role to its holder (or nothing), a service as itself.
    async fn resolve(&self, names: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let found = match self.roles.is_role(name) {
                true => self.roles.holder(name).await,
                false => Some(name.clone()),
            };
            if let Some(service) = found
                && !out.contains(&service)
            {
                out.push(service);
            }
        }
        out
    }

    /// Heal a partition once: its rules deleted and their dropped packets kept.
    async fn heal(&self, index: usize) {
        let cut = self.cuts.lock().expect("cuts lock").remove(&index);
        if let Some(cut) = cut {
            let dropped = self.project.heal(&cut).await;
            *self.dropped.lock().expect("dropped lock").entry(index).or_default() += dropped;
        }
    }
}

#[async_trait]
impl Actuator for ComposeFaults {
    async fn targets(&self, fault: &PlannedFault) -> Result<Vec<String>, String> {
        match &fault.kind {
            FaultKind::Partition { a, b, .. } => {
                let a = self.resolve(a).await;
                let b: Vec<String> = self.resolve(b).await.into_iter().filter(|s| !a.contains(s)).collect();
                if a.is_empty() || b.is_empty() {
                    return Ok(Vec::new());
                }
                let hosts = a.iter().chain(&b).cloned().collect();
                self.sides.lock().expect("sides lock").insert(fault.index, (a, b));
                Ok(hosts)
            }
            FaultKind::Crash { hosts }
            | FaultKind::Pause { hosts }
            | FaultKind::Stop { hosts }
            | FaultKind::Exec { hosts, .. } => Ok(self.resolve(hosts).await),
            FaultKind::Latency { .. }
            | FaultKind::Backpressure { .. }
            | FaultKind::PricefeedOutage { .. }
            | FaultKind::Disaster { .. }
            | FaultKind::Restore { .. }
            | FaultKind::Failback { .. } => {
                Err(format!("`{}` reached a compose stack (validation refuses it)", fault.kind.name()))
            }
        }
    }

    async fn apply(&self, fault: &PlannedFault, hosts: &[String]) -> Result<(), String> {
        let project = &self.project;
        match &fault.kind {
            FaultKind::Crash { .. } => {
                for service in hosts {
                    project.kill(service).await.map_err(|e| e.to_string())?;
                }
            }
            FaultKind::Stop { .. } => {
                for service in hosts {
                    project.stop(service, STOP_GRACE).await.map_err(|e| e.to_string())?;
                }
            }
            FaultKind::Pause { .. } => {
                for service in hosts {
                    project.pause(service).await.map_err(|e| e.to_string())?;
                }
            }
            FaultKind::Partition { one_way, .. } => {
                let sides = self.sides.lock().expect("sides lock").get(&fault.index).cloned();
                let (a, b) = sides.ok_or("a partition applied before its sides were resolved")?;
                let cut = project.partition(&a, &b, *one_way).await.map_err(|e| e.to_string())?;
                self.cuts.lock().expect("cuts lock").insert(fault.index, cut);
            }
            FaultKind::Exec { run, .. } => {
                for service in hosts {
                    exec(project, service, run).await?;
                }
            }
            _ => return Err(format!("`{}` reached a compose stack", fault.kind.name())),
        }
        Ok(())
    }

    async fn revert(&self, fault: &PlannedFault, hosts: &[String]) -> Result<(), String> {
        let project = &self.project;
        match &fault.kind {
            FaultKind::Crash { .. } | FaultKind::Stop { .. } => {
                for service in hosts {
                    if !project.running(service).await.map_err(|e| e.to_string())? {
                        project.start(service).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            FaultKind::Pause { .. } => {
                for service in hosts {
                    project.unpause(service).await.map_err(|e| e.to_string())?;
                }
            }
            FaultKind::Partition { .. } => self.heal(fault.index).await,
            FaultKind::Exec { revert: Some(revert), .. } => {
                for service in hosts {
                    exec(project, service, revert).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Messages held: the packets a partition's rules dropped. They can only be counted as the
    /// rules go, so a partition in force is healed here, just before its revert (which then has
    /// nothing left to do). Connections reset are not counted on a compose stack.
    async fn counters(&self, fault: &PlannedFault, _hosts: &[String]) -> Counters {
        if matches!(fault.kind, FaultKind::Partition { .. }) {
            self.heal(fault.index).await;
        }
        let held = self.dropped.lock().expect("dropped lock").get(&fault.index).copied().unwrap_or(0);
        Counters { messages_held: held, ..Counters::default() }
    }
}

/// Run a command in a service; anything but exit 0 is an error that names it and its output.
async fn exec(project: &Project, service: &str, argv: &[String]) -> Result<(), String> {
    let (code, output) = project.exec(service, argv).await.map_err(|e| e.to_string())?;
    if code == 0 {
        tracing::info!(service, command = argv.join(" "), "exec done");
        return Ok(());
    }
    let tail: String =
        output.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    Err(format!("`{}` in {service} exited {code}:\n{tail}", argv.join(" ")))
}
