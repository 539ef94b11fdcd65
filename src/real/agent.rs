//! The backup agent of a containers run (`shakedown serve backup`): the `backup` host.
//! It owns the backup volume, the WAL archive in it, the catalogue in Redis, and the restores.
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | 200 once it listens |
//! | `PUT /wal/NAME` | one archived file from a node's `archive_command` (`shakedown wal-push`): stored under a temporary name, fsynced, renamed into `wal/NAME` — a partition from the backup host fails the push, and PostgreSQL retries it |
//! | `POST /control/start` | [`StartRequest`]: the run's clock. Base backups start on its grid (every multiple of `stack.backup.every`, as on the simulation); the start is kept in the volume, so an agent restarted after a crash stays on the grid |
//! | `POST /control/wipe` | [`WipeRequest`]: empty a database node's data volume (a `disaster`; the node's container is stopped first) |
//! | `POST /control/restore` | [`RestoreRequest`] → [`RestorePrepared`]: rebuild `pg-primary`'s volume from the newest verified base backup plus the catalogued, verified WAL after it, and empty `pg-replica`'s (it is cloned again); the harness then starts the nodes |
//! | `GET /stored` | what the volume holds, as backup id → checksum (the restore check compares the catalogue with it) |
//!
//! Loops: WAL streaming from the writer (`pg_receivewal`, [`super::stream`]) into `stream/`,
//! WAL cataloguing every [`CATALOGUE_EVERY`] ([`backup::catalogue_wal`]), base backups on
//! the grid ([`backup::base_backup_with`], from the writer through `db-router`, at most
//! [`BASE_BACKUP_MAX_RATE`]), and pruning after each: base backups beyond `keep` and the WAL only
//! they needed, catalogue entry first, then the files (a restore never trusts what the
//! catalogue does not list).
//!
//! What a restore and a prune take is `stack::backup_policy`'s decision, the same the
//! simulation's agent carries out: the newest `done` base backup that ended by the target and
//! verifies; then, from the segment holding its start, every catalogued segment whose checksum
//! verifies, contiguous by LSN (the newest timeline's copy where several exist), up to the first
//! gap. This file is the policy's adapter on files: [`ArchiveDirs`] is its `BackupStorage`. A
//! restore to the latest whose chain reached the end of the archive also takes the streamed tail
//! after it ([`super::stream::tail`]: whole segments, then the one being written), so it loses
//! only what had not been streamed when the primary died. The
//! segments are put in the node's `pg_wal` with every timeline history file; recovery replays
//! them with `recovery_target_timeline = 'latest'` and promotes. A point-in-time target is set
//! only when a segment archived after it is in the chain, so recovery can reach it; otherwise the
//! restore replays to the gap and says so in `stopped`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::backup::{
    self, BASE_TAR, BaseBackupOptions, PgTools, directory_checksum, file_checksum, is_segment_name,
    segment_range, unix_ns,
};
use crate::scenario::model::{Bug, Replication, StackConfig};
use crate::stack::backup_policy::{self, BackupStorage};
use crate::stack::ports::{BackupKind, Catalogue, CatalogueEntry};

/// `POST` the run's clock.
pub const START_PATH: &str = "/control/start";
/// `POST` a node's volume to empty.
pub const WIPE_PATH: &str = "/control/wipe";
/// `POST` a restore.
pub const RESTORE_PATH: &str = "/control/restore";
/// `GET` what is stored.
pub const STORED_PATH: &str = "/stored";
/// `PUT` an archived WAL file under this prefix.
pub const WAL_PATH: &str = "/wal/";

/// How often archived WAL is catalogued.
pub const CATALOGUE_EVERY: Duration = Duration::from_millis(250);
/// `pg_basebackup --max-rate`: a backup reads the primary at most this fast (a production habit,
/// so backups do not starve the primary's disk; it also makes a base backup take about a second
/// on the containers stack, as on the simulation).
pub const BASE_BACKUP_MAX_RATE: &str = "16M";
/// Where the data volumes of the database nodes are mounted, one directory per host.
pub const VOLUMES_DIR: &str = "/restore";
/// The file in the backup volume that keeps the run's t = 0 across a restart of the agent.
const START_FILE: &str = "run-start";
/// The backup volume's mount point in the `backup` container.
pub const BACKUP_DIR: &str = "/var/lib/shakedown/backup";

/// The run's clock.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StartRequest {
    /// The run's t = 0, ns since the Unix epoch.
    pub start_unix_ns: u64,
}

/// A node's data volume to empty.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WipeRequest {
    /// `pg-primary` or `pg-replica`.
    pub host: String,
}

/// A restore.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// The recovery target, ns since the Unix epoch; `None`: the latest.
    pub target_unix_ns: Option<u64>,
}

/// What a restore put in place.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePrepared {
    /// The base backup (`None`: no verified one; nothing was restored).
    pub base: Option<String>,
    /// Base backups skipped because they did not verify, with why.
    pub skipped: Vec<String>,
    /// WAL segments put in place after the base.
    pub segments: u32,
    /// Why the chain of segments ends (the archive's end, a gap, the target).
    pub stopped: String,
}

/// What the agent is configured with.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The backup volume: `base/<id>/` and `wal/<segment>`.
    pub dir: PathBuf,
    /// The database nodes' data volumes, `<dir>/<host>`.
    pub volumes: PathBuf,
    /// libpq conninfo of the writer (base backups).
    pub conninfo: String,
    /// Between two base backups.
    pub every: Duration,
    /// Base backups kept.
    pub keep: u32,
    /// The `catalog-before-backup` bug.
    pub done_first: bool,
    /// How the restored primary waits for its standby.
    pub replication: Replication,
}

impl AgentConfig {
    /// From the stack; `conninfo` of the writer.
    pub fn for_stack(stack: &StackConfig, conninfo: String) -> AgentConfig {
        let backup = stack.backup.clone().unwrap_or_default();
        AgentConfig {
            dir: PathBuf::from(BACKUP_DIR),
            volumes: PathBuf::from(VOLUMES_DIR),
            conninfo,
            every: backup.every.get(),
            keep: backup.keep.max(1),
            done_first: stack.bugs.contains(&Bug::CatalogBeforeBackup),
            replication: stack.replication,
        }
    }

    fn base_dir(&self) -> PathBuf {
        self.dir.join("base")
    }

    fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    fn stream_dir(&self) -> PathBuf {
        self.dir.join(super::stream::STREAM_DIR)
    }

    fn start_file(&self) -> PathBuf {
        self.dir.join(START_FILE)
    }

    fn storage(&self) -> ArchiveDirs {
        ArchiveDirs { base_dir: self.base_dir(), wal_dir: self.wal_dir() }
    }
}

/// The backup volume's directories as the policy's storage: an entry verifies if its files are
/// there with the catalogued size and checksum ([`backup::verify`]). Reads whole files: call it
/// off the async threads.
#[derive(Clone, Debug)]
pub struct ArchiveDirs {
    /// `<id>/` per base backup.
    pub base_dir: PathBuf,
    /// One file per segment.
    pub wal_dir: PathBuf,
}

impl BackupStorage for ArchiveDirs {
    fn verify(&self, entry: &CatalogueEntry) -> Result<(), String> {
        match entry.kind {
            BackupKind::Base => backup::verify(entry, &self.base_dir),
            BackupKind::Wal => backup::verify(entry, &self.wal_dir),
        }
    }
}

/// The agent: its configuration, the catalogue, and one lock that keeps pruning and restores
/// apart (a prune must not remove what a restore is copying).
pub struct Agent {
    config: AgentConfig,
    catalogue: Arc<dyn Catalogue>,
    tools: PgTools,
    exclusive: tokio::sync::Mutex<()>,
    start: std::sync::Mutex<Option<u64>>,
}

impl Agent {
    /// A new agent; its volume's directories are made, and a start kept there from before a
    /// crash is read back.
    pub fn new(config: AgentConfig, catalogue: Arc<dyn Catalogue>) -> Result<Arc<Agent>, String> {
        for dir in [config.base_dir(), config.wal_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let start = std::fs::read_to_string(config.start_file()).ok().and_then(|t| t.trim().parse().ok());
        Ok(Arc::new(Agent {
            config,
            catalogue,
            tools: PgTools::from_env(),
            exclusive: tokio::sync::Mutex::new(()),
            start: std::sync::Mutex::new(start),
        }))
    }

    /// Its routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/wal/{name}", put(put_wal))
            .route(START_PATH, post(start))
            .route(WIPE_PATH, post(wipe))
            .route(RESTORE_PATH, post(restore))
            .route(STORED_PATH, get(stored))
            .with_state(self.clone())
    }

    /// Catalogue archived WAL forever.
    pub async fn catalogue_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(CATALOGUE_EVERY).await;
            if let Err(error) = backup::catalogue_wal(&self.config.wal_dir(), &*self.catalogue).await {
                tracing::warn!(%error, "cataloguing archived WAL failed; will retry");
            }
        }
    }

    /// Stream the writer's WAL into the volume forever.
    pub async fn stream_loop(self: Arc<Self>) {
        let config = &self.config;
        super::stream::stream_loop(self.tools.clone(), config.conninfo.clone(), config.stream_dir()).await
    }

    /// Base backups on the run's grid forever (none before the run's start is known).
    pub async fn base_backup_loop(self: Arc<Self>) {
        let every = self.config.every.as_nanos().max(1) as u64;
        loop {
            let Some(start) = *self.start.lock().expect("start lock") else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let now = unix_ns(SystemTime::now()).saturating_sub(start);
            let next = (now / every + 1) * every;
            tokio::time::sleep(Duration::from_nanos(next - now)).await;
            let options = BaseBackupOptions {
                max_rate: Some(BASE_BACKUP_MAX_RATE.into()),
                done_first: self.config.done_first,
            };
            let taken = backup::base_backup_with(
                &self.tools,
                &self.config.conninfo,
                &self.config.base_dir(),
                &*self.catalogue,
                options,
            )
            .await;
            match taken {
                Ok(entry) => {
                    tracing::info!(id = entry.id, size = entry.size, "base backup done");
                    if let Err(error) = self.prune().await {
                        tracing::warn!(%error, "pruning failed; will retry after the next backup");
                    }
                }
                Err(error) => tracing::warn!(%error, "base backup failed"),
            }
        }
    }

    /// Remove what `backup_policy::prune` says (base backups beyond `keep`, and the WAL that
    /// ends before every kept one starts): catalogue entry first, then the files.
    async fn prune(&self) -> Result<(), String> {
        let _exclusive = self.exclusive.lock().await;
        let entries = self.catalogue.list().await.map_err(|e| e.to_string())?;
        let pruned = backup_policy::prune(&entries, self.config.keep);
        for old in &pruned.bases {
            self.catalogue.remove(&old.id).await.map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(self.config.base_dir().join(&old.id));
        }
        for wal in &pruned.wal {
            self.catalogue.remove(&wal.id).await.map_err(|e| e.to_string())?;
            if let Some(name) = wal.id.strip_prefix("wal-") {
                let _ = std::fs::remove_file(self.config.wal_dir().join(name));
            }
        }
        Ok(())
    }

    /// The restore: choose, copy, configure (see the module doc).
    async fn restore(&self, request: RestoreRequest) -> Result<RestorePrepared, String> {
        let _exclusive = self.exclusive.lock().await;
        let entries = self.catalogue.list().await.map_err(|e| format!("listing the catalogue: {e}"))?;
        let (storage, target) = (self.config.storage(), request.target_unix_ns);
        // Verifying reads every candidate's files: off the async threads.
        let stream_dir = self.config.stream_dir();
        let planned = tokio::task::spawn_blocking(move || {
            let choice = backup_policy::choose_base(&entries, target, &storage);
            let chain = choice.base.as_ref().map(|base| backup_policy::wal_chain(&entries, base, &storage));
            let tail = match (&chain, target) {
                (Some(chain), None) => streamed_tail(chain, &stream_dir),
                _ => Vec::new(),
            };
            (choice, chain, tail)
        })
        .await
        .map_err(|e| format!("choosing the base backup: {e}"))?;
        let (choice, chain, tail) = planned;
        let mut prepared = RestorePrepared { skipped: choice.skipped, ..RestorePrepared::default() };
        let primary = self.config.volumes.join("pg-primary");
        let replica = self.config.volumes.join("pg-replica");
        wipe_dir(&replica)?;
        let (Some(base), Some(chain)) = (choice.base, chain) else {
            prepared.stopped = "no verified base backup".into();
            return Ok(prepared);
        };
        let stopped = chain.end_text(lsn_text);
        let target_set = target.is_some_and(|t| chain.passes(t));
        prepared.stopped = match (target, target_set) {
            (Some(_), true) => "the target".into(),
            (Some(_), false) => format!("{stopped}, before the target"),
            (None, _) => stopped,
        };
        if let Some((_, last)) = tail.last() {
            prepared.stopped =
                format!("{}; then {} streamed segment(s), to {last}", prepared.stopped, tail.len());
        }
        prepared.base = Some(base.id.clone());
        prepared.segments = (chain.segments.len() + tail.len()) as u32;
        let target = target.filter(|_| target_set);
        let (wal_dir, replication) = (self.config.wal_dir(), self.config.replication);
        let base_path = self.config.base_dir().join(&base.id);
        let segments = chain.segments;
        let copy = move || lay_out(&base_path, &wal_dir, &segments, &tail, &primary, target, replication);
        tokio::task::spawn_blocking(copy).await.map_err(|e| format!("laying out the restore: {e}"))??;
        chown_postgres(&self.config.volumes.join("pg-primary")).await?;
        Ok(prepared)
    }

    /// Every stored backup: id → checksum of its stored bytes.
    fn stored(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (dir, is_base) in [(self.config.base_dir(), true), (self.config.wal_dir(), false)] {
            let Ok(listing) = std::fs::read_dir(&dir) else { continue };
            for entry in listing.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let (id, sum) = if is_base {
                    (name, directory_checksum(&entry.path()))
                } else if is_segment_name(&name) {
                    (format!("wal-{name}"), file_checksum(&entry.path()))
                } else {
                    continue;
                };
                // A half-written base backup (its agent was killed) still counts as stored,
                // with what it holds: it verifies against no catalogue entry.
                let sum = sum.map_or_else(|error| format!("unreadable: {error}"), |(sum, _)| sum);
                out.insert(id, sum);
            }
        }
        out
    }
}

/// The streamed segments that continue `chain`, when it reached the end of the archive (see
/// [`super::stream::tail`]); none after a gap or with no segment to take the timeline from.
fn streamed_tail(chain: &backup_policy::Chain, stream_dir: &Path) -> Vec<(PathBuf, String)> {
    let (backup_policy::ChainEnd::EndOfArchive { next }, Some(last)) = (&chain.end, chain.segments.last())
    else {
        return Vec::new();
    };
    let name = last.id.strip_prefix("wal-").unwrap_or(&last.id);
    let Some(timeline) = name.get(..8) else { return Vec::new() };
    let size = last.stop_lsn - last.start_lsn;
    super::stream::tail(*next, timeline, size, &super::stream::streamed_files(stream_dir))
}

/// `X/Y`, PostgreSQL's LSN text.
fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Empty a directory (it stays).
fn wipe_dir(dir: &Path) -> Result<(), String> {
    let Ok(listing) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in listing {
        let path = entry.map_err(|e| format!("listing {}: {e}", dir.display()))?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| format!("removing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Unpack the base into `data` (emptied), put the segments, the streamed tail (file, segment
/// name) and every timeline history file in its `pg_wal`, and write the recovery settings.
fn lay_out(
    base: &Path,
    wal_dir: &Path,
    segments: &[CatalogueEntry],
    tail: &[(PathBuf, String)],
    data: &Path,
    target_unix_ns: Option<u64>,
    replication: Replication,
) -> Result<(), String> {
    wipe_dir(data)?;
    let tar = base.join(BASE_TAR);
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(data)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar -xf {} -C {} exited with {status}", tar.display(), data.display()));
    }
    let pg_wal = data.join("pg_wal");
    std::fs::create_dir_all(&pg_wal).map_err(|e| format!("{}: {e}", pg_wal.display()))?;
    let copy = |name: &str| {
        std::fs::copy(wal_dir.join(name), pg_wal.join(name))
            .map(|_| ())
            .map_err(|e| format!("copying {name}: {e}"))
    };
    for segment in segments {
        copy(segment.id.strip_prefix("wal-").unwrap_or(&segment.id))?;
    }
    for (file, name) in tail {
        std::fs::copy(file, pg_wal.join(name)).map_err(|e| format!("copying {}: {e}", file.display()))?;
    }
    for entry in std::fs::read_dir(wal_dir).map_err(|e| format!("{}: {e}", wal_dir.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".history") {
            copy(&name)?;
        }
    }
    let _ = std::fs::remove_file(data.join("standby.signal"));
    std::fs::write(data.join("recovery.signal"), "").map_err(|e| format!("recovery.signal: {e}"))?;
    let (sync_names, commit) = match replication {
        Replication::Async => ("", "on"),
        Replication::Sync => ("standby", "on"),
        Replication::RemoteApply => ("standby", "remote_apply"),
    };
    let mut settings = format!(
        "\n# shakedown restore\n\
         restore_command = 'false'\n\
         recovery_target_timeline = 'latest'\n\
         recovery_target_action = 'promote'\n\
         primary_conninfo = ''\n\
         primary_slot_name = ''\n\
         cluster_name = 'primary'\n\
         synchronous_standby_names = '{sync_names}'\n\
         synchronous_commit = {commit}\n\
         default_transaction_read_only = off\n"
    );
    if let Some(target) = target_unix_ns {
        settings.push_str(&format!("recovery_target_time = '{}'\n", pg_timestamp(target)));
    }
    let auto = data.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    text.push_str(&settings);
    std::fs::write(&auto, text).map_err(|e| format!("{}: {e}", auto.display()))
}

/// A Unix time as a PostgreSQL timestamp with time zone, UTC, to the microsecond.
fn pg_timestamp(unix_ns: u64) -> String {
    let secs = (unix_ns / 1_000_000_000) as i64;
    let micros = (unix_ns % 1_000_000_000) / 1_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{micros:06}+00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Hand a data directory to the `postgres` user, mode 0700 (PostgreSQL refuses anything else).
async fn chown_postgres(dir: &Path) -> Result<(), String> {
    let status = tokio::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .await
        .map_err(|e| format!("chown: {e}"))?;
    if !status.success() {
        return Err(format!("chown -R postgres:postgres {} exited with {status}", dir.display()));
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod 700 {}: {e}", dir.display()))
}

fn failed(status: StatusCode, message: String) -> Response {
    tracing::warn!(%status, message, "backup agent");
    (status, message).into_response()
}

async fn put_wal(
    State(agent): State<Arc<Agent>>,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let is_history = name.ends_with(".history") && name.len() == 16;
    let allowed =
        is_segment_name(&name) || is_history || name.ends_with(".partial") || name.ends_with(".backup");
    if !allowed || name.contains('/') {
        return failed(StatusCode::BAD_REQUEST, format!("{name}: not a WAL file name"));
    }
    if is_segment_name(&name) && segment_range(&name, body.len() as u64).is_none() {
        return failed(StatusCode::BAD_REQUEST, format!("{name}: {} bytes is no segment size", body.len()));
    }
    let dir = agent.config.wal_dir();
    let id = format!("wal-{name}");
    let segment = is_segment_name(&name);
    // Off the async threads: a segment is compared with what is stored, then written and fsynced.
    let stored = tokio::task::spawn_blocking(move || -> Result<Stored, String> {
        let final_path = dir.join(&name);
        if std::fs::read(&final_path).is_ok_and(|held| held == body.as_ref()) {
            return Ok(Stored::Already);
        }
        let replaced = final_path.exists();
        store_file(&dir, &name, &body)?;
        Ok(if replaced { Stored::Replaced } else { Stored::New })
    })
    .await;
    match stored {
        Ok(Ok(Stored::Replaced)) if segment => {
            // Different bytes under a name already archived: catalogue them again.
            tracing::warn!(id, "an archived segment was pushed again with other bytes; re-cataloguing it");
            match agent.catalogue.remove(&id).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => failed(StatusCode::SERVICE_UNAVAILABLE, format!("catalogue: {e}")),
            }
        }
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => failed(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What a `PUT /wal/NAME` did with the bytes.
enum Stored {
    /// The same bytes were stored already (PostgreSQL retried a push that had succeeded).
    Already,
    /// Stored under a new name.
    New,
    /// Stored over different bytes under the same name.
    Replaced,
}

/// Write `bytes` to `dir/.NAME.tmp`, fsync it, rename it to `dir/NAME`, fsync the directory.
fn store_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", dir.display()))
}

async fn start(State(agent): State<Arc<Agent>>, Json(request): Json<StartRequest>) -> Response {
    if let Err(e) = store_file(&agent.config.dir, START_FILE, request.start_unix_ns.to_string().as_bytes()) {
        return failed(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    *agent.start.lock().expect("start lock") = Some(request.start_unix_ns);
    StatusCode::OK.into_response()
}

async fn wipe(State(agent): State<Arc<Agent>>, Json(request): Json<WipeRequest>) -> Response {
    if !matches!(request.host.as_str(), "pg-primary" | "pg-replica") {
        return failed(StatusCode::BAD_REQUEST, format!("{}: not a database node", request.host));
    }
    match wipe_dir(&agent.config.volumes.join(&request.host)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn restore(State(agent): State<Arc<Agent>>, Json(request): Json<RestoreRequest>) -> Response {
    match agent.restore(request).await {
        Ok(prepared) => {
            tracing::info!(?prepared, "restore laid out");
            Json(prepared).into_response()
        }
        Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn stored(State(agent): State<Arc<Agent>>) -> Response {
    let agent = agent.clone();
    match tokio::task::spawn_blocking(move || agent.stored()).await {
        Ok(stored) => Json(stored).into_response(),
        Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::backup_policy::tests::contract::{self, Stored, TestStorage};

    /// The backup volume's directories in a temporary directory.
    struct TempArchive {
        _root: tempfile::TempDir,
        dirs: ArchiveDirs,
    }

    impl BackupStorage for TempArchive {
        fn verify(&self, entry: &CatalogueEntry) -> Result<(), String> {
            self.dirs.verify(entry)
        }
    }

    impl TestStorage for TempArchive {
        fn store(&mut self, entry: &mut CatalogueEntry, stored: Stored) {
            let bytes = entry.id.as_bytes().to_vec();
            let (path, whole) = match entry.kind {
                BackupKind::Base => {
                    let dir = self.dirs.base_dir.join(&entry.id);
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(dir.join(BASE_TAR), &bytes).unwrap();
                    (dir.join(BASE_TAR), directory_checksum(&dir).unwrap())
                }
                BackupKind::Wal => {
                    let path = self.dirs.wal_dir.join(entry.id.strip_prefix("wal-").unwrap());
                    std::fs::write(&path, &bytes).unwrap();
                    (path.clone(), file_checksum(&path).unwrap())
                }
            };
            (entry.checksum, entry.size) = whole;
            match stored {
                Stored::Whole => {}
                Stored::Missing => std::fs::remove_file(&path).unwrap(),
                Stored::Corrupt => {
                    std::fs::write(&path, bytes.iter().map(|b| b ^ 1).collect::<Vec<u8>>()).unwrap()
                }
            }
        }
    }

    /// The real agent's storage (files checked by size and checksum) gets the same decisions
    /// from the policy as the simulation's volume.
    #[test]
    fn the_archive_directories_meet_the_backup_storage_contract() {
        let root = tempfile::tempdir().unwrap();
        let dirs = ArchiveDirs { base_dir: root.path().join("base"), wal_dir: root.path().join("wal") };
        std::fs::create_dir_all(&dirs.base_dir).unwrap();
        std::fs::create_dir_all(&dirs.wal_dir).unwrap();
        contract::run(&mut TempArchive { _root: root, dirs });
    }

    #[test]
    fn timestamps_are_utc_to_the_microsecond() {
        assert_eq!(pg_timestamp(0), "1970-01-01 00:00:00.000000+00");
        // 2026-12-01 10:04:14.123456789 UTC
        assert_eq!(pg_timestamp(1_796_119_454_123_456_789), "2026-12-01 10:04:14.123456+00");
        assert_eq!(pg_timestamp(951_782_400_000_000_000), "2000-02-29 00:00:00.000000+00");
    }
}
