//! `restore`: backups that were never restored are hopes. After each restore the run asked for:
//!
//! - every investment acknowledged at or before the recovery point (the commit time of the last
//!   transaction the restore brought back) is on the final primary; acknowledged writes after
//!   it, up to the moment the rebuilt primary took writes, were rolled back by the restore: they
//!   are listed, not counted as lost (`durability` excludes them the same way);
//! - RPO, how much acknowledged data was lost, in time: from the first acknowledged write the
//!   restore did not bring back to the moment the data was lost (the disaster; for a
//!   point-in-time restore, its target), 0 when it brought back every one, is within `rpo`. (Not
//!   "since the last write brought back": with sparse writes that counts quiet time as loss.)
//! - RTO, the time from the disaster to the first write acknowledged after it, is within `rto`;
//! - a restore that found no verified base backup fails.
//!
//! And whether or not anything was restored: every catalogue entry that says `done` names a
//! backup the backup storage holds, with the checksum the entry records (a catalogue that
//! promises a backup that is not there is found before the day it is needed).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::state::{BackupsState, RestoreRecord};
use super::{CheckResult, FinalState, Status, evidence};
use crate::history::{EntryOp, EntryType, History};
use crate::scenario::model::RestoreCheck;
use crate::scenario::units::Span;
use crate::stack::ports::BackupState;

/// An acknowledged investment: its key and when it was acknowledged, ns.
struct Acked<'h> {
    key: &'h str,
    ack_ns: u64,
}

/// Check the backups and every restore.
pub fn check(history: &History, state: &FinalState, options: &RestoreCheck) -> CheckResult {
    let Some(backups) = &state.backups else {
        return CheckResult {
            name: "restore".into(),
            status: Status::Unknown,
            summary: "the backend reported no backups".into(),
            details: json!({}),
        };
    };
    let acked = acknowledged(history);
    let first_writes = write_completions(history);
    let mut problems = catalogue_problems(backups);
    let catalogue_broken = problems.len();
    let mut restores = Vec::new();
    for restore in &backups.restores {
        let (judged, mut found) = judge_restore(restore, &acked, &first_writes, state, options);
        problems.append(&mut found);
        restores.push(judged);
    }
    let count = |field: &str| restores.iter().filter(|r| r[field].as_bool() == Some(true)).count();
    let counts = (count("no_base"), count("rpo_exceeded"), count("rto_exceeded"));
    // The writes each restore lost or rolled back, as top-level evidence (a table in the HTML).
    let mut listed = |field: &str| -> Value {
        let items: Vec<Value> = restores
            .iter_mut()
            .filter_map(|r| r.as_object_mut().and_then(|o| o.remove(field)))
            .flat_map(|evidence| evidence["items"].as_array().cloned().unwrap_or_default())
            .collect();
        evidence(items)
    };
    let (missing, rolled_back) = (listed("missing"), listed("rolled_back"));
    let done = backups.catalogue.iter().filter(|e| e.state == BackupState::Done).count();
    let details = json!({
        "catalogue_broken_count": catalogue_broken,
        "missing_count": restores.iter().map(|r| r["missing_count"].as_u64().unwrap_or(0)).sum::<u64>(),
        "no_base_count": counts.0,
        "rpo_exceeded_count": counts.1,
        "rto_exceeded_count": counts.2,
        "catalogue_count": backups.catalogue.len(),
        "catalogue_done_count": done,
        "stored_count": backups.stored.len(),
        "restores": restores,
        "missing": missing,
        "rolled_back": rolled_back,
        "problems": evidence(problems.iter().map(|p| json!(p)).collect()),
    });
    let (status, summary) = if !problems.is_empty() {
        (Status::Fail, problems.iter().take(3).cloned().collect::<Vec<_>>().join("; "))
    } else if backups.restores.is_empty() {
        (Status::Pass, format!("no restore asked for; all {done} catalogued backups verify"))
    } else {
        let figures: Vec<String> = restores
            .iter()
            .map(|r| {
                format!(
                    "RPO {} and RTO {}",
                    r["rpo"].as_str().unwrap_or("-"),
                    r["rto"].as_str().unwrap_or("-")
                )
            })
            .collect();
        (Status::Pass, format!("restored with {}; all {done} catalogued backups verify", figures.join(", ")))
    };
    CheckResult { name: "restore".into(), status, summary, details }
}

/// Every `done` catalogue entry names a stored backup with its checksum.
fn catalogue_problems(backups: &BackupsState) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in backups.catalogue.iter().filter(|e| e.state == BackupState::Done) {
        match backups.stored.get(&entry.id) {
            None => problems.push(format!(
                "the catalogue says `{}` is done, but the backup storage has no such backup",
                entry.id
            )),
            Some(stored) if *stored != entry.checksum => problems.push(format!(
                "`{}` does not verify: catalogued checksum {}, stored bytes {}",
                entry.id,
                short(&entry.checksum),
                short(stored)
            )),
            Some(_) => {}
        }
    }
    problems
}

fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(12)]
}

/// One restore's figures and what it got wrong.
fn judge_restore(
    restore: &RestoreRecord,
    acked: &[Acked<'_>],
    writes_ok_ns: &[u64],
    state: &FinalState,
    options: &RestoreCheck,
) -> (Value, Vec<String>) {
    let at = Span(std::time::Duration::from_nanos(restore.requested_ns));
    let mut problems = Vec::new();
    let Some(base) = &restore.base else {
        problems.push(format!("the restore at {at} found no verified base backup: nothing was restored"));
        let judged = json!({ "requested_ms": restore.requested_ns / 1_000_000, "skipped": restore.skipped, "no_base": true });
        return (judged, problems);
    };
    let point = restore.recovered_until_ns;
    let present = |key: &str| state.investments.get(key).is_some_and(|n| *n > 0);
    let missing: Vec<&Acked<'_>> = acked.iter().filter(|a| a.ack_ns <= point && !present(a.key)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} writes acknowledged before the recovery point ({}) are missing after the restore at {at}",
            missing.len(),
            ms(point)
        ));
    }
    let until = restore.completed_ns.unwrap_or(u64::MAX);
    let rolled_back: Vec<&Acked<'_>> =
        acked.iter().filter(|a| a.ack_ns > point && a.ack_ns <= until && !present(a.key)).collect();
    // RPO: from the first acknowledged write the restore did not bring back to the moment of loss.
    let reference = restore.target_ns.map_or(restore.lost_at_ns, |t| t.min(restore.lost_at_ns));
    let first_lost = acked.iter().find(|a| a.ack_ns <= reference && !present(a.key)).map(|a| a.ack_ns);
    let rpo_ns = first_lost.map_or(0, |t| reference.saturating_sub(t));
    let rpo_exceeded = rpo_ns > options.rpo.get().as_nanos() as u64;
    if rpo_exceeded {
        problems.push(format!(
            "RPO {} over the objective {} (writes acknowledged from {} on were not brought back; data lost at {})",
            ms(rpo_ns),
            options.rpo,
            ms(first_lost.unwrap_or_default()),
            ms(reference)
        ));
    }
    // RTO: from the loss to the first write acknowledged after it.
    let first_write = writes_ok_ns.iter().copied().find(|t| *t > restore.lost_at_ns);
    let rto_ns = first_write.map(|t| t - restore.lost_at_ns);
    let rto_exceeded = rto_ns.is_none_or(|rto| rto > options.rto.get().as_nanos() as u64);
    match rto_ns {
        Some(rto) if rto > options.rto.get().as_nanos() as u64 => {
            problems.push(format!("RTO {} over the objective {}", ms(rto), options.rto))
        }
        None => {
            problems.push(format!("no write was acknowledged after the loss at {}", ms(restore.lost_at_ns)))
        }
        _ => {}
    }
    let listed = |writes: &[&Acked<'_>]| {
        evidence(writes.iter().map(|a| json!({ "key": a.key, "ack_ms": a.ack_ns / 1_000_000 })).collect())
    };
    let judged = json!({
        "requested_ms": restore.requested_ns / 1_000_000,
        "lost_at_ms": restore.lost_at_ns / 1_000_000,
        "target_ms": restore.target_ns.map(|t| t / 1_000_000),
        "base": base,
        "skipped": restore.skipped,
        "segments_count": restore.segments,
        "recovered_lsn": restore.recovered_lsn,
        "recovery_point_ms": point / 1_000_000,
        "stopped": restore.stopped,
        "completed_ms": restore.completed_ns.map(|t| t / 1_000_000),
        "rpo": ms(rpo_ns),
        "rpo_ms": rpo_ns / 1_000_000,
        "rto": rto_ns.map(ms),
        "rto_ms": rto_ns.map(|n| n / 1_000_000),
        "rpo_exceeded": rpo_exceeded,
        "rto_exceeded": rto_exceeded,
        "missing_count": missing.len(),
        "missing": listed(&missing),
        "rolled_back_count": rolled_back.len(),
        "rolled_back": listed(&rolled_back),
    });
    (judged, problems)
}

/// Acknowledged investments (the last attempt per key counts), by acknowledgement time.
fn acknowledged(history: &History) -> Vec<Acked<'_>> {
    let mut seen = BTreeSet::new();
    let mut acked: Vec<Acked<'_>> = Vec::new();
    for (invoke, done) in history.ops() {
        if invoke.op != EntryOp::Invest {
            continue;
        }
        let (Some(key), Some(done)) = (invoke.value.key.as_deref(), done) else { continue };
        if done.kind == EntryType::Ok && seen.insert(key) {
            acked.push(Acked { key, ack_ns: done.time_ns });
        }
    }
    acked.sort_by_key(|a| a.ack_ns);
    acked
}

/// When each acknowledged write of any kind completed, in order.
fn write_completions(history: &History) -> Vec<u64> {
    let writes = [EntryOp::Invest, EntryOp::Order, EntryOp::Query, EntryOp::Upload];
    let mut times: Vec<u64> = history
        .ops()
        .into_iter()
        .filter(|(invoke, _)| writes.contains(&invoke.op))
        .filter_map(|(_, done)| done.filter(|d| d.kind == EntryType::Ok).map(|d| d.time_ns))
        .collect();
    times.sort_unstable();
    times
}

/// The writes a restore rolled back: acknowledged after its recovery point and before the rebuilt
/// primary took writes. `durability` does not count them as lost.
pub fn rolled_back(restores: &[RestoreRecord], ack_ns: u64) -> bool {
    restores.iter().any(|r| {
        r.base.is_some() && ack_ns > r.recovered_until_ns && ack_ns <= r.completed_ns.unwrap_or(u64::MAX)
    })
}

fn ms(ns: u64) -> String {
    format!("{}", Span(std::time::Duration::from_millis(ns / 1_000_000)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::invest_at;
    use crate::stack::ports::{BackupKind, CatalogueEntry};

    const S: u64 = 1_000_000_000;

    fn entry(id: &str, state: BackupState, checksum: &str) -> CatalogueEntry {
        CatalogueEntry {
            id: id.into(),
            kind: BackupKind::Base,
            start_lsn: 0,
            stop_lsn: 10,
            time_ns: 0,
            stop_time_ns: 0,
            size: 1,
            checksum: checksum.into(),
            state,
        }
    }

    fn restored(point_ms: u64) -> RestoreRecord {
        RestoreRecord {
            requested_ns: 45 * S,
            lost_at_ns: 40 * S,
            base: Some("base-000001".into()),
            recovered_until_ns: point_ms * 1_000_000,
            completed_ns: Some(48 * S),
            ..RestoreRecord::default()
        }
    }

    fn state(present: &[&str], restore: RestoreRecord, catalogue: Vec<CatalogueEntry>) -> FinalState {
        FinalState {
            investments: present.iter().map(|k| (k.to_string(), 1)).collect(),
            backups: Some(BackupsState {
                stored: [("base-000001".to_string(), "aa".to_string())].into(),
                catalogue,
                restores: vec![restore],
            }),
            ..FinalState::default()
        }
    }

    /// Writes at 10 s, 39.5 s, 39.8 s (rolled back: after the recovery point 39.6 s) and 50 s
    /// (after the restore): RPO 0.2 s (39.8 → 40), RTO 10 s (40 → 50).
    fn history() -> History {
        let mut h = History::new();
        for (key, ack_ms) in [("a", 10_000), ("a2", 39_500), ("b", 39_800), ("c", 50_000)] {
            invest_at(&mut h, key, ack_ms - 1, EntryType::Ok);
        }
        h
    }

    #[test]
    fn a_restore_within_its_objectives_passes_and_lists_what_it_rolled_back() {
        let good = vec![entry("base-000001", BackupState::Done, "aa")];
        let result =
            check(&history(), &state(&["a", "a2", "c"], restored(39_600), good), &RestoreCheck::default());
        assert_eq!(result.status, Status::Pass, "{}", result.summary);
        let restore = &result.details["restores"][0];
        assert_eq!((restore["rpo_ms"].as_u64(), restore["rto_ms"].as_u64()), (Some(200), Some(10_000)));
        assert_eq!(restore["rolled_back_count"], 1);
    }

    #[test]
    fn missing_writes_a_long_rpo_and_a_lying_catalogue_each_fail() {
        let good = || vec![entry("base-000001", BackupState::Done, "aa")];
        let options =
            RestoreCheck { rpo: Span(std::time::Duration::from_secs(31)), ..RestoreCheck::default() };
        // `a` was acknowledged before the recovery point and is gone.
        let lost = check(&history(), &state(&["a2", "c"], restored(39_600), good()), &options);
        assert_eq!(lost.status, Status::Fail);
        assert!(lost.summary.contains("missing"), "{}", lost.summary);
        // The archive stopped at 10 s (a gap): a2 from 39.5 s on is gone, an RPO of 0.5 s.
        let gap = state(&["a", "c"], restored(10_000), good());
        assert_eq!(check(&history(), &gap, &options).status, Status::Pass);
        let half =
            RestoreCheck { rpo: Span(std::time::Duration::from_millis(400)), ..RestoreCheck::default() };
        let strict = check(&history(), &gap, &half);
        assert!(strict.summary.contains("RPO 500ms"), "{}", strict.summary);
        // Catalogued done, but not stored / other bytes.
        let mut lying = good();
        lying.push(entry("base-000002", BackupState::Done, "bb"));
        lying.push(entry("base-000003", BackupState::Running, ""));
        let result = check(&history(), &state(&["a", "a2", "c"], restored(39_600), lying), &options);
        assert!(result.summary.contains("no such backup"), "{}", result.summary);
        let tampered = vec![entry("base-000001", BackupState::Done, "ab")];
        let result = check(&history(), &state(&["a", "a2", "c"], restored(39_600), tampered), &options);
        assert!(result.summary.contains("does not verify"), "{}", result.summary);
    }

    #[test]
    fn a_restore_with_no_base_backup_fails() {
        let nothing = RestoreRecord { base: None, ..restored(0) };
        let result = check(&history(), &state(&["c"], nothing, vec![]), &RestoreCheck::default());
        assert_eq!(result.status, Status::Fail);
        assert!(result.summary.contains("no verified base backup"));
    }
}
