//! Restoring the real backups: a base backup taken by [`super::backup::base_backup`]
//! and the archived WAL, replayed to the end of the archive or to a point in time, into a fresh
//! data directory started on a loopback port with `pg_ctl`. The caller gets the server back
//! recovered and taking writes, and stops it with [`stop`] (or [`stop_blocking`] from a guard's
//! `Drop`).
//!
//! Steps of [`restore`]: check the base backup against its catalogue entry
//! ([`super::backup::verify`]); unpack `base.tar` into the new directory; append the recovery
//! settings to `postgresql.auto.conf` (read last, so they win) and write `recovery.signal`; hand
//! the directory to [`PgTools::run_as`]; `pg_ctl start`; wait, at most
//! [`PgTools::recovery_timeout`], until the server leaves recovery; make one write; read the LSNs.
//!
//! The settings override whatever the backed-up node had that would harm a copy:
//! `archive_mode = off` (a restored server must never archive its new timeline into the live
//! archive, where a later restore to "latest" would follow it), no synchronous standbys, writes
//! allowed (a fenced node's `default_transaction_read_only = on`, its `standby.signal` removed),
//! no streaming from a primary, loopback only, no Unix socket. `restore_command` copies from the
//! archive; a segment it cannot find ends recovery, which is how a restore to the latest stops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::ConnectOptions as _;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::backup::{BASE_TAR, BackupError, PgTools, command_line, io_error, run, tail, verify};
use crate::stack::ports::{BackupKind, CatalogueEntry, Lsn};

/// How often a restore asks the restored server whether recovery has finished.
pub const RECOVERY_PROBE_EVERY: Duration = Duration::from_millis(100);
/// The restored server's log, inside its data directory.
pub const RESTORE_LOG: &str = "restore.log";

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
    let deadline = Instant::now() + tools.recovery_timeout;
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
}
