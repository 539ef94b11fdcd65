//! The resolved plan, the last pass of loading a scenario: faults with absolute times, hosts
//! expanded from groups and exactly one [`FaultKind`] each, and the phase windows. The
//! backends and the checkers read this, never the YAML types; `faults/` drives it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{ConsumerMode, OutageMode, Phase, Scenario};
use super::topology::Topology;

/// One fault, ready to apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// Position in the scenario's `faults` list.
    pub index: usize,
    /// When it starts, from the start of the run.
    pub start: Duration,
    /// When it is reverted (a restart, a heal), or `None` if it lasts to the end of the run.
    pub end: Option<Duration>,
    /// What it does.
    pub kind: FaultKind,
}

/// What a fault does, with its targets expanded to host names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultKind {
    /// Kill the hosts; restart them at `end` if there is one.
    Crash {
        /// The hosts.
        hosts: Vec<String>,
    },
    /// Freeze the hosts: every message to or from them is held until `end`.
    Pause {
        /// The hosts.
        hosts: Vec<String>,
    },
    /// Drop messages between `a` and `b` (only `a` → `b` when `one_way`).
    Partition {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
        /// Drop only `a` → `b`.
        one_way: bool,
    },
    /// Add `delay` plus up to `jitter` to every message between `a` and `b`.
    Latency {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
        /// Added one-way delay.
        delay: Duration,
        /// Extra uniform random delay, `0..jitter`.
        jitter: Duration,
    },
    /// Stall (or slow) the queue's consumers, and optionally shrink its capacity.
    Backpressure {
        /// Paused or slowed.
        consumers: ConsumerMode,
        /// For slowed consumers: extra time per message.
        slow_by: Duration,
        /// A smaller queue capacity during the window.
        capacity: Option<u32>,
    },
    /// The price feed answers 503 (`errors`) or late (`slow`, by `delay`).
    PricefeedOutage {
        /// Errors or slow answers.
        mode: OutageMode,
        /// For slow answers: how late.
        delay: Duration,
    },
    /// The database nodes and their storage are gone; they stay down until a restore.
    Disaster {
        /// The nodes.
        hosts: Vec<String>,
    },
    /// Rebuild the database from backups: the backup agent does it, taking the time it takes.
    Restore {
        /// Replay archived WAL committed up to this time from the start; `None`: everything.
        to: Option<Duration>,
    },
    /// A planned switchover back to `node`, run by the watchdog.
    Failback {
        /// The node to make primary again.
        node: String,
    },
    /// Compose stacks: stop the hosts gracefully (SIGTERM); start them again at `end` if there is one.
    Stop {
        /// The hosts.
        hosts: Vec<String>,
    },
    /// Compose stacks: run `run` in each host when the fault starts, and `revert` at its end.
    Exec {
        /// The hosts (a role resolves to one).
        hosts: Vec<String>,
        /// The command, as an argv (`["sh", "-c", "…"]` for a command written as one string).
        run: Vec<String>,
        /// The command at the end, if any.
        revert: Option<Vec<String>>,
    },
}

impl FaultKind {
    /// Every host the fault touches.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            FaultKind::Crash { hosts } | FaultKind::Pause { hosts } => hosts.clone(),
            FaultKind::Partition { a, b, .. } | FaultKind::Latency { a, b, .. } => {
                a.iter().chain(b).cloned().collect()
            }
            FaultKind::Backpressure { .. } => vec!["broker".into()],
            FaultKind::PricefeedOutage { .. } => vec!["pricefeed".into()],
            FaultKind::Disaster { hosts } => hosts.clone(),
            FaultKind::Restore { .. } => vec!["backup".into()],
            FaultKind::Failback { node } => vec![node.clone()],
            FaultKind::Stop { hosts } | FaultKind::Exec { hosts, .. } => hosts.clone(),
        }
    }

    /// A short name for reports: `crash`, `partition`, …
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Crash { .. } => "crash",
            FaultKind::Pause { .. } => "pause",
            FaultKind::Partition { .. } => "partition",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Backpressure { .. } => "backpressure",
            FaultKind::PricefeedOutage { .. } => "pricefeed_outage",
            FaultKind::Disaster { .. } => "disaster",
            FaultKind::Restore { .. } => "restore",
            FaultKind::Failback { .. } => "failback",
            FaultKind::Stop { .. } => "stop",
            FaultKind::Exec { .. } => "exec",
        }
    }
}

/// A phase's extent on the timeline. A phase may be made of several windows (`fault` is the
/// union of fault windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseWindow {
    /// Which phase.
    pub phase: Phase,
    /// Start, from the start of the run.
    pub start: Duration,
    /// End (exclusive).
    pub end: Duration,
}

/// The resolved form of a scenario's timeline, what the backends and checkers use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The run's length.
    pub duration: Duration,
    /// Faults in start order.
    pub faults: Vec<PlannedFault>,
    /// The timeline cut into phases, in order, without gaps (`all` is not listed).
    pub phases: Vec<PhaseWindow>,
}

impl Plan {
    /// The phase at time `t` (never `all`).
    pub fn phase_at(&self, t: Duration) -> Phase {
        self.phases.iter().find(|w| w.start <= t && t < w.end).map_or(Phase::Post, |w| w.phase)
    }
}

/// Resolve a validated scenario's timeline. Targets must already be known names (validation
/// guarantees it); an unknown one here is a harness bug.
pub fn plan(scenario: &Scenario) -> Plan {
    let topology = Topology::new(&scenario.stack);
    let stack = &scenario.stack;
    // On a compose stack a name is a group (expanded), a service, or a role (kept: it resolves
    // when its fault starts).
    let resolve = |name: &str| match stack.is_compose() {
        true => Some(stack.groups.get(name).cloned().unwrap_or_else(|| vec![name.to_owned()])),
        false => topology.resolve(name),
    };
    let hosts = |names: &[String]| -> Vec<String> {
        let mut out = Vec::new();
        for name in names {
            let resolved = resolve(name);
            let resolved = resolved.unwrap_or_else(|| panic!("unvalidated fault target `{name}`"));
            for host in resolved {
                if !out.contains(&host) {
                    out.push(host);
                }
            }
        }
        out
    };
    let duration = scenario.duration.get();
    let mut faults = Vec::new();
    for (index, spec) in scenario.faults.iter().enumerate() {
        let start = spec.at.get();
        let window = spec.for_.map(|d| start + d.get());
        let kind = if let Some(target) = &spec.crash {
            FaultKind::Crash { hosts: hosts(std::slice::from_ref(target)) }
        } else if let Some(target) = &spec.pause {
            FaultKind::Pause { hosts: hosts(std::slice::from_ref(target)) }
        } else if let Some(sides) = &spec.partition {
            FaultKind::Partition { a: hosts(&sides[0]), b: hosts(&sides[1]), one_way: spec.one_way }
        } else if let Some(latency) = &spec.latency {
            FaultKind::Latency {
                a: hosts(&latency.between[0]),
                b: hosts(&latency.between[1]),
                delay: latency.delay.get(),
                jitter: latency.jitter.get(),
            }
        } else if let Some(bp) = &spec.backpressure {
            FaultKind::Backpressure {
                consumers: bp.consumers,
                slow_by: bp.slow_by.map_or(Duration::from_millis(100), |s| s.get()),
                capacity: bp.capacity,
            }
        } else if let Some(outage) = &spec.pricefeed_outage {
            FaultKind::PricefeedOutage {
                mode: outage.mode,
                delay: outage.delay.map_or(Duration::from_secs(2), |s| s.get()),
            }
        } else if let Some(disaster) = &spec.disaster {
            FaultKind::Disaster { hosts: hosts(&disaster.lose) }
        } else if let Some(restore) = &spec.restore {
            FaultKind::Restore { to: restore.to.time() }
        } else if let Some(node) = &spec.failback {
            FaultKind::Failback { node: node.clone() }
        } else if let Some(target) = &spec.stop {
            FaultKind::Stop { hosts: hosts(std::slice::from_ref(target)) }
        } else if let Some(exec) = &spec.exec {
            FaultKind::Exec {
                hosts: hosts(std::slice::from_ref(&exec.on)),
                run: argv(&exec.run),
                revert: exec.revert.as_ref().map(argv),
            }
        } else {
            panic!("unvalidated fault #{index} has no kind");
        };
        let end = match &kind {
            FaultKind::Crash { .. } | FaultKind::Stop { .. } => spec.restart_after.map(|d| start + d.get()),
            // Without `for`, a command that is not undone is an instant.
            FaultKind::Exec { revert: None, .. } if window.is_none() => Some(start),
            // Lasts until the next restore (the run's end without one).
            FaultKind::Disaster { .. } => {
                let restores = scenario.faults.iter().filter(|f| f.restore.is_some()).map(|f| f.at.get());
                restores.filter(|&at| at >= start).min()
            }
            // Actions at one instant: what they start (a restore, a switchover) takes its own time.
            FaultKind::Restore { .. } | FaultKind::Failback { .. } => Some(start),
            _ => window,
        };
        faults.push(PlannedFault { index, start, end: end.map(|e| e.min(duration)), kind });
    }
    faults.sort_by_key(|f| (f.start, f.index));
    let phases = phase_windows(&faults, duration, scenario.phases.recovery.get());
    Plan { duration, faults, phases }
}

/// A command as an argv: one string runs through `sh -c`.
fn argv(command: &crate::scenario::declared::Command) -> Vec<String> {
    match command {
        crate::scenario::declared::OneOrMany::One(line) => vec!["sh".into(), "-c".into(), line.clone()],
        crate::scenario::declared::OneOrMany::Many(argv) => argv.clone(),
    }
}

/// Cut `0..duration` into steady / fault / recovery / post windows.
fn phase_windows(faults: &[PlannedFault], duration: Duration, recovery: Duration) -> Vec<PhaseWindow> {
    let mut intervals: Vec<(Duration, Duration)> =
        faults.iter().map(|f| (f.start, f.end.unwrap_or(duration).max(f.start))).collect();
    intervals.sort();
    let mut merged: Vec<(Duration, Duration)> = Vec::new();
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut windows = Vec::new();
    let mut push = |phase, start: Duration, end: Duration| {
        let end = end.min(duration);
        if start < end {
            windows.push(PhaseWindow { phase, start, end });
        }
    };
    let Some(first) = merged.first() else {
        push(Phase::Steady, Duration::ZERO, duration);
        return windows;
    };
    push(Phase::Steady, Duration::ZERO, first.0);
    for (i, &(start, end)) in merged.iter().enumerate() {
        push(Phase::Fault, start, end);
        let next = merged.get(i + 1).map_or(duration, |n| n.0);
        push(Phase::Recovery, end, (end + recovery).min(next));
        push(Phase::Post, end + recovery, next);
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(start: u64, end: Option<u64>) -> PlannedFault {
        PlannedFault {
            index: 0,
            start: Duration::from_secs(start),
            end: end.map(Duration::from_secs),
            kind: FaultKind::Pause { hosts: vec!["lb".into()] },
        }
    }

    #[test]
    fn phases_cover_the_run_without_gaps() {
        let faults = [fault(20, Some(35)), fault(30, Some(40)), fault(50, Some(52))];
        let windows = phase_windows(&faults, Duration::from_secs(60), Duration::from_secs(5));
        let names: Vec<_> =
            windows.iter().map(|w| (w.phase.name(), w.start.as_secs(), w.end.as_secs())).collect();
        assert_eq!(
            names,
            [
                ("steady", 0, 20),
                ("fault", 20, 40),
                ("recovery", 40, 45),
                ("post", 45, 50),
                ("fault", 50, 52),
                ("recovery", 52, 57),
                ("post", 57, 60)
            ]
        );
    }

    #[test]
    fn a_fault_without_end_lasts_to_the_end() {
        let windows = phase_windows(&[fault(10, None)], Duration::from_secs(30), Duration::from_secs(5));
        assert_eq!(windows.last().unwrap().phase, Phase::Fault);
        assert_eq!(windows.last().unwrap().end, Duration::from_secs(30));
    }
}
