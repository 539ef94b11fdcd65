//! Backups and point-in-time restore on the real PostgreSQL: a base backup of the
//! primary taken with `pg_basebackup`, the WAL its `archive_command` copies into the archive
//! (`scripts/real-services.sh up` configures both), the catalogue of both in Redis, and restores
//! into fresh data directories on spare loopback ports. Run by `make test-real`; without the
//! servers these tests fail with a message saying so, they never skip.
#![cfg(feature = "real")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use common::real::{cluster, unique};
use shakedown::real::NodeConfig;
use shakedown::real::backup::{self, PgTools};
use shakedown::real::catalogue::RedisCatalogue;
use shakedown::real::restore::{self, RestoreTarget, Restored};
use shakedown::stack::ports::{BackupKind, BackupState, Catalogue, CatalogueEntry, DbNode, PortError};
use sqlx::postgres::{PgConnectOptions, PgPool};

/// Rows per batch.
const BATCH_ROWS: i32 = 100;
/// Longest wait for a segment to reach the archive after `pg_switch_wal()`.
const ARCHIVE_WAIT_MAX: Duration = Duration::from_secs(20);

/// The primary's WAL archive, as `scripts/real-services.sh` configures it.
fn archive_dir() -> PathBuf {
    let dir = std::env::var("SHAKEDOWN_REAL_DIR").unwrap_or_else(|_| "/tmp/shakedown-real".into());
    PathBuf::from(dir).join("wal-archive")
}

/// The Redis catalogue, answering (else the test fails saying what to run).
async fn catalogue() -> RedisCatalogue {
    let catalogue = RedisCatalogue::from_env().expect("a valid SHAKEDOWN_REDIS_URL");
    if let Err(error) = catalogue.list().await {
        panic!("Redis is not reachable ({error}); these tests need the real servers: run `make test-real`");
    }
    catalogue
}

/// The catalogue, remembering every `put`'s id and state, to see the order a backup wrote them.
struct Recording {
    inner: RedisCatalogue,
    puts: Mutex<Vec<(String, BackupState)>>,
}

#[async_trait]
impl Catalogue for Recording {
    async fn put(&self, entry: &CatalogueEntry) -> Result<(), PortError> {
        self.puts.lock().unwrap().push((entry.id.clone(), entry.state));
        self.inner.put(entry).await
    }
    async fn remove(&self, id: &str) -> Result<(), PortError> {
        self.inner.remove(id).await
    }
    async fn list(&self) -> Result<Vec<CatalogueEntry>, PortError> {
        self.inner.list().await
    }
}

/// A restored server and its data directory: stopped and removed when dropped, also when the
/// test fails half-way.
struct RestoredGuard {
    tools: PgTools,
    /// Reachable by the `postgres` user (0755); holds `data/`.
    parent: tempfile::TempDir,
}

impl RestoredGuard {
    fn new(tools: &PgTools) -> RestoredGuard {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::Builder::new().prefix("shakedown-restore-").tempdir().unwrap();
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        RestoredGuard { tools: tools.clone(), parent }
    }

    fn data_dir(&self) -> PathBuf {
        self.parent.path().join("data")
    }
}

impl Drop for RestoredGuard {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            restore::stop_blocking(&self.tools, &self.data_dir());
        }
    }
}

/// A loopback port nothing listens on now.
fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Insert batch `name` (`BATCH_ROWS` rows, ids from `first`) in one transaction.
async fn insert_batch(pool: &PgPool, table: &str, name: &str, first: i32) {
    sqlx::query(&format!(
        "INSERT INTO {table} (id, batch) SELECT g, $1 FROM generate_series($2::int, $3::int) g"
    ))
    .bind(name)
    .bind(first)
    .bind(first + BATCH_ROWS - 1)
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("insert batch {name}: {e}"));
}

/// `pg_switch_wal()` and wait until the segment it closed is in the archive; its name.
async fn switch_and_archive(pool: &PgPool) -> String {
    let segment: String =
        sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())").fetch_one(pool).await.unwrap();
    let deadline = Instant::now() + ARCHIVE_WAIT_MAX;
    while !archive_dir().join(&segment).exists() {
        assert!(
            Instant::now() < deadline,
            "segment {segment} not in {} within {ARCHIVE_WAIT_MAX:?}: is archiving on (scripts/real-services.sh up)?",
            archive_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    segment
}

/// Rows per batch in `table` on the restored server.
async fn batches(restored: &Restored, table: &str) -> Vec<(String, i64)> {
    let options = PgConnectOptions::new().host("127.0.0.1").port(restored.port).username("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .expect("the restored server answers");
    let rows = sqlx::query_as(&format!("SELECT batch, count(*) FROM {table} GROUP BY batch ORDER BY batch"))
        .fetch_all(&pool)
        .await
        .expect("the table is restored");
    pool.close().await;
    rows
}

/// The base backup `id` is catalogued once, written `running` then `done`, and verifies.
async fn check_base_entry(recording: &Recording, base: &CatalogueEntry, backups: &Path) {
    let puts: Vec<BackupState> =
        recording.puts.lock().unwrap().iter().filter(|(id, _)| *id == base.id).map(|(_, s)| *s).collect();
    assert_eq!(puts, [BackupState::Running, BackupState::Done], "the entry is running before it is done");
    let listed = recording.list().await.unwrap();
    let ours: Vec<_> = listed.iter().filter(|e| e.id == base.id).collect();
    assert_eq!(ours, [base], "one entry for the backup, done, as base_backup returned it");
    assert!(base.start_lsn > 0 && base.start_lsn <= base.stop_lsn && base.size > 0, "{base:?}");
    backup::verify(base, backups).expect("the base backup verifies");
}

/// Every catalogued segment verifies, and the segments from the base backup's start through
/// `last` are all catalogued.
async fn check_wal_entries(catalogue: &dyn Catalogue, base: &CatalogueEntry, last: &str) {
    let listed = catalogue.list().await.unwrap();
    let wal: Vec<_> = listed.iter().filter(|e| e.kind == BackupKind::Wal).collect();
    for entry in &wal {
        backup::verify(entry, &archive_dir()).unwrap_or_else(|e| panic!("WAL entry does not verify: {e}"));
    }
    let last =
        wal.iter().find(|e| e.id == format!("wal-{last}")).expect("the last switched segment is catalogued");
    let covering: Vec<_> =
        wal.iter().filter(|e| e.id.starts_with("wal-00000001") && e.stop_lsn > base.start_lsn).collect();
    let mut lsn = covering.first().expect("a segment after the base backup").start_lsn;
    assert!(lsn <= base.start_lsn, "the segment holding the backup's start is catalogued");
    for entry in covering.iter().take_while(|e| e.start_lsn <= last.start_lsn) {
        assert_eq!(entry.start_lsn, lsn, "no gap in the archive before {}", entry.id);
        lsn = entry.stop_lsn;
    }
    assert_eq!(lsn, last.stop_lsn);
}

/// The goal: a base backup plus the WAL archive bring back exactly the rows committed up to a
/// point in time. Method: rows in three batches A, B, C, each in its own WAL segment
/// (`pg_switch_wal()` between), the base backup taken after A so that B and C exist only in the
/// archive, and the server's time T read between B and C. A restore to T must have A and B and
/// no row of C; a restore to the latest archived WAL must have all three. The catalogue must hold
/// the backup (`running`, then `done` with a checksum that verifies) and segments that verify,
/// and a backup whose bytes changed must fail `verify`; a restore to a time past the archive's end
/// must fail, quoting the server's reason.
#[tokio::test]
async fn a_base_backup_and_the_wal_archive_restore_to_a_point_in_time_and_to_the_latest() {
    let started = Instant::now();
    let cluster = cluster().await;
    let primary = cluster.pool(DbNode::PgPrimary);
    let recording = Recording { inner: catalogue().await, puts: Mutex::new(Vec::new()) };
    let tools = PgTools::from_env();
    let schema = unique("backup").replace('-', "_");
    let table = format!("{schema}.rows");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(primary).await.unwrap();
    sqlx::query(&format!("CREATE TABLE {table} (id int PRIMARY KEY, batch text NOT NULL)"))
        .execute(primary)
        .await
        .unwrap();

    insert_batch(primary, &table, "a", 1).await;
    let backups = tempfile::tempdir().unwrap();
    let conninfo = NodeConfig::from_env(DbNode::PgPrimary).url;
    let base = backup::base_backup(&tools, &conninfo, backups.path(), &recording).await.expect("base backup");
    insert_batch(primary, &table, "b", 1 + BATCH_ROWS).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    switch_and_archive(primary).await;
    let t_micros: i64 = sqlx::query_scalar("SELECT (extract(epoch FROM now()) * 1000000)::bigint")
        .fetch_one(primary)
        .await
        .unwrap();
    let t = UNIX_EPOCH + Duration::from_micros(t_micros as u64);
    tokio::time::sleep(Duration::from_millis(200)).await;
    insert_batch(primary, &table, "c", 1 + 2 * BATCH_ROWS).await;
    let last = switch_and_archive(primary).await;

    backup::catalogue_wal(&archive_dir(), &recording).await.expect("catalogue the archived WAL");
    check_base_entry(&recording, &base, backups.path()).await;
    check_wal_entries(&recording, &base, &last).await;

    let at_t = restore_to(&tools, &base, backups.path(), RestoreTarget::Time(t)).await;
    assert_eq!(batches(&at_t.1, &table).await, counts(&[("a", 100), ("b", 100)]), "A and B, no C at T");
    assert!(at_t.1.recovered_lsn > base.stop_lsn, "{:?} replayed past the backup", at_t.1);
    drop(at_t);
    let latest = restore_to(&tools, &base, backups.path(), RestoreTarget::Latest).await;
    let all = counts(&[("a", 100), ("b", 100), ("c", 100)]);
    assert_eq!(batches(&latest.1, &table).await, all, "A, B and C at the latest");
    drop(latest);
    let beyond = RestoreTarget::Time(SystemTime::now() + Duration::from_secs(3600));
    let guard = RestoredGuard::new(&tools);
    let error = restore::restore(
        &tools,
        &base,
        backups.path(),
        &archive_dir(),
        beyond,
        &guard.data_dir(),
        spare_port(),
    )
    .await
    .expect_err("a target after the archive's end is never reached");
    let error = error.to_string();
    assert!(error.contains("recovery ended before configured recovery target was reached"), "{error}");
    eprintln!("a restore past the archive's end fails: {}", error.lines().next().unwrap_or_default());
    drop(guard);

    tamper(&backups.path().join(&base.id).join(backup::BASE_TAR));
    let refused = backup::verify(&base, backups.path()).expect_err("a changed backup fails verify");
    assert!(refused.contains("checksum"), "{refused}");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(primary).await.unwrap();
    eprintln!("backup + WAL + two restores + checks: {:?}", started.elapsed());
}

/// Restore `base` to `target` into a fresh guarded data directory on a spare port.
async fn restore_to(
    tools: &PgTools,
    base: &CatalogueEntry,
    backups: &Path,
    target: RestoreTarget,
) -> (RestoredGuard, Restored) {
    let guard = RestoredGuard::new(tools);
    let restored =
        restore::restore(tools, base, backups, &archive_dir(), target, &guard.data_dir(), spare_port())
            .await
            .unwrap_or_else(|e| panic!("restore to {target:?}: {e}"));
    eprintln!("restored to {target:?} in {:?}: {restored:?}", restored.took);
    (guard, restored)
}

fn counts(batches: &[(&str, i64)]) -> Vec<(String, i64)> {
    batches.iter().map(|(name, count)| (name.to_string(), *count)).collect()
}

/// Flip one byte in the middle of `path`.
fn tamper(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// The catalogue keeps an entry by id, replaces it on a second `put`, lists it parsed back, and
/// forgets it on `remove` (twice is fine).
#[tokio::test]
async fn the_redis_catalogue_keeps_replaces_and_removes_entries() {
    let catalogue = catalogue().await;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut entry = CatalogueEntry {
        id: format!("base-test-{nanos}"),
        kind: BackupKind::Base,
        start_lsn: 0,
        stop_lsn: 0,
        time_ns: nanos,
        stop_time_ns: nanos,
        size: 0,
        checksum: String::new(),
        state: BackupState::Running,
    };
    catalogue.put(&entry).await.unwrap();
    entry =
        CatalogueEntry { stop_lsn: 42, size: 7, checksum: "ab".into(), state: BackupState::Done, ..entry };
    catalogue.put(&entry).await.unwrap();
    let listed = catalogue.list().await.unwrap();
    assert_eq!(listed.iter().filter(|e| e.id == entry.id).collect::<Vec<_>>(), [&entry]);
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id), "listed by id");
    catalogue.remove(&entry.id).await.unwrap();
    catalogue.remove(&entry.id).await.unwrap();
    assert!(catalogue.list().await.unwrap().iter().all(|e| e.id != entry.id));
}
