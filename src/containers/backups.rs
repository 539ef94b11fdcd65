//! Backups on containers: the agent's clock, disasters, restores, and what the backups
//! hold at the end of a run. The data work is the backup agent's (`real::agent`, in the `backup`
//! container, which mounts both database volumes); this side stops and starts the database
//! containers around it, as an operator would:
//!
//! - `disaster`: SIGKILL each lost node's container, then the agent empties its data volume.
//! - `restore`: SIGKILL both database containers (a restore rebuilds both); the agent lays the
//!   newest verified base backup and the WAL after it out in `pg-primary`'s volume and empties
//!   `pg-replica`'s; the watchdog and `db-router` are reset (`pg-primary` primary, nothing
//!   fenced); `pg-primary` starts, replays, promotes; its replication slot is made again (a base
//!   backup carries none); `pg-replica` starts on its empty volume and clones the restored
//!   primary (`docker/node.sh`).
//!   The record's recovery point is the commit time of the last transaction recovery replayed
//!   (`pg_last_xact_replay_timestamp()`), on the run's clock.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::engine::Engine;
use crate::check::{BackupsState, RestoreRecord};
use crate::faults::PlannedFault;
use crate::real::agent::{
    RESTORE_PATH, RestorePrepared, RestoreRequest, START_PATH, STORED_PATH, StartRequest, WIPE_PATH,
    WipeRequest,
};
use crate::real::backup::{parse_lsn, unix_ns};
use crate::real::catalogue::RedisCatalogue;
use crate::real::http::RealHttp;
use crate::real::router::RESET_PATH as ROUTER_RESET_PATH;
use crate::stack::control::{WATCHDOG_RESET_PATH, WatchdogResetRequest};
use crate::stack::ports::{Catalogue as _, DbNode, HttpClient as _, HttpRequest};

/// Longest wait for a call to the agent that does no data work.
const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the agent to lay a restore out (verifying and copying a base backup).
const LAYOUT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for the restored primary to replay and take writes.
const RECOVERY_MAX: Duration = Duration::from_secs(120);
/// How often the restored primary is asked whether it left recovery.
const RECOVERY_POLL_EVERY: Duration = Duration::from_millis(100);

/// A run's backups, as the harness sees them.
pub(super) struct Backups {
    /// The agent's address on 127.0.0.1.
    agent: String,
    /// The catalogue's Redis on 127.0.0.1.
    redis_url: String,
    /// The watchdog's control address on 127.0.0.1.
    watchdog: Option<String>,
    /// `db-router`'s admin address on 127.0.0.1.
    router: Option<String>,
    /// `pg-primary` on its published port.
    primary_url: String,
    /// The run's t = 0 on the wall clock, ns since the epoch (the nodes' commit times are).
    start_unix_ns: u64,
    /// When the last `disaster` struck, ns from the start.
    last_disaster_ns: Mutex<Option<u64>>,
    /// The restores, in order.
    restores: Mutex<Vec<RestoreRecord>>,
}

impl Backups {
    /// The run's backups from the published ports; `None` without a `backup` host.
    pub(super) fn new(
        ports: &std::collections::BTreeMap<String, u16>,
        start_wall: SystemTime,
    ) -> Option<Backups> {
        let at = |host: &str| ports.get(host).map(|port| format!("127.0.0.1:{port}"));
        Some(Backups {
            agent: at("backup")?,
            redis_url: format!("redis://{}", at("redis")?),
            watchdog: at("watchdog"),
            router: at("db-router"),
            primary_url: format!("postgres://postgres@{}/postgres", at("pg-primary")?),
            start_unix_ns: unix_ns(start_wall),
            last_disaster_ns: Mutex::new(None),
            restores: Mutex::new(Vec::new()),
        })
    }

    /// Tell the agent the run's clock: base backups start on its grid.
    pub(super) async fn start(&self) -> Result<(), String> {
        let request = StartRequest { start_unix_ns: self.start_unix_ns };
        call::<_, serde::de::IgnoredAny>(&self.agent, START_PATH, &request, AGENT_CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// A `disaster`: the nodes die and their storage is emptied. The data is lost when the last
    /// of them died (a write another acknowledged meanwhile was acknowledged before the loss).
    pub(super) async fn disaster(
        &self,
        engine: &Engine,
        hosts: &[String],
        start: Instant,
    ) -> Result<(), String> {
        for host in hosts {
            engine.kill_if_running(&engine.names.container(host)).await?;
        }
        *self.last_disaster_ns.lock().expect("disaster lock") = Some(start.elapsed().as_nanos() as u64);
        for host in hosts {
            let request = WipeRequest { host: host.clone() };
            call::<_, serde::de::IgnoredAny>(&self.agent, WIPE_PATH, &request, AGENT_CALL_TIMEOUT).await?;
        }
        Ok(())
    }

    /// A `restore` (see the module doc), recorded for the restore check.
    pub(super) async fn restore(
        &self,
        engine: &Engine,
        fault: &PlannedFault,
        to: Option<Duration>,
        start: Instant,
    ) -> Result<(), String> {
        let requested_ns = fault.start.as_nanos() as u64;
        for node in [DbNode::PgPrimary, DbNode::PgReplica] {
            engine.kill_if_running(&engine.names.container(node.host())).await?;
        }
        let target_ns = to.map(|t| t.as_nanos() as u64);
        let request = RestoreRequest { target_unix_ns: target_ns.map(|t| self.start_unix_ns + t) };
        let prepared: RestorePrepared = call(&self.agent, RESTORE_PATH, &request, LAYOUT_TIMEOUT).await?;
        let lost_at_ns = self.last_disaster_ns.lock().expect("disaster lock").unwrap_or(requested_ns);
        let mut record = RestoreRecord {
            requested_ns,
            lost_at_ns,
            target_ns,
            base: prepared.base.clone(),
            skipped: prepared.skipped.clone(),
            segments: prepared.segments,
            stopped: prepared.stopped.clone(),
            ..RestoreRecord::default()
        };
        tracing::info!(?prepared, "restore laid out");
        if prepared.base.is_some() {
            if let Some(watchdog) = &self.watchdog {
                let reset = WatchdogResetRequest { primary: DbNode::PgPrimary, switchover: false };
                call::<_, serde::de::IgnoredAny>(watchdog, WATCHDOG_RESET_PATH, &reset, AGENT_CALL_TIMEOUT)
                    .await?;
            }
            // A node fenced before the disaster is a new node now: back in service.
            if let Some(router) = &self.router {
                call::<_, serde::de::IgnoredAny>(router, ROUTER_RESET_PATH, &(), AGENT_CALL_TIMEOUT).await?;
            }
            engine.restart(&engine.names.container(DbNode::PgPrimary.host())).await?;
            let (lsn, replayed_until) = self.recovered().await?;
            record.recovered_lsn = lsn;
            record.recovered_until_ns = replayed_until.map_or(0, |t| t.saturating_sub(self.start_unix_ns));
            record.completed_ns = Some(start.elapsed().as_nanos() as u64);
            engine.restart(&engine.names.container(DbNode::PgReplica.host())).await?;
        }
        self.restores.lock().expect("restores lock").push(record);
        Ok(())
    }

    /// Wait until the restored primary left recovery; make its standby's slot; its LSN and the
    /// commit time of the last transaction recovery replayed (ns since the epoch).
    async fn recovered(&self) -> Result<(u64, Option<u64>), String> {
        use sqlx::Connection as _;
        let deadline = Instant::now() + RECOVERY_MAX;
        let mut last = String::from("not asked yet");
        while Instant::now() < deadline {
            let attempt = async {
                let mut connection =
                    sqlx::PgConnection::connect(&self.primary_url).await.map_err(|e| e.to_string())?;
                let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut connection)
                    .await
                    .map_err(|e| e.to_string())?;
                if in_recovery {
                    return Err("still in recovery".to_string());
                }
                sqlx::query(
                    "SELECT pg_create_physical_replication_slot('standby') \
                     WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'standby')",
                )
                .execute(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
                let (lsn, replayed): (String, Option<f64>) = sqlx::query_as(
                    "SELECT pg_current_wal_lsn()::text, \
                     extract(epoch FROM pg_last_xact_replay_timestamp())::float8",
                )
                .fetch_one(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
                let _ = connection.close().await;
                Ok((parse_lsn(&lsn).unwrap_or(0), replayed.map(|s| (s * 1e9) as u64)))
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(why)) => last = why,
                Err(_) => last = "no answer within 2 s".into(),
            }
            tokio::time::sleep(RECOVERY_POLL_EVERY).await;
        }
        Err(format!(
            "the restored pg-primary did not take writes within {} s (RECOVERY_MAX): {last}",
            RECOVERY_MAX.as_secs()
        ))
    }

    /// The catalogue, what the agent stores, and the restores, for the final state.
    pub(super) async fn state(&self) -> Result<BackupsState, String> {
        let catalogue = RedisCatalogue::new(&self.redis_url).map_err(|e| e.to_string())?;
        let mut entries = catalogue.list().await.map_err(|e| format!("listing the catalogue: {e}"))?;
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        let stored = get(&self.agent, STORED_PATH, LAYOUT_TIMEOUT).await?;
        let restores = self.restores.lock().expect("restores lock").clone();
        Ok(BackupsState { catalogue: entries, stored, restores })
    }
}

/// `POST path` with a JSON body to a control address; the JSON answer.
pub(super) async fn call<B: Serialize, T: DeserializeOwned>(
    authority: &str,
    path: &str,
    body: &B,
    timeout: Duration,
) -> Result<T, String> {
    let body = serde_json::to_vec(body).expect("the request serialises");
    send(authority, http::Method::POST, path, Some(body), timeout).await
}

async fn get<T: DeserializeOwned>(authority: &str, path: &str, timeout: Duration) -> Result<T, String> {
    send(authority, http::Method::GET, path, None, timeout).await
}

async fn send<T: DeserializeOwned>(
    authority: &str,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<T, String> {
    let request = HttpRequest {
        method,
        authority: authority.to_string(),
        path: path.to_string(),
        body,
        headers: Vec::new(),
    };
    let response = RealHttp::new(Default::default())
        .send(request, timeout)
        .await
        .map_err(|e| format!("{path} at {authority}: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "{path} at {authority} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ));
    }
    let body = if response.body.is_empty() { b"null".to_vec() } else { response.body };
    serde_json::from_slice(&body).map_err(|e| format!("{path} at {authority}: {e}"))
}
