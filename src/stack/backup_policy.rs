//! The backup agent's decisions, written once for both backends: which base backup a restore
//! starts from ([`choose_base`]), which archived WAL it replays after it ([`wal_chain`]), and
//! what a prune removes ([`prune`]). Pure functions of the catalogue's entries and, where the
//! stored bytes matter, of a [`BackupStorage`] that says whether an entry's bytes are stored
//! whole. The agents carry the decisions out: `sim::backup` on the simulated backup volume,
//! `real::agent` on files, `pg_basebackup` and PostgreSQL's own recovery. Each of them supplies
//! only its storage adapter; neither decides anything this file decides.
//!
//! The catalogue's conventions, as PostgreSQL's (see [`CatalogueEntry`]): LSN ranges are
//! half-open. A segment holds `[start_lsn, stop_lsn)`. A base backup needs the WAL from its
//! `start_lsn` (the redo point of the checkpoint it began with) and its data is consistent only
//! once replay has reached its `stop_lsn` (the backup end); `time_ns` is when it started and
//! `stop_time_ns` when it ended. (The simulation's base backup is an atomic snapshot at LSN `L`:
//! `start_lsn = stop_lsn = L + 1`, nothing to replay for consistency.)
//!
//! The three decisions, and why (each was once written twice, differently):
//!
//! - **A base backup serves a time target only if it ended at or before the target**
//!   (`stop_time_ns <= target`, not `time_ns`). Its data holds every commit up to its end, so a
//!   backup still running at the target may hold commits after it, which replay cannot take
//!   back; PostgreSQL refuses such a target ("requested recovery stop point is before
//!   consistent recovery point"). At exactly the target is fine: `recovery_target_time` is
//!   inclusive.
//! - **Candidates are tried newest first by when they ended, then by id**; not by LSN. LSNs
//!   are not monotonic across timelines: after a point-in-time restore, the new timeline goes on
//!   from the recovery point, below the LSNs of backups taken later on the abandoned timeline,
//!   so "highest LSN" can name a backup of history that no longer exists. Time is what "newest"
//!   means, and what a target is compared with. (Backups of one agent do not overlap, so start
//!   and end order agree.)
//! - **A prune drops only WAL that ends at or before the start LSN of every kept base backup**
//!   (`stop_lsn <= min(kept start_lsn)`), not before its stop LSN: the WAL between a backup's
//!   start and stop is what makes its data consistent, so a prune up to the stop would leave the
//!   oldest kept backup unrestorable. The minimum over the kept ones, not the oldest one's,
//!   for the same reason as above: after a restore, a newer backup can start at a lower LSN.
//!
//! The chain: from the base's `start_lsn`, the segment holding the next LSN, then the next, up
//! to the end of the archive, a gap, or a segment whose bytes do not verify. Where several
//! catalogued segments hold the same LSN (a failover's new timeline, a segment the archive has
//! dropped but the catalogue not yet), the one with the greatest id is tried first (real segment
//! names begin with their timeline), and one whose bytes are not stored whole is passed over
//! for the next. The chain does not stop at a time target: recovery stops there itself (the
//! simulation's replay, PostgreSQL's `recovery_target_time`), and [`Chain::passes`] says whether
//! the chain holds WAL from after the target at all.

use super::ports::{BackupKind, BackupState, CatalogueEntry, Lsn};

/// Whether an entry's bytes are stored whole (present, the catalogued size and checksum): the
/// backup storage's port as the decisions need it. The simulation's volume and the real agent's
/// directories implement it.
pub trait BackupStorage {
    /// `Ok` if `entry`'s stored bytes verify against it; why not otherwise.
    fn verify(&self, entry: &CatalogueEntry) -> Result<(), String>;
}

/// The base backup a restore starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseChoice {
    /// The newest usable base backup whose bytes verify; `None`: nothing can be restored.
    pub base: Option<CatalogueEntry>,
    /// Newer candidates passed over, each with why (`<id>: <reason>`).
    pub skipped: Vec<String>,
}

/// The done base backups usable for `target_ns` (`None`: the latest), newest first.
pub fn restore_candidates(entries: &[CatalogueEntry], target_ns: Option<u64>) -> Vec<&CatalogueEntry> {
    let usable = |e: &&CatalogueEntry| match target_ns {
        None => true,
        Some(target) => e.stop_time_ns != 0 && e.stop_time_ns <= target,
    };
    let mut bases: Vec<&CatalogueEntry> = done(entries, BackupKind::Base).filter(usable).collect();
    bases.sort_by(|a, b| newest_first(a, b));
    bases
}

/// The newest base backup usable for `target_ns` whose stored bytes verify.
pub fn choose_base(
    entries: &[CatalogueEntry],
    target_ns: Option<u64>,
    storage: &dyn BackupStorage,
) -> BaseChoice {
    let mut choice = BaseChoice::default();
    for candidate in restore_candidates(entries, target_ns) {
        match storage.verify(candidate) {
            Ok(()) => {
                choice.base = Some(candidate.clone());
                break;
            }
            Err(why) => choice.skipped.push(format!("{}: {why}", candidate.id)),
        }
    }
    choice
}

/// Why a chain of segments ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainEnd {
    /// No catalogued segment holds `next` or anything after it.
    EndOfArchive {
        /// The first LSN the archive does not hold.
        next: Lsn,
    },
    /// No catalogued segment holds `from`, but one starts at `to`.
    Gap {
        /// The first missing LSN.
        from: Lsn,
        /// Where the archive goes on.
        to: Lsn,
    },
    /// Every catalogued segment holding `next` failed to verify.
    Unverified {
        /// The LSN they hold.
        next: Lsn,
        /// Why each did not verify.
        why: String,
    },
}

/// The segments a restore replays after its base backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Contiguous, verified, in LSN order; the first holds the base's start.
    pub segments: Vec<CatalogueEntry>,
    /// Why it ends.
    pub end: ChainEnd,
    /// Whether it reaches the base's stop LSN, so the restored data is consistent.
    pub consistent: bool,
}

impl Chain {
    /// Whether the chain holds WAL from after `target_ns` (a segment that ended after it), so
    /// recovery replays up to the target rather than running out of WAL before it.
    pub fn passes(&self, target_ns: u64) -> bool {
        self.segments.iter().any(|s| s.stop_time_ns > target_ns)
    }

    /// The end, in words (`lsn` shows an LSN the backend's way).
    pub fn end_text(&self, lsn: impl Fn(Lsn) -> String) -> String {
        let text = match &self.end {
            ChainEnd::EndOfArchive { next } => {
                format!("the end of the archive: nothing from {} on", lsn(*next))
            }
            ChainEnd::Gap { from, to } => {
                format!("a gap in the archive: nothing from {} until {}", lsn(*from), lsn(*to))
            }
            ChainEnd::Unverified { next, why } => format!("no segment at {} verifies: {why}", lsn(*next)),
        };
        if self.consistent { text } else { format!("{text}, before the base backup is consistent") }
    }
}

/// The catalogued, verified, contiguous segments from `base`'s start LSN (see the module doc).
pub fn wal_chain(entries: &[CatalogueEntry], base: &CatalogueEntry, storage: &dyn BackupStorage) -> Chain {
    let mut wal: Vec<&CatalogueEntry> =
        done(entries, BackupKind::Wal).filter(|e| e.stop_lsn > e.start_lsn).collect();
    // The greatest id first among copies of the same LSN.
    wal.sort_by(|a, b| a.start_lsn.cmp(&b.start_lsn).then_with(|| b.id.cmp(&a.id)));
    let mut segments: Vec<CatalogueEntry> = Vec::new();
    let mut next = base.start_lsn;
    // Each step moves `next` past at least one segment, so this bounds the loop.
    for _ in 0..=wal.len() {
        let holding: Vec<&CatalogueEntry> =
            wal.iter().copied().filter(|e| e.start_lsn <= next && next < e.stop_lsn).collect();
        if holding.is_empty() {
            let end = match wal.iter().find(|e| e.start_lsn > next) {
                Some(after) => ChainEnd::Gap { from: next, to: after.start_lsn },
                None => ChainEnd::EndOfArchive { next },
            };
            return Chain { segments, end, consistent: next >= base.stop_lsn };
        }
        let mut why = Vec::new();
        let Some(verified) = holding.into_iter().find(|e| storage.verify(e).map_err(|w| why.push(w)).is_ok())
        else {
            let end = ChainEnd::Unverified { next, why: why.join("; ") };
            return Chain { segments, end, consistent: next >= base.stop_lsn };
        };
        next = verified.stop_lsn;
        segments.push(verified.clone());
    }
    unreachable!("a chain of {} segments took more steps than there are segments", wal.len())
}

/// What a prune removes: catalogue entry first, then the bytes, in this order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prune {
    /// Done base backups beyond the newest `keep`.
    pub bases: Vec<CatalogueEntry>,
    /// WAL segments no kept base backup needs.
    pub wal: Vec<CatalogueEntry>,
}

/// Keep the newest `keep` done base backups (at least 1) and the WAL they need; the rest goes.
/// Nothing goes while there are no more than `keep`.
pub fn prune(entries: &[CatalogueEntry], keep: u32) -> Prune {
    let mut bases: Vec<&CatalogueEntry> = done(entries, BackupKind::Base).collect();
    bases.sort_by(|a, b| newest_first(a, b));
    let keep = (keep as usize).max(1);
    if bases.len() <= keep {
        return Prune::default();
    }
    let needed_from = bases[..keep].iter().map(|b| b.start_lsn).min().expect("keep >= 1");
    Prune {
        bases: bases[keep..].iter().map(|&b| b.clone()).collect(),
        wal: entries
            .iter()
            .filter(|e| e.kind == BackupKind::Wal && e.stop_lsn <= needed_from)
            .cloned()
            .collect(),
    }
}

fn done(entries: &[CatalogueEntry], kind: BackupKind) -> impl Iterator<Item = &CatalogueEntry> {
    entries.iter().filter(move |e| e.kind == kind && e.state == BackupState::Done)
}

fn newest_first(a: &CatalogueEntry, b: &CatalogueEntry) -> std::cmp::Ordering {
    (b.stop_time_ns, b.time_ns, &b.id).cmp(&(a.stop_time_ns, a.time_ns, &a.id))
}

#[cfg(test)]
pub(crate) mod tests;
