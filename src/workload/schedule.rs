//! The schedule: every operation of a run with its intended start and parameters, computed
//! up-front from the scenario and the seed. Each load has its own random stream
//! (`seed::stream(seed, "workload/<i>")`), so adding a load does not move the others.

use std::time::Duration;

use rand::Rng;

use crate::history::EntryOp;
use crate::scenario::declared::OpName;
use crate::scenario::model::{Load, Op, Scenario};
use crate::seed;

/// The products the stack is seeded with, and their initial stock. Orders draw from it; the
/// stock is deep enough that the shipped scenarios' rates never sell a product out (an
/// out-of-stock answer is a correct 409 but would count as an error in SLOs).
pub const CATALOG: &[(&str, u64)] =
    &[("sku-1", 20_000), ("sku-2", 20_000), ("sku-3", 10_000), ("sku-4", 10_000), ("sku-5", 5_000)];

/// The coins investments are made in (ids of the price feed's fixture).
pub const COINS: &[&str] = &["bitcoin", "ethereum", "solana", "cardano", "dogecoin", "litecoin"];

/// One operation to issue.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledOp {
    /// Intended start, from the start of the run.
    pub at: Duration,
    /// Which operation: built-in, or declared by a compose scenario.
    pub op: EntryOp,
    /// Its stream: the index of its entry in the scenario's `workload`.
    pub load: usize,
    /// Declared ops: the seed of the values drawn for its `{int:…}` / `{choice:…}`
    /// placeholders (`workload::template`); 0 for built-in ops.
    pub draw_seed: u64,
    /// Its idempotency key, unique in the run (`invest-000042`).
    pub key: String,
    /// invest: the coin; order and query: the SKU.
    pub item: &'static str,
    /// invest: US cents; order: quantity; upload: size in bytes.
    pub amount: u64,
    /// How long it may take in total.
    pub timeout: Duration,
}

/// Every operation of a run, in intended-start order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    /// The operations.
    pub ops: Vec<ScheduledOp>,
}

impl Schedule {
    /// Poisson arrivals per load at its rate within `[start, stop)`, merged in time order.
    pub fn new(scenario: &Scenario, seed: u64) -> Schedule {
        let end = scenario.duration.get();
        let mut ops = Vec::new();
        for (index, load) in scenario.workload.iter().enumerate() {
            let mut rng = seed::stream(seed, &format!("workload/{index}"));
            let per_second = load.rate.per_second();
            if per_second <= 0.0 {
                continue;
            }
            let stop = load.stop.map_or(end, |s| s.get()).min(end);
            let mut t = load.start.get().as_secs_f64();
            loop {
                // Exponential inter-arrival times; 1 - u is in (0, 1], so ln is finite.
                let u: f64 = rng.random();
                t += -(1.0 - u).ln() / per_second;
                let at = Duration::from_secs_f64(t);
                if at >= stop {
                    break;
                }
                let (item, amount) = match load.op {
                    Some(Op::Invest) => {
                        (COINS[rng.random_range(0..COINS.len())], rng.random_range(1..=500) * 100)
                    }
                    Some(Op::Order) => {
                        (CATALOG[rng.random_range(0..CATALOG.len())].0, rng.random_range(1..=3))
                    }
                    Some(Op::Query) => (CATALOG[rng.random_range(0..CATALOG.len())].0, 0),
                    Some(Op::History) => ("", 0),
                    Some(Op::Upload) => ("", load.upload_size()),
                    None => ("", 0),
                };
                let draw_seed = if load.op.is_none() { rng.random() } else { 0 };
                ops.push(ScheduledOp {
                    at,
                    op: entry_op(load),
                    load: index,
                    draw_seed,
                    key: String::new(),
                    item,
                    amount,
                    timeout: load.timeout.get(),
                });
            }
        }
        // Stable: equal times keep load order, so the merge is deterministic.
        ops.sort_by_key(|op| op.at);
        for (n, op) in ops.iter_mut().enumerate() {
            op.key = format!("{}-{n:06}", op.op.name());
        }
        Schedule { ops }
    }
}

impl ScheduledOp {
    /// The built-in op (the built-in driver runs nothing else).
    pub fn builtin(&self) -> Op {
        self.op.op().expect("a built-in op")
    }
}

/// The history's name for a stream's op.
pub fn entry_op(load: &Load) -> EntryOp {
    match (load.op, &load.name) {
        (Some(op), _) => EntryOp::from(op),
        (None, Some(name)) => EntryOp::Declared(OpName::new(name)),
        (None, None) => unreachable!("validation refuses a stream with neither `op` nor `name`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    fn scenario(workload: &str) -> Scenario {
        let text = format!("name: t\nduration: 100s\nworkload:\n{workload}");
        load_str(&text, "t.yaml", &[]).unwrap().scenario
    }

    #[test]
    fn same_seed_same_schedule_and_different_seed_different() {
        let s = scenario("  - { op: invest, rate: 20/s }\n  - { op: order, rate: 5/s }\n");
        assert_eq!(Schedule::new(&s, 1), Schedule::new(&s, 1));
        assert_ne!(Schedule::new(&s, 1), Schedule::new(&s, 2));
    }

    #[test]
    fn rates_are_met_within_a_few_percent() {
        let s = scenario("  - { op: invest, rate: 50/s }\n  - { op: history, rate: 30/m }\n");
        let schedule = Schedule::new(&s, 9);
        let invests = schedule.ops.iter().filter(|o| o.op == EntryOp::Invest).count();
        let reads = schedule.ops.iter().filter(|o| o.op == EntryOp::History).count();
        assert!((4700..=5300).contains(&invests), "{invests}");
        assert!((30..=75).contains(&reads), "{reads}");
        assert!(schedule.ops.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(schedule.ops.iter().all(|o| o.at < Duration::from_secs(100)));
    }

    #[test]
    fn adding_a_load_does_not_move_the_others() {
        let one = Schedule::new(&scenario("  - { op: invest, rate: 20/s }\n"), 3);
        let two =
            Schedule::new(&scenario("  - { op: invest, rate: 20/s }\n  - { op: query, rate: 7/s }\n"), 3);
        let times = |s: &Schedule| -> Vec<Duration> {
            s.ops.iter().filter(|o| o.op == EntryOp::Invest).map(|o| o.at).collect()
        };
        assert_eq!(times(&one), times(&two));
    }

    #[test]
    fn keys_are_unique() {
        let schedule =
            Schedule::new(&scenario("  - { op: invest, rate: 20/s }\n  - { op: order, rate: 20/s }\n"), 3);
        let mut keys: Vec<&str> = schedule.ops.iter().map(|o| o.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), schedule.ops.len());
    }
}
