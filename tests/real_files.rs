//! The files' real adapters against real servers: object storage on s3s-fs (the server
//! `scripts/real-services.sh up` starts on 127.0.0.1:55900, and servers these tests start, freeze
//! and kill themselves on data directories of their own), the files' fanout exchange on RabbitMQ
//! and the file tables on PostgreSQL. Run with `make test-real`, which starts the servers (and
//! builds s3s-fs into `target/tools` if missing). Without them these tests fail with a message
//! saying so; they never skip.
#![cfg(feature = "real")]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::real::{cluster, unique};
use shakedown::real::objects::{S3Config, S3Objects};
use shakedown::real::rabbit::{Fanout, RabbitConfig, RabbitConsumers, RabbitPublisher};
use shakedown::stack::ports::{
    Consumer, ConsumerFactory, FileEvent, FileStore, NewFile, ObjectStore, PortError, PublishError,
    Publisher, SubscriberGroup, checksum,
};

/// `len` bytes that depend on `key` (a small xorshift stream): an object's content is known from
/// its key alone, so a torn or mixed-up object shows as a wrong checksum.
fn bytes_for(key: &str, len: usize) -> Vec<u8> {
    let mut state =
        key.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The s3s-fs binary `scripts/real-services.sh` builds (`SHAKEDOWN_S3S_FS` overrides).
fn s3s_fs_binary() -> PathBuf {
    let path = std::env::var_os("SHAKEDOWN_S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo().join("target/tools/bin/s3s-fs"));
    assert!(
        path.is_file(),
        "{} is missing; these tests need the real servers: run `make test-real` (it builds s3s-fs)",
        path.display()
    );
    path
}

/// An s3s-fs of this test's own, on a loopback port and a data directory that outlive its
/// process, so that it can be killed and started again on the same data. Killed when dropped.
struct OwnS3 {
    process: Option<std::process::Child>,
    data: tempfile::TempDir,
    port: u16,
}

impl OwnS3 {
    async fn start() -> OwnS3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = OwnS3 { process: None, data: tempfile::tempdir().unwrap(), port };
        server.spawn().await;
        server
    }

    /// Start the process on the data directory; return once it accepts connections (at most 10 s).
    async fn spawn(&mut self) {
        assert!(self.process.is_none(), "already running");
        let config = S3Config::from_env();
        let child = std::process::Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", &config.access_key, "--secret-key", &config.secret_key])
            .arg(self.data.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        self.process = Some(child);
        common::real::within("s3s-fs accepts connections", Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
        })
        .await;
    }

    fn pid(&self) -> String {
        self.process.as_ref().expect("running").id().to_string()
    }

    /// SIGKILL, and reap it.
    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().expect("SIGKILL s3s-fs");
            child.wait().expect("reap s3s-fs");
        }
    }

    /// SIGSTOP or SIGCONT: a frozen server keeps its sockets open and answers nothing.
    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").args([signal, &self.pid()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    fn config(&self) -> S3Config {
        S3Config { url: format!("http://127.0.0.1:{}", self.port), ..S3Config::from_env() }
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// The shared server, its bucket created. Panics, naming the fix, when it is not there.
async fn shared_objects() -> S3Objects {
    let config = S3Config::from_env();
    S3Objects::connect(&config).await.unwrap_or_else(|e| {
        panic!(
            "the S3 server at {} is not reachable ({e}); these tests need the real servers: run `make test-real` (or `make real-up` first)",
            config.url
        )
    })
}

#[tokio::test]
async fn an_object_put_reads_back_whole_with_its_checksum_and_is_listed() {
    let objects = shared_objects().await;
    // The bucket exists now: creating it again is fine.
    objects.create_bucket().await.expect("CreateBucket of an existing bucket is not an error");
    let key = format!("files/{}", unique("roundtrip"));
    let bytes = bytes_for(&key, 64 * 1024);
    objects.put(&key, bytes.clone()).await.unwrap();
    let read = objects.get(&key).await.unwrap().expect("the object is there");
    assert_eq!((read.len(), checksum(&read)), (bytes.len(), checksum(&bytes)));
    let thumb = format!("thumbs/{key}");
    objects.put(&thumb, b"small".to_vec()).await.unwrap();

    let listed = objects.list().await.unwrap();
    let ours: Vec<_> = listed.iter().filter(|o| o.key == key || o.key == thumb).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(
        (ours[0].key.as_str(), ours[0].size, ours[0].checksum.as_str()),
        (key.as_str(), 65_536, checksum(&bytes).as_str())
    );
    assert_eq!(
        (ours[1].key.as_str(), ours[1].size, ours[1].checksum.as_str()),
        (thumb.as_str(), 5, checksum(b"small").as_str())
    );
    assert!(listed.windows(2).all(|w| w[0].key < w[1].key), "listed in key order");

    // A put replaces; a missing key is None; a key that would not read back as itself is
    // refused before any request.
    objects.put(&key, b"replaced".to_vec()).await.unwrap();
    assert_eq!(objects.get(&key).await.unwrap().as_deref(), Some(&b"replaced"[..]));
    assert_eq!(objects.get(&format!("files/{}", unique("never"))).await.unwrap(), None);
    let refused = objects.put("files/has space", Vec::new()).await;
    assert!(matches!(refused, Err(PortError::Rejected(_))), "{refused:?}");
}

/// Goal: every call is bounded and a server that does not answer is `Unavailable` (a put may or
/// may not have happened), never a hang. Method: a port nobody listens on, then a server of our
/// own frozen with SIGSTOP (its sockets stay open, as a paused container's do) and thawed.
#[tokio::test]
async fn an_unreachable_or_frozen_server_is_unavailable_within_the_call_timeout() {
    let timeout = Duration::from_millis(800);
    let slack = Duration::from_millis(700);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = S3Config { url: format!("http://127.0.0.1:{closed}"), timeout, ..S3Config::from_env() };
    let objects = S3Objects::new(&nowhere).unwrap();
    let started = Instant::now();
    assert!(matches!(objects.put("files/k", b"x".to_vec()).await, Err(PortError::Unavailable(_))));
    assert!(started.elapsed() < timeout + slack, "{:?}", started.elapsed());

    let server = OwnS3::start().await;
    let objects = S3Objects::connect(&S3Config { timeout, ..server.config() }).await.unwrap();
    objects.put("files/before", b"before".to_vec()).await.unwrap();
    server.signal("-STOP");
    for call in ["put", "get", "list"] {
        let started = Instant::now();
        let result = match call {
            "put" => objects.put("files/frozen", b"frozen".to_vec()).await.map(|_| ()),
            "get" => objects.get("files/before").await.map(|_| ()),
            _ => objects.list().await.map(|_| ()),
        };
        assert!(matches!(result, Err(PortError::Unavailable(_))), "{call}: {result:?}");
        assert!(started.elapsed() < timeout + slack, "{call} took {:?}", started.elapsed());
    }
    server.signal("-CONT");
    assert_eq!(objects.get("files/before").await.unwrap().as_deref(), Some(&b"before"[..]));
}

/// What one writer saw of one put.
struct Put {
    key: String,
    result: Result<(), PortError>,
    /// Finished before the kill, while the server was down, or after the restart.
    phase: u8,
}

/// Goal: the issue's "a crash loses nothing acknowledged; unacknowledged PUTs may or may not
/// land" on the real server. Method: four writers put 64 KiB objects back to back into a
/// server of our own; after 400 ms it is SIGKILLed (puts in flight are cut), 300 ms later started
/// again on the same data directory, and the writers go on for another 400 ms. Then every put
/// that returned `Ok` must read back whole, every failed one must have failed `Unavailable` and
/// be absent or whole, and no object in the bucket may be torn (each one's checksum is the one
/// its key's content has).
#[tokio::test]
async fn a_crash_of_the_server_mid_upload_loses_no_acknowledged_object() {
    const SIZE: usize = 64 * 1024;
    let mut server = OwnS3::start().await;
    let objects = S3Objects::connect(&server.config()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (objects, stop, phase) = (objects.clone(), stop.clone(), phase.clone());
            tokio::spawn(async move {
                let mut puts = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("crash/w{writer}-{n}");
                    let result = objects.put(&key, bytes_for(&key, SIZE)).await;
                    if result.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    puts.push(Put { key, result, phase: phase.load(Ordering::SeqCst) });
                }
                puts
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    phase.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.spawn().await;
    phase.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);
    let mut puts = Vec::new();
    for writer in writers {
        puts.extend(writer.await.unwrap());
    }

    let acknowledged: Vec<&Put> = puts.iter().filter(|p| p.result.is_ok()).collect();
    let failed: Vec<&Put> = puts.iter().filter(|p| p.result.is_err()).collect();
    for put in &acknowledged {
        let read = objects.get(&put.key).await.unwrap();
        let read = read.unwrap_or_else(|| panic!("{} was acknowledged and is gone", put.key));
        assert_eq!(checksum(&read), checksum(&bytes_for(&put.key, SIZE)), "{} is not what was put", put.key);
    }
    let mut landed = 0;
    for put in &failed {
        assert!(matches!(put.result, Err(PortError::Unavailable(_))), "{}: {:?}", put.key, put.result);
        if let Some(read) = objects.get(&put.key).await.unwrap() {
            assert_eq!(checksum(&read), checksum(&bytes_for(&put.key, SIZE)), "{} is torn", put.key);
            landed += 1;
        }
    }
    let listed = objects.list().await.unwrap();
    for object in &listed {
        assert_eq!(object.checksum, checksum(&bytes_for(&object.key, SIZE)), "{} is torn", object.key);
    }
    let listed_keys: BTreeSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert!(acknowledged.iter().all(|p| listed_keys.contains(p.key.as_str())));
    let ok_in = |phase: u8| acknowledged.iter().filter(|p| p.phase == phase).count();
    println!(
        "puts: {} acknowledged ({} before the kill, {} after the restart, the rest around the kill), {} failed ({landed} of them landed anyway); {} objects listed",
        acknowledged.len(),
        ok_in(0),
        ok_in(2),
        failed.len(),
        listed.len()
    );
    assert!(ok_in(0) > 0 && !failed.is_empty() && ok_in(2) > 0, "the crash fell mid-upload");
}

/// Read `consumer` until `stop`, acknowledging each delivery after `hold`; the events' ids and
/// whether any came redelivered.
fn drain(
    mut consumer: Box<dyn Consumer<FileEvent>>,
    hold: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u64, bool)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let Ok(delivery) = tokio::time::timeout(Duration::from_millis(100), consumer.next()).await else {
                continue;
            };
            let delivery = delivery.expect("a delivery");
            tokio::time::sleep(hold).await;
            consumer.ack(delivery.tag).await.expect("the ack is taken");
            seen.push((delivery.message.id, delivery.redelivered));
        }
        seen
    })
}

fn event(id: u64) -> FileEvent {
    FileEvent { id, key: format!("k{id}"), object_key: format!("files/k{id}") }
}

/// A broker config for the files' fanout (its query queue name is unused here).
fn broker(capacity: u32) -> RabbitConfig {
    RabbitConfig::from_env(&unique("unused"), capacity)
}

/// Goal: each subscriber group gets every event, and within a group the consumers compete.
/// Method: a fresh exchange; two thumbnails consumers (prefetch 1, each holding a delivery for
/// 20 ms, so RabbitMQ hands out in turn) and one audit consumer connect, then 20 events are
/// published once each. Thumbnails must split them with no event twice; audit must get all 20.
/// Then every consumer is closed and fresh ones find both queues empty: every event was
/// acknowledged (an unacknowledged one would be requeued when its connection closed).
#[tokio::test]
async fn file_events_reach_both_groups_once_and_consumers_in_a_group_compete() {
    let config = broker(100);
    let fanout = Fanout { exchange: unique("files") };
    let thumbnails = RabbitConsumers::group(config.clone(), &fanout, SubscriberGroup::Thumbnails);
    let audit = RabbitConsumers::group(config.clone(), &fanout, SubscriberGroup::Audit);
    let stop = Arc::new(AtomicBool::new(false));
    let hold = Duration::from_millis(20);
    let first = drain(thumbnails.connect(1).await.unwrap(), hold, stop.clone());
    let second = drain(thumbnails.connect(1).await.unwrap(), hold, stop.clone());
    let auditor = drain(audit.connect(10).await.unwrap(), Duration::ZERO, stop.clone());
    let publisher = RabbitPublisher::fanout(&config, &fanout).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is not reachable ({e}); these tests need the real servers: run `make test-real`")
    });
    let all: BTreeSet<u64> = (1..=20).collect();
    for &id in &all {
        publisher.publish(event(id), Duration::from_secs(2)).await.unwrap();
    }
    // Long enough for 10 deliveries per consumer at 20 ms each, with room to spare.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let (first, second, audited) = (first.await.unwrap(), second.await.unwrap(), auditor.await.unwrap());
    println!(
        "thumbnails consumers took {} and {} events; audit took {}",
        first.len(),
        second.len(),
        audited.len()
    );
    let ids = |seen: &[(u64, bool)]| seen.iter().map(|(id, _)| *id).collect::<BTreeSet<u64>>();
    assert!(!first.is_empty() && !second.is_empty(), "both thumbnails consumers got events");
    assert_eq!(first.len() + second.len(), all.len(), "no thumbnails event twice");
    assert_eq!(&ids(&first) | &ids(&second), all);
    assert_eq!((audited.len(), ids(&audited)), (all.len(), all.clone()), "audit got every event once");
    assert!(first.iter().chain(&second).chain(&audited).all(|(_, redelivered)| !redelivered));

    for group in [&thumbnails, &audit] {
        let mut fresh = group.connect(10).await.unwrap();
        let leftover = tokio::time::timeout(Duration::from_millis(500), fresh.next()).await;
        assert!(leftover.is_err(), "a queue still held {:?}", leftover.map(|d| d.map(|d| d.message.id)));
    }
}

/// Goal: a full group queue refuses the publish (reject-publish), and an event published before
/// any consumer connected is kept for both groups. Method: a fresh exchange whose queues hold 2;
/// three events published with no consumer; then one consumer per group.
#[tokio::test]
async fn a_full_group_queue_refuses_the_publish_and_queued_events_wait_for_their_group() {
    let config = broker(2);
    let fanout = Fanout { exchange: unique("files") };
    let publisher = RabbitPublisher::fanout(&config, &fanout).await.unwrap();
    publisher.publish(event(1), Duration::from_secs(2)).await.unwrap();
    publisher.publish(event(2), Duration::from_secs(2)).await.unwrap();
    let refused = publisher.publish(event(3), Duration::from_secs(2)).await;
    assert_eq!(refused, Err(PublishError::Full));
    for group in SubscriberGroup::ALL {
        let mut consumer = RabbitConsumers::group(config.clone(), &fanout, group).connect(10).await.unwrap();
        let mut ids = Vec::new();
        while let Ok(delivery) = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await {
            let delivery = delivery.unwrap();
            consumer.ack(delivery.tag).await.unwrap();
            ids.push(delivery.message.id);
        }
        assert_eq!(ids, [1, 2], "{group:?}");
    }
}

fn new_file(key: &str) -> NewFile {
    NewFile { key: key.into(), object_key: format!("files/{key}"), size: 5, checksum: checksum(b"bytes") }
}

/// Goal: the file store's idempotency, under races too, and the final-state reader's view.
/// Method: create twice; set the thumbnail twice and from eight tasks at once; audit once from
/// eight tasks at once, then not-once twice; calls on a missing file; then `read_files`.
#[tokio::test]
async fn the_file_store_applies_each_effect_once_and_read_files_counts_audits() {
    use shakedown::real::files::read_files;
    use shakedown::stack::ports::DbNode;
    let cluster = cluster().await;
    let key = unique("file");
    let (row, existed) = cluster.create(&new_file(&key)).await.unwrap();
    assert!(!existed);
    assert_eq!((row.file.clone(), row.thumbnail.clone()), (new_file(&key), None));
    let (again, existed) = cluster.create(&new_file(&key)).await.unwrap();
    assert!(existed, "the second create is a replay");
    assert_eq!(again, row);
    assert_eq!(FileStore::get(&cluster, row.id).await.unwrap(), Some(row.clone()));

    assert!(cluster.set_thumbnail(row.id, "thumbs/one").await.unwrap());
    assert!(!cluster.set_thumbnail(row.id, "thumbs/two").await.unwrap(), "already set");
    let raced = unique("raced");
    let (raced_row, _) = cluster.create(&new_file(&raced)).await.unwrap();
    let marks = futures::future::join_all((0..8).map(|n| {
        let cluster = cluster.clone();
        async move { cluster.set_thumbnail(raced_row.id, &format!("thumbs/{n}")).await.unwrap() }
    }))
    .await;
    assert_eq!(marks.iter().filter(|applied| **applied).count(), 1, "{marks:?}");
    let audits = futures::future::join_all((0..8).map(|_| {
        let cluster = cluster.clone();
        async move { cluster.audit(raced_row.id, "file.uploaded", true).await.unwrap() }
    }))
    .await;
    assert_eq!(audits.iter().filter(|applied| **applied).count(), 1, "{audits:?}");
    assert!(cluster.audit(row.id, "file.uploaded", true).await.unwrap());
    assert!(!cluster.audit(row.id, "file.uploaded", true).await.unwrap(), "once: already there");
    assert!(cluster.audit(row.id, "file.uploaded", false).await.unwrap(), "not once: appended again");
    assert!(cluster.audit(row.id, "file.uploaded", false).await.unwrap());

    let missing = u64::MAX >> 2;
    assert!(matches!(cluster.set_thumbnail(missing, "t").await, Err(PortError::Rejected(_))));
    assert!(matches!(cluster.audit(missing, "file.uploaded", true).await, Err(PortError::Rejected(_))));
    assert!(matches!(cluster.audit(missing, "file.uploaded", false).await, Err(PortError::Rejected(_))));
    assert_eq!(FileStore::get(&cluster, missing).await.unwrap(), None);

    let mut conn = cluster.pool(DbNode::PgPrimary).acquire().await.unwrap();
    let files = read_files(&mut conn).await.unwrap();
    let find = |id: u64| files.iter().find(|f| f.row.id == id).expect("read_files has the row");
    let stored = find(row.id);
    assert_eq!((stored.row.thumbnail.as_deref(), stored.audit_count), (Some("thumbs/one"), 3));
    assert_eq!(stored.row.file, new_file(&key));
    assert_eq!(find(raced_row.id).audit_count, 1);
    assert!(files.windows(2).all(|w| w[0].row.id < w[1].row.id), "by id");
}
