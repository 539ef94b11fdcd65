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
mod tests;
