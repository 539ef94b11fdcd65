//! The watchdog's tests: failovers, refusals, the synchronous-replication steering, bugs and
//! switchovers, each on the in-memory database admin with tokio's paused clock.

use super::*;
use crate::scenario::units::ByteSize;
use crate::stack::testkit::MemDbAdmin;

fn settings(replication: Replication, bugs: Bugs) -> Settings {
    Settings { config: WatchdogConfig::default(), replication, bugs }
}

fn start(settings: Settings) -> (Arc<MemDbAdmin>, WatchdogState) {
    let admin = Arc::new(MemDbAdmin::default());
    let state = WatchdogState::default();
    crate::stack::spawn(run(admin.clone(), settings, state.clone()));
    (admin, state)
}

/// Let the first probe (at 0.5 s) find the primary healthy, then crash it at 0.6 s: probes at
/// 1 s, 1.5 s and 2 s fail, and a failover is due at 2 s.
async fn seen_healthy_then_crashed(admin: &MemDbAdmin) {
    sleep(Duration::from_millis(600)).await;
    admin.set_down(DbNode::PgPrimary, true);
}

const FAILOVER: [&str; 3] = ["fence pg-primary", "promote pg-replica", "set-writer pg-replica"];

/// Two failed probes do nothing; after the third the old primary is fenced, the synchronous
/// standby promoted and the writer repointed, in that order. The old primary restarted stays
/// unwritable.
#[tokio::test(start_paused = true)]
async fn promotes_a_synchronous_standby_after_n_failures_and_fences_first() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    seen_healthy_then_crashed(&admin).await;
    sleep(Duration::from_millis(1200)).await;
    assert!(admin.calls().is_empty(), "two failures must not promote");
    assert_eq!(state.view().failures, 2);
    sleep(Duration::from_millis(400)).await;
    assert_eq!(admin.calls(), FAILOVER);
    assert_eq!((state.primary(), admin.writer()), (DbNode::PgReplica, DbNode::PgReplica));
    admin.set_down(DbNode::PgPrimary, false);
    assert_eq!(admin.writable(), [DbNode::PgReplica]);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(state.view().promotions, 1, "a healthy new primary is left alone");
    // The new primary dies too: its peer is fenced, so nothing more is fenced or promoted.
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(admin.calls().len(), 3);
    assert_eq!(state.primary(), DbNode::PgReplica);
}

/// `remote_apply` follows the same rule as `sync`: a synchronous standby is promoted.
#[tokio::test(start_paused = true)]
async fn remote_apply_promotes_a_synchronous_standby() {
    let (admin, state) = start(settings(Replication::RemoteApply, Bugs::default()));
    seen_healthy_then_crashed(&admin).await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(admin.calls(), FAILOVER);
    assert_eq!(state.view().refusals, 0);
}

/// Issue 14. The standby was cut off (not synchronous) when the primary was last seen healthy,
/// so it may lack commits the primary acknowledged alone: it is not promoted and the old
/// primary is not fenced. The stack has no writer while the primary is down; the refusal is
/// retried each tick, and the old primary, once back, simply stays the primary.
#[tokio::test(start_paused = true)]
async fn a_standby_not_synchronous_when_the_primary_was_last_seen_is_not_promoted() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    admin.set_standby(false, 400 * 256);
    seen_healthy_then_crashed(&admin).await;
    // What the standby does after the primary's last healthy probe cannot change the verdict.
    admin.set_standby(true, 0);
    sleep(Duration::from_secs(5)).await;
    assert!(admin.calls().is_empty(), "nothing fenced or promoted: {:?}", admin.calls());
    assert!(admin.writable().is_empty(), "no writer while the old primary is down");
    let view = state.view();
    assert_eq!((view.primary, view.writer, view.promotions), (DbNode::PgPrimary, DbNode::PgPrimary, 0));
    assert!(view.refusals >= 5, "retried every tick: {} refusals", view.refusals);
    admin.set_down(DbNode::PgPrimary, false);
    sleep(Duration::from_secs(2)).await;
    assert!(admin.calls().is_empty());
    assert_eq!(admin.writable(), [DbNode::PgPrimary]);
    assert_eq!((state.primary(), state.view().failures), (DbNode::PgPrimary, 0));
    assert_eq!(state.view().standby.map(|s| s.sync), Some(true), "the view is refreshed");
}

/// Only the last healthy probe counts: a standby that dropped out of sync and came back
/// before the crash is promoted; one that was in sync and then dropped out is not.
#[tokio::test(start_paused = true)]
async fn the_last_healthy_probe_decides() {
    for (states, promoted) in [([false, true], true), ([true, false], false)] {
        let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
        admin.set_standby(states[0], 0);
        sleep(Duration::from_millis(600)).await; // probed at 0.5 s
        admin.set_standby(states[1], 0);
        seen_healthy_then_crashed(&admin).await; // probed at 1 s, crashed at 1.2 s
        sleep(Duration::from_secs(3)).await;
        assert_eq!(state.view().promotions == 1, promoted, "{states:?}: {:?}", admin.calls());
    }
}

/// With async replication, `max_lag` bounds what a failover may lose: a standby that lagged
/// more than it at the last healthy probe is refused; one at or under it is promoted.
#[tokio::test(start_paused = true)]
async fn async_refuses_a_standby_lagging_over_max_lag_and_promotes_one_within_it() {
    let max_lag = ByteSize(1 << 20);
    for (lag_bytes, promoted) in [(max_lag.bytes() + 1, false), (max_lag.bytes(), true), (4096, true)] {
        let config = WatchdogConfig { max_lag, ..WatchdogConfig::default() };
        let (admin, state) =
            start(Settings { config, replication: Replication::Async, bugs: Bugs::default() });
        admin.set_standby(false, lag_bytes);
        seen_healthy_then_crashed(&admin).await;
        sleep(Duration::from_secs(3)).await;
        let expected: &[&str] = if promoted { &FAILOVER } else { &[] };
        assert_eq!(admin.calls(), expected, "lag {lag_bytes} bytes");
        assert_eq!(state.view().refusals > 0, !promoted, "lag {lag_bytes} bytes");
    }
}

/// A primary never seen healthy has said nothing about its standby: no promotion.
#[tokio::test(start_paused = true)]
async fn no_promotion_before_the_primary_was_ever_seen_healthy() {
    let (admin, state) = start(settings(Replication::Async, Bugs::default()));
    admin.set_down(DbNode::PgPrimary, true);
    sleep(Duration::from_secs(3)).await;
    assert!(admin.calls().is_empty());
    assert!(state.view().refusals > 0);
}

/// Bug `promote_lagging_standby`: the old behaviour, whatever the standby's state.
#[tokio::test(start_paused = true)]
async fn bug_promote_lagging_standby_promotes_whatever_the_peer_is() {
    let bugs = Bugs { promote_lagging_standby: true, ..Bugs::default() };
    for (replication, sync, lag_bytes) in
        [(Replication::Sync, false, 1 << 30), (Replication::Async, false, 1 << 30)]
    {
        let (admin, state) = start(settings(replication, bugs));
        admin.set_standby(sync, lag_bytes);
        seen_healthy_then_crashed(&admin).await;
        sleep(Duration::from_secs(2)).await;
        assert_eq!(admin.calls(), FAILOVER, "{replication:?}");
        assert_eq!((state.view().promotions, state.view().refusals), (1, 0));
    }
    // Even a primary never seen healthy.
    let (admin, _state) = start(settings(Replication::Sync, bugs));
    admin.set_down(DbNode::PgPrimary, true);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(admin.calls(), FAILOVER);
}

/// Patroni's order, on a standby that stops streaming and comes back: the view records it
/// not synchronous before the primary is told to commit alone; the primary is told to wait
/// for it again only once it streams with no flush lag, and the view counts it synchronous
/// only at a later probe that reports it so.
#[tokio::test(start_paused = true)]
async fn sync_is_released_after_the_view_and_required_again_once_caught_up() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    sleep(Duration::from_millis(600)).await; // probed at 0.5 s: synchronous
    assert_eq!(state.view().standby.map(|s| s.sync), Some(true));
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_millis(500)).await; // probed at 1 s: not streaming
    assert_eq!(admin.calls(), ["release-sync pg-primary"]);
    let view = state.view();
    assert_eq!(view.standby.map(|s| (s.sync, s.streaming)), Some((false, false)));
    assert_eq!(view.sync_wait, SyncWait::Released);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(admin.calls().len(), 1, "released once, not every tick");
    // Back, but lagging: not required yet.
    admin.set_standby(true, 4096);
    admin.set_down(DbNode::PgReplica, false);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(admin.calls().len(), 1, "{:?}", admin.calls());
    assert_eq!(state.view().standby.map(|s| (s.sync, s.streaming)), Some((false, true)));
    // Caught up: required again; reported synchronous at the next probe.
    admin.set_standby(true, 0);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(admin.calls(), ["release-sync pg-primary", "require-sync pg-primary"]);
    assert_eq!(state.view().standby.map(|s| s.sync), Some(false), "not before a probe says so");
    assert_eq!(state.view().sync_wait, SyncWait::Rejoining);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(state.view().standby.map(|s| s.sync), Some(true));
    assert_eq!(state.view().sync_wait, SyncWait::Required);
    assert_eq!(admin.calls().len(), 2);
}

/// What the view records, at each step of the order above: a view that says "not
/// synchronous" is in place whenever the primary may commit alone.
#[test]
fn recorded_counts_a_rejoining_standby_synchronous_only_with_no_flush_lag() {
    let view = |sync, lag| StandbyView {
        node: DbNode::PgReplica,
        sync,
        streaming: true,
        flush_lag_bytes: lag,
        replay_lag_bytes: lag,
    };
    let (seen, wait) = recorded(Some(view(true, 256)), SyncWait::Rejoining);
    assert_eq!((seen.map(|s| s.sync), wait), (Some(false), SyncWait::Rejoining));
    let (seen, wait) = recorded(Some(view(true, 0)), SyncWait::Rejoining);
    assert_eq!((seen.map(|s| s.sync), wait), (Some(true), SyncWait::Required));
    // Steady synchronous replication under load has commits in flight: still synchronous.
    let (seen, wait) = recorded(Some(view(true, 256)), SyncWait::Required);
    assert_eq!((seen.map(|s| s.sync), wait), (Some(true), SyncWait::Required));
    // A primary that reports it synchronous waits for it (the simulation rejoins by itself).
    assert_eq!(recorded(Some(view(true, 256)), SyncWait::Released).1, SyncWait::Required);
    assert_eq!(recorded(None, SyncWait::Released), (None, SyncWait::Released));
}

/// A release that fails (no answer within `ADMIN_TIMEOUT`, say) is retried on the next tick,
/// and the view says "released" only once it succeeded.
#[tokio::test(start_paused = true)]
async fn a_failed_release_sync_is_retried_on_the_next_tick() {
    let (admin, state) = start(settings(Replication::RemoteApply, Bugs::default()));
    sleep(Duration::from_millis(600)).await;
    admin.fail_sync_calls(2);
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_millis(500)).await;
    assert_eq!((state.view().sync_wait, admin.sync_released()), (SyncWait::Required, false));
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(admin.calls(), ["release-sync pg-primary"; 3]);
    assert_eq!((state.view().sync_wait, admin.sync_released()), (SyncWait::Released, true));
}

/// With async replication the primary never waits: no calls.
#[tokio::test(start_paused = true)]
async fn async_replication_never_touches_synchronous_replication() {
    let (admin, _state) = start(settings(Replication::Async, Bugs::default()));
    sleep(Duration::from_millis(600)).await;
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_secs(2)).await;
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
}

/// Bug `promote_lagging_standby` changes only the promotion rule: sync is released as
/// without it, the primary commits alone, and the lagging standby is promoted anyway.
#[tokio::test(start_paused = true)]
async fn bug_promote_lagging_standby_leaves_the_sync_steering_alone() {
    let bugs = Bugs { promote_lagging_standby: true, ..Bugs::default() };
    let (admin, state) = start(settings(Replication::Sync, bugs));
    sleep(Duration::from_millis(600)).await;
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(admin.calls(), ["release-sync pg-primary"]);
    admin.set_down(DbNode::PgReplica, false);
    admin.set_standby(false, 1 << 20);
    sleep(Duration::from_millis(300)).await;
    admin.set_down(DbNode::PgPrimary, true);
    sleep(Duration::from_secs(2)).await;
    let mut expected = vec!["release-sync pg-primary"];
    expected.extend(FAILOVER);
    assert_eq!(admin.calls(), expected);
    assert_eq!((state.view().promotions, state.view().sync_wait), (1, SyncWait::Released));
}

#[test]
fn promotable_says_why_not() {
    let config = WatchdogConfig { max_lag: ByteSize(1000), ..WatchdogConfig::default() };
    let view = |sync, lag| StandbyView {
        node: DbNode::PgReplica,
        sync,
        streaming: sync,
        flush_lag_bytes: lag,
        replay_lag_bytes: lag,
    };
    let replica = DbNode::PgReplica;
    assert_eq!(promotable(replica, Some(&view(true, 5000)), Replication::Sync, &config), Ok(()));
    let not_sync = promotable(replica, Some(&view(false, 0)), Replication::Sync, &config).unwrap_err();
    assert!(not_sync.contains("pg-replica was not synchronous"), "{not_sync}");
    assert_eq!(promotable(replica, Some(&view(false, 1000)), Replication::Async, &config), Ok(()));
    let lagging = promotable(replica, Some(&view(false, 1001)), Replication::Async, &config).unwrap_err();
    assert!(lagging.contains("lagged 1001 bytes") && lagging.contains("max_lag 1000B"), "{lagging}");
    let unknown = promotable(replica, None, Replication::Async, &config).unwrap_err();
    assert!(unknown.contains("never reported as a standby"), "{unknown}");
    let other = StandbyView { node: DbNode::PgPrimary, ..view(true, 0) };
    assert!(promotable(replica, Some(&other), Replication::Sync, &config).is_err());
}

/// Probes of a healthy primary lost three times in a row (the watchdog itself was paused):
/// when the standby answers, the primary is probed once more, answers, and nothing is fenced.
#[tokio::test(start_paused = true)]
async fn lost_probes_of_a_healthy_primary_do_not_fail_it_over() {
    let (admin, state) = start(settings(Replication::Async, Bugs::default()));
    sleep(Duration::from_millis(600)).await;
    admin.lose_probes(DbNode::PgPrimary, 3);
    sleep(Duration::from_secs(3)).await;
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
    assert_eq!((state.primary(), state.view().failures), (DbNode::PgPrimary, 0));
}

/// With the standby unreachable too, the primary is not fenced: there is nothing to promote.
#[tokio::test(start_paused = true)]
async fn no_failover_without_a_reachable_standby() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    seen_healthy_then_crashed(&admin).await;
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_secs(3)).await;
    assert!(admin.calls().is_empty());
    admin.set_down(DbNode::PgReplica, false);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(admin.calls(), FAILOVER);
    assert_eq!(state.primary(), DbNode::PgReplica);
}

/// A primary that answers again before the threshold resets the count.
#[tokio::test(start_paused = true)]
async fn a_recovered_primary_is_not_replaced() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    admin.set_down(DbNode::PgPrimary, true);
    sleep(Duration::from_millis(1200)).await;
    admin.set_down(DbNode::PgPrimary, false);
    sleep(Duration::from_millis(1000)).await;
    admin.set_down(DbNode::PgPrimary, true);
    sleep(Duration::from_millis(1200)).await;
    assert!(admin.calls().is_empty());
    assert_eq!(state.primary(), DbNode::PgPrimary);
}

/// Bug `no_fencing`: promotion without fencing; the restarted old primary takes writes too.
#[tokio::test(start_paused = true)]
async fn bug_no_fencing_allows_split_brain() {
    for (bugs, writable) in [
        (Bugs::default(), vec![DbNode::PgReplica]),
        (Bugs { no_fencing: true, ..Bugs::default() }, vec![DbNode::PgPrimary, DbNode::PgReplica]),
    ] {
        let (admin, _state) = start(settings(Replication::Sync, bugs));
        seen_healthy_then_crashed(&admin).await;
        sleep(Duration::from_millis(1600)).await;
        admin.set_down(DbNode::PgPrimary, false);
        assert_eq!(admin.writable(), writable);
    }
}

/// A fenced old primary rewound into a streaming standby is a failover candidate again: its
/// fence is lifted, and when the new primary dies too the watchdog fails over back to it.
#[tokio::test(start_paused = true)]
async fn a_rewound_old_primary_is_readmitted_and_can_take_over_again() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    seen_healthy_then_crashed(&admin).await;
    sleep(Duration::from_millis(1600)).await;
    assert_eq!((state.primary(), state.view().fenced), (DbNode::PgReplica, vec![DbNode::PgPrimary]));
    admin.set_down(DbNode::PgPrimary, false);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(state.view().fenced, [DbNode::PgPrimary], "fenced and not a standby: stays fenced");
    admin.resync(DbNode::PgPrimary);
    sleep(Duration::from_secs(2)).await;
    assert!(state.view().fenced.is_empty(), "{:?}", admin.calls());
    admin.set_down(DbNode::PgReplica, true);
    sleep(Duration::from_secs(3)).await;
    assert_eq!((state.primary(), state.view().promotions), (DbNode::PgPrimary, 2), "{:?}", admin.calls());
}

/// Issue 15: a failback waits until the old primary follows as a standby, then stops writes
/// on the current primary, waits until the target has everything, and promotes it; a target
/// that does not catch up leaves the current primary in charge.
#[tokio::test(start_paused = true)]
async fn a_failback_switches_over_only_to_a_caught_up_standby() {
    let (admin, state) = start(settings(Replication::Sync, Bugs::default()));
    seen_healthy_then_crashed(&admin).await;
    sleep(Duration::from_millis(1600)).await;
    assert_eq!(state.primary(), DbNode::PgReplica, "failed over");
    admin.set_down(DbNode::PgPrimary, false);
    state.request_switchover(DbNode::PgPrimary);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(state.primary(), DbNode::PgReplica, "still fenced, not yet a standby: nothing happens");
    assert!(!admin.calls().iter().any(|c| c.starts_with("promote pg-primary")));
    // Rewound into a standby, but behind: the switchover is abandoned and the primary unfenced.
    admin.resync(DbNode::PgPrimary);
    admin.set_lsn(DbNode::PgReplica, 10);
    sleep(Duration::from_secs(6)).await;
    assert_eq!(state.primary(), DbNode::PgReplica);
    assert!(admin.calls().contains(&"unfence pg-replica".to_string()), "{:?}", admin.calls());
    // Caught up: switched over, the old primary fenced, the writer repointed.
    admin.set_lsn(DbNode::PgPrimary, 10);
    sleep(Duration::from_secs(7)).await;
    let view = state.view();
    assert_eq!((view.primary, view.switchovers, view.switchover), (DbNode::PgPrimary, 1, None));
    assert_eq!(admin.writer(), DbNode::PgPrimary);
    assert_eq!(view.fenced, [DbNode::PgReplica]);
    let calls = admin.calls();
    let tail: Vec<&str> = calls.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        ["fence pg-replica", "unfence pg-primary", "promote pg-primary", "set-writer pg-primary"]
    );
}
