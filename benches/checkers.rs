//! The pipeline after a run, on a synthetic 1,000,000-operation history (a 60 s run at
//! ~16,700 ops/s with a primary crash): every checker, the report's timeline, building the whole
//! report and rendering its HTML and JUnit; and before a run, the workload generator scheduling
//! the same million operations. Goal: under a second each in release mode. Run with `make bench`
//! (or `cargo bench --bench checkers`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shakedown::check::{FinalState, OrderRecord, QueryRecord, run_all};
use shakedown::history::{EntryOp, EntryType, History, Process, Value};
use shakedown::scenario::load_str;

const OPS: u64 = 1_000_000;

const SCENARIO: &str = "name: bench\nduration: 60s\nworkload:\n  - { op: invest, rate: 100/s }\n  - { op: history, rate: 50/s }\n  - { op: order, rate: 30/s }\n  - { op: query, rate: 20/s }\nfaults: [ { at: 20s, crash: pg-primary, restart_after: 15s } ]\nchecks:\n  durability: {}\n  staleness: { max: 1s }\n  saga: {}\n  delivery: {}\n  slo:\n    - { op: invest, phase: steady, p99: 50ms }\n    - { op: any, phase: fault, availability: 90% }\n  recovery: { rto: 10s }\n";

/// A history of `OPS` operations spread over 60 s on 512 sessions, and a final state that holds
/// every acknowledged write, completed order and completed query.
fn synthetic() -> (History, FinalState) {
    let mut history = History::new();
    let mut state = FinalState { primary: "pg-replica".into(), ..FinalState::default() };
    state.initial_stock.insert("sku-1".into(), OPS * 2);
    let mut on_hand = OPS * 2;
    let step_ns = 60_000_000_000 / OPS;
    let mut last_lsn = 0;
    for n in 0..OPS {
        let at = n * step_ns;
        let process = Process::Client((n % 512) as u32);
        let done_at = at + 2_000_000 + (n % 97) * 100_000;
        let failed = (20_000_000_000..21_500_000_000).contains(&at) && n % 3 == 0;
        let kind = if failed { EntryType::Fail } else { EntryType::Ok };
        let key = format!("k{n}");
        let (op, invoke, done) = match n % 10 {
            0..=4 => {
                last_lsn = n + 1;
                if !failed {
                    state.investments.insert(key.clone(), 1);
                }
                let done = Value { key: Some(key.clone()), lsn: Some(last_lsn), ..Value::default() };
                (EntryOp::Invest, Value { key: Some(key), ..Value::default() }, done)
            }
            5..=7 => {
                let done = Value {
                    replica_lsn: Some(last_lsn),
                    served_by: Some("pg-replica".into()),
                    ..Value::default()
                };
                (EntryOp::History, Value::default(), done)
            }
            8 => {
                let completed = !failed;
                if completed {
                    on_hand -= 1;
                }
                let order = OrderRecord {
                    sku: "sku-1".into(),
                    qty: 1,
                    reserved_qty: u64::from(completed),
                    order_exists: completed,
                    report_exists: completed,
                    compensations: u32::from(!completed),
                    trace: Vec::new(),
                };
                state.orders.insert(key.clone(), order);
                (
                    EntryOp::Order,
                    Value { key: Some(key.clone()), ..Value::default() },
                    Value { key: Some(key), ..Value::default() },
                )
            }
            _ => {
                state
                    .queries
                    .insert(key.clone(), QueryRecord { id: n, status: "completed".into(), effects: 1 });
                let done = Value { key: Some(key.clone()), id: Some(n), ..Value::default() };
                (EntryOp::Query, Value { key: Some(key), ..Value::default() }, done)
            }
        };
        history.push(at, EntryType::Invoke, process, op, invoke, None);
        history.push(done_at, kind, process, op, done, None);
    }
    state.stock.insert("sku-1".into(), on_hand);
    (history, state)
}

fn checkers(c: &mut Criterion) {
    let loaded = load_str(SCENARIO, "bench.yaml", &[]).expect("the bench scenario is valid");
    let (history, state) = synthetic();
    let mut group = c.benchmark_group("checkers");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("run_all_1m_ops", |b| {
        b.iter(|| black_box(run_all(black_box(&history), &state, &loaded.plan, &loaded.scenario)))
    });
    group.bench_function("timeline_1m_ops", |b| {
        b.iter(|| black_box(shakedown::report::timeline::build(black_box(&history), 60_000, 1_000)))
    });
    group.finish();
}

fn report(c: &mut Criterion) {
    use shakedown::check::verdict;
    use shakedown::report::{Inputs, RunFacts, build, render_html, render_junit};
    use shakedown::workload::GeneratorStats;
    let loaded = load_str(SCENARIO, "bench.yaml", &[]).expect("the bench scenario is valid");
    let (history, state) = synthetic();
    let checked = run_all(&history, &state, &loaded.plan, &loaded.scenario);
    let generator = GeneratorStats { scheduled_count: OPS, sent_count: OPS, ..GeneratorStats::default() };
    let verdict = verdict(&checked.results, &loaded.scenario, &generator);
    let effects = vec![shakedown::faults::FaultEffect::default()];
    let mut group = c.benchmark_group("report");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("build_and_render_1m_ops", |b| {
        b.iter(|| {
            let report = build(Inputs {
                loaded: &loaded,
                seed: 1,
                backend: "sim",
                history: black_box(&history),
                fault_effects: &effects,
                generator: &generator,
                checked: &checked,
                verdict: &verdict,
                run: RunFacts {
                    wall_ms: 0,
                    simulated_ms: 60_000,
                    speedup: 0.0,
                    version: "bench".into(),
                    startup_ms: None,
                },
            });
            black_box((render_html(&report), render_junit(&report)))
        })
    });
    group.finish();
}

fn workload(c: &mut Criterion) {
    let loaded = load_str(SCENARIO, "bench.yaml", &[]).expect("the bench scenario is valid");
    let mut scenario = loaded.scenario.clone();
    // 16,700 ops/s for 60 s: the same million operations the history above holds.
    for load in &mut scenario.workload {
        load.rate.count *= 16_700.0 / 200.0;
    }
    let mut group = c.benchmark_group("workload");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("schedule_1m_ops", |b| {
        b.iter(|| black_box(shakedown::workload::Schedule::new(black_box(&scenario), 7)))
    });
    group.finish();
}

criterion_group!(benches, checkers, report, workload);
criterion_main!(benches);
