//! Failover on real PostgreSQL: SIGKILL the primary's postmaster, let the watchdog fence it,
//! promote the standby and repoint the writer endpoint; measure the time to the first successful
//! write; restart the old primary and see whether it takes writes. Each test recreates the pair
//! with `scripts/real-services.sh up` first (a failover consumes it). Run by `make test-real`.
#![cfg(feature = "real")]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::real::{cluster, unique};
use shakedown::real::NodeConfig;
use shakedown::scenario::model::{Replication, WatchdogConfig};
use shakedown::scenario::units::Span;
use shakedown::stack::bugs::Bugs;
use shakedown::stack::ports::{DbAdmin, DbNode, InvestStore, NewInvestment, PortError};
use shakedown::stack::watchdog::{self, WatchdogState};

fn script(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/real-services.sh");
    let status = Command::new(&script).args(args).status().expect("run scripts/real-services.sh");
    assert!(status.success(), "scripts/real-services.sh {args:?} failed");
}

fn postmaster_pid(node: DbNode) -> i32 {
    let dir = NodeConfig::from_env(node).data_dir;
    let text = std::fs::read_to_string(dir.join("postmaster.pid"))
        .unwrap_or_else(|e| panic!("{}: no postmaster.pid ({e}): is PostgreSQL running?", dir.display()));
    text.lines().next().and_then(|l| l.trim().parse().ok()).expect("a pid on the first line")
}

/// Start the old primary again on its (possibly fenced) data directory.
fn restart(node: DbNode) {
    let dir = NodeConfig::from_env(node).data_dir;
    // The killed postmaster may linger as a zombie: this sandbox's PID 1 does not reap orphans,
    // and PostgreSQL refuses to start while the pid in its lock file exists. An init system
    // would have reaped it; here, drop the stale lock file once the pid is dead or a zombie.
    let pid = postmaster_pid(node);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.is_empty() || status.lines().any(|l| l.starts_with("State:") && l.contains('Z')) {
            let _ = std::fs::remove_file(dir.join("postmaster.pid"));
            // Its socket lock files name the same pid.
            let sockets = dir.with_file_name("sock");
            for entry in std::fs::read_dir(&sockets).into_iter().flatten().flatten() {
                let path = entry.path();
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                if path.extension().is_some_and(|e| e == "lock")
                    && owner.lines().next() == Some(&pid.to_string())
                {
                    let _ = std::fs::remove_file(path.with_extension(""));
                    let _ = std::fs::remove_file(&path);
                }
            }
            break;
        }
        assert!(Instant::now() < deadline, "the killed postmaster {pid} is still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = dir.with_file_name("logs").join("restart.log");
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D"])
        .arg(&dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "30", "start"])
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl start {} failed; see {}", dir.display(), log.display());
}

fn new(key: String) -> NewInvestment {
    NewInvestment { key, coin: "bitcoin".into(), amount_usd_cents: 1000, price_usd_micros: 1 }
}

/// SIGKILL the primary under a running watchdog; return the time to the first successful write
/// through the writer endpoint, and whether the restarted old primary then takes a write.
async fn failover(bugs: Bugs) -> (Duration, bool, WatchdogState) {
    script(&["up"]);
    let cluster = cluster().await;
    cluster.record(new(unique("before"))).await.expect("the primary takes writes");
    let state = WatchdogState::default();
    let config = WatchdogConfig {
        probe_every: Span(Duration::from_millis(200)),
        probe_timeout: Span(Duration::from_millis(200)),
        failures_to_promote: 3,
        ..WatchdogConfig::default()
    };
    // scripts/real-services.sh streams asynchronously; the standby is well within `max_lag`.
    let settings = watchdog::Settings { config, replication: Replication::Async, bugs };
    tokio::spawn(watchdog::run(Arc::new(cluster.clone()), settings, state.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    Command::new("kill").args(["-KILL", &postmaster_pid(DbNode::PgPrimary).to_string()]).status().unwrap();
    let mut attempts = 0;
    let elapsed = loop {
        // Orphaned backends of a SIGKILLed postmaster can still commit for a moment: count only
        // writes through the promoted node.
        attempts += 1;
        if cluster.writer() == DbNode::PgReplica && cluster.record(new(unique("after"))).await.is_ok() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no write succeeded within 60 s ({attempts} tries)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "failover: SIGKILL of the primary → first successful write: {} ms ({attempts} tries)",
        elapsed.as_millis()
    );
    assert_eq!(cluster.writer(), DbNode::PgReplica, "the writer endpoint follows the watchdog");
    restart(DbNode::PgPrimary);
    let old = sqlx::PgPool::connect(&NodeConfig::from_env(DbNode::PgPrimary).url)
        .await
        .expect("the old primary is up");
    let took_write = sqlx::query(
        "INSERT INTO investments (key, coin, amount_usd_cents, price_usd_micros, lsn) VALUES ($1, 'bitcoin', 1, 1, 0)",
    )
    .bind(unique("split-brain"))
    .execute(&old)
    .await
    .is_ok();
    (elapsed, took_write, state)
}

#[tokio::test]
async fn the_watchdog_promotes_the_standby_after_sigkill_and_the_old_primary_refuses_writes() {
    let (elapsed, took_write, state) = failover(Bugs::default()).await;
    let view = state.view();
    assert_eq!((view.primary, view.promotions), (DbNode::PgReplica, 1));
    assert_eq!(view.fenced, vec![DbNode::PgPrimary]);
    assert!(!took_write, "the fenced old primary, restarted, must refuse writes");
    assert!(elapsed < Duration::from_secs(10), "failover took {elapsed:?}; the aim is under 5 s");
    script(&["down"]);
}

#[tokio::test]
async fn bug_no_fencing_lets_the_restarted_old_primary_take_writes() {
    let (_, took_write, state) = failover(Bugs { no_fencing: true, ..Bugs::default() }).await;
    assert!(state.view().fenced.is_empty());
    assert!(took_write, "the planted bug: the unfenced old primary comes back writable (split brain)");
    script(&["down"]);
}

/// The db-router follows the nodes, not the watchdog: with the standby promoted while the old
/// primary still takes writes, it keeps routing to `pg-primary` (first in order: the split brain
/// fencing prevents); once the old primary is fenced, new connections land on the promoted
/// standby within ~1 s, the connection held to the old primary is cut, and `GET /route` says so.
#[tokio::test]
async fn the_db_router_moves_to_the_promoted_standby_once_the_old_primary_is_fenced() {
    use common::real::{db_router, landed_on, route, within};
    use shakedown::stack::ports::DbAdmin;
    use sqlx::Connection;
    script(&["up"]);
    let cluster = cluster().await;
    let admin_port = common::real::free_port();
    let (_router, url) = db_router(common::real::free_port(), admin_port).await;
    let admin = &format!("127.0.0.1:{admin_port}");
    let mut held = sqlx::PgConnection::connect(&url).await.unwrap();
    cluster.promote(DbNode::PgReplica).await.expect("pg_promote() of the standby");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(route(admin).await.unwrap().0, "pg-primary", "both take writes: the first in order wins");
    assert_eq!(landed_on(&url).await.unwrap(), "primary");
    let fenced = Instant::now();
    cluster.fence(DbNode::PgPrimary).await.expect("fencing the old primary");
    within("the route moves to pg-replica", Duration::from_secs(1), async || {
        route(admin).await.is_some_and(|(node, _)| node == "pg-replica")
    })
    .await;
    let moved = fenced.elapsed();
    within("new connections land on the promoted standby", Duration::from_secs(1), async || {
        landed_on(&url).await.is_ok_and(|name| name == "standby")
    })
    .await;
    eprintln!(
        "db-router: route moved {} ms after the fence; new connections on the standby after {} ms",
        moved.as_millis(),
        fenced.elapsed().as_millis()
    );
    assert!(sqlx::query("SELECT 1").execute(&mut held).await.is_err(), "the old connection was cut");
    let (_, changes) = route(admin).await.unwrap();
    assert_eq!(changes, 2, "none → pg-primary → pg-replica");
    let write = sqlx::query(
        "INSERT INTO investments (key, coin, amount_usd_cents, price_usd_micros, lsn) VALUES ($1, 'bitcoin', 1, 1, 0)",
    )
    .bind(unique("through-router"))
    .execute(&mut sqlx::PgConnection::connect(&url).await.unwrap())
    .await;
    assert!(write.is_ok(), "a write through the router commits on the new primary: {write:?}");
    script(&["down"]);
}

/// The containers' failover, on loopback processes: `serve watchdog` (timings from
/// `SHAKEDOWN_STACK`, repointing the db-router through `SHAKEDOWN_DB_ROUTER_ADMIN`) and
/// `serve db-router`. After SIGKILL of the primary, the watchdog fences it and promotes the
/// standby; the router routes to `pg-replica` and records the watchdog's declared writer.
#[tokio::test]
async fn serve_watchdog_and_db_router_fail_over_after_sigkill_of_the_primary() {
    use common::real::{call, db_router, landed_on, serve_with, within};
    script(&["up"]);
    cluster().await;
    let admin_port = common::real::free_port();
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    let (_router, url) = db_router(common::real::free_port(), admin_port).await;
    // The pair `real-services.sh` starts streams asynchronously: the watchdog must be told so, or
    // it rightly refuses to promote a standby that was never synchronous.
    let stack = r#"{"replication": "async", "watchdog": {"probe_every": "200ms", "probe_timeout": "200ms", "failures_to_promote": 3}}"#;
    let _watchdog = serve_with(
        &["watchdog"],
        &[
            ("SHAKEDOWN_STACK", stack),
            ("SHAKEDOWN_DB_ROUTER_ADMIN", admin_url.as_str()),
            ("RUST_LOG", "info"),
        ],
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let killed = Instant::now();
    Command::new("kill").args(["-KILL", &postmaster_pid(DbNode::PgPrimary).to_string()]).status().unwrap();
    let admin = &format!("127.0.0.1:{admin_port}");
    within("the db-router routes to the promoted standby", Duration::from_secs(15), async || {
        call(http::Method::GET, admin, "/route", None)
            .await
            .is_some_and(|(_, body)| body["route"] == "pg-replica" && body["writer"] == "pg-replica")
    })
    .await;
    eprintln!(
        "serve watchdog + db-router: SIGKILL → routed to pg-replica in {} ms",
        killed.elapsed().as_millis()
    );
    assert_eq!(landed_on(&url).await.unwrap(), "standby");
    script(&["down"]);
}

/// `pg_ctl` on a node's data directory, as the postgres user.
fn pg_ctl(node: DbNode, args: &[&str]) {
    let dir = NodeConfig::from_env(node).data_dir;
    let log = dir.with_file_name("logs").join(format!("{}-pg_ctl.log", node.host()));
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D"])
        .arg(&dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "30"])
        .args(args)
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl {args:?} on {} failed; see {}", dir.display(), log.display());
}

/// `SHOW synchronous_standby_names` on the primary.
async fn sync_names(primary: &sqlx::PgPool) -> String {
    sqlx::query_scalar("SHOW synchronous_standby_names").fetch_one(primary).await.expect("SHOW")
}

/// Non-strict synchronous replication on real PostgreSQL, in Patroni's order. The pair from
/// `real-services.sh` is made synchronous (`synchronous_standby_names = 'standby'`, as
/// `docker/node.sh` creates a `sync` primary), a `sync` watchdog runs, and the standby is
/// stopped (`pg_ctl stop -m fast`). A strict primary would block every commit from then on;
/// here the watchdog records the standby not synchronous, then empties the list, and a write
/// issued right after the stop completes within a few seconds. Restarted, the standby streams
/// and catches up; the watchdog names it again and counts it synchronous once a probe says so.
#[tokio::test]
async fn a_sync_primary_whose_standby_stops_commits_alone_once_the_watchdog_releases_it() {
    use common::real::within;
    use shakedown::stack::watchdog::SyncWait;
    script(&["up"]);
    let cluster = cluster().await;
    let primary = sqlx::PgPool::connect(&NodeConfig::from_env(DbNode::PgPrimary).url).await.unwrap();
    sqlx::query("ALTER SYSTEM SET synchronous_standby_names = 'standby'").execute(&primary).await.unwrap();
    sqlx::query("SELECT pg_reload_conf()").execute(&primary).await.unwrap();
    let state = WatchdogState::default();
    let config = WatchdogConfig {
        probe_every: Span(Duration::from_millis(200)),
        probe_timeout: Span(Duration::from_millis(500)),
        failures_to_promote: 3,
        ..WatchdogConfig::default()
    };
    let settings = watchdog::Settings { config, replication: Replication::Sync, bugs: Bugs::default() };
    let watchdog = tokio::spawn(watchdog::run(Arc::new(cluster.clone()), settings, state.clone()));
    let synchronous = |state: &WatchdogState| {
        let view = state.view();
        view.sync_wait == SyncWait::Required && view.standby.is_some_and(|s| s.sync && s.streaming)
    };
    within("the watchdog sees a synchronous standby", Duration::from_secs(10), async || synchronous(&state))
        .await;
    cluster.record(new(unique("sync-before"))).await.expect("a synchronous commit");

    pg_ctl(DbNode::PgReplica, &["-m", "fast", "stop"]);
    let stopped = Instant::now();
    let write = tokio::time::timeout(Duration::from_secs(5), cluster.record(new(unique("alone")))).await;
    let committed = stopped.elapsed();
    assert!(matches!(write, Ok(Ok(_))), "a write after the standby stopped: {write:?} after {committed:?}");
    eprintln!(
        "non-strict sync: standby stopped → a write committed alone after {} ms",
        committed.as_millis()
    );
    let view = state.view();
    assert_eq!(view.sync_wait, SyncWait::Released);
    assert_eq!(view.standby.map(|s| s.sync), Some(false), "the view said 'not synchronous' first");
    assert_eq!(sync_names(&primary).await, "");
    assert_eq!((view.primary, view.promotions), (DbNode::PgPrimary, 0), "no failover");

    pg_ctl(DbNode::PgReplica, &["start"]);
    let restarted = Instant::now();
    within("the standby is synchronous again", Duration::from_secs(15), async || synchronous(&state)).await;
    eprintln!(
        "non-strict sync: standby restarted → synchronous again after {} ms",
        restarted.elapsed().as_millis()
    );
    assert_eq!(sync_names(&primary).await, "standby");
    let sync_state: String =
        sqlx::query_scalar("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")
            .fetch_one(&primary)
            .await
            .unwrap();
    assert_eq!(sync_state, "sync");
    cluster.record(new(unique("sync-after"))).await.expect("a synchronous commit again");
    watchdog.abort();
    script(&["down"]);
}

/// A fenced node that streams as a standby again is unfenced (`DbAdmin::unfence`, what the
/// watchdog does once a rewound old primary streams): its storage's read-only setting is lifted,
/// so once promoted it takes writes. A node that is not a streaming standby is refused.
#[tokio::test]
async fn a_fenced_node_streaming_again_is_unfenced_and_takes_writes_once_promoted() {
    script(&["up"]);
    let cluster = cluster().await;
    cluster.record(new(unique("before"))).await.expect("the primary takes writes");
    let refused = cluster.unfence(DbNode::PgPrimary).await;
    assert!(matches!(refused, Err(PortError::Rejected(_))), "a primary is not unfenced: {refused:?}");
    cluster.fence(DbNode::PgReplica).await.expect("fencing the standby");
    restart(DbNode::PgReplica);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(why) = cluster.unfence(DbNode::PgReplica).await {
        assert!(Instant::now() < deadline, "the restarted standby was not unfenced within 30 s: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.promote(DbNode::PgReplica).await.expect("promoting the unfenced standby");
    let promoted = sqlx::PgPool::connect(&NodeConfig::from_env(DbNode::PgReplica).url).await.unwrap();
    sqlx::query(
        "INSERT INTO investments (key, coin, amount_usd_cents, price_usd_micros, lsn) VALUES ($1, 'bitcoin', 1, 1, 0)",
    )
    .bind(unique("after-unfence"))
    .execute(&promoted)
    .await
    .expect("the promoted node takes writes: its fence's read-only setting was lifted");
}
