//! Files, served on every `api-N` host, and the two subscriber groups the workers run.
//!
//! - `POST /files` (the bytes as the body, the idempotency key in the `idempotency-key`
//!   header): store the bytes in object storage under `files/<key>-<checksum prefix>`, then
//!   insert the metadata row (idempotent on the key), then publish `file.uploaded` on the fanout
//!   exchange and wait for the broker's confirm; 201 `{id, object_key, size, checksum}` only
//!   then. Object first, row second: a row never points at bytes that were not stored. A failed
//!   PUT or row write answers 504 (unknown) or 503; a rejected or unconfirmed publish answers
//!   503 with `Retry-After` — the row stays, and a retry with the same key publishes again. A
//!   retry of an upload whose key is recorded with other bytes is refused (409).
//! - `GET /files/{id}`: the row.
//!
//! Subscribers ([`Thumbnails`], [`Audit`]) are [`Handler`]s the workers' consume loop runs on the
//! groups' queues: thumbnails reads the object, stores a derived object `thumbs/<key>` and marks
//! the row; audit appends the event to the audit table. Each commits before it acks, and each
//! effect applies once, so a redelivery is harmless.
//!
//! Bugs planted here: `metadata_before_object` (the row is committed before the PUT) and
//! `autoack_subscriber` (audit acks on receipt, before its write).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::api::FileAccepted;
use super::bugs::Bugs;
use super::invest::bounded;
use super::ports::{
    Delivery, FileEvent, FileStore, NewFile, ObjectStore, PortError, Publisher, SubscriberGroup, checksum,
};
use super::wire;
use super::worker::{Handler, WorkerConfig};
use crate::scenario::model::StackConfig;

/// The event the api publishes and the audit table records.
pub const UPLOADED: &str = "file.uploaded";

/// How the files api behaves. Defaults on each field.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    /// Upper bound on one object-store call. Default 2 s.
    pub object_timeout: Duration,
    /// Upper bound on one metadata call. Default 1 s.
    pub store_timeout: Duration,
    /// How long to wait for the broker's publisher confirm. Default 500 ms.
    pub confirm_timeout: Duration,
    /// `Retry-After` on a 503, in seconds. Default 1.
    pub retry_after_secs: u64,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            object_timeout: Duration::from_secs(2),
            store_timeout: Duration::from_secs(1),
            confirm_timeout: Duration::from_millis(500),
            retry_after_secs: 1,
            bugs: Bugs::default(),
        }
    }
}

impl FilesConfig {
    /// The defaults, with the stack's bug switches.
    pub fn for_stack(stack: &StackConfig) -> FilesConfig {
        FilesConfig { bugs: Bugs::from_list(&stack.bugs), ..FilesConfig::default() }
    }
}

/// The ports the files api and its subscribers use.
#[derive(Clone)]
pub struct FilesPorts {
    /// Object storage (the `objects` host).
    pub objects: Arc<dyn ObjectStore>,
    /// The metadata rows and the audit table.
    pub files: Arc<dyn FileStore>,
    /// The fanout exchange's publishing side.
    pub events: Arc<dyn Publisher<FileEvent>>,
}

/// The files api's state.
#[derive(Clone)]
pub struct FilesState {
    ports: FilesPorts,
    config: Arc<FilesConfig>,
}

impl FilesState {
    /// Build from the ports and the config.
    pub fn new(ports: FilesPorts, config: FilesConfig) -> FilesState {
        FilesState { ports, config: Arc::new(config) }
    }
}

/// The routes `POST /files` and `GET /files/{id}`.
pub fn router(state: FilesState) -> Router {
    Router::new().route("/files", post(upload)).route("/files/{id}", get(status)).with_state(state)
}

/// Where a file's bytes go: its key and the start of its checksum, so a retry with other bytes
/// never overwrites an acknowledged upload's object.
pub fn object_key(key: &str, checksum: &str) -> String {
    format!("files/{}-{}", safe(key), &checksum[..checksum.len().min(12)])
}

/// Where the thumbnails group puts a file's derived object.
pub fn thumbnail_key(key: &str) -> String {
    format!("thumbs/{}", safe(key))
}

/// A client's key as one object-key segment every S3 server stores as is: ASCII letters,
/// digits, `-` and `.` stay, every other byte becomes `_` and two hex digits (so `_` itself is
/// `_5F`, and two keys never meet).
fn safe(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

async fn upload(State(state): State<FilesState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = wire::idempotency_key(None, &headers) else {
        return wire::error(StatusCode::BAD_REQUEST, "POST /files needs an idempotency-key header");
    };
    let (ports, config) = (&state.ports, &state.config);
    let sum = checksum(&body);
    let file = NewFile {
        key: key.clone(),
        object_key: object_key(&key, &sum),
        size: body.len() as u64,
        checksum: sum,
    };
    let put = || bounded(config.object_timeout, ports.objects.put(&file.object_key, body.to_vec()));
    let record = || bounded(config.store_timeout, ports.files.create(&file));
    let row = if config.bugs.metadata_before_object {
        // Bug: the row first; a PUT that then fails leaves it pointing at nothing.
        let row = match record().await {
            Ok((row, _)) => row,
            Err(err) => return wire::port_error("recording the file", &err),
        };
        if let Err(err) = put().await {
            return wire::port_error("storing the bytes", &err);
        }
        row
    } else {
        if let Err(err) = put().await {
            return wire::port_error("storing the bytes", &err);
        }
        match record().await {
            Ok((row, _)) => row,
            Err(err) => return wire::port_error("recording the file", &err),
        }
    };
    if row.file.checksum != file.checksum {
        let message = format!("file {key} is recorded with other bytes (checksum {})", row.file.checksum);
        return wire::error(StatusCode::CONFLICT, message);
    }
    let event = FileEvent { id: row.id, key, object_key: row.file.object_key.clone() };
    if let Err(err) = ports.events.publish(event, config.confirm_timeout).await {
        return wire::busy(config.retry_after_secs, format!("publishing {UPLOADED}: {err}"));
    }
    let accepted = FileAccepted {
        id: row.id,
        object_key: row.file.object_key,
        size: row.file.size,
        checksum: row.file.checksum,
    };
    (StatusCode::CREATED, axum::Json(accepted)).into_response()
}

async fn status(State(state): State<FilesState>, Path(id): Path<u64>) -> Response {
    match bounded(state.config.store_timeout, state.ports.files.get(id)).await {
        Ok(Some(row)) => axum::Json(row).into_response(),
        Ok(None) => wire::error(StatusCode::NOT_FOUND, format!("no file with id {id}")),
        Err(err) => wire::port_error("reading the file", &err),
    }
}

/// Each subscriber group's handler, as a worker runs them (both backends build them here): the
/// worker's store timeout bounds each call, its bug switches reach the audit group.
pub fn subscribers(
    objects: Arc<dyn ObjectStore>,
    files: Arc<dyn FileStore>,
    config: &WorkerConfig,
) -> [(SubscriberGroup, Arc<dyn Handler<FileEvent>>); 2] {
    let timeout = config.store_timeout;
    let thumbnails = Thumbnails { objects, files: files.clone(), timeout };
    let audit = Audit { files, timeout, bugs: config.bugs };
    [(SubscriberGroup::Thumbnails, Arc::new(thumbnails)), (SubscriberGroup::Audit, Arc::new(audit))]
}

/// The thumbnails group: read the object, store the derived object, mark the row.
pub struct Thumbnails {
    /// Object storage.
    pub objects: Arc<dyn ObjectStore>,
    /// The metadata rows.
    pub files: Arc<dyn FileStore>,
    /// Upper bound on each call.
    pub timeout: Duration,
}

/// The derived object of a file's bytes: a small summary standing in for an image thumbnail.
pub fn thumbnail_of(bytes: &[u8]) -> Vec<u8> {
    format!("thumbnail of {} bytes, sha256 {}", bytes.len(), checksum(bytes)).into_bytes()
}

#[async_trait]
impl Handler<FileEvent> for Thumbnails {
    async fn handle(&self, delivery: &Delivery<FileEvent>) -> Result<(), PortError> {
        let event = &delivery.message;
        let Some(bytes) = bounded(self.timeout, self.objects.get(&event.object_key)).await? else {
            // Nothing to derive from: the row points at a missing object (the `files` check
            // reports it); redelivering would not bring the bytes back.
            tracing::warn!(key = event.key, object = event.object_key, "thumbnails: the object is missing");
            return Ok(());
        };
        let thumb = thumbnail_key(&event.key);
        bounded(self.timeout, self.objects.put(&thumb, thumbnail_of(&bytes))).await?;
        match bounded(self.timeout, self.files.set_thumbnail(event.id, &thumb)).await {
            Ok(_) => Ok(()),
            // No such row (a bug-zoo row that was never committed): nothing to mark.
            Err(PortError::Rejected(why)) => {
                tracing::warn!(key = event.key, %why, "thumbnails: no row to mark");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }
}

/// The audit group: append the event to the audit table, once per file.
pub struct Audit {
    /// The audit table.
    pub files: Arc<dyn FileStore>,
    /// Upper bound on each call.
    pub timeout: Duration,
    /// Planted bugs (`autoack_subscriber`).
    pub bugs: Bugs,
}

#[async_trait]
impl Handler<FileEvent> for Audit {
    async fn handle(&self, delivery: &Delivery<FileEvent>) -> Result<(), PortError> {
        bounded(self.timeout, self.files.audit(delivery.message.id, UPLOADED, true)).await.map(|_| ())
    }

    fn ack_on_receipt(&self) -> bool {
        self.bugs.autoack_subscriber
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports::{HttpRequest, PublishError};
    use crate::stack::testkit::{MemBroker, MemFiles, MemObjects, oneshot};

    struct Fixture {
        objects: Arc<MemObjects>,
        files: Arc<MemFiles>,
        events: MemBroker<FileEvent>,
        router: Router,
    }

    fn fixture(bugs: Bugs) -> Fixture {
        let (objects, files, events) =
            (Arc::new(MemObjects::default()), Arc::new(MemFiles::default()), MemBroker::new(10));
        let ports =
            FilesPorts { objects: objects.clone(), files: files.clone(), events: Arc::new(events.clone()) };
        let router = router(FilesState::new(ports, FilesConfig { bugs, ..FilesConfig::default() }));
        Fixture { objects, files, events, router }
    }

    fn upload_request(key: &str, body: &[u8]) -> HttpRequest {
        HttpRequest {
            method: http::Method::POST,
            authority: "api-1:80".into(),
            path: "/files".into(),
            body: Some(body.to_vec()),
            headers: vec![(crate::stack::api::IDEMPOTENCY_HEADER.into(), key.into())],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_stores_the_bytes_then_the_row_then_publishes() {
        let f = fixture(Bugs::default());
        let body = crate::stack::api::upload_body("f-1", 1000);
        let resp = oneshot(f.router.clone(), upload_request("f-1", &body)).await;
        assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
        let accepted: FileAccepted = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!((accepted.size, accepted.checksum.clone()), (1000, checksum(&body)));
        assert_eq!(f.objects.bytes(&accepted.object_key).unwrap(), body);
        let row = f.files.row(accepted.id).unwrap();
        assert_eq!(row.file.object_key, accepted.object_key);
        assert_eq!(
            f.events.published(),
            [FileEvent { id: accepted.id, key: "f-1".into(), object_key: accepted.object_key.clone() }]
        );
        // A retry is the same file; other bytes under the same key are refused.
        let again = oneshot(f.router.clone(), upload_request("f-1", &body)).await;
        assert_eq!(again.status, 201);
        assert_eq!(f.files.count(), 1);
        assert_eq!(oneshot(f.router.clone(), upload_request("f-1", b"other")).await.status, 409);
    }

    /// A PUT that fails leaves no row (the correct order) — or a dangling one (the bug).
    #[tokio::test(start_paused = true)]
    async fn a_failed_put_leaves_no_row_unless_the_bug_records_it_first() {
        for (bugs, rows) in
            [(Bugs::default(), 0), (Bugs { metadata_before_object: true, ..Bugs::default() }, 1)]
        {
            let f = fixture(bugs);
            f.objects.fail(Some(PortError::Unavailable("objects down".into())));
            let resp = oneshot(f.router.clone(), upload_request("f-1", b"bytes")).await;
            assert_eq!(resp.status, 504);
            assert_eq!(f.files.count(), rows, "{bugs:?}");
            assert!(f.events.published().is_empty());
        }
    }

    /// A rejected publish is 503 with Retry-After, never 201; the retry publishes.
    #[tokio::test(start_paused = true)]
    async fn an_unconfirmed_event_is_503_and_the_retry_publishes() {
        let f = fixture(Bugs::default());
        f.events.fail_publish(Some(PublishError::Unconfirmed("channel closed".into())));
        let resp = oneshot(f.router.clone(), upload_request("f-1", b"bytes")).await;
        assert_eq!((resp.status, resp.retry_after_secs), (503, Some(1)));
        f.events.fail_publish(None);
        assert_eq!(oneshot(f.router.clone(), upload_request("f-1", b"bytes")).await.status, 201);
        assert_eq!(f.events.published().len(), 1);
    }

    #[test]
    fn object_keys_keep_to_the_characters_every_s3_server_stores_as_is() {
        assert_eq!(object_key("upload-000042", "abcdef0123456789"), "files/upload-000042-abcdef012345");
        assert_eq!(thumbnail_key("a/b c_d"), "thumbs/a_2Fb_20c_5Fd");
        assert_ne!(thumbnail_key("a_2F"), thumbnail_key("a/"));
    }

    #[tokio::test(start_paused = true)]
    async fn thumbnails_derive_and_mark_once_and_audit_appends_once() {
        let (objects, files) = (Arc::new(MemObjects::default()), Arc::new(MemFiles::default()));
        let new =
            NewFile { key: "f".into(), object_key: "files/f".into(), size: 5, checksum: checksum(b"bytes") };
        let (row, _) = files.create(&new).await.unwrap();
        objects.put("files/f", b"bytes".to_vec()).await.unwrap();
        let delivery = Delivery {
            tag: 1,
            redelivered: false,
            message: FileEvent { id: row.id, key: "f".into(), object_key: "files/f".into() },
        };
        let thumbs =
            Thumbnails { objects: objects.clone(), files: files.clone(), timeout: Duration::from_secs(1) };
        thumbs.handle(&delivery).await.unwrap();
        thumbs.handle(&delivery).await.unwrap();
        assert_eq!(objects.bytes("thumbs/f").unwrap(), thumbnail_of(b"bytes"));
        assert_eq!(files.row(row.id).unwrap().thumbnail.as_deref(), Some("thumbs/f"));
        assert_eq!(files.thumbnails_applied(row.id), 1);
        let audit = Audit { files: files.clone(), timeout: Duration::from_secs(1), bugs: Bugs::default() };
        audit.handle(&delivery).await.unwrap();
        audit.handle(&delivery).await.unwrap();
        assert_eq!(files.audits(row.id), 1);
        assert!(!audit.ack_on_receipt());
        let buggy = Audit { bugs: Bugs { autoack_subscriber: true, ..Bugs::default() }, ..audit };
        assert!(buggy.ack_on_receipt());
    }
}
