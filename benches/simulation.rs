//! Full-stack simulation speed: the shipped steady-state and primary-crash scenarios, end to end
//! on the simulation (every host, the workload, the faults; no checkers or files). Throughput is
//! in simulated milliseconds, so criterion's `Kelem/s` reads directly as "times faster than real
//! time" (37 Kelem/s = 37 simulated seconds per wall second). Run with `make bench` (or
//! `cargo bench --bench simulation`); each iteration is one whole run, so this takes a minute.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shakedown::run::Backend;
use shakedown::scenario::load_file;

fn simulation(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulation");
    group.sample_size(10).measurement_time(Duration::from_secs(25)).warm_up_time(Duration::from_secs(1));
    for name in ["steady-state", "primary-crash"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.yaml"));
        let loaded = load_file(&file, &[]).expect("shipped scenarios are valid");
        let seed = loaded.scenario.seed;
        let simulated_ms = shakedown::sim::Sim.run(&loaded, seed).expect("the scenario runs").simulated_ms;
        group.throughput(Throughput::Elements(simulated_ms));
        group.bench_function(name, |b| {
            b.iter(|| shakedown::sim::Sim.run(&loaded, seed).expect("the scenario runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, simulation);
criterion_main!(benches);
