//! The compose stack's actuator for the one fault lifecycle (`faults::drive`): faults on a
//! user's services, with roles resolved when a fault starts.
//!
//! | fault | applied as | reverted as |
//! |---|---|---|
//! | crash | SIGKILL of each service's container | `docker start` (same volumes; crash recovery) |
//! | stop | Docker's stop: SIGTERM, SIGKILL after [`STOP_GRACE`] | `docker start` |
//! | pause | the cgroup freezer | thawed |
//! | partition | DROP rules in each side's own network namespace, from a helper container (`containers::compose::net`) | the rules deleted; the packets they dropped are its `messages_held_count` |
//! | latency | a packet delayer in each side's own network namespace (`containers::compose::latency`): what a service sends across is held `delay` (+ jitter) | the delayers stopped, their held packets let go; the packets they delayed are its `messages_held_count` |
//! | exec | `run` in each service's container; a non-zero exit fails the run | `revert`, if given |
//!
//! A role (`crash: leader`) is resolved by its probe when the fault starts; the fault's
//! `fault_start` records the service it was. When no member holds the role the fault is
//! vacuous: recorded, not applied. For a partition or latency, a service on both sides after
//! resolution (`[[leader], [db]]`) stays only on the first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::probes::Roles;
use crate::containers::compose::{Cut, Project, Slowdown};
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
    /// Each latency in force, by fault index.
    slowdowns: Mutex<BTreeMap<usize, Slowdown>>,
    /// Packets each partition dropped or each latency delayed, counted when it ended.
    held: Mutex<BTreeMap<usize, u64>>,
    /// The run's seed: latency's jitter draws derive from it.
    seed: u64,
}

impl ComposeFaults {
    /// The actuator of `project`, resolving `roles`, in a run seeded `seed`.
    pub fn new(project: Arc<Project>, roles: Roles, seed: u64) -> ComposeFaults {
        ComposeFaults {
            project,
            roles,
            sides: Mutex::default(),
            cuts: Mutex::default(),
            slowdowns: Mutex::default(),
            held: Mutex::default(),
            seed,
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

    /// End a partition or a latency once: its rules deleted or its delayers stopped, and the
    /// packets they dropped or delayed kept.
    async fn heal(&self, index: usize) {
        let cut = self.cuts.lock().expect("cuts lock").remove(&index);
        let slowdown = self.slowdowns.lock().expect("slowdowns lock").remove(&index);
        let mut held = 0;
        if let Some(cut) = cut {
            held += self.project.heal(&cut).await;
        }
        if let Some(slowdown) = slowdown {
            held += self.project.undelay(&slowdown).await;
        }
        *self.held.lock().expect("held lock").entry(index).or_default() += held;
    }

    /// The hosts of a partition or latency fault, its sides resolved and kept; none when a side
    /// is empty (the fault is vacuous). A service on both sides stays only on the first.
    async fn resolve_sides(&self, index: usize, a: &[String], b: &[String]) -> Vec<String> {
        let a = self.resolve(a).await;
        let b: Vec<String> = self.resolve(b).await.into_iter().filter(|s| !a.contains(s)).collect();
        if a.is_empty() || b.is_empty() {
            return Vec::new();
        }
        let hosts = a.iter().chain(&b).cloned().collect();
        self.sides.lock().expect("sides lock").insert(index, (a, b));
        hosts
    }

    /// The sides [`Self::resolve_sides`] kept for a fault.
    fn sides(&self, fault: &PlannedFault) -> Result<Sides, String> {
        let sides = self.sides.lock().expect("sides lock").get(&fault.index).cloned();
        sides.ok_or_else(|| format!("a {} applied before its sides were resolved", fault.kind.name()))
    }
}

#[async_trait]
impl Actuator for ComposeFaults {
    async fn targets(&self, fault: &PlannedFault) -> Result<Vec<String>, String> {
        match &fault.kind {
            FaultKind::Partition { a, b, .. } | FaultKind::Latency { a, b, .. } => {
                Ok(self.resolve_sides(fault.index, a, b).await)
            }
            FaultKind::Crash { hosts }
            | FaultKind::Pause { hosts }
            | FaultKind::Stop { hosts }
            | FaultKind::Exec { hosts, .. } => Ok(self.resolve(hosts).await),
            FaultKind::Backpressure { .. }
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
                let (a, b) = self.sides(fault)?;
                let cut = project.partition(&a, &b, *one_way).await.map_err(|e| e.to_string())?;
                self.cuts.lock().expect("cuts lock").insert(fault.index, cut);
            }
            FaultKind::Latency { delay, jitter, .. } => {
                let (a, b) = self.sides(fault)?;
                let seed = crate::seed::derive(self.seed, &format!("faults/{}/latency", fault.index));
                let slowdown =
                    project.delay(&a, &b, *delay, *jitter, seed).await.map_err(|e| e.to_string())?;
                self.slowdowns.lock().expect("slowdowns lock").insert(fault.index, slowdown);
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
            FaultKind::Partition { .. } | FaultKind::Latency { .. } => self.heal(fault.index).await,
            FaultKind::Exec { revert: Some(revert), .. } => {
                for service in hosts {
                    exec(project, service, revert).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Messages held: the packets a partition's rules dropped or a latency's delayers held back.
    /// They can only be counted as the fault goes, so one in force is healed here, just before
    /// its revert (which then has nothing left to do). Connections reset are not counted on a
    /// compose stack.
    async fn counters(&self, fault: &PlannedFault, _hosts: &[String]) -> Counters {
        if matches!(fault.kind, FaultKind::Partition { .. } | FaultKind::Latency { .. }) {
            self.heal(fault.index).await;
        }
        let held = self.held.lock().expect("held lock").get(&fault.index).copied().unwrap_or(0);
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
