//! The real backup agent's building blocks: base backups of the real PostgreSQL with
//! `pg_basebackup`, the WAL segments its `archive_command` archived, both recorded in the
//! [`Catalogue`] (Redis, [`super::catalogue`]) and checked against their checksums; restoring
//! them is [`super::restore`]'s, which shares [`PgTools`] and [`BackupError`] from here. Nothing
//! here runs on its own: an agent (the containers backend, `tests/real_backup.rs`) calls
//! [`base_backup`] and [`catalogue_wal`] on its schedule, [`verify`] before trusting an entry, and
//! [`super::restore::restore`] when it wants the rows back.
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
//! - Every external command is bounded ([`PgTools::command_timeout`], a restore's recovery by
//!   [`PgTools::recovery_timeout`]) and its error names the command, why, and its stderr's tail.
//!   Server-side programs (`pg_ctl`) run as [`PgTools::run_as`] (`runuser -u postgres --` when
//!   this process is root); `pg_basebackup` and `tar` run as this process (they are clients).
//! - Tablespaces are not supported: a backup with more than `base.tar` is refused by a restore.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::stack::ports::{BackupKind, BackupState, Catalogue, CatalogueEntry, Lsn, PortError, checksum};

/// Longest wait for one external command (`pg_basebackup`, `tar`, `chown`, `pg_ctl stop`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a restored server to start, finish recovery and take a write.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Most segments one [`catalogue_wal`] call catalogues; the rest wait for the next call.
pub const WAL_CATALOGUE_BATCH_MAX: usize = 4096;
/// How much of a failed command's stderr (or a server's log) an error quotes, in bytes.
pub const STDERR_TAIL_BYTES: usize = 2000;
/// The base backup's data archive (`pg_basebackup -F t`).
pub const BASE_TAR: &str = "base.tar";

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
        format!("\n--- its last lines ---\n{}", tail.trim_end())
    }
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// Nanoseconds since the Unix epoch.
pub fn unix_ns(time: SystemTime) -> u64 {
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
pub(super) fn command_line(tools: &PgTools, name: &str, args: &[OsString], as_server: bool) -> Vec<OsString> {
    let mut line = Vec::new();
    if let (true, Some(user)) = (as_server, &tools.run_as) {
        line.extend(["runuser", "-u", user, "--"].map(OsString::from));
    }
    line.push(program(tools, name).into_os_string());
    line.extend(args.iter().cloned());
    line
}

/// Run a command line to its end within `timeout`; its stdout on success.
pub(super) async fn run(line: &[OsString], timeout: Duration) -> Result<Vec<u8>, BackupError> {
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
pub(super) fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(STDERR_TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

// ---------------------------------------------------------------------------------------------
// Checksums and LSNs

/// The SHA-256 of a file, streamed (the same hex as [`checksum`] of its bytes), and its size.
pub fn file_checksum(path: &Path) -> Result<(String, u64), BackupError> {
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
pub fn directory_checksum(dir: &Path) -> Result<(String, u64), BackupError> {
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
pub fn is_segment_name(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// The LSN range of segment `name` of `size` bytes: `[start, start + size)`.
pub fn segment_range(name: &str, size: u64) -> Option<(Lsn, Lsn)> {
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
    base_backup_with(tools, conninfo, dest_dir, catalogue, BaseBackupOptions::default()).await
}

/// How [`base_backup_with`] takes a base backup.
#[derive(Clone, Debug, Default)]
pub struct BaseBackupOptions {
    /// `pg_basebackup --max-rate` (e.g. `32M`): how fast the primary is read, so a backup does not
    /// starve its disk. `None`: as fast as it goes.
    pub max_rate: Option<String>,
    /// The `catalog-before-backup` bug: the entry goes in as `Done` (no checksum yet) before
    /// `pg_basebackup` starts, so a crash while it copies leaves the catalogue promising a backup
    /// that was never stored.
    pub done_first: bool,
}

/// [`base_backup`] with [`BaseBackupOptions`].
pub async fn base_backup_with(
    tools: &PgTools,
    conninfo: &str,
    dest_dir: &Path,
    catalogue: &dyn Catalogue,
    options: BaseBackupOptions,
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
        // Unknown until it ends; the bug's early `Done` entry claims its start.
        stop_time_ns: unix_ns(started),
        size: 0,
        checksum: String::new(),
        state: if options.done_first { BackupState::Done } else { BackupState::Running },
    };
    catalogue.put(&entry).await?;
    match take(tools, conninfo, &dir, &id, options.max_rate.as_deref()).await {
        Ok((start_lsn, stop_lsn, sum, size)) => {
            entry = CatalogueEntry {
                start_lsn,
                stop_lsn,
                // `pg_basebackup` returned: the backup's end (its stop LSN) is behind us.
                stop_time_ns: unix_ns(SystemTime::now()),
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
    max_rate: Option<&str>,
) -> Result<(Lsn, Lsn, String, u64), BackupError> {
    let mut args: Vec<OsString> = vec![
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
    if let Some(rate) = max_rate {
        args.push(format!("--max-rate={rate}").into());
    }
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
        stop_time_ns: unix_ns(modified),
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

#[cfg(test)]
mod tests {
    use super::*;

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
            stop_time_ns: 0,
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
