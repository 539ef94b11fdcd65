//! The shape of a drill, which swarm schedules and shrinking keep.
//!
//! Backup and failback actions are not faults that can land anywhere: a `disaster` with no
//! `restore` after it loses everything by definition; a `restore` with no disaster before it
//! discards, on a healthy cluster, whatever was not yet archived; a restore before the first base
//! backup has completed has nothing to restore from; a `failback` with no failover before it has
//! nothing to switch back. A schedule drawn without regard to that fails on a clean stack and
//! hides the backup bugs exploration is meant to find. So a drill has a shape ([`problems`]):
//!
//! - every disaster is answered by a restore, the next backup action after it, at least
//!   [`RESTORE_ROOM`] before the end of the run (the restore and the writes after it take time);
//! - every restore answers a disaster;
//! - a disaster comes once a base backup has completed: one fell due (at a multiple of
//!   `stack.backup.every`) at least [`BASE_BACKUP_ALLOWANCE`] before it, with no other fault in
//!   force while it copied (a crash of the backup agent, say, leaves nothing to restore);
//! - no other fault is in force from [`SETTLE`] before a disaster to [`RESTORE_ROOM`] after its
//!   restore: a disaster while the archive is cut off loses what it could not yet archive, on a
//!   correct stack too, and a restore needs the backup agent and the catalogue;
//! - a failback of a node follows a failover: a crash of that node (or its group) that was
//!   restarted before the failback.
//!
//! [`add_drills`] draws the drill a scenario's own `faults:` list holds into a schedule in that
//! shape: the disaster after every other fault has settled, its restore 0.5–5 s later (`to` as the
//! scenario writes it, a point-in-time target moved with the disaster); the failback 2–10 s after
//! a drawn crash of its node.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::model::{FaultSpec, Scenario};
use crate::scenario::units::{RestoreTarget, Span};

/// Time after the first base backup starts (at `stack.backup.every`) by which it has completed
/// (the simulation copies for 1 s).
pub const BASE_BACKUP_ALLOWANCE: Duration = Duration::from_secs(2);
/// How long before a disaster every other fault has ended, for the archive to catch up.
pub const SETTLE: Duration = Duration::from_secs(3);
/// How long a restore is given, before the run ends or another fault starts: rebuilding the
/// nodes, replaying the WAL, and writes acknowledged again.
pub const RESTORE_ROOM: Duration = Duration::from_secs(10);

/// Is `fault` a drill action (`disaster`, `restore`, `failback`)?
pub fn is_drill(fault: &FaultSpec) -> bool {
    fault.disaster.is_some() || fault.restore.is_some() || fault.failback.is_some()
}

/// When `fault` ends: its `for` or `restart_after` after `at`; a crash never restarted lasts the
/// run; an instant action ends when it starts.
fn end_of(fault: &FaultSpec, duration: Duration) -> Duration {
    let start = fault.at.get();
    match (fault.for_.or(fault.restart_after), fault.crash.is_some()) {
        (Some(window), _) => start + window.get(),
        (None, true) => duration,
        (None, false) => start,
    }
}

/// How `scenario`'s schedule breaks the drill shape, one sentence each; empty when it keeps it.
pub fn problems(scenario: &Scenario) -> Vec<String> {
    let duration = scenario.duration.get();
    let mut found = Vec::new();
    let mut order: Vec<&FaultSpec> = scenario.faults.iter().collect();
    order.sort_by_key(|f| f.at);
    let actions: Vec<&FaultSpec> =
        order.iter().copied().filter(|f| f.disaster.is_some() || f.restore.is_some()).collect();
    for (i, action) in actions.iter().enumerate() {
        let at = action.at;
        if action.restore.is_some() && !(i > 0 && actions[i - 1].disaster.is_some() && actions[i - 1].at < at)
        {
            found.push(format!("the restore at {at} answers no disaster"));
        }
        if action.disaster.is_none() {
            continue;
        }
        let Some(restore) = actions.get(i + 1).filter(|next| next.restore.is_some()) else {
            found.push(format!("the disaster at {at} is not followed by a restore"));
            continue;
        };
        if !backup_completed_before(scenario, at.get()) {
            found.push(format!("the disaster at {at} comes before any base backup has completed"));
        }
        let quiet_until = restore.at.get() + RESTORE_ROOM;
        if quiet_until > duration {
            found.push(format!(
                "the restore at {} leaves less than {} before the end",
                restore.at,
                Span(RESTORE_ROOM)
            ));
        }
        let quiet_from = at.get().saturating_sub(SETTLE);
        let busy = order
            .iter()
            .filter(|f| !is_drill(f))
            .find(|f| f.at.get() < quiet_until && end_of(f, duration) > quiet_from);
        if let Some(other) = busy {
            found.push(format!(
                "a fault at {} is in force around the disaster at {at} and its restore",
                other.at
            ));
        }
    }
    for failback in order.iter().filter(|f| f.failback.is_some()) {
        let node = failback.failback.as_deref().unwrap_or_default();
        let failed_over = order.iter().any(|f| {
            f.crash.as_deref().is_some_and(|t| t == node || t == "db")
                && f.restart_after.is_some_and(|r| f.at.get() + r.get() <= failback.at.get())
        });
        if !failed_over {
            found.push(format!(
                "the failback to {node} at {} follows no failover (a crash of {node}, restarted)",
                failback.at
            ));
        }
    }
    found
}

/// The times base backups fall due before `at` with time to complete, latest first.
fn backup_slots(scenario: &Scenario, at: Duration) -> Vec<Duration> {
    let Some(every) = scenario.stack.backup.as_ref().map(|b| b.every.get()).filter(|e| !e.is_zero()) else {
        return Vec::new();
    };
    let count = at.saturating_sub(BASE_BACKUP_ALLOWANCE).as_nanos() / every.as_nanos();
    (1..=count as u32).rev().map(|k| every * k).collect()
}

/// Is a base backup due before `at` whose copy no (non-drill) fault of `scenario` overlaps?
fn backup_completed_before(scenario: &Scenario, at: Duration) -> bool {
    let duration = scenario.duration.get();
    backup_slots(scenario, at).into_iter().any(|slot| {
        let copying = slot + BASE_BACKUP_ALLOWANCE;
        !scenario.faults.iter().any(|f| !is_drill(f) && f.at.get() < copying && end_of(f, duration) > slot)
    })
}

/// Add to `faults` (drawn for `scenario`, in time order) the drills its own `faults:` list holds,
/// in shape: drop the drawn faults that would be in force around the drill. Returns the schedule
/// in time order.
pub fn add_drills(scenario: &Scenario, mut faults: Vec<FaultSpec>, rng: &mut ChaCha8Rng) -> Vec<FaultSpec> {
    let duration = scenario.duration.get();
    if let Some(failback) = scenario.faults.iter().find(|f| f.failback.is_some()) {
        let drawn = failover_and_failback(scenario, failback, duration, rng);
        if let [crash, back] = drawn.as_slice() {
            // A drawn outage of the same node in that window would overlap the failover.
            let node = crash.crash.clone();
            let (from, until) = (crash.at.get(), back.at.get());
            faults.retain(|f| {
                let same = f.crash == node || f.pause == node;
                !same || f.at.get() > until || end_of(f, duration) < from
            });
        }
        faults.extend(drawn);
    }
    let disaster = scenario.faults.iter().find(|f| f.disaster.is_some());
    let restore = scenario.faults.iter().find(|f| f.restore.is_some());
    if let (Some(disaster), Some(restore), Some(backup)) = (disaster, restore, &scenario.stack.backup) {
        let earliest = backup.every.get() + BASE_BACKUP_ALLOWANCE;
        let gap = between(rng, Duration::from_millis(500), Duration::from_secs(5));
        let latest = duration.saturating_sub(RESTORE_ROOM + gap);
        if earliest <= latest {
            // A third of the way in at the earliest, to leave room for what the drill tests.
            let at = between(rng, earliest.max(duration / 3).min(latest), latest);
            let mut disaster = disaster.clone();
            disaster.at = Span(at);
            let mut restore_now = restore.clone();
            restore_now.at = Span(at + gap);
            if let Some(RestoreTarget::At(target)) = restore.restore.as_ref().map(|r| r.to) {
                // Keep the point in time where the scenario put it relative to its disaster.
                let before = scenario
                    .faults
                    .iter()
                    .find(|f| f.disaster.is_some())
                    .map(|d| d.at.get().saturating_sub(target.get()));
                let moved = at.saturating_sub(before.unwrap_or_default()).max(earliest);
                restore_now.restore = Some(crate::scenario::model::RestoreAction {
                    to: RestoreTarget::At(Span(moved.min(at))),
                });
            }
            let (quiet_from, quiet_until) = (at.saturating_sub(SETTLE), at + gap + RESTORE_ROOM);
            faults.retain(|f| is_drill(f) || f.at.get() >= quiet_until || end_of(f, duration) <= quiet_from);
            // The last base backup due before the disaster copies undisturbed.
            if let Some(&slot) = backup_slots(scenario, at).first() {
                let copying = slot + BASE_BACKUP_ALLOWANCE;
                faults.retain(|f| is_drill(f) || f.at.get() >= copying || end_of(f, duration) <= slot);
            }
            faults.push(disaster);
            faults.push(restore_now);
        }
    }
    faults.sort_by_key(|f| f.at);
    faults
}

/// A crash of the failback's node (the scenario's own, if it lists one, with a new time and
/// window of at least 3 s, long enough for the watchdog to fail over), then the failback 2–10 s
/// after the node restarts.
fn failover_and_failback(
    scenario: &Scenario,
    failback: &FaultSpec,
    duration: Duration,
    rng: &mut ChaCha8Rng,
) -> Vec<FaultSpec> {
    let node = failback.failback.clone().unwrap_or_default();
    let mut crash = scenario
        .faults
        .iter()
        .find(|f| f.crash.as_deref() == Some(node.as_str()))
        .cloned()
        .unwrap_or_else(|| FaultSpec { crash: Some(node.clone()), ..FaultSpec::default() });
    let window = between(rng, Duration::from_secs(3), (duration / 5).max(Duration::from_secs(3)));
    let at = between(rng, duration / 20, duration / 2);
    let back = at + window + between(rng, Duration::from_secs(2), Duration::from_secs(10));
    if back + Duration::from_secs(5) > duration {
        return Vec::new();
    }
    crash.at = Span(at);
    crash.restart_after = Some(Span(window));
    crash.for_ = None;
    let mut failback = failback.clone();
    failback.at = Span(back);
    vec![crash, failback]
}

/// A duration uniform in `[low, high]`, rounded to 100 ms (as `swarm` draws them).
fn between(rng: &mut ChaCha8Rng, low: Duration, high: Duration) -> Duration {
    let (low, high) = (low.as_millis() as u64 / 100, high.as_millis() as u64 / 100);
    Duration::from_millis(rng.random_range(low..=high.max(low)) * 100)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::explore::{Vocabulary, concrete, reload};
    use crate::scenario::load_str;

    fn shipped(file: &str) -> crate::scenario::Loaded {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(file);
        crate::scenario::load_file(&path, &[]).unwrap()
    }

    fn kinds(faults: &[FaultSpec]) -> Vec<&'static str> {
        faults.iter().map(crate::explore::swarm::kind).collect()
    }

    /// Goal: every swarm schedule of a backup scenario is a drill — one disaster, answered by a
    /// restore, after the first base backup, with nothing else in force around them — and the
    /// bug-zoo scenarios' triggers are still drawn before it. Method: 100 seeds of each shipped
    /// backup scenario, with either vocabulary; every concrete schedule validates.
    #[test]
    fn backup_schedules_keep_the_drill_shape() {
        for file in ["backup-restore.yaml", "bugs/wal-archive-gap.yaml", "bugs/catalog-before-backup.yaml"] {
            let loaded = shipped(file);
            let mut triggers = 0;
            for vocabulary in [Vocabulary::Scenario, Vocabulary::All] {
                for seed in 0..100 {
                    let scenario = concrete(&loaded, seed, Some(vocabulary));
                    reload(&scenario, "drill").unwrap_or_else(|d| panic!("{file} seed {seed}: {d}"));
                    assert_eq!(problems(&scenario), Vec::<String>::new(), "{file} seed {seed}");
                    let kinds = kinds(&scenario.faults);
                    let drill: Vec<&&str> =
                        kinds.iter().filter(|k| ["disaster", "restore"].contains(k)).collect();
                    assert_eq!(
                        drill,
                        [&"disaster", &"restore"],
                        "{file} seed {seed} ({vocabulary:?}): {kinds:?}"
                    );
                    if vocabulary == Vocabulary::Scenario {
                        triggers += usize::from(kinds.iter().any(|k| ["partition", "crash"].contains(k)));
                    }
                }
            }
            if file.starts_with("bugs/") {
                assert!(triggers >= 50, "{file}: the trigger is drawn on {triggers} of 100 seeds");
            }
        }
    }

    /// Goal: a failback is drawn after a failover of its node. Method: 100 seeds of the shipped
    /// failback scenario: each schedule holding a failback holds a crash of that node, restarted
    /// before it.
    #[test]
    fn a_failback_follows_a_failover() {
        let loaded = shipped("failback.yaml");
        let mut with_failback = 0;
        for seed in 0..100 {
            let scenario = concrete(&loaded, seed, Some(Vocabulary::Scenario));
            assert_eq!(problems(&scenario), Vec::<String>::new(), "seed {seed}");
            with_failback += usize::from(scenario.faults.iter().any(|f| f.failback.is_some()));
        }
        assert!(with_failback >= 90, "{with_failback} of 100 schedules hold a failback");
    }

    /// Goal: every way out of the shape is named. Method: one schedule per rule, from a base
    /// with backups every 10 s over a 60 s run.
    #[test]
    fn problems_name_each_broken_rule() {
        let base = "name: t\nduration: 60s\nstack: { backup: { every: 10s } }\nworkload: [ { op: invest, rate: 5/s } ]\n";
        let problems_of = |faults: &str| {
            let text = format!("{base}faults:\n{faults}");
            problems(&load_str(&text, "t.yaml", &[]).unwrap().scenario)
        };
        let disaster =
            |at: &str| format!("  - {{ at: {at}, disaster: {{ lose: [pg-primary, pg-replica] }} }}\n");
        let restore = |at: &str| format!("  - {{ at: {at}, restore: {{ to: latest }} }}\n");
        assert!(problems_of(&(disaster("20s") + &restore("22s"))).is_empty());
        let cases = [
            (restore("22s"), "answers no disaster"),
            (disaster("20s"), "is not followed by a restore"),
            (restore("20s") + &disaster("22s"), "answers no disaster"),
            (disaster("5s") + &restore("8s"), "before any base backup has completed"),
            (
                "  - { at: 9s, crash: backup, restart_after: 10s }\n".to_owned()
                    + &disaster("21s")
                    + &restore("23s"),
                "before any base backup has completed",
            ),
            (disaster("45s") + &restore("55s"), "leaves less than 10s before the end"),
            (
                "  - { at: 17s, partition: [[pg-primary], [backup]], for: 2s }\n".to_owned()
                    + &disaster("20s")
                    + &restore("22s"),
                "in force around the disaster",
            ),
            ("  - { at: 20s, failback: pg-primary }\n".to_owned(), "follows no failover"),
        ];
        for (faults, want) in cases {
            let found = problems_of(&faults);
            assert!(found.iter().any(|p| p.contains(want)), "{faults}: {found:?} lacks {want:?}");
        }
        let failover =
            "  - { at: 10s, crash: pg-primary, restart_after: 5s }\n  - { at: 20s, failback: pg-primary }\n";
        assert!(problems_of(failover).is_empty());
    }
}
