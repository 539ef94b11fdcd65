//! Swarm schedules: each seed draws its own fault timeline.
//!
//! Two vocabularies ([`Vocabulary`]):
//!
//! - `scenario` (`--swarm`): the scenario's own `faults:` list — its kinds, their targets and
//!   their parameters (a latency fault's delay, a backpressure mode). Drawing only what the
//!   scenario already names keeps exploration inside what its author considered.
//! - `all` (`--swarm all`): every fault kind shakedown has, over every host and group of the
//!   scenario's stack (never the client), with parameters drawn from ranges ([`draw_fault`]), so a
//!   scenario that lists a crash and a latency fault also meets partitions, pauses, backpressure
//!   and price-feed outages.
//!
//! Per seed, each kind of the vocabulary is switched on or off (at least one stays on), then one
//! to [`FAULTS_MAX`] faults are drawn from the enabled kinds with new start times and windows.
//! Targets are the hosts and groups the workload reaches (a fault elsewhere tests nothing), and
//! with `all` only kinds that can act on them. Backup and failback actions are not drawn like
//! faults: the drills of the scenario's own list (a disaster and its restore, a failover and its
//! failback) are added to every seed's schedule in the shape a drill has (`drill`), with either
//! vocabulary. A
//! fault that would make the scenario invalid (overlapping another on the same host, say) is
//! dropped by the caller (`explore::concrete`). Every choice comes from the seed, so a seed's
//! schedule is the same on every run, and the concrete scenario written for a failure
//! (`failing.yaml`, `shrunk.yaml`) holds the schedule itself: it replays without `--swarm`.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::scenario::model::{
    BackpressureFault, ConsumerMode, FaultSpec, LatencyFault, OutageFault, OutageMode, Scenario,
};
use crate::scenario::units::Span;

/// Where a swarm draws its faults from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vocabulary {
    /// The kinds, targets and parameters of the scenario's own `faults:` list.
    Scenario,
    /// Every fault kind, over every host and group of the stack, parameters from ranges.
    All,
}

/// Every fault kind, in a fixed order (the `all` vocabulary).
pub const KINDS: [&str; 6] = ["crash", "pause", "partition", "latency", "backpressure", "pricefeed_outage"];

/// The range a drawn latency fault's `delay` comes from.
pub const LATENCY_DELAY_MIN: Duration = Duration::from_millis(20);
/// The top of that range.
pub const LATENCY_DELAY_MAX: Duration = Duration::from_millis(500);

/// Most faults one drawn schedule holds.
pub const FAULTS_MAX: usize = 4;

/// The kind a fault spec names (`crash`, `pause`, …, `disaster`, `restore`, `failback`).
pub fn kind(fault: &FaultSpec) -> &'static str {
    if fault.disaster.is_some() {
        "disaster"
    } else if fault.restore.is_some() {
        "restore"
    } else if fault.failback.is_some() {
        "failback"
    } else if fault.crash.is_some() {
        "crash"
    } else if fault.pause.is_some() {
        "pause"
    } else if fault.partition.is_some() {
        "partition"
    } else if fault.latency.is_some() {
        "latency"
    } else if fault.backpressure.is_some() {
        "backpressure"
    } else {
        "pricefeed_outage"
    }
}

/// Draw candidate faults for one seed from `vocabulary`, in time order, with the drills of the
/// scenario's own list (a disaster and its restore, a failover and its failback) in their shape
/// (`drill`). The caller keeps those that validate.
pub fn draw(scenario: &Scenario, vocabulary: Vocabulary, rng: &mut ChaCha8Rng) -> Vec<FaultSpec> {
    let faults = draw_faults(scenario, vocabulary, rng);
    super::drill::add_drills(scenario, faults, rng)
}

/// The faults of one seed other than drill actions, in time order.
fn draw_faults(scenario: &Scenario, vocabulary: Vocabulary, rng: &mut ChaCha8Rng) -> Vec<FaultSpec> {
    let plain = |f: &&FaultSpec| !super::drill::is_drill(f);
    let kinds: Vec<&str> = match vocabulary {
        Vocabulary::Scenario => {
            let mut kinds: Vec<&str> = scenario.faults.iter().filter(plain).map(kind).collect();
            kinds.sort_unstable();
            kinds.dedup();
            kinds
        }
        Vocabulary::All => KINDS.iter().copied().filter(|k| can_act(scenario, k)).collect(),
    };
    if kinds.is_empty() {
        return Vec::new();
    }
    let mut enabled: Vec<&str> = kinds.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
    if enabled.is_empty() {
        enabled.push(kinds[rng.random_range(0..kinds.len())]);
    }
    let pool: Vec<&FaultSpec> =
        scenario.faults.iter().filter(plain).filter(|f| enabled.contains(&kind(f))).collect();
    // Only what the workload reaches: a fault on a host no op uses tests nothing (validation
    // refuses it).
    let targets = crate::scenario::reached(scenario).target_names();
    let duration = scenario.duration.get();
    let window_max = (duration * 3 / 10).min(Duration::from_secs(30));
    let count = rng.random_range(1..=FAULTS_MAX);
    let mut faults: Vec<FaultSpec> = (0..count)
        .map(|_| {
            let mut fault = match vocabulary {
                Vocabulary::Scenario => pool[rng.random_range(0..pool.len())].clone(),
                Vocabulary::All => {
                    let kind = enabled[rng.random_range(0..enabled.len())];
                    draw_fault(kind, &targets, rng)
                }
            };
            fault.at = Span(between(rng, duration / 20, duration * 3 / 4));
            if fault.for_.is_some() {
                fault.for_ = Some(Span(between(rng, Duration::from_millis(500), window_max)));
            }
            if fault.restart_after.is_some() {
                fault.restart_after = Some(Span(between(rng, Duration::from_secs(1), window_max)));
            }
            fault
        })
        .collect();
    faults.sort_by_key(|f| f.at);
    faults
}

/// Can a fault of `kind` act on what `scenario`'s workload uses? Backpressure needs ops that
/// use the queue, a price-feed outage investments; the others find a reached host.
fn can_act(scenario: &Scenario, kind: &str) -> bool {
    let reached = crate::scenario::reached(scenario);
    let has = |host: &str| reached.hosts().iter().any(|h| h.name == host);
    match kind {
        "backpressure" => has("broker"),
        "pricefeed_outage" => has("pricefeed"),
        _ => true,
    }
}

/// One fault of `kind` over `targets` (hosts and groups), its parameters drawn; `at` and the
/// window are placeholders that [`draw`] redraws. The ranges:
///
/// | kind | parameters |
/// |---|---|
/// | crash | one target; restarted after a window, or (one in four) never |
/// | pause | one target |
/// | partition | two sides of one or two targets each, no host on both; one way one time in four |
/// | latency | two sides as a partition's; `delay` 20–500 ms, `jitter` none or up to half the delay |
/// | backpressure | consumers paused, or slowed by 50–500 ms a message; capacity unchanged, or (one in two) 1–50 |
/// | pricefeed outage | errors, or answers 0.5–3 s late |
pub fn draw_fault(kind: &str, targets: &[String], rng: &mut ChaCha8Rng) -> FaultSpec {
    let window = Some(Span(Duration::from_secs(1)));
    let one = |rng: &mut ChaCha8Rng| targets[rng.random_range(0..targets.len())].clone();
    let mut fault = FaultSpec { for_: window, ..FaultSpec::default() };
    match kind {
        "crash" => {
            fault.for_ = None;
            fault.crash = Some(one(rng));
            fault.restart_after = (!rng.random_ratio(1, 4)).then_some(Span(Duration::from_secs(1)));
        }
        "pause" => fault.pause = Some(one(rng)),
        "partition" => {
            fault.partition = Some(sides(targets, rng));
            fault.one_way = rng.random_ratio(1, 4);
        }
        "latency" => {
            let delay = between(rng, LATENCY_DELAY_MIN, LATENCY_DELAY_MAX);
            let jitter =
                if rng.random_bool(0.5) { Duration::ZERO } else { between(rng, Duration::ZERO, delay / 2) };
            fault.latency =
                Some(LatencyFault { between: sides(targets, rng), delay: Span(delay), jitter: Span(jitter) });
        }
        "backpressure" => {
            let slow = rng.random_bool(0.5);
            let slow_by =
                slow.then(|| Span(between(rng, Duration::from_millis(50), Duration::from_millis(500))));
            let capacity = rng.random_bool(0.5).then(|| rng.random_range(1..=50));
            let consumers = if slow { ConsumerMode::Slow } else { ConsumerMode::Pause };
            fault.backpressure = Some(BackpressureFault { consumers, slow_by, capacity });
        }
        "pricefeed_outage" => {
            let slow = rng.random_bool(0.5);
            let delay = slow.then(|| Span(between(rng, Duration::from_millis(500), Duration::from_secs(3))));
            let mode = if slow { OutageMode::Slow } else { OutageMode::Errors };
            fault.pricefeed_outage = Some(OutageFault { mode, delay });
        }
        other => panic!("unknown fault kind `{other}`"),
    }
    fault
}

/// Two sides of one or two targets each. A side may name a host the other's group holds: such a
/// partition is invalid and dropped, like any other invalid draw.
fn sides(targets: &[String], rng: &mut ChaCha8Rng) -> Vec<Vec<String>> {
    let side = |rng: &mut ChaCha8Rng| -> Vec<String> {
        let first = rng.random_range(0..targets.len());
        let mut names = vec![targets[first].clone()];
        if rng.random_bool(0.5) {
            let second = rng.random_range(0..targets.len());
            if second != first {
                names.push(targets[second].clone());
            }
        }
        names
    };
    vec![side(rng), side(rng)]
}

/// A duration uniform in `[low, high]`, rounded to 100 ms so schedules read well as YAML.
fn between(rng: &mut ChaCha8Rng, low: Duration, high: Duration) -> Duration {
    let (low, high) =
        (low.as_millis() as u64 / 100, (high.as_millis() as u64 / 100).max(low.as_millis() as u64 / 100));
    Duration::from_millis(rng.random_range(low..=high) * 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    #[test]
    fn draws_come_from_the_vocabulary_and_repeat_per_seed() {
        let text = "name: t\nduration: 60s\nworkload: [ { op: invest, rate: 1/s } ]\nfaults:\n  - { at: 20s, crash: pg-primary, restart_after: 15s }\n  - { at: 10s, for: 5s, partition: [[api], [pg-replica]] }\n";
        let scenario = load_str(text, "t.yaml", &[]).unwrap().scenario;
        let draws: Vec<Vec<FaultSpec>> = (0..20)
            .map(|seed| draw(&scenario, Vocabulary::Scenario, &mut crate::seed::stream(seed, "swarm")))
            .collect();
        for faults in &draws {
            assert!((1..=FAULTS_MAX).contains(&faults.len()));
            assert!(faults.windows(2).all(|w| w[0].at <= w[1].at));
            for fault in faults {
                assert!(fault.crash.as_deref() == Some("pg-primary") || fault.partition.is_some());
                assert!(
                    fault.at.get() >= Duration::from_secs(3) && fault.at.get() <= Duration::from_secs(45)
                );
            }
        }
        let kinds_seen: std::collections::BTreeSet<_> = draws.iter().flatten().map(kind).collect();
        assert_eq!(kinds_seen.len(), 2, "both kinds are drawn across seeds");
        let again = draw(&scenario, Vocabulary::Scenario, &mut crate::seed::stream(3, "swarm"));
        assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&draws[3]).unwrap());
    }

    /// A scenario whose `faults:` list holds one kind only: a crash of the primary (its workload
    /// reaches the price feed and the queue, so every kind can act).
    fn one_kind() -> crate::scenario::Loaded {
        let text = "name: t\nduration: 60s\nstack: { api_replicas: 3, workers: 2 }\nworkload: [ { op: invest, rate: 1/s }, { op: query, rate: 1/s } ]\nfaults:\n  - { at: 20s, crash: pg-primary, restart_after: 15s }\n";
        load_str(text, "t.yaml", &[]).unwrap()
    }

    /// Goal: `all` schedules are a function of the seed. Method: draw each of 30 seeds twice,
    /// from fresh streams, and compare the YAML; different seeds give different schedules.
    #[test]
    fn all_is_deterministic_per_seed() {
        let scenario = one_kind().scenario;
        let yaml = |seed| {
            let drawn = draw(&scenario, Vocabulary::All, &mut crate::seed::stream(seed, "swarm"));
            serde_json::to_string(&drawn).unwrap()
        };
        let first: Vec<String> = (0..30).map(yaml).collect();
        let again: Vec<String> = (0..30).map(yaml).collect();
        assert_eq!(first, again);
        let distinct: std::collections::BTreeSet<&String> = first.iter().collect();
        assert!(distinct.len() > 25, "{} distinct schedules of 30", distinct.len());
    }

    /// Goal: `all` reaches past the scenario's own list. Method: over 100 seeds of a scenario
    /// listing only a crash, the schedules that validate (what `explore` runs) hold every kind,
    /// a crash without restart, a one-way partition, latency within 20–500 ms, and hosts and
    /// groups the scenario never names (`api-3`, `worker-2`, `workers`) — never the client.
    #[test]
    fn all_covers_every_kind_over_the_whole_stack() {
        let loaded = one_kind();
        let schedules: Vec<Vec<FaultSpec>> = (0..100)
            .map(|seed| crate::explore::concrete(&loaded, seed, Some(Vocabulary::All)).faults)
            .collect();
        let faults: Vec<&FaultSpec> = schedules.iter().flatten().collect();
        let kinds: std::collections::BTreeSet<&str> = faults.iter().map(|f| kind(f)).collect();
        assert_eq!(kinds, KINDS.into_iter().collect(), "every kind appears");
        assert!(faults.iter().any(|f| f.crash.is_some() && f.restart_after.is_none()));
        assert!(faults.iter().any(|f| f.crash.is_some() && f.restart_after.is_some()));
        assert!(faults.iter().any(|f| f.partition.is_some() && f.one_way));
        for latency in faults.iter().filter_map(|f| f.latency.as_ref()) {
            assert!((LATENCY_DELAY_MIN..=LATENCY_DELAY_MAX).contains(&latency.delay.get()));
        }
        let named: std::collections::BTreeSet<String> = faults
            .iter()
            .flat_map(|f| {
                let sides =
                    f.partition.iter().chain(f.latency.as_ref().map(|l| &l.between)).flatten().flatten();
                f.crash.iter().chain(&f.pause).chain(sides).cloned().collect::<Vec<_>>()
            })
            .collect();
        for name in ["api-3", "worker-2", "workers", "db", "pg-replica"] {
            assert!(named.contains(name), "`{name}` never drawn: {named:?}");
        }
        assert!(!named.contains(crate::scenario::topology::CLIENT));
        assert!(schedules.iter().all(|s| (1..=FAULTS_MAX).contains(&s.len())), "one to four faults a seed");
    }

    /// Goal: what `explore` runs is a valid scenario, and few draws are dropped as invalid.
    /// Method: 100 seeds' concrete scenarios reload; of their first draws, count the faults
    /// that validate when added one by one, as `explore::concrete` adds them.
    #[test]
    fn every_all_schedule_validates() {
        let loaded = one_kind();
        let (mut drawn, mut kept) = (0, 0);
        for seed in 0..100 {
            let scenario = crate::explore::concrete(&loaded, seed, Some(Vocabulary::All));
            crate::explore::reload(&scenario, "swarm").unwrap_or_else(|d| panic!("seed {seed}: {d}"));
            let mut first = loaded.scenario.clone();
            first.faults.clear();
            for fault in draw(&loaded.scenario, Vocabulary::All, &mut crate::seed::stream(seed, "swarm")) {
                drawn += 1;
                first.faults.push(fault);
                match crate::explore::reload(&first, "swarm") {
                    Ok(_) => kept += 1,
                    Err(_) => drop(first.faults.pop()),
                }
            }
        }
        println!("{kept} of {drawn} drawn faults validate");
        assert!(kept * 10 >= drawn * 8, "{kept} of {drawn} drawn faults validate");
    }

    /// Goal: `all` draws only what can act on the workload's hosts. Method: an invest-only
    /// scenario over 100 seeds never meets the queue, the workers, the object store or the saga
    /// participants, and never backpressure.
    #[test]
    fn all_draws_only_hosts_the_workload_reaches() {
        let text = "name: t\nduration: 60s\nworkload: [ { op: invest, rate: 1/s } ]\n";
        let loaded = load_str(text, "t.yaml", &[]).unwrap();
        for seed in 0..100 {
            let scenario = crate::explore::concrete(&loaded, seed, Some(Vocabulary::All));
            let yaml = serde_json::to_string(&scenario.faults).unwrap();
            for idle in ["broker", "worker", "objects", "inventory", "ordersvc", "reports", "backpressure"] {
                assert!(!yaml.contains(idle), "seed {seed} draws `{idle}`: {yaml}");
            }
        }
    }
}
