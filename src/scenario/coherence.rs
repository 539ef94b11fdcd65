//! Rules about the scenario as a whole, which no single value breaks: the workload's planned
//! operations stay within `ops_max`; every check has operations to judge; every fault can reach
//! something the workload uses. A scenario that breaks them would run out of memory, end
//! "undecided", or inject a fault that tests nothing — so they are refused before the run, as an
//! SLO on an op the workload never issues is.

use std::time::Duration;

use super::model::{CheckName, FaultSpec, Op, Scenario};
use super::topology::Topology;
use super::validate::{Report, configured};

/// Check the whole-scenario rules; `duration` is `None` when it could not be read.
pub(super) fn check(scenario: &Scenario, duration: Option<Duration>, report: &mut Report) {
    planned_ops(scenario, duration, report);
    // A compose scenario's ops and hosts are its own (`validate_declared`).
    if report.gaps.incomplete("workload") || scenario.stack.is_compose() {
        return; // what the workload issues is not known
    }
    checks_have_ops(scenario, report);
    if !report.gaps.unread("stack") {
        faults_reach_something(scenario, report);
    }
}

/// The ops a check judges: without any of them it can only end undecided.
pub(crate) fn ops_needed(check: CheckName) -> &'static [Op] {
    match check {
        CheckName::Durability | CheckName::Restore => &[Op::Invest],
        CheckName::Staleness => &[Op::History, Op::Invest],
        CheckName::Saga => &[Op::Order],
        CheckName::Delivery => &[Op::Query],
        CheckName::Files => &[Op::Upload],
        CheckName::Slo | CheckName::Recovery | CheckName::Invariants | CheckName::Conservation => &[],
    }
}

/// The workload's planned operations: each stream's rate times how long it runs, summed, within
/// `ops_max`. A stream cut short by a shape error counts what it still says.
fn planned_ops(scenario: &Scenario, duration: Option<Duration>, report: &mut Report) {
    if report.gaps.unread("ops_max") {
        return;
    }
    // A run longer than `duration_max` is refused for that; its ops are not counted on top.
    let Some(duration) = duration.filter(|d| *d <= scenario.duration_max.get()) else { return };
    let mut total = 0.0;
    let mut largest: Option<(usize, f64)> = None;
    for (i, load) in scenario.workload.iter().enumerate() {
        let stop = load.stop.map_or(duration, |s| s.get()).min(duration);
        let ops = load.rate.per_second().max(0.0) * stop.saturating_sub(load.start.get()).as_secs_f64();
        total += ops;
        if largest.is_none_or(|(_, most)| ops > most) {
            largest = Some((i, ops));
        }
    }
    let limit = scenario.ops_max;
    let Some((i, _)) = largest.filter(|_| total > limit as f64) else { return };
    let path = report.gaps.item("workload", i);
    let load = &scenario.workload[i];
    let rate = report.shown(&format!("{path}.rate"), load.rate);
    let message = format!(
        "the workload plans about {} operations, more than `ops_max` ({}); the most from `{}` at {rate}",
        grouped(total.ceil() as u64),
        grouped(limit),
        load.op_name()
    );
    let needed = total.ceil() as u64;
    let hint = format!(
        "is the rate a typo? each operation holds about 4 kB until the run ends; if a run this large is meant, raise the limit: `ops_max: {needed}` in the file, or `--set ops_max={needed}`"
    );
    report.error(&format!("{path}.rate"), message, Some(hint));
}

/// `1234567` → `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every configured check has an op to judge.
fn checks_have_ops(scenario: &Scenario, report: &mut Report) {
    if report.gaps.unread("checks") {
        return;
    }
    let issued: Vec<Op> = scenario.workload.iter().filter_map(|l| l.op).collect();
    for check in CheckName::ALL {
        let needed = ops_needed(check);
        if !configured(scenario, check) || needed.iter().all(|op| issued.contains(op)) {
            continue;
        }
        let missing: Vec<&str> =
            needed.iter().filter(|op| !issued.contains(op)).map(|op| op.name()).collect();
        let streams: Vec<String> =
            missing.iter().map(|op| format!("`- {{ op: {op}, rate: 10/s }}`")).collect();
        report.error(
            &format!("checks.{}", check.name()),
            format!(
                "the `{}` check has nothing to judge: the workload issues no `{}`",
                check.name(),
                missing.join("` or `")
            ),
            Some(format!("add {} under `workload`, or remove the check", streams.join(" and "))),
        );
    }
}

/// The ops that reach a host of `group`, for hints (hosts of the groups every op reaches are
/// never unreached).
fn reached_by(group: &str) -> &'static [Op] {
    match group {
        "deps" => &[Op::Invest],
        "apps" => &[Op::Order],
        "queue" | "workers" => &[Op::Query, Op::Upload],
        "storage" => &[Op::Upload],
        _ => &[],
    }
}

/// The hosts the workload's ops reach (the stack's core — balancer, API, database, watchdog,
/// backups — always).
pub(crate) fn reached(scenario: &Scenario) -> Topology {
    let ops: Vec<Op> = scenario.workload.iter().filter_map(|l| l.op).collect();
    Topology::needed(&scenario.stack, &ops, &[])
}

/// Every fault acts on something the workload uses: a crash or pause of a host no op reaches,
/// a partition or latency with a side no op reaches, backpressure on a queue nothing publishes
/// to, a price-feed outage with no investment asking for prices — each can do nothing.
fn faults_reach_something(scenario: &Scenario, report: &mut Report) {
    let full = Topology::new(&scenario.stack);
    let reached = reached(scenario);
    let is_reached = |host: &str| reached.hosts().iter().any(|h| h.name == host);
    for (i, fault) in scenario.faults.iter().enumerate() {
        let path = report.gaps.item("faults", i);
        let Some((key, target)) = idle_target(fault, &full, &is_reached) else { continue };
        let group = full.hosts().iter().find(|h| h.name == target).and_then(|h| h.group).unwrap_or(&target);
        let ops: Vec<String> = reached_by(group).iter().map(|op| format!("`{}`", op.name())).collect();
        let which = if ops.is_empty() { String::new() } else { format!(" ({} would)", ops.join(" or ")) };
        let what = match key {
            "backpressure" => {
                "queue backpressure can do nothing: no op of the workload uses the queue".to_owned()
            }
            "pricefeed_outage" => {
                "a price-feed outage can do nothing: no op of the workload asks for prices".to_owned()
            }
            _ => format!("this `{key}` can do nothing: no op of the workload reaches `{target}`"),
        };
        report.error(
            &format!("{path}.{key}"),
            format!("{what}{which}"),
            Some("add a stream of an op that uses it, or remove the fault".into()),
        );
    }
}

/// The fault's key and a target of it no op reaches, when that leaves the fault nothing to act on.
fn idle_target(
    fault: &FaultSpec,
    full: &Topology,
    is_reached: &dyn Fn(&str) -> bool,
) -> Option<(&'static str, String)> {
    let idle = |name: &String| -> bool {
        full.resolve(name).is_some_and(|hosts| !hosts.is_empty() && !hosts.iter().any(|h| is_reached(h)))
    };
    let side_idle = |side: &Vec<String>| {
        let hosts: Vec<String> = side.iter().flat_map(|n| full.resolve(n).unwrap_or_default()).collect();
        !hosts.is_empty() && !hosts.iter().any(|h| is_reached(h))
    };
    for (key, target) in [("crash", &fault.crash), ("pause", &fault.pause)] {
        if let Some(target) = target.as_ref().filter(|t| idle(t)) {
            return Some((key, target.clone()));
        }
    }
    let sides =
        [("partition", fault.partition.as_ref()), ("latency", fault.latency.as_ref().map(|l| &l.between))];
    for (key, sides) in sides {
        if let Some(side) = sides.into_iter().flatten().find(|side| side_idle(side)) {
            return Some((key, side.join(", ")));
        }
    }
    if fault.backpressure.is_some() && !is_reached("broker") {
        return Some(("backpressure", "broker".into()));
    }
    if fault.pricefeed_outage.is_some() && !is_reached("pricefeed") {
        return Some(("pricefeed_outage", "pricefeed".into()));
    }
    None
}
