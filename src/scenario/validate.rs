//! Semantic validation: what serde cannot check. Every rule reports at the position of the
//! offending value, and every error is collected (none stops the others).
//!
//! It also runs on what a file with shape errors still holds ([`Gaps`] says what it lacks): a
//! rule that would need a missing part is skipped rather than guessed, and a list item keeps the
//! path it has in the file.

use std::collections::BTreeMap;
use std::time::Duration;

use super::coherence;
use super::diagnostic::{Position, did_you_mean, one_of};
use super::model::{Bug, CheckName, FaultSpec, OpSelector, Phase, Scenario};
use super::salvage::Gaps;
use super::topology::{CLIENT, Topology};
use super::tree::SpanIndex;
use super::units::Span;
use super::validate_declared::{self, ComposeServices};

type Found = (Position, String, Option<String>);

/// Collects errors, resolving paths to positions.
pub(super) struct Report<'a> {
    index: &'a SpanIndex,
    found: Vec<Found>,
    /// What the scenario lacks (nothing, unless the file had shape errors).
    pub(super) gaps: &'a Gaps,
}

impl Report<'_> {
    pub(super) fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        self.found.push((self.index.value(path), message.into(), hint));
    }

    /// The value at `path` quoted as the file wrote it (`` `90s` ``, not `1.5m`); `value`'s own
    /// form when the file does not hold it (a default, a computed value).
    pub(super) fn shown(&self, path: &str, value: impl std::fmt::Display) -> String {
        match self.index.text(path) {
            Some(text) => format!("`{text}`"),
            None => format!("`{value}`"),
        }
    }
}

/// Check a scenario read from the file; `index` maps a YAML path to its position and its text as
/// written, `gaps` says what could not be read (`Gaps::default()` when the shape was right).
/// `compose` is what the compose file a compose scenario names holds (`None` when there is none
/// or it is unreadable).
pub(crate) fn validate(
    scenario: &Scenario,
    index: &SpanIndex,
    gaps: &Gaps,
    compose: Option<&ComposeServices>,
) -> Vec<Found> {
    let mut report = Report { index, found: Vec::new(), gaps };
    // `None` when `duration` could not be read: the rules that compare with it are skipped.
    let duration = (!gaps.unread("duration")).then(|| scenario.duration.get());
    if duration.is_some_and(|d| d.is_zero()) {
        report.error("duration", "the run's `duration` is 0", Some("give it a length such as `60s`".into()));
    }
    if duration.is_some() {
        longer_than_allowed(scenario, "duration", "the run's `duration`", scenario.duration, &mut report);
    }
    workload(scenario, duration, &mut report);
    // A compose stack's hosts are its services, checked against its file; the built-in stack's
    // come from its topology.
    let topology = (!scenario.stack.is_compose()).then(|| Topology::new(&scenario.stack));
    for (i, fault) in scenario.faults.iter().enumerate() {
        one_fault(fault, &gaps.item("faults", i), duration, topology.as_ref(), &mut report);
    }
    match &topology {
        Some(topology) => {
            stack(scenario, &mut report);
            overlapping_outages(scenario, topology, &mut report);
            needs_backups(scenario, &mut report);
            validate_declared::refuse_in_builtin(scenario, &mut report);
        }
        None => validate_declared::check(scenario, compose, &mut report),
    }
    checks(scenario, &mut report);
    coherence::check(scenario, duration, &mut report);
    report.found
}

/// Restores, the backup hosts, the `restore` check and the backup bugs need `stack.backup`.
fn needs_backups(scenario: &Scenario, report: &mut Report) {
    if scenario.stack.backup.is_some() || report.gaps.unread("stack") {
        return;
    }
    let hint = || Some("add `backup: { every: 20s, keep: 3 }` under `stack`".into());
    for (i, fault) in scenario.faults.iter().enumerate() {
        let path = report.gaps.item("faults", i);
        let what = if fault.disaster.is_some() {
            Some(("disaster", "a disaster without backups loses everything: nothing could restore it".into()))
        } else if fault.restore.is_some() {
            Some(("restore", "a restore needs backups to restore from".to_string()))
        } else {
            None
        };
        if let Some((key, message)) = what {
            report.error(&format!("{path}.{key}"), message, hint());
        }
    }
    if scenario.checks.restore.is_some() {
        report.error("checks.restore", "the `restore` check needs backups", hint());
    }
    for (i, bug) in scenario.stack.bugs.iter().enumerate() {
        if matches!(bug, Bug::CatalogBeforeBackup | Bug::WalArchiveGap) {
            report.error(&format!("stack.bugs[{i}]"), "this bug lives in the backups, which are off", hint());
        }
    }
}

fn at_least_one(report: &mut Report, path: &str, value: u32, what: &str) {
    if value == 0 {
        report.error(path, format!("`{path}` is 0: {what} needs at least 1"), None);
    }
}

fn positive(report: &mut Report, path: &str, value: Span) {
    if value.get().is_zero() {
        report.error(path, format!("`{path}` is 0"), Some("give it a length such as `500ms`".into()));
    }
}

/// Refuse a length over `duration_max`: most likely a typo (`99999h`), and a run that would not
/// end for months of simulated time.
fn longer_than_allowed(scenario: &Scenario, path: &str, what: &str, value: Span, report: &mut Report) {
    let limit = scenario.duration_max;
    if value > limit && !report.gaps.unread("duration_max") {
        let written = report.shown(path, value);
        let raised = written.trim_matches('`').to_owned();
        let hint = format!(
            "is it a typo? if a run this long is meant, raise the limit: `duration_max: {raised}` in the file, or `--set duration_max={raised}`"
        );
        let limit = report.shown("duration_max", limit);
        report.error(path, format!("{what} ({written}) is longer than `duration_max` ({limit})"), Some(hint));
    }
}

fn stack(scenario: &Scenario, report: &mut Report) {
    let stack = &scenario.stack;
    at_least_one(report, "stack.api_replicas", stack.api_replicas, "the balancer");
    at_least_one(report, "stack.workers", stack.workers, "the query queue");
    at_least_one(report, "stack.queue.capacity", stack.queue.capacity, "the queue");
    at_least_one(report, "stack.queue.prefetch", stack.queue.prefetch, "a worker");
    at_least_one(
        report,
        "stack.watchdog.failures_to_promote",
        stack.watchdog.failures_to_promote,
        "failover",
    );
    at_least_one(report, "stack.balancer.eject_after", stack.balancer.eject_after, "ejection");
    positive(report, "stack.watchdog.probe_every", stack.watchdog.probe_every);
    positive(report, "stack.watchdog.probe_timeout", stack.watchdog.probe_timeout);
    positive(report, "stack.balancer.health_every", stack.balancer.health_every);
    if let Some(backup) = &stack.backup {
        positive(report, "stack.backup.every", backup.every);
        at_least_one(report, "stack.backup.keep", backup.keep, "a restore");
    }
    for (i, bug) in stack.bugs.iter().enumerate() {
        if stack.bugs[..i].contains(bug) {
            report.error(&format!("stack.bugs[{i}]"), "this bug switch is listed twice", None);
        }
    }
}

fn workload(scenario: &Scenario, duration: Option<Duration>, report: &mut Report) {
    if scenario.workload.is_empty() && !report.gaps.incomplete("workload") {
        report.error(
            "workload",
            "the workload is empty",
            Some("add e.g. `- { op: invest, rate: 50/s }`".into()),
        );
    }
    for (i, load) in scenario.workload.iter().enumerate() {
        let path = report.gaps.item("workload", i);
        if load.rate.count <= 0.0 {
            // The unit parser refuses a sign, so only a scenario built in code can be negative.
            let what = if load.rate.count < 0.0 { "negative" } else { "zero" };
            let hint = Some("a rate must be positive, e.g. `50/s`; remove the entry to stop this op".into());
            report.error(
                &format!("{path}.rate"),
                format!("the rate of `{}` is {what}", load.op_name()),
                hint,
            );
        }
        positive(report, &format!("{path}.timeout"), load.timeout);
        let what = format!("the timeout of `{}`", load.op_name());
        longer_than_allowed(scenario, &format!("{path}.timeout"), &what, load.timeout, report);
        let Some(stop) = load.stop.map(Span::get).or(duration) else { continue };
        let stop_path = if load.stop.is_some() { format!("{path}.stop") } else { "duration".to_owned() };
        let (start_shown, stop_shown) =
            (report.shown(&format!("{path}.start"), load.start), report.shown(&stop_path, Span(stop)));
        if load.start.get() >= stop {
            report.error(
                &format!("{path}.start"),
                format!("`start` ({start_shown}) is not before `stop` ({stop_shown})"),
                None,
            );
        }
        if duration.is_some_and(|d| stop > d) {
            let end = report.shown("duration", scenario.duration);
            let message = format!("`stop` ({stop_shown}) is after the end of the run ({end})");
            report.error(&format!("{path}.stop"), message, None);
        }
    }
}

/// The fault kinds set on one entry, with their YAML key.
fn kinds(fault: &FaultSpec) -> Vec<&'static str> {
    let set = [
        ("crash", fault.crash.is_some()),
        ("pause", fault.pause.is_some()),
        ("partition", fault.partition.is_some()),
        ("latency", fault.latency.is_some()),
        ("backpressure", fault.backpressure.is_some()),
        ("pricefeed_outage", fault.pricefeed_outage.is_some()),
        ("disaster", fault.disaster.is_some()),
        ("restore", fault.restore.is_some()),
        ("failback", fault.failback.is_some()),
        ("stop", fault.stop.is_some()),
        ("exec", fault.exec.is_some()),
    ];
    set.into_iter().filter(|(_, on)| *on).map(|(name, _)| name).collect()
}

const KINDS: [&str; 11] = [
    "crash",
    "pause",
    "partition",
    "latency",
    "backpressure",
    "pricefeed_outage",
    "disaster",
    "restore",
    "failback",
    "stop",
    "exec",
];

/// Actions that happen at one instant: they take no `for`.
const INSTANT: [&str; 3] = ["disaster", "restore", "failback"];

fn one_fault(
    fault: &FaultSpec,
    path: &str,
    duration: Option<Duration>,
    topology: Option<&Topology>,
    report: &mut Report,
) {
    let kinds = kinds(fault);
    match kinds.as_slice() {
        [] => {
            let hint = Some(format!("add one of {}", one_of(&KINDS)));
            report.error(path, "this fault has no kind", hint);
        }
        [_] => {}
        [_, second, ..] => {
            let hint = Some("split it into one fault per kind".into());
            report.error(
                &format!("{path}.{second}"),
                format!("a fault has exactly one kind, found {}", one_of(&kinds)),
                hint,
            );
        }
    }
    let start = fault.at.get();
    let (at, run_length) = (report.shown(&format!("{path}.at"), fault.at), report.shown("duration", "?"));
    if let Some(duration) = duration
        && start >= duration
    {
        let hint = Some(format!("the run lasts {run_length}; move the fault earlier or lengthen `duration`"));
        report.error(
            &format!("{path}.at"),
            format!("the fault starts at {at} — at or after the end of the run"),
            hint,
        );
    }
    // A crash or a stop ends with a restart; an `exec` without `for` is an instant.
    let is_crash = fault.crash.is_some() || fault.stop.is_some();
    if fault.restart_after.is_some() && !is_crash {
        report.error(
            &format!("{path}.restart_after"),
            "`restart_after` applies only to `crash` and `stop`",
            Some("use `for` to bound other faults".into()),
        );
    }
    if is_crash && fault.for_.is_some() {
        report.error(
            &format!("{path}.for"),
            "a crash or stop is bounded by `restart_after`, not `for`",
            Some("write `restart_after: 15s`".into()),
        );
    }
    let is_crash = is_crash || fault.exec.as_ref().is_some_and(|e| e.revert.is_none());
    let instant = kinds.iter().any(|k| INSTANT.contains(k));
    if instant && fault.for_.is_some() {
        let hint = Some("remove `for`: a disaster lasts until a `restore`".into());
        report.error(&format!("{path}.for"), format!("`{}` happens at one instant", kinds[0]), hint);
    }
    if !is_crash && !instant && !kinds.is_empty() && fault.for_.is_none() {
        let hint = Some("add e.g. `for: 5s`; the fault is reverted when it ends".into());
        report.error(path, format!("a `{}` fault needs `for`", kinds[0]), hint);
    }
    for (key, window) in [("for", fault.for_), ("restart_after", fault.restart_after)] {
        if let Some(window) = window {
            if window.get().is_zero() {
                report.error(&format!("{path}.{key}"), format!("`{key}` is 0"), None);
            } else if let Some(duration) = duration
                && start < duration
                && start + window.get() > duration
            {
                let message = format!(
                    "the fault runs from {at} to `{}`, past the end of the run ({run_length})",
                    Span(start + window.get()),
                );
                report.error(
                    &format!("{path}.{key}"),
                    message,
                    Some("shorten it or lengthen `duration`".into()),
                );
            }
        }
    }
    if let Some(topology) = topology {
        targets(fault, path, topology, report);
        backup_actions(fault, path, topology, report);
    }
    if let Some(bp) = &fault.backpressure
        && let Some(capacity) = bp.capacity
        && capacity == 0
    {
        report.error(
            &format!("{path}.backpressure.capacity"),
            "a queue capacity of 0 rejects everything",
            Some("use at least 1".into()),
        );
    }
    if let Some(latency) = &fault.latency {
        positive(report, &format!("{path}.latency.delay"), latency.delay);
    }
}

/// `disaster` takes database nodes, `failback` names one; `restore`'s point in time is inside the run.
fn backup_actions(fault: &FaultSpec, path: &str, topology: &Topology, report: &mut Report) {
    let db_node = |name: &str| name == "pg-primary" || name == "pg-replica";
    if let Some(disaster) = &fault.disaster {
        if disaster.lose.is_empty() {
            let hint = Some("write `lose: [pg-primary, pg-replica]`".into());
            report.error(&format!("{path}.disaster.lose"), "a disaster loses at least one node", hint);
        }
        for (i, name) in disaster.lose.iter().enumerate() {
            let at = format!("{path}.disaster.lose[{i}]");
            let Some(hosts) = check_target(name, &at, topology, report) else { continue };
            if let Some(other) = hosts.iter().find(|h| !db_node(h)) {
                let hint =
                    Some("a disaster loses database nodes: write `lose: [pg-primary, pg-replica]`".into());
                report.error(&at, format!("`{other}` is not a database node"), hint);
            }
        }
    }
    if let Some(node) = &fault.failback
        && !db_node(node)
    {
        let hint = did_you_mean(node, ["pg-primary", "pg-replica"])
            .unwrap_or_else(|| "name `pg-primary` or `pg-replica`".into());
        report.error(&format!("{path}.failback"), format!("`{node}` is not a database node"), Some(hint));
    }
    if let Some(target) = fault.restore.as_ref().and_then(|r| r.to.time())
        && target > fault.at.get()
    {
        report.error(
            &format!("{path}.restore.to"),
            format!(
                "the restore at {} cannot recover to {}, which is later",
                report.shown(&format!("{path}.at"), fault.at),
                report.shown(&format!("{path}.restore.to"), Span(target))
            ),
            Some("recover to a time before the restore, or `latest`".into()),
        );
    }
}

fn check_target(name: &str, path: &str, topology: &Topology, report: &mut Report) -> Option<Vec<String>> {
    if let Some(hosts) = topology.resolve(name).filter(|hosts| !hosts.is_empty()) {
        return Some(hosts);
    }
    if report.gaps.unread("stack") && counted_host(name) {
        return Some(Vec::new()); // `api-3` exists if the unread `stack` asks for 3 replicas
    }
    let known = topology.target_names();
    if ["backup", "redis", "meta"].contains(&name) {
        let hint = Some("add `backup: { every: 20s, keep: 3 }` under `stack`".into());
        report.error(path, format!("`{name}` runs only when backups are configured"), hint);
        return None;
    }
    if name == CLIENT {
        report.error(path, "the client runs the load generator and cannot be faulted", None);
        return None;
    }
    let hint = did_you_mean(name, known.iter().map(String::as_str))
        .unwrap_or_else(|| format!("known hosts and groups: {}", one_of(&known)));
    report.error(path, format!("unknown host or group `{name}`"), Some(hint));
    None
}

/// `api-N` or `worker-N`: a host whose existence depends on `stack.api_replicas` or `stack.workers`.
fn counted_host(name: &str) -> bool {
    let number = name.strip_prefix("api-").or_else(|| name.strip_prefix("worker-"));
    number.is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1))
}

fn targets(fault: &FaultSpec, path: &str, topology: &Topology, report: &mut Report) {
    for (key, target) in [("crash", &fault.crash), ("pause", &fault.pause)] {
        if let Some(target) = target {
            check_target(target, &format!("{path}.{key}"), topology, report);
        }
    }
    let sides = [
        ("partition", fault.partition.as_ref()),
        ("latency.between", fault.latency.as_ref().map(|l| &l.between)),
    ];
    for (key, sides) in sides {
        let Some(sides) = sides else { continue };
        let side_path = format!("{path}.{key}");
        if sides.len() != 2 || sides.iter().any(Vec::is_empty) {
            let hint = Some("write two lists: `[[api], [pg-replica]]`".into());
            report.error(
                &side_path,
                format!("`{key}` needs exactly two non-empty sides, found {}", sides.len()),
                hint,
            );
            continue;
        }
        let mut resolved: Vec<Vec<String>> = Vec::new();
        for (s, side) in sides.iter().enumerate() {
            let mut hosts = Vec::new();
            for (t, name) in side.iter().enumerate() {
                hosts.extend(
                    check_target(name, &format!("{side_path}[{s}][{t}]"), topology, report)
                        .unwrap_or_default(),
                );
            }
            resolved.push(hosts);
        }
        if let Some(both) = resolved[0].iter().find(|h| resolved[1].contains(h)) {
            report.error(
                &side_path,
                format!("`{both}` is on both sides"),
                Some("a host cannot be cut off from itself".into()),
            );
        }
    }
}

/// Two crashes (or a crash and a pause) of one host whose windows overlap.
fn overlapping_outages(scenario: &Scenario, topology: &Topology, report: &mut Report) {
    // An outage without an end lasts the run, however long that is.
    let duration = if report.gaps.unread("duration") { Duration::MAX } else { scenario.duration.get() };
    let mut windows: BTreeMap<String, Vec<(Duration, Duration, String)>> = BTreeMap::new();
    for (i, fault) in scenario.faults.iter().enumerate() {
        let i = report.gaps.item("faults", i);
        let (target, window) = match (&fault.crash, &fault.pause) {
            (Some(t), _) => (t, fault.restart_after),
            (None, Some(t)) => (t, fault.for_),
            _ => continue,
        };
        let start = fault.at.get();
        let end = window.map_or(duration, |w| start + w.get());
        for host in topology.resolve(target).unwrap_or_default() {
            let earlier = windows.entry(host.clone()).or_default();
            if let Some((_, _, j)) = earlier.iter().find(|(s, e, _)| start < *e && *s < end) {
                let key = if fault.crash.is_some() { "crash" } else { "pause" };
                let message = format!("`{host}` is already down or paused by {j} at this time");
                report.error(&format!("{i}.{key}"), message, Some("make the windows disjoint".into()));
            }
            earlier.push((start, end, i.clone()));
        }
    }
}

fn checks(scenario: &Scenario, report: &mut Report) {
    let used: Vec<&str> = scenario.workload.iter().map(|l| l.op_name()).collect();
    let gaps = report.gaps;
    // Unknown when a fault could not be read: the rules that need "no faults" are skipped.
    let no_faults = scenario.faults.is_empty() && !gaps.incomplete("faults");
    for (i, row) in scenario.checks.slo.iter().enumerate() {
        let path = gaps.item("checks.slo", i);
        let op = row.op.name();
        if row.op != OpSelector::Any && !used.contains(&op) && !gaps.incomplete("workload") {
            let hint = Some(format!("the workload issues {}", one_of(&used)));
            report.error(
                &format!("{path}.op"),
                format!("an SLO on `{op}`, which the workload never issues"),
                hint,
            );
        }
        let thresholds = [row.p50, row.p90, row.p95, row.p99, row.p999, row.max];
        if thresholds.iter().all(Option::is_none) && row.error_rate.is_none() && row.availability.is_none() {
            let hint = Some("add e.g. `p99: 700ms` or `availability: 99%`".into());
            report.error(&path, "this SLO row sets no threshold", hint);
        }
        if matches!(row.phase, Phase::Fault | Phase::Recovery) && no_faults {
            let message = format!("phase `{}` never happens: the scenario has no faults", row.phase.name());
            report.error(&format!("{path}.phase"), message, Some("use `steady` or `all`".into()));
        }
    }
    if let Some(staleness) = &scenario.checks.staleness
        && let Some(max) = staleness.max
    {
        positive(report, "checks.staleness.max", max);
    }
    if let Some(recovery) = &scenario.checks.recovery {
        positive(report, "checks.recovery.rto", recovery.rto);
        if no_faults {
            report.error("checks.recovery", "a recovery check needs at least one fault", None);
        }
    }
    for name in scenario.expect.keys() {
        let unknown = gaps.unread("checks") || (*name == CheckName::Slo && gaps.incomplete("checks.slo"));
        if !configured(scenario, *name) && !unknown {
            let message = format!("`expect` names `{}`, which is not configured under `checks`", name.name());
            report.error(
                &format!("expect.{}", name.name()),
                message,
                Some(format!("add `{}` under `checks`", name.name())),
            );
        }
    }
}

/// Is a check configured (and so will it run)?
pub(crate) fn configured(scenario: &Scenario, name: CheckName) -> bool {
    let checks = &scenario.checks;
    match name {
        CheckName::Durability => checks.durability.is_some(),
        CheckName::Staleness => checks.staleness.is_some(),
        CheckName::Saga => checks.saga.is_some(),
        CheckName::Delivery => checks.delivery.is_some(),
        CheckName::Files => checks.files.is_some(),
        CheckName::Slo => !checks.slo.is_empty(),
        CheckName::Recovery => checks.recovery.is_some(),
        CheckName::Restore => checks.restore.is_some(),
        CheckName::Invariants => !checks.invariants.is_empty(),
        CheckName::Conservation => !checks.conservation.is_empty(),
    }
}
