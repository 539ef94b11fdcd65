//! Determinism: the same scenario and seed give the same report (outside its wall-clock `run`
//! block), another seed gives another run, and simulations running at the same time on other
//! threads of the process (as `shakedown explore` runs them) change nothing.
//!
//! The last one failed until every task the stack spawns went onto its host's `LocalSet`
//! (`shakedown::stack::spawn`): tokio's own task list is sharded by a process-wide task id, so the
//! order a crashed host's sockets closed in depended on what other threads had spawned.

mod common;

use std::path::Path;

use common::run;

#[test]
fn the_same_seed_gives_the_same_report() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/primary-crash.yaml");
    let mut a = run(&file, &[]);
    let mut b = run(&file, &[]);
    a.run = b.run.clone();
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    b = run(&file, &["seed=8"]);
    assert_ne!(a.timeline, b.timeline, "a different seed gives a different run");
}

#[test]
fn simulations_on_concurrent_threads_match_a_lone_run() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/primary-crash.yaml");
    let loaded = shakedown::scenario::load_file(&file, &[]).unwrap();
    let lone = shakedown::run::Backend::run(&shakedown::sim::Sim, &loaded, 7).unwrap().history;
    let histories: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = [7, 7, 8]
            .map(|seed| {
                let loaded = &loaded;
                scope.spawn(move || shakedown::run::Backend::run(&shakedown::sim::Sim, loaded, seed))
            })
            .into_iter()
            .collect();
        runs.into_iter().map(|r| r.join().unwrap().unwrap().history).collect()
    });
    for (i, history) in histories[..2].iter().enumerate() {
        if let Some(d) = shakedown::run::first_divergence(&lone, history) {
            panic!("thread {i} diverged at line {}:\n{:?}\n{:?}", d.line, d.first, d.second);
        }
    }
    assert!(shakedown::run::first_divergence(&lone, &histories[2]).is_some());
}
