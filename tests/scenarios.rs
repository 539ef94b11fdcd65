//! Every shipped scenario runs on the simulation and must meet its expectations: the baseline
//! and fault scenarios pass with every bug switch off, and each `scenarios/bugs/` scenario fails
//! exactly the check it `expect`s. This is also how users run shakedown from their own tests:
//! `shakedown::run::run_file(path, &shakedown::sim::Sim, &options)`.

mod common;

use std::path::{Path, PathBuf};

use common::run;
use shakedown::check::Status;

fn scenarios(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// A failing scenario prints its verdict, every check's summary and the replay command.
fn explain(report: &shakedown::report::Report) -> String {
    let checks: Vec<String> =
        report.checks.iter().map(|c| format!("  {} {:?}: {}", c.name, c.status, c.summary)).collect();
    format!("{}\n{}\nreplay: {}", report.verdict.summary, checks.join("\n"), report.replay)
}

/// Run each file on its own thread (each simulation is single-threaded and independent).
fn run_all(files: &[PathBuf], overrides: &[&str]) -> Vec<(PathBuf, shakedown::report::Report)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            files.iter().map(|f| scope.spawn(move || (f.clone(), run(f, overrides)))).collect();
        handles.into_iter().map(|h| h.join().expect("a scenario run panicked")).collect()
    })
}

#[test]
fn every_shipped_scenario_meets_its_expectations() {
    let mut files = scenarios("scenarios");
    files.extend(scenarios("scenarios/bugs"));
    files.extend(scenarios("scenarios/regressions"));
    assert!(files.len() >= 15);
    let failures: Vec<String> = run_all(&files, &[])
        .into_iter()
        .filter(|(_, report)| report.verdict.status != Status::Pass)
        .map(|(file, report)| format!("{}: {}", file.display(), explain(&report)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn async_replication_loses_acknowledged_writes_on_a_primary_crash_and_sync_does_not() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/primary-crash.yaml");
    let sync = run(&file, &["stack.replication=sync"]);
    let durability =
        |r: &shakedown::report::Report| r.checks.iter().find(|c| c.name == "durability").unwrap().clone();
    assert_eq!(durability(&sync).status, Status::Pass, "{}", explain(&sync));
    let lossy = run(&file, &["stack.replication=async"]);
    let check = durability(&lossy);
    assert_eq!(check.status, Status::Fail, "{}", explain(&lossy));
    assert!(check.details["lost_count"].as_u64().unwrap() > 0);
    assert!(!check.details["lost"]["items"].as_array().unwrap().is_empty(), "the lost writes are listed");
    assert_eq!(lossy.verdict.exit_code, 1);
}

#[test]
fn each_bug_switch_is_caught_only_when_on() {
    // With its switch on, each bug scenario fails its expected check (previous test); here, with
    // the switch off, the same fault must leave every check passing.
    for (file, off) in run_all(&scenarios("scenarios/bugs"), &["stack.bugs=[]"]) {
        let failed: Vec<&str> =
            off.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name.as_str()).collect();
        assert!(
            failed.is_empty(),
            "{} with its bug switched off still fails {failed:?}\n{}",
            file.display(),
            explain(&off)
        );
    }
}

/// Issue 18: with every bug switch off, a worker crashed for 300 ms while a small queue is
/// saturated left accepted queries pending for ever (the restarted worker reconnected under its
/// dead connection's name, so the broker never handed that connection's unacknowledged messages
/// to anyone). Method: the regression scenario at four seeds, each of which failed its delivery
/// check before the fix; every accepted query must now complete, exactly once.
#[test]
fn issue_18_a_worker_crashed_under_a_full_queue_strands_no_accepted_query() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/regressions/worker-crash-full-queue.yaml");
    let seeds = ["seed=1", "seed=2", "seed=3", "seed=4"];
    let reports: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds.iter().map(|s| scope.spawn(|| run(&file, &[s]))).collect();
        handles.into_iter().map(|h| h.join().expect("a scenario run panicked")).collect()
    });
    for report in reports {
        let delivery = report.checks.iter().find(|c| c.name == "delivery").expect("delivery is configured");
        assert_eq!(delivery.status, Status::Pass, "seed {}: {}", report.seed, explain(&report));
        assert!(delivery.details["accepted_count"].as_u64().unwrap() > 1000, "the queue was busy");
        assert!(report.faults.iter().all(|f| !f.vacuous), "each crash hit a worker: {:?}", report.faults);
    }
}

/// Issue 14: with synchronous replication, a standby cut off from the primary drops out of sync
/// and the primary commits alone (non-strict synchronous mode, as Patroni's default); the
/// watchdog then promoted that stale standby when the primary crashed, and every write
/// acknowledged since the cut was lost. Method: the regression scenario as shipped (the watchdog
/// refuses to promote: no write lost, and no writer until the old primary restarts, which is then
/// still the primary); with the `promote-lagging-standby` switch, the old behaviour (hundreds
/// lost); and the crash 50 ms after the primary counted its standby gone, before the watchdog's
/// next probe — the simulated primary commits alone only once a probe has carried "not
/// synchronous" to the watchdog (Patroni's order), without which that run lost 69 writes.
#[test]
fn issue_14_a_standby_cut_off_from_a_synchronous_primary_is_not_promoted_when_it_crashes() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/regressions/cut-off-standby-primary-crash.yaml");
    let runs: [&[&str]; 3] = [&[], &["stack.bugs=[promote-lagging-standby]"], &["faults[1].at=11.05s"]];
    let [fixed, bug, race] = std::thread::scope(|scope| {
        let handles = runs.map(|overrides| scope.spawn(|| run(&file, overrides)));
        handles.map(|h| h.join().expect("a scenario run panicked"))
    });
    let durability =
        |r: &shakedown::report::Report| r.checks.iter().find(|c| c.name == "durability").unwrap().clone();
    let invest_in_fault = |r: &shakedown::report::Report| {
        let row = r.latency.iter().find(|l| l.op == "invest" && l.phase.name() == "fault").unwrap();
        row.availability
    };

    assert_eq!(fixed.verdict.status, Status::Pass, "{}", explain(&fixed));
    let check = durability(&fixed);
    assert_eq!(check.details["lost_count"], 0);
    assert_eq!(check.details["final_primary"], "pg-primary", "nobody was promoted");
    assert!(check.details["acknowledged_count"].as_u64().unwrap() > 1500);
    assert!(invest_in_fault(&fixed) < 0.6, "no writer while the old primary was down: {}", explain(&fixed));

    let check = durability(&bug);
    assert_eq!(check.status, Status::Fail, "{}", explain(&bug));
    assert!(check.details["lost_count"].as_u64().unwrap() > 300, "{}", check.summary);
    assert_eq!(check.details["final_primary"], "pg-replica");

    let check = durability(&race);
    assert_eq!(check.status, Status::Pass, "{}", explain(&race));
}
