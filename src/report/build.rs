//! Building the [`Report`] from a finished run: the scenario, the plan, what the backend
//! observed, and the check results. No verdict is computed here — it is passed in.

use crate::check::{CheckResult, Checked, Verdict, expectation, judged};
use crate::faults::{FaultEffect, FaultKind, Plan, PlannedFault};
use crate::history::History;
use crate::scenario::Loaded;
use crate::scenario::units::Span;
use crate::workload::GeneratorStats;

use super::model::{
    CheckEntry, FaultEntry, GeneratorFacts, PhaseEntry, Report, RunFacts, SCHEMA, ScenarioInfo, StackSource,
    VerdictInfo,
};
use super::timeline;

/// Everything a report is made of.
pub struct Inputs<'a> {
    /// The scenario as loaded.
    pub loaded: &'a Loaded,
    /// The seed the run used.
    pub seed: u64,
    /// `sim` or `containers`.
    pub backend: &'a str,
    /// The history (aggregated into the timeline; never embedded).
    pub history: &'a History,
    /// What each fault hit, in plan order.
    pub fault_effects: &'a [FaultEffect],
    /// The generator's figures.
    pub generator: &'a GeneratorStats,
    /// The checks' results and tables.
    pub checked: &'a Checked,
    /// The verdict.
    pub verdict: &'a Verdict,
    /// Wall-clock facts.
    pub run: RunFacts,
}

/// Assemble the report.
pub fn build(inputs: Inputs<'_>) -> Report {
    let loaded = inputs.loaded;
    let scenario = &loaded.scenario;
    let plan = &loaded.plan;
    let bucket_ms = scenario.report.bucket.get().as_millis().max(1) as u64;
    Report {
        schema: SCHEMA.into(),
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            description: scenario.description.trim().to_owned(),
            file: loaded.file.clone(),
            sha256: loaded.source_sha256.clone(),
            overrides: loaded.overrides.clone(),
            stack: loaded.compose.as_ref().map(|c| StackSource {
                kind: "compose".into(),
                file: c.file.clone(),
                sha256: c.sha256.clone(),
            }),
        },
        seed: inputs.seed,
        backend: inputs.backend.into(),
        hosts: loaded.topology().hosts().iter().map(|h| h.name.clone()).collect(),
        verdict: VerdictInfo {
            status: inputs.verdict.status,
            exit_code: inputs.verdict.exit_code,
            summary: inputs.verdict.summary.clone(),
        },
        checks: inputs.checked.results.iter().map(|r| check_entry(r, loaded)).collect(),
        slo: inputs.checked.slo.clone(),
        faults: plan
            .faults
            .iter()
            .map(|f| {
                fault_entry(f, inputs.fault_effects.get(f.index), resolved_hosts(inputs.history, f.index))
            })
            .collect(),
        phases: phases(plan),
        latency: inputs.checked.latency.clone(),
        timeline: timeline::build(inputs.history, plan.duration.as_millis() as u64, bucket_ms),
        generator: GeneratorFacts {
            scheduled_count: inputs.generator.scheduled_count,
            sent_count: inputs.generator.sent_count,
            dropped_count: inputs.generator.dropped_count,
            lag_ms_max: inputs.generator.lag_ms_max,
            processes_count: inputs.generator.processes_count,
        },
        replay: replay_command(loaded, inputs.seed, inputs.backend),
        run: inputs.run,
    }
}

fn check_entry(result: &CheckResult, loaded: &Loaded) -> CheckEntry {
    let expected = expectation(&loaded.scenario, &result.name);
    CheckEntry {
        name: result.name.clone(),
        status: result.status,
        expected,
        as_expected: judged(result, expected) == crate::check::Status::Pass,
        summary: result.summary.clone(),
        details: result.details.clone(),
    }
}

/// The hosts a fault hit as its `fault_start` recorded them (a role resolves when its fault
/// starts; empty: it resolved to nobody), `None` when the history has no start for it.
fn resolved_hosts(history: &History, index: usize) -> Option<Vec<String>> {
    history
        .entries()
        .iter()
        .find(|e| e.op == crate::history::EntryOp::FaultStart && e.value.fault == Some(index))
        .map(|e| e.value.hosts.clone().unwrap_or_default())
}

fn fault_entry(
    fault: &PlannedFault,
    effect: Option<&FaultEffect>,
    resolved: Option<Vec<String>>,
) -> FaultEntry {
    let effect = effect.cloned().unwrap_or_default();
    let planned = fault.kind.hosts();
    let hosts = resolved.unwrap_or_else(|| planned.clone());
    let mut description = describe(fault);
    if hosts != planned {
        let who = if hosts.is_empty() { "nobody held the role".to_owned() } else { hosts.join(", ") };
        description = format!("{description} (resolved when it started: {who})");
    }
    FaultEntry {
        index: fault.index,
        kind: fault.kind.name().into(),
        description,
        hosts,
        start_ms: fault.start.as_millis() as u64,
        end_ms: fault.end.map(|e| e.as_millis() as u64),
        // A restore or failback is an operator's action, not a fault: hitting nothing is its aim.
        vacuous: effect.is_vacuous()
            && !matches!(fault.kind, FaultKind::Restore { .. } | FaultKind::Failback { .. }),
        effect,
    }
}

/// A fault in words: `crash pg-primary, restart after 15s`.
pub fn describe(fault: &PlannedFault) -> String {
    let span = |d| Span(d).to_string();
    let window = fault.end.map(|e| span(e - fault.start));
    match &fault.kind {
        FaultKind::Crash { hosts } => match window {
            Some(w) => format!("crash {}, restart after {w}", hosts.join(", ")),
            None => format!("crash {} (no restart)", hosts.join(", ")),
        },
        FaultKind::Pause { hosts } => {
            format!("pause {} for {}", hosts.join(", "), window.unwrap_or_default())
        }
        FaultKind::Stop { hosts } => match window {
            Some(w) => format!("stop {}, start after {w}", hosts.join(", ")),
            None => format!("stop {} (not started again)", hosts.join(", ")),
        },
        FaultKind::Exec { hosts, run, revert } => {
            let command = |argv: &[String]| match argv {
                [sh, c, line] if sh == "sh" && c == "-c" => line.clone(),
                _ => argv.join(" "),
            };
            let undo = revert.as_ref().map_or(String::new(), |r| {
                format!(", `{}` after {}", command(r), window.clone().unwrap_or_default())
            });
            format!("exec `{}` in {}{undo}", command(run), hosts.join(", "))
        }
        FaultKind::Partition { a, b, one_way } => {
            let arrow = if *one_way { "→" } else { "↮" };
            format!(
                "partition [{}] {arrow} [{}] for {}",
                a.join(", "),
                b.join(", "),
                window.unwrap_or_default()
            )
        }
        FaultKind::Latency { a, b, delay, jitter } => format!(
            "latency +{} (±{}) between [{}] and [{}] for {}",
            span(*delay),
            span(*jitter),
            a.join(", "),
            b.join(", "),
            window.unwrap_or_default()
        ),
        FaultKind::Backpressure { consumers, capacity, .. } => {
            let capacity = capacity.map(|c| format!(", capacity {c}")).unwrap_or_default();
            format!(
                "queue backpressure: consumers {consumers:?}{capacity} for {}",
                window.unwrap_or_default()
            )
            .to_lowercase()
        }
        FaultKind::PricefeedOutage { mode, .. } => {
            format!("price feed outage ({mode:?}) for {}", window.unwrap_or_default()).to_lowercase()
        }
        FaultKind::Disaster { hosts } => match window {
            Some(w) => {
                format!("disaster: lose {} with their storage, restore requested after {w}", hosts.join(", "))
            }
            None => format!("disaster: lose {} with their storage (no restore)", hosts.join(", ")),
        },
        FaultKind::Restore { to: Some(to) } => format!("restore from backups to {}", span(*to)),
        FaultKind::Restore { to: None } => "restore from backups to the latest archived WAL".into(),
        FaultKind::Failback { node } => format!("failback: planned switchover to {node}"),
    }
}

fn phases(plan: &Plan) -> Vec<PhaseEntry> {
    plan.phases
        .iter()
        .map(|w| PhaseEntry {
            phase: w.phase,
            start_ms: w.start.as_millis() as u64,
            end_ms: w.end.as_millis() as u64,
        })
        .collect()
}

/// The command that reproduces a run: same file, overrides, seed and backend.
pub fn replay_command(loaded: &Loaded, seed: u64, backend: &str) -> String {
    let mut command =
        format!("shakedown run {} --seed {seed} --backend {backend}", shell_quote(&loaded.file));
    for o in &loaded.overrides {
        command.push_str(&format!(" --set {}", shell_quote(o)));
    }
    command
}

fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
