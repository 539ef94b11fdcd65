//! The failover watchdog (host `watchdog`): probe the current primary every `probe_every`
//! (each probe bounded by `probe_timeout`) and keep the primary's view of its standby from every
//! probe that finds it healthy; after `failures_to_promote` consecutive failed probes, fence the
//! old primary, promote the standby if it is safe to, and point the writer endpoint at it.
//!
//! Which standby is safe to promote follows Patroni. With `replication: sync` or `remote_apply`,
//! only one the primary named synchronous (`pg_stat_replication.sync_state = 'sync'`) when it was
//! last seen healthy: a synchronous standby has every acknowledged commit. With `async`, only one
//! whose WAL flush lag was then at most `max_lag` (Patroni's `maximum_lag_on_failover`): the
//! failover loses at most that, plus what the primary committed after that probe. When the
//! standby does not qualify, nothing is fenced or promoted: the stack stays without a writer —
//! an outage the recovery and SLO checks report — rather than silently losing acknowledged
//! writes. The watchdog keeps probing every tick; an old primary that answers again is simply
//! still the primary.
//!
//! Synchronous replication is Patroni's non-strict synchronous mode, and the watchdog owns it,
//! as Patroni's `/sync` key in the DCS: when a healthy probe shows the standby not streaming (or
//! absent), the view records it not synchronous *first*, and only then is the primary told to
//! commit without it ([`DbAdmin::release_sync`]), so a standby the watchdog would promote never
//! lacks a commit acknowledged alone. Once a probe shows it streaming with no flush lag, the
//! primary is told to wait for it again ([`DbAdmin::require_sync`]); it counts as synchronous
//! when a later probe reports it so, with no flush lag ([`SyncWait::Rejoining`]). A promoted
//! standby waits for nobody. The simulated primary does this by itself (its calls are no-ops);
//! real PostgreSQL obeys the calls.
//!
//! Order matters: the old primary is fenced *before* the standby is promoted, and the watchdog
//! does not promote while fencing fails, so two nodes never take writes at once. A promotion
//! whose `set_writer` failed is retried on every tick until the writer points at the new primary.
//! Every decision is logged with `tracing`, and the watchdog's view (who is primary, where the
//! writer points, the failure count, the last known standby) is kept in a [`WatchdogState`] the
//! backend can read.
//!
//! A fenced old primary that streams again as the primary's standby was rewound (PostgreSQL
//! streams no diverged node onto a new timeline): its fence is lifted ([`DbAdmin::unfence`]) and
//! it is a failover candidate again, as Patroni takes a rewound replica back.
//!
//! Bugs planted here: `no_fencing` (promote without fencing; the old primary takes writes again
//! after a restart: split brain) and `promote_lagging_standby` (promote the standby whatever its
//! replication state: what only the old primary had is lost).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{sleep, timeout};

use super::bugs::Bugs;
use super::ports::{DbAdmin, DbNode, NodeStatus, PortError, StandbyView};
use crate::scenario::model::{Replication, StackConfig, WatchdogConfig};

/// Upper bound on one fence, promote, set-writer, release-sync or require-sync call.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the watchdog runs with, from the scenario's `stack`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Timing and `max_lag`.
    pub config: WatchdogConfig,
    /// Which promotion rule applies: a synchronous standby (`sync`, `remote_apply`) or one
    /// within `max_lag` (`async`).
    pub replication: Replication,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Settings {
    /// The watchdog's settings for a stack.
    pub fn for_stack(stack: &StackConfig) -> Settings {
        Settings {
            config: stack.watchdog.clone(),
            replication: stack.replication,
            bugs: Bugs::from_list(&stack.bugs),
        }
    }
}

/// What the watchdog believes, for the backend to read (containers: `GET /control/state`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WatchdogView {
    /// The node the watchdog considers primary.
    pub primary: DbNode,
    /// The node the writer endpoint was last successfully pointed at.
    pub writer: DbNode,
    /// Consecutive failed probes of the primary.
    pub failures: u32,
    /// Completed promotions.
    pub promotions: u32,
    /// Nodes fenced so far, in order.
    pub fenced: Vec<DbNode>,
    /// The primary's view of its standby at the last probe that found it healthy (`None`: no
    /// such probe yet, or the primary knew of no standby then).
    pub standby: Option<StandbyView>,
    /// Failovers that were due but refused because the standby was not safe to promote (one per
    /// tick while the primary stays down).
    pub refusals: u32,
    /// Whether the primary waits for its standby (`sync`, `remote_apply`; unused with `async`).
    pub sync_wait: SyncWait,
    /// A planned switchover (`failback`) asked for and not done yet: the node to make primary.
    pub switchover: Option<DbNode>,
    /// Completed planned switchovers.
    pub switchovers: u32,
    /// Held by an operator ([`WatchdogState::hold`]): it neither probes nor acts until reset.
    pub held: bool,
}

/// Non-strict synchronous replication, as the watchdog last arranged it with the primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncWait {
    /// The primary waits for its standby: how `docker/node.sh` creates a `sync` primary.
    #[default]
    Required,
    /// The primary was told to commit without its standby ([`DbAdmin::release_sync`]); a
    /// promoted standby starts so too (`docker/node.sh` gives it an empty list).
    Released,
    /// The primary was told to wait for its standby again ([`DbAdmin::require_sync`]); the
    /// standby counts as synchronous once a probe reports it synchronous with no flush lag, so
    /// every commit acknowledged alone before the change is on it.
    Rejoining,
}

impl Default for WatchdogView {
    fn default() -> Self {
        WatchdogView {
            primary: DbNode::PgPrimary,
            writer: DbNode::PgPrimary,
            failures: 0,
            promotions: 0,
            fenced: vec![],
            standby: None,
            refusals: 0,
            sync_wait: SyncWait::Required,
            switchover: None,
            switchovers: 0,
            held: false,
        }
    }
}

/// The watchdog's shared view. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct WatchdogState {
    view: Arc<Mutex<WatchdogView>>,
    /// Held by [`run`] for the whole of each tick, so [`WatchdogState::hold`] can wait out one
    /// in progress.
    acting: Arc<tokio::sync::Mutex<()>>,
}

impl WatchdogState {
    /// A copy of the current view.
    pub fn view(&self) -> WatchdogView {
        self.view.lock().expect("watchdog state poisoned").clone()
    }

    /// The node the watchdog considers primary.
    pub fn primary(&self) -> DbNode {
        self.view().primary
    }

    /// Ask for a planned switchover to `node` (a `failback`): done once `node` streams as a
    /// caught-up standby of the current primary; retried every probe tick until then.
    pub fn request_switchover(&self, node: DbNode) {
        self.update(|v| v.switchover = Some(node));
    }

    /// After an operator rebuilt or rejoined both nodes (a restore, a failback on containers):
    /// `primary` is the primary, the other its standby, nothing is fenced, and a hold is lifted.
    /// Counts are kept; `switchover` counts one more planned switchover.
    pub fn reset(&self, primary: DbNode, switchover: bool) {
        self.update(|v| {
            *v = WatchdogView {
                promotions: v.promotions,
                switchovers: v.switchovers + u32::from(switchover),
                refusals: v.refusals,
                writer: v.writer,
                ..WatchdogView { primary, ..WatchdogView::default() }
            }
        });
    }

    /// Stop the watchdog probing and acting until [`WatchdogState::reset`], for an operator who
    /// stops and starts database nodes itself (a failback on containers): once this returns, no
    /// tick is in progress and none will act.
    pub async fn hold(&self) {
        self.update(|v| v.held = true);
        drop(self.acting.lock().await);
    }

    fn update(&self, change: impl FnOnce(&mut WatchdogView)) {
        change(&mut self.view.lock().expect("watchdog state poisoned"));
    }
}

/// Run the watchdog forever.
pub async fn run(admin: Arc<dyn DbAdmin>, settings: Settings, state: WatchdogState) {
    let config = &settings.config;
    let threshold = config.failures_to_promote.max(1);
    loop {
        sleep(config.probe_every.get()).await;
        let _acting = state.acting.lock().await;
        let view = state.view();
        if view.held {
            continue;
        }
        if view.writer != view.primary {
            repoint(&*admin, &state, view.primary).await;
        }
        let probe_timeout = config.probe_timeout.get();
        let probe = timeout(probe_timeout, admin.probe(view.primary, probe_timeout)).await;
        if let Ok(Ok(NodeStatus { writable: true, standby })) = probe {
            if view.failures > 0 {
                tracing::info!(primary = view.primary.host(), "watchdog: primary answers again");
            }
            let waits = settings.replication != Replication::Async;
            let (standby, sync_wait) =
                if waits { recorded(standby, view.sync_wait) } else { (standby, view.sync_wait) };
            if standby.map(|s| (s.sync, s.streaming)) != view.standby.map(|s| (s.sync, s.streaming)) {
                tracing::info!(
                    primary = view.primary.host(),
                    ?standby,
                    "watchdog: the standby's state changed"
                );
            }
            // The view first: only then may the primary commit without its standby.
            state.update(|v| {
                v.failures = 0;
                v.standby = standby;
                v.sync_wait = sync_wait;
            });
            if waits {
                steer_sync(&*admin, &state, view.primary, standby, sync_wait).await;
            }
            if let Some(rejoined) = standby.filter(|s| s.streaming && view.fenced.contains(&s.node)) {
                readmit(&*admin, &state, rejoined.node).await;
            }
            if let Some(target) = view.switchover {
                switchover(&*admin, &state, view.primary, target, standby, &settings).await;
            }
            continue;
        }
        let failures = view.failures + 1;
        state.update(|v| v.failures = failures);
        tracing::info!(primary = view.primary.host(), failures, threshold, "watchdog: probe failed");
        if failures >= threshold {
            failover(&*admin, &state, view.primary, &settings).await;
        }
    }
}

/// What the watchdog records of a healthy primary's report on its standby, and the new
/// [`SyncWait`]: a pure function. While rejoining, "synchronous" needs no flush lag as well
/// (commits acknowledged alone may still be in flight to it); a standby reported synchronous
/// proves the primary waits for it.
pub(crate) fn recorded(standby: Option<StandbyView>, wait: SyncWait) -> (Option<StandbyView>, SyncWait) {
    match (standby, wait) {
        (Some(s), SyncWait::Rejoining) if s.sync && s.flush_lag_bytes > 0 => {
            (Some(StandbyView { sync: false, ..s }), wait)
        }
        (Some(s), SyncWait::Rejoining | SyncWait::Released) if s.sync => (standby, SyncWait::Required),
        _ => (standby, wait),
    }
}

/// Patroni's non-strict synchronous mode, run after the view records `standby` (a healthy
/// probe's report): a primary whose standby does not stream is told to commit alone; once the
/// standby streams with no flush lag, it is told to wait for it again. A failed call is logged
/// and retried on the next tick (the view's [`SyncWait`] changes only when a call succeeds).
async fn steer_sync(
    admin: &dyn DbAdmin,
    state: &WatchdogState,
    primary: DbNode,
    standby: Option<StandbyView>,
    wait: SyncWait,
) {
    let streaming = standby.is_some_and(|s| s.streaming);
    let caught_up = standby.is_some_and(|s| s.streaming && s.flush_lag_bytes == 0 && !s.sync);
    let (next, call, what) = if !streaming && wait != SyncWait::Released {
        (SyncWait::Released, admin.release_sync(primary), "commits no longer wait for the standby")
    } else if caught_up && wait != SyncWait::Rejoining {
        (SyncWait::Rejoining, admin.require_sync(primary), "commits wait for the caught-up standby again")
    } else {
        return;
    };
    match admin_call(call).await {
        Ok(()) => {
            tracing::info!(primary = primary.host(), ?standby, "watchdog: {what}");
            state.update(|v| v.sync_wait = next);
        }
        Err(err) => {
            tracing::warn!(primary = primary.host(), %err, ?next, "watchdog: changing synchronous replication failed; will retry")
        }
    }
}

/// May `standby` be promoted, judged by the old primary's last healthy view of it? `Err` says
/// why not. A pure function of what the watchdog knows: the rules in the module doc.
pub(crate) fn promotable(
    standby: DbNode,
    last_seen: Option<&StandbyView>,
    replication: Replication,
    config: &WatchdogConfig,
) -> Result<(), String> {
    let Some(seen) = last_seen.filter(|s| s.node == standby) else {
        return Err(format!(
            "{} was never reported as a standby by a healthy primary: what it lacks is unknown",
            standby.host()
        ));
    };
    match replication {
        Replication::Sync | Replication::RemoteApply if seen.sync => Ok(()),
        Replication::Sync | Replication::RemoteApply => Err(format!(
            "{} was not synchronous when the primary was last seen healthy (streaming: {}, \
             flush lag {} bytes): it may lack acknowledged commits",
            standby.host(),
            seen.streaming,
            seen.flush_lag_bytes
        )),
        Replication::Async if seen.flush_lag_bytes <= config.max_lag.bytes() => Ok(()),
        Replication::Async => Err(format!(
            "{} lagged {} bytes of WAL when the primary was last seen healthy, over max_lag {} ({} bytes)",
            standby.host(),
            seen.flush_lag_bytes,
            config.max_lag,
            config.max_lag.bytes()
        )),
    }
}

/// Fence `old` (unless the bug skips it), promote its peer, repoint the writer. Nothing is done
/// unless the peer is a reachable, unfenced standby that is safe to promote: fencing the only
/// primary with nothing to promote would turn a blip into a permanent outage, and promoting a
/// standby that lacks acknowledged commits would lose them.
async fn failover(admin: &dyn DbAdmin, state: &WatchdogState, old: DbNode, settings: &Settings) {
    let standby = old.peer();
    let view = state.view();
    if view.fenced.contains(&standby) {
        tracing::warn!(standby = standby.host(), "watchdog: the peer is fenced; no standby to promote");
        return;
    }
    let probe_timeout = settings.config.probe_timeout.get();
    let already_primary = match timeout(probe_timeout, admin.probe(standby, probe_timeout)).await {
        Ok(Ok(status)) => status.writable,
        Ok(Err(err)) => {
            tracing::warn!(standby = standby.host(), %err, "watchdog: standby unreachable; not failing over");
            return;
        }
        Err(_) => {
            tracing::warn!(standby = standby.host(), "watchdog: standby probe timed out; not failing over");
            return;
        }
    };
    if !already_primary
        && let Err(why) = promotable(standby, view.standby.as_ref(), settings.replication, &settings.config)
    {
        if settings.bugs.promote_lagging_standby {
            tracing::warn!(standby = standby.host(), %why, "watchdog: promoting anyway (promote-lagging-standby bug)");
        } else {
            tracing::warn!(
                standby = standby.host(),
                %why,
                "watchdog: not promoting; the stack has no writer until the old primary answers"
            );
            state.update(|v| v.refusals += 1);
            return;
        }
    }
    // Fresh evidence before fencing: a watchdog that was itself paused or cut off saw every probe
    // fail, and its first probe after it thawed may still time out. Now that the standby answers,
    // the old primary must still be silent. (A pause of the watchdog alone fenced a healthy
    // primary and promoted its async standby, losing a write: found by the swarm campaign.)
    if answers(admin, old, probe_timeout).await {
        tracing::info!(old = old.host(), "watchdog: the primary answers again; not failing over");
        state.update(|v| v.failures = 0);
        return;
    }
    if settings.bugs.no_fencing {
        tracing::warn!(old = old.host(), "watchdog: NOT fencing the old primary (no-fencing bug)");
    } else {
        if let Err(err) = admin_call(admin.fence(old)).await {
            tracing::warn!(old = old.host(), %err, "watchdog: fencing failed; not promoting");
            return;
        }
        tracing::info!(old = old.host(), "watchdog: fenced the old primary");
        state.update(|v| v.fenced.push(old));
    }
    if already_primary {
        tracing::info!(new = standby.host(), "watchdog: the standby already accepts writes; not promoting");
    } else if let Err(err) = admin_call(admin.promote(standby)).await {
        tracing::warn!(standby = standby.host(), %err, "watchdog: promotion failed; will retry");
        return;
    }
    tracing::info!(new = standby.host(), "watchdog: promoted the standby");
    state.update(|v| {
        v.primary = standby;
        v.failures = 0;
        v.promotions += 1;
        v.standby = None;
        v.sync_wait = SyncWait::Released;
    });
    repoint(admin, state, standby).await;
}

/// A fenced old primary that streams as the primary's standby was rewound and rejoined (the
/// simulated nodes do it themselves; on containers a failback's harness does): lift its fence,
/// so it is a failover candidate again, as Patroni takes a rewound replica back. Without this,
/// a second crash of the primary found its only standby still fenced and left the stack with no
/// writer (found on the simulation by `failback` followed by a crash). `unfence` refuses a node
/// that is not a standby yet; the next healthy probe tries again.
async fn readmit(admin: &dyn DbAdmin, state: &WatchdogState, node: DbNode) {
    match admin_call(admin.unfence(node)).await {
        Ok(()) => {
            tracing::info!(
                node = node.host(),
                "watchdog: the rewound old primary streams; a failover candidate again"
            );
            state.update(|v| v.fenced.retain(|n| *n != node));
        }
        Err(err) => {
            tracing::warn!(node = node.host(), %err, "watchdog: could not lift the fence of a streaming standby")
        }
    }
}

/// Longest a planned switchover waits for the target to replay the stopped primary's last commit
/// before it gives up and lets the primary take writes again.
pub const SWITCHOVER_CATCH_UP_MAX: Duration = Duration::from_secs(5);

/// A planned switchover from the healthy `primary` to `target` (`failback`), losing nothing:
/// only once `target` streams as `primary`'s standby (so it was resynchronised), writes stop on
/// `primary` (fenced), `target` replays up to its last commit, then is unfenced, promoted and made
/// the writer. The old primary, fenced, rejoins as the new one's standby as after a failover. If
/// `target` does not catch up in time, the old primary is unfenced and keeps its role; the
/// switchover is retried on the next tick.
async fn switchover(
    admin: &dyn DbAdmin,
    state: &WatchdogState,
    primary: DbNode,
    target: DbNode,
    standby: Option<StandbyView>,
    settings: &Settings,
) {
    if target == primary {
        tracing::info!(node = target.host(), "watchdog: switchover: already primary");
        state.update(|v| v.switchover = None);
        return;
    }
    if !standby.is_some_and(|s| s.node == target && s.streaming) {
        tracing::info!(
            target = target.host(),
            ?standby,
            "watchdog: switchover waits for the target to stream"
        );
        return;
    }
    if let Err(err) = admin_call(admin.fence(primary)).await {
        tracing::warn!(primary = primary.host(), %err, "watchdog: switchover: stopping writes failed; will retry");
        return;
    }
    let caught_up = caught_up(admin, primary, target, settings.config.probe_every.get()).await;
    let promoted = match caught_up {
        Ok(()) => match admin_call(admin.unfence(target)).await {
            Ok(()) => admin_call(admin.promote(target)).await,
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    if let Err(err) = promoted {
        tracing::warn!(target = target.host(), %err, "watchdog: switchover abandoned; the primary takes writes again");
        if let Err(err) = admin_call(admin.unfence(primary)).await {
            tracing::warn!(primary = primary.host(), %err, "watchdog: could not lift the switchover's fence");
        }
        return;
    }
    tracing::info!(old = primary.host(), new = target.host(), "watchdog: planned switchover done");
    state.update(|v| {
        v.primary = target;
        v.failures = 0;
        v.switchovers += 1;
        v.switchover = None;
        v.standby = None;
        v.sync_wait = SyncWait::Released;
        v.fenced.retain(|n| *n != target);
        v.fenced.push(primary);
    });
    repoint(admin, state, target).await;
}

/// Wait until `target` has replayed everything the stopped `primary` wrote.
async fn caught_up(
    admin: &dyn DbAdmin,
    primary: DbNode,
    target: DbNode,
    poll: Duration,
) -> Result<(), PortError> {
    let goal = timeout(ADMIN_TIMEOUT, admin.wal_lsn(primary))
        .await
        .map_err(|_| PortError::Unavailable("the primary's WAL position did not come".into()))??;
    let deadline = tokio::time::Instant::now() + SWITCHOVER_CATCH_UP_MAX;
    loop {
        if let Ok(Ok(at)) = timeout(ADMIN_TIMEOUT, admin.wal_lsn(target)).await
            && at >= goal
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PortError::Unavailable(format!(
                "{} did not replay up to {goal} within {SWITCHOVER_CATCH_UP_MAX:?}",
                target.host()
            )));
        }
        sleep(poll.min(Duration::from_millis(50))).await;
    }
}

/// Does `node` answer a probe within `probe_timeout` (whatever it says)?
async fn answers(admin: &dyn DbAdmin, node: DbNode, probe_timeout: Duration) -> bool {
    matches!(timeout(probe_timeout, admin.probe(node, probe_timeout)).await, Ok(Ok(_)))
}

async fn repoint(admin: &dyn DbAdmin, state: &WatchdogState, node: DbNode) {
    match admin_call(admin.set_writer(node)).await {
        Ok(()) => {
            tracing::info!(writer = node.host(), "watchdog: writer endpoint repointed");
            state.update(|v| v.writer = node);
        }
        Err(err) => {
            tracing::warn!(writer = node.host(), %err, "watchdog: repointing the writer failed; will retry")
        }
    }
}

async fn admin_call(call: impl std::future::Future<Output = Result<(), PortError>>) -> Result<(), PortError> {
    match timeout(ADMIN_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(PortError::Unavailable(format!("no answer within {ADMIN_TIMEOUT:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::ByteSize;
    use crate::stack::testkit::MemDbAdmin;

    fn settings(replication: Replication, bugs: Bugs) -> Settings {
        Settings { config: WatchdogConfig::default(), replication, bugs }
    }

    fn start(settings: Settings) -> (Arc<MemDbAdmin>, WatchdogState) {
        let admin = Arc::new(MemDbAdmin::default());
        let state = WatchdogState::default();
        tokio::spawn(run(admin.clone(), settings, state.clone()));
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
}
