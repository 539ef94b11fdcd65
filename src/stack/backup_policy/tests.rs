//! The three decisions pinned on hand-built catalogues (storage: every entry whole), and the
//! storage contract both backends' adapters run ([`contract`]).

use std::collections::BTreeSet;

use super::*;

/// Storage that holds every entry whole, except the ids in `bad`.
struct Fake {
    bad: BTreeSet<String>,
}

impl BackupStorage for Fake {
    fn verify(&self, entry: &CatalogueEntry) -> Result<(), String> {
        if self.bad.contains(&entry.id) { Err("not stored".into()) } else { Ok(()) }
    }
}

fn whole() -> Fake {
    Fake { bad: BTreeSet::new() }
}

fn base(id: &str, lsns: (Lsn, Lsn), times_ns: (u64, u64)) -> CatalogueEntry {
    CatalogueEntry {
        id: id.into(),
        kind: BackupKind::Base,
        start_lsn: lsns.0,
        stop_lsn: lsns.1,
        time_ns: times_ns.0,
        stop_time_ns: times_ns.1,
        size: 1,
        checksum: "c".into(),
        state: BackupState::Done,
    }
}

fn wal(id: &str, lsns: (Lsn, Lsn), stop_time_ns: u64) -> CatalogueEntry {
    CatalogueEntry { kind: BackupKind::Wal, ..base(id, lsns, (stop_time_ns, stop_time_ns)) }
}

fn ids(entries: &[CatalogueEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn a_base_backup_serves_a_time_target_only_if_it_ended_by_then() {
    // base-2 started at 20 and ended at 30: it may hold commits from 20 to 30.
    let entries = [base("base-1", (100, 150), (10, 15)), base("base-2", (200, 250), (20, 30))];
    let chosen = |target| choose_base(&entries, target, &whole()).base.map(|b| b.id);
    assert_eq!(chosen(Some(25)).as_deref(), Some("base-1"), "started before 25, but still running at 25");
    assert_eq!(chosen(Some(30)).as_deref(), Some("base-2"), "ended exactly at the target: inclusive");
    assert_eq!(chosen(None).as_deref(), Some("base-2"));
    assert_eq!(chosen(Some(14)), None, "nothing had ended by 14");
    // A running backup is never a candidate, whatever its times.
    let running = CatalogueEntry { state: BackupState::Running, ..base("base-3", (300, 350), (31, 32)) };
    let entries = [entries[0].clone(), running];
    assert_eq!(choose_base(&entries, None, &whole()).base.map(|b| b.id).as_deref(), Some("base-1"));
}

#[test]
fn candidates_are_newest_by_time_not_by_lsn_nor_by_id() {
    // A point-in-time restore went back to LSN 120; base-z was taken on the new timeline later
    // than base-a on the abandoned one, at a lower LSN. Ids sort the other way round.
    let entries = [
        base("base-z", (130, 140), (10, 11)),
        base("base-a", (500, 510), (50, 51)),
        base("base-m", (150, 160), (90, 91)),
    ];
    let order: Vec<&str> = restore_candidates(&entries, None).iter().map(|e| e.id.as_str()).collect();
    assert_eq!(order, ["base-m", "base-a", "base-z"]);
    // The newest that does not verify is skipped, with why.
    let storage = Fake { bad: ["base-m".to_string()].into() };
    let choice = choose_base(&entries, None, &storage);
    assert_eq!(choice.base.map(|b| b.id).as_deref(), Some("base-a"));
    assert_eq!(choice.skipped, ["base-m: not stored"]);
}

#[test]
fn a_prune_keeps_the_wal_from_the_oldest_kept_backups_start_not_its_stop() {
    let entries = [
        base("base-1", (100, 180), (10, 12)),
        base("base-2", (300, 380), (20, 22)),
        base("base-3", (500, 580), (30, 32)),
        wal("wal-a", (0, 100), 9),
        wal("wal-b", (100, 200), 13),
        wal("wal-c", (200, 300), 19),
        wal("wal-d", (300, 400), 23),
        wal("wal-e", (400, 500), 29),
    ];
    let pruned = prune(&entries, 2);
    assert_eq!(ids(&pruned.bases), ["base-1"]);
    // base-2 needs 300..380 to be consistent: wal-d stays although it ends after base-2's start.
    assert_eq!(ids(&pruned.wal), ["wal-a", "wal-b", "wal-c"]);
    assert_eq!(prune(&entries, 3), Prune::default(), "no more than `keep`: nothing goes");
    assert_eq!(ids(&prune(&entries, 0).bases), ["base-2", "base-1"], "keep 0 keeps the newest");
    // After a restore to LSN 250, base-4 (newest) starts below base-3: the WAL it needs stays.
    let mut entries = entries.to_vec();
    entries.push(base("base-4", (260, 270), (40, 41)));
    let pruned = prune(&entries, 2);
    assert_eq!(ids(&pruned.bases), ["base-2", "base-1"]);
    assert_eq!(ids(&pruned.wal), ["wal-a", "wal-b"], "wal-c holds base-4's start");
}

#[test]
fn the_chain_runs_from_the_bases_start_to_a_gap_or_the_end_and_knows_if_it_is_consistent() {
    let b = base("base-1", (150, 250), (10, 12));
    let entries = [
        wal("wal-a", (0, 100), 5),
        wal("wal-b", (100, 200), 11),
        wal("wal-c", (200, 300), 13),
        wal("wal-e", (400, 500), 20),
    ];
    let chain = wal_chain(&entries, &b, &whole());
    assert_eq!(ids(&chain.segments), ["wal-b", "wal-c"], "from the segment holding 150");
    assert_eq!(chain.end, ChainEnd::Gap { from: 300, to: 400 });
    assert!(chain.consistent);
    assert!(chain.passes(12) && !chain.passes(13), "wal-c ended at 13");
    assert_eq!(chain.end_text(|l| l.to_string()), "a gap in the archive: nothing from 300 until 400");
    // Without wal-c, replay stops before the backup's end: not consistent.
    let chain = wal_chain(&[entries[1].clone()], &b, &whole());
    assert_eq!((chain.end.clone(), chain.consistent), (ChainEnd::EndOfArchive { next: 200 }, false));
    assert!(chain.end_text(|l| l.to_string()).ends_with("before the base backup is consistent"));
    // A snapshot needing nothing (start = stop) with nothing archived after it is consistent.
    let snapshot = base("base-0", (500, 500), (21, 21));
    let chain = wal_chain(&entries, &snapshot, &whole());
    assert_eq!(
        (chain.segments.len(), chain.end, chain.consistent),
        (0, ChainEnd::EndOfArchive { next: 500 }, true)
    );
}

/// The contract every backend's storage adapter meets: the same catalogue, stored the same way,
/// gets the same decisions. `sim::backup` and `real::agent` run it on their adapters.
pub(crate) mod contract {
    use super::*;

    /// How a test stores an entry's bytes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Stored {
        /// Whole: it verifies.
        Whole,
        /// Not at all.
        Missing,
        /// Other bytes than catalogued.
        Corrupt,
    }

    /// A backend's storage, which a test can fill.
    pub(crate) trait TestStorage: BackupStorage {
        /// Store `entry` as `stored` says, and set its `size` and `checksum` to what a whole
        /// copy's are.
        fn store(&mut self, entry: &mut CatalogueEntry, stored: Stored);
    }

    /// Real-shaped ids (a base per start time, segments named by timeline, log, segment), so the
    /// real adapter takes them as they are.
    pub(crate) fn run<S: TestStorage>(storage: &mut S) {
        let segment = |tl: u32, n: u64| format!("wal-{tl:08X}{:08X}{n:08X}", 0);
        let mut table = vec![
            (base("base-00000000000000000010", (100, 150), (10, 12)), Stored::Whole),
            (base("base-00000000000000000030", (300, 350), (30, 32)), Stored::Missing),
            (base("base-00000000000000000050", (500, 550), (50, 52)), Stored::Corrupt),
            (wal(&segment(1, 0), (0, 200), 11), Stored::Whole),
            (wal(&segment(1, 1), (200, 400), 31), Stored::Whole),
            (wal(&segment(1, 2), (400, 600), 51), Stored::Whole),
            // A copy of the same LSNs on a later timeline, catalogued but not stored.
            (wal(&segment(2, 2), (400, 600), 53), Stored::Missing),
            (wal(&segment(2, 3), (600, 800), 61), Stored::Corrupt),
            (wal(&segment(2, 4), (800, 1000), 71), Stored::Whole),
        ];
        for (entry, stored) in &mut table {
            storage.store(entry, *stored);
        }
        let entries: Vec<CatalogueEntry> = table.into_iter().map(|(e, _)| e).collect();
        let choice = choose_base(&entries, None, &*storage);
        let base = choice.base.expect("the oldest base backup verifies");
        assert_eq!(base.id, "base-00000000000000000010");
        let skipped: Vec<&str> = choice.skipped.iter().map(|s| s.split(':').next().unwrap_or("")).collect();
        assert_eq!(skipped, ["base-00000000000000000050", "base-00000000000000000030"]);
        let chain = wal_chain(&entries, &base, &*storage);
        let expected = [segment(1, 0), segment(1, 1), segment(1, 2)];
        assert_eq!(ids(&chain.segments), expected, "the missing later copy is passed over");
        assert!(matches!(chain.end, ChainEnd::Unverified { next: 600, .. }), "{:?}", chain.end);
        assert!(chain.consistent);
        // At a target before any backup ended, nothing; the prune is storage-blind.
        assert_eq!(choose_base(&entries, Some(11), &*storage), BaseChoice::default());
        let pruned = prune(&entries, 2);
        assert_eq!(ids(&pruned.bases), ["base-00000000000000000010"]);
        assert_eq!(ids(&pruned.wal), [segment(1, 0)], "the kept base backups need 300 on");
    }

    /// The contract on the fake: whole means whole.
    #[test]
    fn the_fake_storage_meets_the_contract() {
        struct Filled(Fake);
        impl BackupStorage for Filled {
            fn verify(&self, entry: &CatalogueEntry) -> Result<(), String> {
                self.0.verify(entry)
            }
        }
        impl TestStorage for Filled {
            fn store(&mut self, entry: &mut CatalogueEntry, stored: Stored) {
                if stored != Stored::Whole {
                    self.0.bad.insert(entry.id.clone());
                }
            }
        }
        run(&mut Filled(whole()));
    }
}
