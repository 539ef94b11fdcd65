//! `files`: every acknowledged upload (answered 201) has its object in object storage with the
//! bytes the client sent (checksum), its metadata row, a thumbnail and exactly one audit entry
//! once the run has drained; no row points at a missing object; objects no row points at
//! (orphans: a PUT whose row was never written) are counted and listed, and fail the check only
//! above `orphans_max`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{CheckResult, FinalState, Status, evidence};
use crate::history::{EntryOp, EntryType, History};
use crate::scenario::model::FilesCheck;

/// Where uploads' objects live; thumbnails live under `thumbs/`.
const FILES_PREFIX: &str = "files/";

/// What went wrong with acknowledged uploads, one list per kind, and what the store holds that
/// no upload accounts for.
#[derive(Default)]
struct Findings {
    missing_rows: Vec<Value>,
    missing_objects: Vec<Value>,
    corrupt: Vec<Value>,
    missing_thumbnails: Vec<Value>,
    missed_audits: Vec<Value>,
    applied_twice: Vec<Value>,
    /// Rows pointing at a missing object, acknowledged or not.
    dangling: Vec<Value>,
    /// Objects under `files/` no row points at.
    orphans: Vec<Value>,
}

/// Check the files' invariants.
pub fn check(history: &History, state: &FinalState, options: &FilesCheck) -> CheckResult {
    let acked = acknowledged(history);
    let found = Findings::of(&acked, state);
    let details = found.details(acked.len(), state, options);
    let (status, summary) = found.verdict(acked.len(), options);
    CheckResult { name: "files".into(), status, summary, details }
}

/// Every upload answered ok: its key and the checksum of the bytes the client sent.
fn acknowledged(history: &History) -> Vec<(&str, Option<&str>)> {
    let mut acked = Vec::new();
    for (invoke, done) in history.ops() {
        if invoke.op != EntryOp::Upload || done.is_none_or(|d| d.kind != EntryType::Ok) {
            continue;
        }
        let Some(key) = invoke.value.key.as_deref() else { continue };
        acked.push((key, invoke.value.checksum.as_deref()));
    }
    acked
}

impl Findings {
    /// Each acknowledged upload against the final state, then the store as a whole.
    fn of(acked: &[(&str, Option<&str>)], state: &FinalState) -> Findings {
        let mut found = Findings::default();
        for &(key, sent) in acked {
            let Some(row) = state.files.get(key) else {
                found.missing_rows.push(json!(key));
                continue;
            };
            if sent.is_some_and(|sent| sent != row.checksum) {
                found.corrupt.push(json!({ "key": key, "sent": sent, "recorded": row.checksum }));
            }
            match state.objects.get(&row.object_key) {
                None => found.missing_objects.push(json!({ "key": key, "object": row.object_key })),
                Some(object) if object.checksum != row.checksum || object.size != row.size => {
                    found
                        .corrupt
                        .push(json!({ "key": key, "object": row.object_key, "stored": object.checksum }));
                }
                Some(_) => {}
            }
            match &row.thumbnail {
                Some(thumb) if state.objects.contains_key(thumb) => {}
                thumb => found.missing_thumbnails.push(json!({ "key": key, "thumbnail": thumb })),
            }
            if row.audits == 0 {
                found.missed_audits.push(json!(key));
            }
            if row.audits > 1 || row.thumbnails_applied > 1 {
                let applied =
                    json!({ "key": key, "audits": row.audits, "thumbnails": row.thumbnails_applied });
                found.applied_twice.push(applied);
            }
        }
        found.dangling = state
            .files
            .iter()
            .filter(|(_, row)| !state.objects.contains_key(&row.object_key))
            .map(|(key, row)| json!({ "key": key, "id": row.id, "object": row.object_key }))
            .collect();
        let referenced: BTreeSet<&str> = state.files.values().map(|r| r.object_key.as_str()).collect();
        found.orphans = state
            .objects
            .keys()
            .filter(|k| k.starts_with(FILES_PREFIX) && !referenced.contains(k.as_str()))
            .map(|k| json!(k))
            .collect();
        found
    }

    /// The report's details: every count, then the evidence lists (capped).
    fn details(&self, acknowledged: usize, state: &FinalState, options: &FilesCheck) -> Value {
        json!({
            "acknowledged_count": acknowledged,
            "rows_count": state.files.len(),
            "objects_count": state.objects.len(),
            "missing_row_count": self.missing_rows.len(),
            "missing_object_count": self.missing_objects.len(),
            "corrupt_count": self.corrupt.len(),
            "dangling_row_count": self.dangling.len(),
            "missing_thumbnail_count": self.missing_thumbnails.len(),
            "missed_audit_count": self.missed_audits.len(),
            "applied_twice_count": self.applied_twice.len(),
            "orphan_count": self.orphans.len(),
            "orphans_max": options.orphans_max,
            "missing_rows": evidence(self.missing_rows.clone()),
            "missing_objects": evidence(self.missing_objects.clone()),
            "corrupt": evidence(self.corrupt.clone()),
            "dangling_rows": evidence(self.dangling.clone()),
            "missing_thumbnails": evidence(self.missing_thumbnails.clone()),
            "missed_audits": evidence(self.missed_audits.clone()),
            "applied_twice": evidence(self.applied_twice.clone()),
            "orphans": evidence(self.orphans.clone()),
        })
    }

    /// Fail on any finding (orphans only above `orphans_max`); undecided with nothing
    /// acknowledged; else pass.
    fn verdict(&self, n: usize, options: &FilesCheck) -> (Status, String) {
        let mut parts = Vec::new();
        let mut say = |count: usize, what: &str| {
            if count > 0 {
                parts.push(format!("{count} {what}"));
            }
        };
        say(self.missing_rows.len(), &format!("of {n} acknowledged uploads have no metadata row"));
        say(self.missing_objects.len(), &format!("of {n} acknowledged uploads have no object"));
        say(self.corrupt.len(), "uploads stored other bytes than the client sent");
        say(self.dangling.len(), "metadata rows point at a missing object");
        say(self.missing_thumbnails.len(), &format!("of {n} acknowledged uploads have no thumbnail"));
        say(
            self.missed_audits.len(),
            &format!("of {n} acknowledged uploads have no audit entry (a missed event)"),
        );
        say(self.applied_twice.len(), "uploads had a subscriber's effect applied more than once");
        if options.orphans_max.is_some_and(|max| self.orphans.len() as u64 > max) {
            parts.push(format!(
                "{} orphan objects (no row points at them), above orphans_max {}",
                self.orphans.len(),
                options.orphans_max.unwrap_or_default()
            ));
        }
        if !parts.is_empty() {
            (Status::Fail, parts.join("; "))
        } else if n == 0 {
            (Status::Unknown, "no upload was acknowledged: nothing to check".to_owned())
        } else {
            let orphans = match self.orphans.len() {
                0 => String::new(),
                count => format!("; {count} orphan objects"),
            };
            let summary = format!(
                "all {n} acknowledged uploads stored, recorded, thumbnailed and audited once; no dangling row{orphans}"
            );
            (Status::Pass, summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{FileRecord, StoredObject};
    use crate::history::{Process, Value as EntryValue};

    fn upload(history: &mut History, process: u32, key: &str, sum: &str, kind: EntryType) {
        let value = EntryValue { key: Some(key.into()), checksum: Some(sum.into()), ..EntryValue::default() };
        history.push(10, EntryType::Invoke, Process::Client(process), EntryOp::Upload, value.clone(), None);
        history.push(20, kind, Process::Client(process), EntryOp::Upload, value, None);
    }

    fn stored(state: &mut FinalState, key: &str, sum: &str, thumb: bool, audits: u32) {
        let object_key = format!("files/{key}");
        state.objects.insert(object_key.clone(), StoredObject { size: 3, checksum: sum.into() });
        let thumbnail = thumb.then(|| format!("thumbs/{key}"));
        if let Some(t) = &thumbnail {
            state.objects.insert(t.clone(), StoredObject { size: 1, checksum: "t".into() });
        }
        let row = FileRecord {
            id: 1,
            object_key,
            size: 3,
            checksum: sum.into(),
            thumbnail,
            thumbnails_applied: u32::from(thumb),
            audits,
        };
        state.files.insert(key.into(), row);
    }

    #[test]
    fn every_acknowledged_upload_must_be_stored_recorded_thumbnailed_and_audited() {
        let mut history = History::new();
        upload(&mut history, 1, "f1", "aa", EntryType::Ok);
        upload(&mut history, 2, "f2", "bb", EntryType::Fail); // 503: no requirement
        let mut state = FinalState::default();
        stored(&mut state, "f1", "aa", true, 1);
        let options = FilesCheck::default();
        assert_eq!(check(&history, &state, &options).status, Status::Pass);
        // An audit missed: fail.
        stored(&mut state, "f1", "aa", true, 0);
        let missed = check(&history, &state, &options);
        assert_eq!((missed.status, missed.details["missed_audit_count"].as_u64()), (Status::Fail, Some(1)));
        // The object is gone: missing object and dangling row.
        stored(&mut state, "f1", "aa", true, 1);
        state.objects.remove("files/f1");
        let gone = check(&history, &state, &options);
        assert_eq!(gone.status, Status::Fail);
        assert_eq!(gone.details["missing_object_count"].as_u64(), Some(1));
        assert_eq!(gone.details["dangling_row_count"].as_u64(), Some(1));
        // The unacknowledged f2's dangling row fails too; its orphan object alone does not.
        stored(&mut state, "f1", "aa", true, 1);
        state.objects.insert("files/f2-orphan".into(), StoredObject::default());
        let orphan = check(&history, &state, &options);
        assert_eq!((orphan.status, orphan.details["orphan_count"].as_u64()), (Status::Pass, Some(1)));
        let strict = check(&history, &state, &FilesCheck { orphans_max: Some(0) });
        assert_eq!(strict.status, Status::Fail, "{}", strict.summary);
        stored(&mut state, "f2", "bb", false, 0);
        state.objects.remove("files/f2");
        assert_eq!(check(&history, &state, &options).details["dangling_row_count"].as_u64(), Some(1));
    }

    #[test]
    fn other_bytes_than_the_client_sent_fail() {
        let mut history = History::new();
        upload(&mut history, 1, "f1", "aa", EntryType::Ok);
        let mut state = FinalState::default();
        stored(&mut state, "f1", "zz", true, 1);
        assert_eq!(
            check(&history, &state, &FilesCheck::default()).details["corrupt_count"].as_u64(),
            Some(1)
        );
    }
}
