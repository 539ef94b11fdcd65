//! The bug zoo as the services see it: a small set of switches built from the scenario's
//! `stack.bugs` list and passed in each service's config. Every switch plants one realistic bug
//! in exactly one place (named on each field); all are off by default, and with all off the
//! stack must pass every checker.

use crate::scenario::model::Bug;

/// Which bugs are planted. `Bugs::default()` plants none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// `invest`: answer 201 before the store write completes (the write runs in the background).
    pub ack_before_commit: bool,
    /// `orders`: never restock when a later saga step fails (still answers `compensated`).
    pub skip_compensation: bool,
    /// `worker`: apply a query's effect again on every delivery (`complete(.., once = false)`).
    pub non_idempotent_worker: bool,
    /// `watchdog`: promote the standby without fencing the old primary.
    pub no_fencing: bool,
    /// `invest`: answer a read-your-writes read from the replica without waiting for its LSN.
    pub stale_read_your_writes: bool,
    /// `gateway`: answer 202 without waiting for the broker's publisher confirm.
    pub unconfirmed_publish: bool,
    /// `watchdog`: promote the standby whatever its replication state (not synchronous, or
    /// lagging past `max_lag`).
    pub promote_lagging_standby: bool,
    /// `files`: commit the metadata row before the object's PUT.
    pub metadata_before_object: bool,
    /// `subscribers`: the audit group acks an event on receipt, before writing its entry.
    pub autoack_subscriber: bool,
    /// `backup`: catalogue a base backup `done` before its bytes are stored.
    pub catalog_before_backup: bool,
    /// `pg` archiving: move past a WAL range whose archiving failed.
    pub wal_archive_gap: bool,
}

impl Bugs {
    /// The switches a scenario's `stack.bugs` list turns on.
    pub fn from_list(bugs: &[Bug]) -> Bugs {
        let mut set = Bugs::default();
        for bug in bugs {
            match bug {
                Bug::AckBeforeCommit => set.ack_before_commit = true,
                Bug::SkipCompensation => set.skip_compensation = true,
                Bug::NonIdempotentWorker => set.non_idempotent_worker = true,
                Bug::NoFencing => set.no_fencing = true,
                Bug::StaleReadYourWrites => set.stale_read_your_writes = true,
                Bug::UnconfirmedPublish => set.unconfirmed_publish = true,
                Bug::PromoteLaggingStandby => set.promote_lagging_standby = true,
                Bug::MetadataBeforeObject => set.metadata_before_object = true,
                Bug::AutoackSubscriber => set.autoack_subscriber = true,
                Bug::CatalogBeforeBackup => set.catalog_before_backup = true,
                Bug::WalArchiveGap => set.wal_archive_gap = true,
            }
        }
        set
    }

    /// True when no bug is planted.
    pub fn none(self) -> bool {
        self == Bugs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listed_bug_sets_exactly_its_switch() {
        assert!(Bugs::from_list(&[]).none());
        let one = Bugs::from_list(&[Bug::NoFencing]);
        assert_eq!(one, Bugs { no_fencing: true, ..Bugs::default() });
        let all = Bugs::from_list(&[
            Bug::AckBeforeCommit,
            Bug::SkipCompensation,
            Bug::NonIdempotentWorker,
            Bug::NoFencing,
            Bug::StaleReadYourWrites,
            Bug::UnconfirmedPublish,
            Bug::PromoteLaggingStandby,
            Bug::MetadataBeforeObject,
            Bug::AutoackSubscriber,
            Bug::CatalogBeforeBackup,
            Bug::WalArchiveGap,
        ]);
        assert!(all.ack_before_commit && all.skip_compensation && all.non_idempotent_worker);
        assert!(all.no_fencing && all.stale_read_your_writes && all.unconfirmed_publish);
        assert!(all.promote_lagging_standby && all.metadata_before_object && all.autoack_subscriber);
        assert!(all.catalog_before_backup && all.wal_archive_gap);
    }
}
