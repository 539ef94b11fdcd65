//! `failback` on containers: after a failover, put the old primary back, losing
//! nothing. On the simulation the watchdog does it alone (the simulated nodes rewind themselves);
//! on real PostgreSQL it takes stopping and starting database containers, which only the harness
//! can do, so the harness plays the HA manager here (Patroni's role), in two steps:
//!
//! 1. **Rejoin** the target (the old primary, fenced): stop its container (fast shutdown, SIGKILL
//!    after [`STOP_MAX`]); in the watchdog's container, which mounts its volume
//!    ([`layout::fence_mount`]), `pg_rewind` it from the current primary (after a crash it first
//!    runs crash recovery itself), or take a fresh base backup when rewind cannot; configure it as
//!    the current primary's standby ([`FOLLOW`]); start it; wait until it streams.
//! 2. **Switchover** (Patroni's): the watchdog is held (it must not fail over while the primary
//!    is stopped on purpose); the current primary gets a fast shutdown, in which its WAL senders
//!    ship everything, its shutdown checkpoint included, to the standby before it exits; the
//!    target must replay past that checkpoint (read with `pg_controldata`) within
//!    [`CATCH_UP_MAX`], so it has every acknowledged commit; it is promoted; the old primary is
//!    configured as its standby and started (it follows the new timeline: nothing to rewind, it
//!    stopped cleanly before the fork); `db-router` and the watchdog are reset (the target is
//!    primary, nothing fenced, one switchover counted).
//!
//! If the target does not catch up, the old primary starts again as the primary and the watchdog
//! is reset to it: the failback fails (a harness error) without losing a write.
//!
//! Replication after a failback connects node to node by container name, not through the link
//! proxy: a `latency` fault between the database nodes no longer delays it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::backups::call;
use super::engine::Engine;
use super::layout::fence_mount;
use crate::real::router::RESET_PATH as ROUTER_RESET_PATH;
use crate::stack::control::{WATCHDOG_HOLD_PATH, WATCHDOG_RESET_PATH, WatchdogResetRequest};
use crate::stack::ports::DbNode;

/// Longest a database container may take to stop cleanly before it is killed.
const STOP_MAX: Duration = Duration::from_secs(20);
/// Longest the rejoined target may take to stream from the current primary.
const STREAM_MAX: Duration = Duration::from_secs(60);
/// Longest the target may take to replay the stopped primary's shutdown checkpoint.
const CATCH_UP_MAX: Duration = Duration::from_secs(10);
/// How often the target is asked while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// Longest wait for a control call (the watchdog's hold waits out a tick in progress).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one `psql` or script run in the watchdog's container.
const EXEC_MAX: Duration = Duration::from_secs(120);

/// Run in the watchdog's container as `bash -c FOLLOW bash MODE DIR PRIMARY`: with `rejoin`,
/// resynchronise the stopped node in `DIR` from `PRIMARY` (pg_rewind, else a fresh base
/// backup); then, in both modes, make it `PRIMARY`'s standby on its next start.
const FOLLOW: &str = r#"set -euo pipefail
mode=$1 dir=$2 primary=$3
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ "$mode" = rejoin ]; then
    # The node is stopped. Its lock file's pid means nothing in this pid namespace, and
    # pg_rewind's own crash recovery (single-user mode) refuses to run as a standby.
    rm -f "$dir/postmaster.pid" "$dir/standby.signal" "$dir/recovery.signal"
    if as_pg pg_rewind -D "$dir" --progress \
        --source-server="host=$primary port=5432 user=postgres dbname=postgres connect_timeout=5"; then
        echo "failback: rewound $dir from $primary"
    else
        echo "failback: pg_rewind failed; cloning $primary afresh (pg_basebackup)"
        find "$dir" -mindepth 1 -delete
        as_pg env PGCONNECT_TIMEOUT=5 pg_basebackup -h "$primary" -p 5432 -U postgres -D "$dir" \
            -X stream -c fast
    fi
fi
# Last values win over what pg_rewind copied from the primary and what fencing wrote.
cat >>"$dir/postgresql.auto.conf" <<EOF
# shakedown failback: a standby of $primary
primary_conninfo = 'host=$primary port=5432 user=postgres application_name=standby'
primary_slot_name = 'standby'
recovery_target_timeline = 'latest'
cluster_name = 'standby'
synchronous_standby_names = ''
default_transaction_read_only = off
EOF
touch "$dir/standby.signal"
chown postgres:postgres "$dir/standby.signal" "$dir/postgresql.auto.conf"
"#;

/// Make the standby's slot on a primary (a promoted standby has none).
const CREATE_SLOT: &str = "SELECT count(pg_create_physical_replication_slot('standby')) \
     FROM (SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'standby')) s";

/// A `failback: TARGET` (see the module doc). `ports` are the run's published ports (the
/// watchdog's and `db-router`'s control).
pub(super) async fn failback(
    engine: &Engine,
    ports: &BTreeMap<String, u16>,
    target: DbNode,
) -> Result<(), String> {
    let ops = Ops::new(engine, ports)?;
    let current = target.peer();
    match ops.psql(current, "SELECT pg_is_in_recovery()").await.as_deref() {
        Ok("f") => {}
        Ok(_) => {
            if ops.psql(target, "SELECT pg_is_in_recovery()").await.as_deref() == Ok("f") {
                tracing::info!(target = target.host(), "failback: already the primary");
                return Ok(());
            }
            return Err(format!(
                "failback to {}: {} is not the primary (in recovery); nothing to fail back from",
                target.host(),
                current.host()
            ));
        }
        Err(why) => {
            return Err(format!(
                "failback to {}: the primary {} does not answer: {why}",
                target.host(),
                current.host()
            ));
        }
    }
    let began = Instant::now();
    ops.rejoin(target, current).await?;
    tracing::info!(target = target.host(), after = ?began.elapsed(), "failback: the old primary streams as a standby");
    ops.switchover(target, current).await?;
    tracing::info!(target = target.host(), after = ?began.elapsed(), "failback: planned switchover done");
    Ok(())
}

/// What a failback acts through.
struct Ops<'a> {
    engine: &'a Engine,
    /// The watchdog's container: it mounts both data volumes and has the PostgreSQL tools.
    tools: String,
    /// The watchdog's control address on 127.0.0.1.
    watchdog: String,
    /// `db-router`'s admin address on 127.0.0.1, if the run has one.
    router: Option<String>,
}

impl<'a> Ops<'a> {
    fn new(engine: &'a Engine, ports: &BTreeMap<String, u16>) -> Result<Ops<'a>, String> {
        let at = |host: &str| ports.get(host).map(|port| format!("127.0.0.1:{port}"));
        Ok(Ops {
            engine,
            tools: engine.names.container("watchdog"),
            watchdog: at("watchdog").ok_or("failback needs the watchdog, and this run has none")?,
            router: at("db-router"),
        })
    }

    fn container(&self, node: DbNode) -> String {
        self.engine.names.container(node.host())
    }

    /// Step 1: `target` resynchronised from `primary` and streaming from it.
    async fn rejoin(&self, target: DbNode, primary: DbNode) -> Result<(), String> {
        let clean = self.engine.stop_with(&self.container(target), "SIGINT", STOP_MAX).await?;
        tracing::info!(target = target.host(), clean, "failback: the old primary stopped");
        self.follow("rejoin", target, primary).await?;
        self.psql(primary, CREATE_SLOT).await?;
        self.engine.restart(&self.container(target)).await?;
        self.wait_for(target, "SELECT status FROM pg_stat_wal_receiver", "streaming", STREAM_MAX)
            .await
            .map_err(|last| {
                format!(
                    "failback: {} did not stream from {} within {} s (STREAM_MAX); last answer: {last}",
                    target.host(),
                    primary.host(),
                    STREAM_MAX.as_secs()
                )
            })
    }

    /// Step 2: the planned switchover from `primary` to its streaming standby `target`.
    async fn switchover(&self, target: DbNode, primary: DbNode) -> Result<(), String> {
        call::<_, serde::de::IgnoredAny>(&self.watchdog, WATCHDOG_HOLD_PATH, &(), CONTROL_TIMEOUT).await?;
        let clean = self.engine.stop_with(&self.container(primary), "SIGINT", STOP_MAX).await?;
        let checkpoint = if clean { self.shutdown_checkpoint(primary).await } else { Err("killed".into()) };
        let caught_up = match checkpoint {
            Ok(lsn) => self.replayed_past(target, &lsn).await,
            Err(why) => Err(format!("{} did not shut down cleanly: {why}", primary.host())),
        };
        if let Err(why) = caught_up {
            // Nothing promoted: the old primary takes writes again, as it was.
            self.engine.restart(&self.container(primary)).await?;
            self.reset(primary, false).await?;
            return Err(format!("failback to {} abandoned: {why}", target.host()));
        }
        let promoted = self.psql(target, "SELECT pg_promote(true, 30)").await?;
        if promoted != "t" {
            return Err(format!("failback: {} did not promote within 30 s", target.host()));
        }
        self.psql(target, CREATE_SLOT).await?;
        self.follow("follow", primary, target).await?;
        self.reset(target, true).await?;
        self.engine.restart(&self.container(primary)).await
    }

    /// `db-router` takes both nodes in service again; the watchdog watches `primary`.
    async fn reset(&self, primary: DbNode, switchover: bool) -> Result<(), String> {
        if let Some(router) = &self.router {
            call::<_, serde::de::IgnoredAny>(router, ROUTER_RESET_PATH, &(), CONTROL_TIMEOUT).await?;
        }
        let reset = WatchdogResetRequest { primary, switchover };
        call::<_, serde::de::IgnoredAny>(&self.watchdog, WATCHDOG_RESET_PATH, &reset, CONTROL_TIMEOUT)
            .await
            .map(drop)
    }

    /// The stopped `node`'s shutdown checkpoint LSN (`pg_controldata`), checking it shut down.
    async fn shutdown_checkpoint(&self, node: DbNode) -> Result<String, String> {
        let out = self.run(&["pg_controldata", fence_mount(node)]).await?;
        shutdown_checkpoint(&out).ok_or_else(|| format!("pg_controldata says: {out}"))
    }

    /// Wait until `node` replayed past `lsn`.
    async fn replayed_past(&self, node: DbNode, lsn: &str) -> Result<(), String> {
        let query = format!("SELECT pg_last_wal_replay_lsn() > '{lsn}'::pg_lsn");
        self.wait_for(node, &query, "t", CATCH_UP_MAX).await.map_err(|last| {
            format!(
                "{} did not replay past the shutdown checkpoint {lsn} within {} s (CATCH_UP_MAX): {last}",
                node.host(),
                CATCH_UP_MAX.as_secs()
            )
        })
    }

    /// Ask `node` `sql` every [`POLL_EVERY`] until it answers `want`, for at most `max`; the last
    /// answer (or error) if it never did.
    async fn wait_for(&self, node: DbNode, sql: &str, want: &str, max: Duration) -> Result<(), String> {
        let deadline = Instant::now() + max;
        loop {
            let answer = self.psql(node, sql).await;
            if answer.as_deref() == Ok(want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{answer:?}"));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// [`FOLLOW`] on `node`'s volume, `primary` its primary.
    async fn follow(&self, mode: &str, node: DbNode, primary: DbNode) -> Result<(), String> {
        let out = self
            .run(&["bash", "-c", FOLLOW, "bash", mode, fence_mount(node), &self.container(primary)])
            .await?;
        tracing::info!(node = node.host(), mode, output = %out.trim(), "failback: configured as a standby");
        Ok(())
    }

    /// One statement on `node` (by its container name), its single value, trimmed.
    async fn psql(&self, node: DbNode, sql: &str) -> Result<String, String> {
        let host = self.container(node);
        let out = self
            .run(&[
                "env",
                "PGCONNECT_TIMEOUT=3",
                "psql",
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &host,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .await?;
        Ok(out.trim().to_string())
    }

    /// A command in the watchdog's container: its output, or an error with it.
    async fn run(&self, cmd: &[&str]) -> Result<String, String> {
        let exec = self.engine.exec_named(&self.tools, cmd);
        let (code, out) = tokio::time::timeout(EXEC_MAX, exec)
            .await
            .map_err(|_| format!("`{}` took over {} s", cmd[0], EXEC_MAX.as_secs()))??;
        if code == 0 {
            Ok(out)
        } else {
            Err(format!(
                "`{}` exited {code}: {}",
                cmd.iter().take(2).copied().collect::<Vec<_>>().join(" "),
                out.trim()
            ))
        }
    }
}

/// The shutdown checkpoint's location in `pg_controldata` output, if the cluster was shut down
/// cleanly (as a primary: `shut down`, not `shut down in recovery` or `in production`).
fn shutdown_checkpoint(controldata: &str) -> Option<String> {
    let field = |name: &str| {
        controldata.lines().find_map(|line| line.strip_prefix(name)).map(|rest| rest.trim().to_string())
    };
    (field("Database cluster state:")? == "shut down").then_some(())?;
    field("Latest checkpoint location:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clean_shutdown_gives_a_checkpoint_to_wait_for() {
        let clean = "pg_control version number:            1300\n\
                     Database cluster state:               shut down\n\
                     Latest checkpoint location:           0/3000028\n";
        assert_eq!(shutdown_checkpoint(clean).as_deref(), Some("0/3000028"));
        let crashed = clean.replace("shut down", "in production");
        assert_eq!(shutdown_checkpoint(&crashed), None);
        let standby = clean.replace("shut down", "shut down in recovery");
        assert_eq!(shutdown_checkpoint(&standby), None);
    }
}
