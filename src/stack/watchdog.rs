//! The failover watchdog (host `watchdog`): probe the current primary every `probe_every`
//! (each probe bounded by `probe_timeout`); after `failures_to_promote` consecutive failed probes,
//! fence the old primary, promote the standby and point the writer endpoint at it.
//!
//! Order matters: the old primary is fenced *before* the standby is promoted, and the watchdog
//! does not promote while fencing fails, so two nodes never take writes at once. A promotion
//! whose `set_writer` failed is retried on every tick until the writer points at the new primary.
//! Every decision is logged with `tracing`, and the watchdog's view (who is primary, where the
//! writer points, the failure count) is kept in a [`WatchdogState`] the backend can read.
//!
//! Bug planted here: `no_fencing` (promote without fencing; the old primary takes writes again
//! after a restart: split brain).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{sleep, timeout};

use super::bugs::Bugs;
use super::ports::{DbAdmin, DbNode, PortError};
use crate::scenario::model::WatchdogConfig;

/// Upper bound on one fence, promote or set-writer call.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the watchdog believes, for the backend to read.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl Default for WatchdogView {
    fn default() -> Self {
        WatchdogView {
            primary: DbNode::PgPrimary,
            writer: DbNode::PgPrimary,
            failures: 0,
            promotions: 0,
            fenced: vec![],
        }
    }
}

/// The watchdog's shared view. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct WatchdogState {
    view: Arc<Mutex<WatchdogView>>,
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

    fn update(&self, change: impl FnOnce(&mut WatchdogView)) {
        change(&mut self.view.lock().expect("watchdog state poisoned"));
    }
}

/// Run the watchdog forever.
pub async fn run(admin: Arc<dyn DbAdmin>, config: WatchdogConfig, bugs: Bugs, state: WatchdogState) {
    let threshold = config.failures_to_promote.max(1);
    loop {
        sleep(config.probe_every.get()).await;
        let view = state.view();
        if view.writer != view.primary {
            repoint(&*admin, &state, view.primary).await;
        }
        let probe_timeout = config.probe_timeout.get();
        let healthy = matches!(
            timeout(probe_timeout, admin.probe(view.primary, probe_timeout)).await,
            Ok(Ok(status)) if status.writable
        );
        if healthy {
            if view.failures > 0 {
                tracing::info!(primary = view.primary.host(), "watchdog: primary answers again");
            }
            state.update(|v| v.failures = 0);
            continue;
        }
        let failures = view.failures + 1;
        state.update(|v| v.failures = failures);
        tracing::info!(primary = view.primary.host(), failures, threshold, "watchdog: probe failed");
        if failures >= threshold {
            failover(&*admin, &state, view.primary, bugs, probe_timeout).await;
        }
    }
}

/// Fence `old` (unless the bug skips it), promote its peer, repoint the writer. Nothing is done
/// unless the peer is a reachable, unfenced standby: fencing the only primary with nothing to
/// promote would turn a blip into a permanent outage.
async fn failover(
    admin: &dyn DbAdmin,
    state: &WatchdogState,
    old: DbNode,
    bugs: Bugs,
    probe_timeout: Duration,
) {
    let standby = old.peer();
    if state.view().fenced.contains(&standby) {
        tracing::warn!(standby = standby.host(), "watchdog: the peer is fenced; no standby to promote");
        return;
    }
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
    if bugs.no_fencing {
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
    });
    repoint(admin, state, standby).await;
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
    use crate::stack::testkit::MemDbAdmin;

    fn start(bugs: Bugs) -> (Arc<MemDbAdmin>, WatchdogState) {
        let admin = Arc::new(MemDbAdmin::default());
        let state = WatchdogState::default();
        tokio::spawn(run(admin.clone(), WatchdogConfig::default(), bugs, state.clone()));
        (admin, state)
    }

    /// Probes at 0.5 s, 1 s, 1.5 s fail: nothing happens after two, and after the third the old
    /// primary is fenced, the standby promoted and the writer repointed, in that order. The old
    /// primary restarted stays unwritable.
    #[tokio::test(start_paused = true)]
    async fn promotes_after_n_failures_and_fences_first() {
        let (admin, state) = start(Bugs::default());
        admin.set_down(DbNode::PgPrimary, true);
        sleep(Duration::from_millis(1200)).await;
        assert!(admin.calls().is_empty(), "two failures must not promote");
        assert_eq!(state.view().failures, 2);
        sleep(Duration::from_millis(400)).await;
        assert_eq!(admin.calls(), ["fence pg-primary", "promote pg-replica", "set-writer pg-replica"]);
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

    /// With the standby unreachable too, the primary is not fenced: there is nothing to promote.
    #[tokio::test(start_paused = true)]
    async fn no_failover_without_a_reachable_standby() {
        let (admin, state) = start(Bugs::default());
        admin.set_down(DbNode::PgPrimary, true);
        admin.set_down(DbNode::PgReplica, true);
        sleep(Duration::from_secs(3)).await;
        assert!(admin.calls().is_empty());
        admin.set_down(DbNode::PgReplica, false);
        sleep(Duration::from_millis(500)).await;
        assert_eq!(admin.calls(), ["fence pg-primary", "promote pg-replica", "set-writer pg-replica"]);
        assert_eq!(state.primary(), DbNode::PgReplica);
    }

    /// A primary that answers again before the threshold resets the count.
    #[tokio::test(start_paused = true)]
    async fn a_recovered_primary_is_not_replaced() {
        let (admin, state) = start(Bugs::default());
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
            let (admin, _state) = start(bugs);
            admin.set_down(DbNode::PgPrimary, true);
            sleep(Duration::from_millis(1600)).await;
            admin.set_down(DbNode::PgPrimary, false);
            assert_eq!(admin.writable(), writable);
        }
    }
}
