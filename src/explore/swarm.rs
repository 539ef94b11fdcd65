//! Swarm schedules: each seed draws its own fault timeline from the scenario's vocabulary.
//!
//! The vocabulary is the scenario's own `faults:` list: its kinds, their targets and their
//! parameters (a latency fault's delay, a backpressure mode). Per seed, each kind is switched on
//! or off (at least one stays on), then one to four faults are drawn from the enabled kinds'
//! templates with new start times and windows. Drawing only what the scenario already names keeps
//! exploration inside what its author considered; a fault that would make the scenario invalid
//! (overlapping another on the same host, say) is dropped. Every choice comes from the seed.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::model::{FaultSpec, Scenario};
use crate::scenario::units::Span;

/// Most faults one drawn schedule holds.
pub const FAULTS_MAX: usize = 4;

/// The kind a fault spec names (`crash`, `pause`, …).
pub fn kind(fault: &FaultSpec) -> &'static str {
    if fault.crash.is_some() {
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

/// Draw candidate faults for one seed, in time order. The caller keeps those that validate.
pub fn draw(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<FaultSpec> {
    let templates = &scenario.faults;
    if templates.is_empty() {
        return Vec::new();
    }
    let mut kinds: Vec<&str> = templates.iter().map(kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut enabled: Vec<&str> = kinds.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
    if enabled.is_empty() {
        enabled.push(kinds[rng.random_range(0..kinds.len())]);
    }
    let pool: Vec<&FaultSpec> = templates.iter().filter(|f| enabled.contains(&kind(f))).collect();
    let duration = scenario.duration.get();
    let count = rng.random_range(1..=FAULTS_MAX);
    let mut faults: Vec<FaultSpec> = (0..count)
        .map(|_| {
            let mut fault = pool[rng.random_range(0..pool.len())].clone();
            fault.at = Span(between(rng, duration / 20, duration * 3 / 4));
            let window_max = (duration * 3 / 10).min(Duration::from_secs(30));
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
        let draws: Vec<Vec<FaultSpec>> =
            (0..20).map(|seed| draw(&scenario, &mut crate::seed::stream(seed, "swarm"))).collect();
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
        let again = draw(&scenario, &mut crate::seed::stream(3, "swarm"));
        assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&draws[3]).unwrap());
    }
}
