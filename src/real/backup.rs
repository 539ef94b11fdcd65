//! The real backup agent's building blocks (issue 15): base backups of the real PostgreSQL with
//! `pg_basebackup`, the WAL segments its `archive_command` archived, both recorded in the
//! [`Catalogue`] (Redis, [`super::catalogue`]), checked against their checksums, and restored to
//! the latest archived point or to a point in time into a fresh data directory on a loopback port.
//! Nothing here runs on its own: an agent (the containers backend, `tests/real_backup.rs`) calls
//! [`base_backup`] and [`catalogue_wal`] on its schedule and [`restore`] when it wants the rows
//! back.
//!
//! Layout on disk, and what an entry's `checksum` is the checksum of:
//!
//! | kind | stored as | `checksum` |
//! |---|---|---|
//! | `Base` | `BACKUP_DIR/<id>/base.tar` and `backup_manifest` (`pg_basebackup -F t`) | [`checksum`] of the listing `"<sha256>  <name>\n"` of every file in `<id>/`, by name (`sha256sum`'s format), so a changed, missing or added file changes it |
//! | `Wal` | `ARCHIVE_DIR/<segment>`, as `archive_command` left it | [`checksum`] of the segment's bytes |
//!
//! Invariants and choices:
//!
//! - A base backup's entry is `put` as `Running` before `pg_basebackup` starts and as `Done`
//!   only after it returned: `pg_basebackup` fsyncs what it wrote before it exits, so `Done`
//!   means the files are whole on disk and the checksum is theirs. A failed backup's directory
//!   and entry are removed (best effort: an entry left `Running` is never trusted by a restore).
//! - `-X none`: the base backup carries no WAL of its own; the archive is the one source of WAL.
//!   Point-in-time recovery needs the archive anyway, the backup is a single data tar, and with
//!   archiving on, the server does not let `pg_basebackup` finish until the last segment the
//!   backup needs is archived — so a `Done` base backup is restorable from the archive at once.
//!   (`-X fetch` would make it self-contained at the cost of a second copy of that WAL.)
//! - Start and stop LSN come from `backup_manifest`'s `WAL-Ranges`: the WAL a restore must replay
//!   to be consistent.
//! - A WAL entry's id is `wal-<segment name>` and its LSN range is the segment's; only files named
//!   like a segment (24 hex digits) are catalogued. `.history`, `.backup`, `.partial` files and the
//!   `archive_command`'s temporary `.NAME.tmp` files are not.
//! - A restore checks the base backup against its entry first, writes `recovery.signal`, and
//!   overrides (in `postgresql.auto.conf`, read last) whatever the backed-up node had that would
//!   harm a copy: `archive_mode = off` (a restored server must never archive its new timeline
//!   into the live archive, where a later restore to "latest" would follow it), no synchronous
//!   standbys, writes allowed (a fenced node's `default_transaction_read_only`), no streaming,
//!   loopback only, no Unix socket.
//! - Every external command is bounded ([`PgTools::command_timeout`], a restore's recovery by
//!   [`PgTools::recovery_timeout`]) and its error names the command, why, and its stderr's tail.
//!   Server-side programs (`pg_ctl`) run as [`PgTools::run_as`] (`runuser -u postgres --` when
//!   this process is root); `pg_basebackup` and `tar` run as this process (they are clients).
//! - Tablespaces are not supported: a backup with more than `base.tar` is refused by `restore`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::ConnectOptions as _;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::stack::ports::{BackupKind, BackupState, Catalogue, CatalogueEntry, Lsn, PortError, checksum};

/// Longest wait for one external command (`pg_basebackup`, `tar`, `chown`, `pg_ctl stop`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a restored server to start, finish recovery and take a write.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Most segments one [`catalogue_wal`] call catalogues; the rest wait for the next call.
pub const WAL_CATALOGUE_BATCH_MAX: usize = 4096;
/// How much of a failed command's stderr (or a server's log) an error quotes, in bytes.
pub const STDERR_TAIL_BYTES: usize = 2000;
/// How often a restore asks the restored server whether recovery has finished.
pub const RECOVERY_PROBE_EVERY: Duration = Duration::from_millis(100);
/// The base backup's data archive (`pg_basebackup -F t`).
pub const BASE_TAR: &str = "base.tar";
/// The restored server's log, inside its data directory.
pub const RESTORE_LOG: &str = "restore.log";

/// How to run PostgreSQL's programs and reach the servers they start.
#[derive(Clone, Debug)]
pub struct PgTools {
    /// Where `pg_basebackup` and `pg_ctl` are; default `/usr/lib/postgresql/15/bin`
    /// (`SHAKEDOWN_PG_BIN`), the Debian package `scripts/real-services.sh` installs.
    pub bin_dir: PathBuf,
    /// Run server-side programs as this user (`runuser -u USER --`); default `postgres` when this
    /// process is root (PostgreSQL refuses to run as root), none otherwise.
    pub run_as: Option<String>,
    /// The database superuser a restore connects as; default `postgres`.
    pub superuser: String,
    /// Longest wait for one command; default [`COMMAND_TIMEOUT`].
    pub command_timeout: Duration,
    /// Longest wait for a restore's server to be up, recovered and writable; default
    /// [`RECOVERY_TIMEOUT`].
    pub recovery_timeout: Duration,
}

impl PgTools {
    /// The defaults above, `SHAKEDOWN_PG_BIN` overriding the binaries' directory.
    pub fn from_env() -> PgTools {
        let bin_dir = std::env::var_os("SHAKEDOWN_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        PgTools {
            bin_dir,
            run_as: is_root().then(|| "postgres".to_owned()),
            superuser: "postgres".into(),
            command_timeout: COMMAND_TIMEOUT,
            recovery_timeout: RECOVERY_TIMEOUT,
        }
    }
}

/// Whether this process runs as root (its real uid, from `/proc/self/status`).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
}

/// Why a backup, a cataloguing or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// An external command failed, timed out or could not start.
    #[error("`{command}` {reason}{}", quoted(stderr_tail))]
    Command {
        /// The command line.
        command: String,
        /// What went wrong (`exited with exit status: 1`, `did not finish within 60s …`).
        reason: String,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The catalogue did not take or give an entry.
    #[error("backup catalogue: {0}")]
    Catalogue(#[from] PortError),
    /// What is on disk or asked for is not usable (a bad manifest, a backup that does not
    /// verify, a data directory that is not empty).
    #[error("{0}")]
    Invalid(String),
    /// The restored server did not come up, recover or take a write.
    #[error("restored server on 127.0.0.1:{port}: {reason}{}", quoted(log_tail))]
    Recovery {
        /// Its port.
        port: u16,
        /// What went wrong.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
}

fn quoted(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- its output ends ---\n{}", tail.trim_end())
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// Nanoseconds since the Unix epoch.
fn unix_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// External commands

/// A program of [`PgTools::bin_dir`], or any other on `PATH`.
fn program(tools: &PgTools, name: &str) -> PathBuf {
    if matches!(name, "pg_basebackup" | "pg_ctl") { tools.bin_dir.join(name) } else { PathBuf::from(name) }
}

/// The command line to run `name args…`, through `runuser` when `as_server` and
/// [`PgTools::run_as`] is set.
fn command_line(tools: &PgTools, name: &str, args: &[OsString], as_server: bool) -> Vec<OsString> {
    let mut line = Vec::new();
    if let (true, Some(user)) = (as_server, &tools.run_as) {
        line.extend(["runuser", "-u", user, "--"].map(OsString::from));
    }
    line.push(program(tools, name).into_os_string());
    line.extend(args.iter().cloned());
    line
}

/// Run a command line to its end within `timeout`; its stdout on success.
async fn run(line: &[OsString], timeout: Duration) -> Result<Vec<u8>, BackupError> {
    let shown = line.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let failed = |reason: String, stderr: &[u8]| BackupError::Command {
        command: shown.clone(),
        reason,
        stderr_tail: tail(&String::from_utf8_lossy(stderr)),
    };
    let mut command = tokio::process::Command::new(&line[0]);
    command.args(&line[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A command past its timeout is killed with its future.
    command.kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => {
            return Err(failed(format!("did not finish within {timeout:?} (the command timeout)"), b""));
        }
        Ok(Err(error)) => return Err(failed(format!("could not start: {error}"), b"")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(failed(format!("exited with {}", output.status), &output.stderr));
    }
    Ok(output.stdout)
}

/// The last [`STDERR_TAIL_BYTES`] of `text`, cut at a character boundary.
fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(STDERR_TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

// ---------------------------------------------------------------------------------------------
// Checksums and LSNs

/// The SHA-256 of a file, streamed (the same hex as [`checksum`] of its bytes), and its size.
fn file_checksum(path: &Path) -> Result<(String, u64), BackupError> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(), size))
}

/// A base backup directory's checksum (of its `sha256sum`-style listing) and total size.
fn directory_checksum(dir: &Path) -> Result<(String, u64), BackupError> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Err(BackupError::Invalid(format!("{} holds no files", dir.display())));
    }
    let (mut listing, mut total) = (String::new(), 0u64);
    for name in names {
        let (sum, size) = file_checksum(&dir.join(&name))?;
        listing.push_str(&format!("{sum}  {name}\n"));
        total += size;
    }
    Ok((checksum(listing.as_bytes()), total))
}

/// `X/Y` (PostgreSQL's `pg_lsn` text) as a byte position.
pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let (high, low) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// The WAL range a base backup must replay, from its `backup_manifest`'s `WAL-Ranges`.
fn manifest_wal_range(path: &Path) -> Result<(Lsn, Lsn), BackupError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let invalid = |why: &str| BackupError::Invalid(format!("{}: {why}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
    let ranges = manifest["WAL-Ranges"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("no WAL-Ranges"))?;
    let lsn = |range: &serde_json::Value, field: &str| {
        range[field].as_str().and_then(parse_lsn).ok_or_else(|| invalid(&format!("no valid {field}")))
    };
    Ok((lsn(&ranges[0], "Start-LSN")?, lsn(&ranges[ranges.len() - 1], "End-LSN")?))
}

/// Whether `name` is a WAL segment file's name (timeline, log, segment: 24 uppercase hex digits).
fn is_segment_name(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// The LSN range of segment `name` of `size` bytes: `[start, start + size)`.
fn segment_range(name: &str, size: u64) -> Option<(Lsn, Lsn)> {
    if !is_segment_name(name) || !size.is_power_of_two() || size > 1 << 32 {
        return None;
    }
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let segment = u64::from_str_radix(&name[16..24], 16).ok()?;
    let start = (log << 32) + segment * size;
    Some((start, start + size))
}

// ---------------------------------------------------------------------------------------------
// Base backups, WAL, verification

/// Take a base backup of the server at `conninfo` (libpq form: `host=127.0.0.1 port=55432
/// user=postgres`) into a new directory `dest_dir/<id>`, recording it in `catalogue`: `Running`
/// first, then `Done` with its WAL range, size and checksum. Returns the `Done` entry.
pub async fn base_backup(
    tools: &PgTools,
    conninfo: &str,
    dest_dir: &Path,
    catalogue: &dyn Catalogue,
) -> Result<CatalogueEntry, BackupError> {
    let started = SystemTime::now();
    let id = format!("base-{:020}", unix_ns(started));
    let dir = dest_dir.join(&id);
    std::fs::create_dir_all(dest_dir).map_err(io_error(dest_dir))?;
    std::fs::create_dir(&dir).map_err(io_error(&dir))?;
    let mut entry = CatalogueEntry {
        id: id.clone(),
        kind: BackupKind::Base,
        start_lsn: 0,
        stop_lsn: 0,
        time_ns: unix_ns(started),
        size: 0,
        checksum: String::new(),
        state: BackupState::Running,
    };
    catalogue.put(&entry).await?;
    match take(tools, conninfo, &dir, &id).await {
        Ok((start_lsn, stop_lsn, sum, size)) => {
            entry = CatalogueEntry {
                start_lsn,
                stop_lsn,
                size,
                checksum: sum,
                state: BackupState::Done,
                ..entry
            };
            catalogue.put(&entry).await?;
            Ok(entry)
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = catalogue.remove(&id).await;
            Err(error)
        }
    }
}

/// `pg_basebackup` into `dir`, then the stored files' WAL range, checksum and size.
async fn take(
    tools: &PgTools,
    conninfo: &str,
    dir: &Path,
    id: &str,
) -> Result<(Lsn, Lsn, String, u64), BackupError> {
    let args: Vec<OsString> = vec![
        "-d".into(),
        conninfo.into(),
        "-D".into(),
        dir.into(),
        "--format=tar".into(),
        "--wal-method=none".into(),
        "--checkpoint=fast".into(),
        "--no-password".into(),
        "--label".into(),
        id.into(),
    ];
    run(&command_line(tools, "pg_basebackup", &args, false), tools.command_timeout).await?;
    let dir = dir.to_path_buf();
    let stored = tokio::task::spawn_blocking(move || {
        let (start, stop) = manifest_wal_range(&dir.join("backup_manifest"))?;
        let (sum, size) = directory_checksum(&dir)?;
        Ok::<_, BackupError>((start, stop, sum, size))
    });
    stored.await.expect("checksumming does not panic")
}

/// Catalogue every segment in `archive_dir` that `catalogue` does not list yet (at most
/// [`WAL_CATALOGUE_BATCH_MAX`], oldest first), each as a `Done` `Wal` entry. Returns the new
/// entries. A segment under its final name is whole (`archive_command` renames it into place).
pub async fn catalogue_wal(
    archive_dir: &Path,
    catalogue: &dyn Catalogue,
) -> Result<Vec<CatalogueEntry>, BackupError> {
    let known: BTreeSet<String> = catalogue.list().await?.into_iter().map(|e| e.id).collect();
    let mut segments = BTreeSet::new();
    for entry in std::fs::read_dir(archive_dir).map_err(io_error(archive_dir))? {
        let name = entry.map_err(io_error(archive_dir))?.file_name().to_string_lossy().into_owned();
        if is_segment_name(&name) && !known.contains(&format!("wal-{name}")) {
            segments.insert(name);
        }
    }
    let mut added = Vec::new();
    for name in segments.into_iter().take(WAL_CATALOGUE_BATCH_MAX) {
        let path = archive_dir.join(&name);
        let entry = tokio::task::spawn_blocking(move || wal_entry(&path, &name))
            .await
            .expect("checksumming does not panic")?;
        catalogue.put(&entry).await?;
        added.push(entry);
    }
    Ok(added)
}

/// The `Done` entry of the archived segment at `path`.
fn wal_entry(path: &Path, name: &str) -> Result<CatalogueEntry, BackupError> {
    let (sum, size) = file_checksum(path)?;
    let (start_lsn, stop_lsn) = segment_range(name, size).ok_or_else(|| {
        BackupError::Invalid(format!("{}: {size} bytes is no WAL segment size", path.display()))
    })?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).map_err(io_error(path))?;
    Ok(CatalogueEntry {
        id: format!("wal-{name}"),
        kind: BackupKind::Wal,
        start_lsn,
        stop_lsn,
        time_ns: unix_ns(modified),
        size,
        checksum: sum,
        state: BackupState::Done,
    })
}

/// Whether `entry`'s stored bytes are in `dir` (a base backup's `dir/<id>/`, a segment's
/// `dir/<segment>`), whole: `Done`, present, the recorded size and checksum.
pub fn verify(entry: &CatalogueEntry, dir: &Path) -> Result<(), String> {
    if entry.state != BackupState::Done {
        return Err(format!("{} is {:?}, not done", entry.id, entry.state));
    }
    let stored = match entry.kind {
        BackupKind::Base => directory_checksum(&dir.join(&entry.id)),
        BackupKind::Wal => match entry.id.strip_prefix("wal-") {
            Some(name) if is_segment_name(name) => file_checksum(&dir.join(name)),
            _ => return Err(format!("{} names no WAL segment", entry.id)),
        },
    };
    let (sum, size) = stored.map_err(|e| format!("{}: {e}", entry.id))?;
    if (sum.as_str(), size) != (entry.checksum.as_str(), entry.size) {
        return Err(format!(
            "{}: stored bytes have checksum {sum} and size {size}, the catalogue says {} and {}",
            entry.id, entry.checksum, entry.size
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Restore

/// How far a restore replays the archived WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreTarget {
    /// To the end of the archive.
    Latest,
    /// Up to the last commit at or before this time (`recovery_target_time`, inclusive), then
    /// promote.
    Time(SystemTime),
}

/// A restored server, recovered and taking writes. It keeps running: stop it with [`stop`] or
/// [`stop_blocking`].
#[derive(Clone, Debug)]
pub struct Restored {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its loopback port.
    pub port: u16,
    /// The last WAL position recovery replayed (`pg_last_wal_replay_lsn()`).
    pub recovered_lsn: Lsn,
    /// Its WAL position after promotion and a first write (`pg_current_wal_lsn()`).
    pub current_lsn: Lsn,
    /// From the restore's start to the first write.
    pub took: Duration,
}

/// Restore the base backup `base` (stored in `backup_dir/<id>/`, checked against its entry
/// first) with WAL from `archive_dir` up to `target`, into `data_dir` (new or empty, reachable
/// by [`PgTools::run_as`]), and start it on `127.0.0.1:port`. Returns once recovery has finished
/// and the server took a write.
pub async fn restore(
    tools: &PgTools,
    base: &CatalogueEntry,
    backup_dir: &Path,
    archive_dir: &Path,
    target: RestoreTarget,
    data_dir: &Path,
    port: u16,
) -> Result<Restored, BackupError> {
    let started = Instant::now();
    if base.kind != BackupKind::Base {
        return Err(BackupError::Invalid(format!("{} is not a base backup", base.id)));
    }
    let (entry, stored) = (base.clone(), backup_dir.to_path_buf());
    tokio::task::spawn_blocking(move || verify(&entry, &stored))
        .await
        .expect("checksumming does not panic")
        .map_err(|why| BackupError::Invalid(format!("base backup does not verify: {why}")))?;
    unpack(tools, &backup_dir.join(&base.id), data_dir).await?;
    let settings = recovery_settings(archive_dir, target, port)?;
    write_recovery_files(data_dir, &settings)?;
    if let Some(user) = &tools.run_as {
        let args = ["-R".into(), format!("{user}:").into(), data_dir.into()];
        run(&command_line(tools, "chown", &args, false), tools.command_timeout).await?;
    }
    let log = data_dir.join(RESTORE_LOG);
    let seconds = tools.recovery_timeout.as_secs().max(1).to_string();
    let args = [
        "-D".into(),
        data_dir.into(),
        "-l".into(),
        log.clone().into(),
        "-w".into(),
        "-t".into(),
        seconds.into(),
        "start".into(),
    ];
    let deadline = started + tools.recovery_timeout;
    let recovery_failed = |reason: String| BackupError::Recovery { port, reason, log_tail: log_tail(&log) };
    run(&command_line(tools, "pg_ctl", &args, true), tools.recovery_timeout + Duration::from_secs(5))
        .await
        .map_err(|e| recovery_failed(e.to_string()))?;
    let (recovered_lsn, current_lsn) =
        wait_writable(tools, port, data_dir, deadline).await.map_err(recovery_failed)?;
    Ok(Restored {
        data_dir: data_dir.to_path_buf(),
        port,
        recovered_lsn,
        current_lsn,
        took: started.elapsed(),
    })
}

/// Unpack a base backup's `base.tar` into `data_dir` (created, mode 0700; refused if not empty).
async fn unpack(tools: &PgTools, backup: &Path, data_dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut tars = Vec::new();
    for entry in std::fs::read_dir(backup).map_err(io_error(backup))? {
        let name = entry.map_err(io_error(backup))?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tar") {
            tars.push(name);
        }
    }
    if tars != [BASE_TAR] {
        return Err(BackupError::Invalid(format!(
            "{} holds {tars:?}: only a single {BASE_TAR} (no tablespaces) can be restored",
            backup.display()
        )));
    }
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::Invalid(format!(
            "{} is not empty: a restore needs a fresh data directory",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(io_error(data_dir))?;
    let args = ["-x".into(), "-f".into(), backup.join(BASE_TAR).into(), "-C".into(), data_dir.into()];
    run(&command_line(tools, "tar", &args, false), tools.command_timeout).await?;
    Ok(())
}

/// The settings a restored server starts with (module docs), appended to its
/// `postgresql.auto.conf` so they win over the backed-up node's own.
fn recovery_settings(archive_dir: &Path, target: RestoreTarget, port: u16) -> Result<String, BackupError> {
    let archive = archive_dir.to_string_lossy();
    if archive.contains(['\'', '"', '%', '\\', '\n']) {
        return Err(BackupError::Invalid(format!(
            "archive directory {archive}: quotes, % and \\ are not supported in its path"
        )));
    }
    let mut settings = format!(
        "\n# Written by shakedown's restore.\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
         archive_mode = off\nsynchronous_standby_names = ''\ndefault_transaction_read_only = off\n\
         primary_conninfo = ''\nprimary_slot_name = ''\ncluster_name = 'restore'\n\
         restore_command = 'cp \"{archive}/%f\" \"%p\"'\n"
    );
    if let RestoreTarget::Time(time) = target {
        settings.push_str(&format!(
            "recovery_target_time = '{}'\nrecovery_target_inclusive = on\nrecovery_target_action = 'promote'\n",
            utc_timestamp(time)
        ));
    }
    Ok(settings)
}

/// Append `settings`, write `recovery.signal`, drop a fenced node's `standby.signal`, and make
/// sure `pg_wal/` exists (`-X none` backups carry it empty).
fn write_recovery_files(data_dir: &Path, settings: &str) -> Result<(), BackupError> {
    use std::io::Write as _;
    let auto = data_dir.join("postgresql.auto.conf");
    let mut file =
        std::fs::OpenOptions::new().append(true).create(true).open(&auto).map_err(io_error(&auto))?;
    file.write_all(settings.as_bytes()).map_err(io_error(&auto))?;
    let signal = data_dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(io_error(&signal))?;
    let standby = data_dir.join("standby.signal");
    if standby.exists() {
        std::fs::remove_file(&standby).map_err(io_error(&standby))?;
    }
    let status = data_dir.join("pg_wal/archive_status");
    std::fs::create_dir_all(&status).map_err(io_error(&status))
}

/// Wait (until `deadline`) for the server on `port` to leave recovery, then make one write (a
/// transaction id) and read its LSNs: replayed, current.
async fn wait_writable(
    tools: &PgTools,
    port: u16,
    data_dir: &Path,
    deadline: Instant,
) -> Result<(Lsn, Lsn), String> {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username(&tools.superuser)
        .database("postgres")
        .disable_statement_logging();
    let mut last = String::from("no answer yet");
    loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "not out of recovery and writable within {:?} (the recovery timeout); last: {last}",
                tools.recovery_timeout
            ));
        }
        if !data_dir.join("postmaster.pid").exists() {
            return Err("the server exited (no postmaster.pid)".into());
        }
        match tokio::time::timeout(RECOVERY_PROBE_EVERY * 10, writable_lsns(&options)).await {
            Ok(Ok(Some(lsns))) => return Ok(lsns),
            Ok(Ok(None)) => last = "still in recovery".into(),
            Ok(Err(error)) => last = error.to_string(),
            Err(_) => last = "no answer to the probe".into(),
        }
        tokio::time::sleep(RECOVERY_PROBE_EVERY).await;
    }
}

/// `None` while in recovery; else a write, then the replayed and current LSNs.
async fn writable_lsns(options: &PgConnectOptions) -> Result<Option<(Lsn, Lsn)>, sqlx::Error> {
    let mut conn = PgConnection::connect_with(options).await?;
    let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut conn).await?;
    if recovering {
        return Ok(None);
    }
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut conn).await?;
    let (replayed, current): (i64, i64) = sqlx::query_as(
        "SELECT (coalesce(pg_last_wal_replay_lsn(), '0/0') - '0/0'::pg_lsn)::bigint, (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
    )
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(Some((replayed as u64, current as u64)))
}

/// The end of the restored server's log, for errors.
fn log_tail(log: &Path) -> String {
    std::fs::read_to_string(log)
        .map(|text| tail(&text))
        .unwrap_or_else(|e| format!("({}: {e})", log.display()))
}

/// Stop a restored server (`pg_ctl stop -m fast`).
pub async fn stop(tools: &PgTools, data_dir: &Path) -> Result<(), BackupError> {
    let seconds = tools.command_timeout.as_secs().max(1).to_string();
    let args = [
        "-D".into(),
        data_dir.into(),
        "-m".into(),
        "fast".into(),
        "-w".into(),
        "-t".into(),
        seconds.into(),
        "stop".into(),
    ];
    run(&command_line(tools, "pg_ctl", &args, true), tools.command_timeout + Duration::from_secs(5)).await?;
    Ok(())
}

/// Stop a restored server from synchronous code (a guard's `Drop`): `pg_ctl stop -m immediate`,
/// waited for at most [`PgTools::command_timeout`], then killed. Errors are ignored: the server
/// may be gone already.
pub fn stop_blocking(tools: &PgTools, data_dir: &Path) {
    let args = ["-D".into(), data_dir.into(), "-m".into(), "immediate".into(), "-w".into(), "stop".into()];
    let line = command_line(tools, "pg_ctl", &args, true);
    let Ok(mut child) = std::process::Command::new(&line[0])
        .args(&line[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    let deadline = Instant::now() + tools.command_timeout;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `time` as a UTC timestamp PostgreSQL reads (`2026-03-21 10:04:05.123456+00`), to the
/// microsecond (its resolution), rounded down.
fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, second_of_day) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}+00",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since.subsec_micros()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01: shift to an era starting 0000-03-01 so
/// leap days fall at the end of a year, then split into 400-year eras, years, months.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_to_the_microsecond() {
        let at = |secs: u64, micros: u64| {
            utc_timestamp(UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + micros))
        };
        assert_eq!(at(0, 0), "1970-01-01 00:00:00.000000+00");
        assert_eq!(at(951_782_400, 1), "2000-02-29 00:00:00.000001+00");
        assert_eq!(at(1_700_000_000, 999_999), "2023-11-14 22:13:20.999999+00");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28 23:59:59.000000+00");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01 00:00:00.000000+00");
    }

    #[test]
    fn lsns_and_segment_ranges() {
        assert_eq!(parse_lsn("0/2000028"), Some(0x200_0028));
        assert_eq!(parse_lsn("1A/0"), Some(0x1a << 32));
        assert_eq!(parse_lsn("nope"), None);
        let mb16 = 16 << 20;
        assert_eq!(segment_range("000000010000000000000003", mb16), Some((3 * mb16, 4 * mb16)));
        assert_eq!(
            segment_range("00000002000000010000000F", mb16),
            Some(((1 << 32) + 15 * mb16, (1 << 32) + 16 * mb16))
        );
        assert_eq!(segment_range("000000010000000000000003.partial", mb16), None);
        assert_eq!(segment_range("00000001000000000000000g", mb16), None);
        assert_eq!(segment_range("000000010000000000000003", 1000), None);
    }

    #[test]
    fn a_streamed_file_checksum_is_the_ports_checksum_and_a_directory_checksum_sees_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("base.tar"), &bytes).unwrap();
        assert_eq!(
            file_checksum(&dir.path().join("base.tar")).unwrap(),
            (checksum(&bytes), bytes.len() as u64)
        );
        let (one, size) = directory_checksum(dir.path()).unwrap();
        assert_eq!(size, bytes.len() as u64);
        std::fs::write(dir.path().join("backup_manifest"), b"{}").unwrap();
        let (two, size) = directory_checksum(dir.path()).unwrap();
        assert_ne!(one, two, "an added file changes the checksum");
        assert_eq!(size, bytes.len() as u64 + 2);
    }

    #[test]
    fn verify_refuses_a_running_entry_a_missing_file_and_changed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let name = "000000010000000000000001";
        std::fs::write(dir.path().join(name), b"segment").unwrap();
        let entry = wal_entry(&dir.path().join(name), name);
        assert!(entry.is_err(), "7 bytes is no segment size");
        let mut entry = CatalogueEntry {
            id: format!("wal-{name}"),
            kind: BackupKind::Wal,
            start_lsn: 0,
            stop_lsn: 0,
            time_ns: 0,
            size: 7,
            checksum: checksum(b"segment"),
            state: BackupState::Done,
        };
        assert_eq!(verify(&entry, dir.path()), Ok(()));
        std::fs::write(dir.path().join(name), b"sEgment").unwrap();
        assert!(verify(&entry, dir.path()).unwrap_err().contains("checksum"));
        std::fs::remove_file(dir.path().join(name)).unwrap();
        assert!(verify(&entry, dir.path()).is_err());
        entry.state = BackupState::Running;
        assert!(verify(&entry, dir.path()).unwrap_err().contains("not done"));
    }

    #[test]
    fn restore_settings_point_at_the_archive_and_a_time_target_promotes() {
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let settings = recovery_settings(Path::new("/a/wal"), RestoreTarget::Time(time), 5999).unwrap();
        assert!(settings.contains("restore_command = 'cp \"/a/wal/%f\" \"%p\"'"), "{settings}");
        assert!(settings.contains("recovery_target_time = '2023-11-14 22:13:20.000000+00'"), "{settings}");
        assert!(settings.contains("recovery_target_action = 'promote'"));
        assert!(settings.contains("archive_mode = off") && settings.contains("port = 5999"));
        let latest = recovery_settings(Path::new("/a/wal"), RestoreTarget::Latest, 5999).unwrap();
        assert!(!latest.contains("recovery_target"), "{latest}");
        assert!(recovery_settings(Path::new("/a/it's"), RestoreTarget::Latest, 5999).is_err());
    }

    #[test]
    fn a_failing_command_names_itself_and_quotes_its_stderr() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let line: Vec<OsString> = ["sh", "-c", "echo boom >&2; exit 3"].map(OsString::from).to_vec();
        let error = runtime.block_on(run(&line, Duration::from_secs(5))).unwrap_err().to_string();
        assert!(
            error.contains("`sh -c echo boom >&2; exit 3` exited with exit status: 3")
                && error.contains("boom"),
            "{error}"
        );
        let line: Vec<OsString> = ["sleep", "5"].map(OsString::from).to_vec();
        let error = runtime.block_on(run(&line, Duration::from_millis(100))).unwrap_err().to_string();
        assert!(error.contains("did not finish within 100ms"), "{error}");
    }
}
