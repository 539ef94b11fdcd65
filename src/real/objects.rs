//! Object storage (the `objects` host) over the S3 API, through the `object_store` crate's S3
//! client: path-style requests on plain HTTP to one endpoint, SigV4-signed with a static key, one
//! bucket. Any S3-compatible server fits; `scripts/real-services.sh` starts `s3s-fs`, which keeps
//! each object as a file written to a temporary name and renamed into place, so an object is
//! either whole or absent, and a SIGKILL of the server loses nothing it acknowledged (the kernel
//! holds the file; only a machine crash could, and the server does not fsync).
//!
//! - Every call is bounded by [`S3Config::timeout`] (the client's own request timeout and a
//!   `tokio` timeout around the whole call), and the client never retries: one call is one
//!   request, and the service above decides about retries.
//! - Errors follow the port contract: no answer, a timeout, a 5xx or any HTTP error the client
//!   cannot classify is `Unavailable` (an S3 server may have stored the bytes before it failed;
//!   `s3s-fs` renames the object into place before it checks a digest); a refused key, missing
//!   credentials or a missing bucket is `Rejected`; a missing object is `Ok(None)` for `get`.
//! - The bucket: `object_store` has no CreateBucket, so [`S3Objects::connect`] sends one itself,
//!   as a plain `PUT /BUCKET/` on a URL presigned by the same client (its SigV4 signer, no
//!   hand-written signing). An existing bucket (409) is fine.
//! - Keys are `/`-separated segments of ASCII letters, digits, `-`, `_` and `.` (not `.` or `..`
//!   alone), so a key listed is exactly the key written, whatever the server escapes. Any other
//!   key is `Rejected` before a request is sent. On `s3s-fs` a key is a file path: `a` and `a/b`
//!   cannot both exist (the stack's `files/KEY` and `thumbs/files/KEY` never collide).
//! - `list` reads every object back to checksum it ([`checksum`]), at most
//!   [`LIST_GETS_IN_FLIGHT_MAX`] at a time and at most [`LIST_OBJECTS_MAX`] objects.

use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore as _, ObjectStoreExt as _, RetryConfig};

use super::http::RealHttp;
use crate::stack::ports::{HttpClient, HttpRequest, ObjectInfo, ObjectStore, PortError};

/// Longest wait for one call (a put, a get, one page of a listing) by default.
pub const S3_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Most objects `list` reads: past it, the listing fails naming this limit.
pub const LIST_OBJECTS_MAX: usize = 100_000;
/// Most objects `list` reads back at once to checksum them.
pub const LIST_GETS_IN_FLIGHT_MAX: usize = 8;
/// The SigV4 region: servers such as `s3s-fs` accept any; a real one must be told it.
pub const S3_REGION: &str = "us-east-1";

/// Where the object store is and how to sign for it.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The endpoint, `http://127.0.0.1:55900`.
    pub url: String,
    /// The one bucket every object lives in, created if missing.
    pub bucket: String,
    /// The static access key id.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    /// Longest wait for one call; default [`S3_CALL_TIMEOUT`].
    pub timeout: Duration,
}

impl S3Config {
    /// `scripts/real-services.sh`'s server: `SHAKEDOWN_S3_URL` (default
    /// `http://127.0.0.1:55900`), `SHAKEDOWN_S3_BUCKET` (`shakedown`), `SHAKEDOWN_S3_ACCESS_KEY`
    /// (`shakedown`) and `SHAKEDOWN_S3_SECRET_KEY` (`shakedown-secret`).
    pub fn from_env() -> S3Config {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        S3Config {
            url: var("SHAKEDOWN_S3_URL", "http://127.0.0.1:55900"),
            bucket: var("SHAKEDOWN_S3_BUCKET", "shakedown"),
            access_key: var("SHAKEDOWN_S3_ACCESS_KEY", "shakedown"),
            secret_key: var("SHAKEDOWN_S3_SECRET_KEY", "shakedown-secret"),
            timeout: S3_CALL_TIMEOUT,
        }
    }
}

/// The [`ObjectStore`] port on an S3 endpoint. Cheap to clone (the client is shared).
#[derive(Clone, Debug)]
pub struct S3Objects {
    store: std::sync::Arc<AmazonS3>,
    config: S3Config,
}

impl S3Objects {
    /// The client, without a request: a server that is down is not an error yet.
    pub fn new(config: &S3Config) -> Result<S3Objects, PortError> {
        // reqwest (built without a TLS provider of its own, see Cargo.toml) panics building a
        // client unless the process has a default provider; ring's is the one compiled in. An
        // `Err` means one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_timeout(config.timeout)
            .with_connect_timeout(config.timeout);
        let retry = RetryConfig { max_retries: 0, retry_timeout: config.timeout, ..RetryConfig::default() };
        let store = AmazonS3Builder::new()
            .with_endpoint(config.url.trim_end_matches('/'))
            .with_bucket_name(&config.bucket)
            .with_region(S3_REGION)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| PortError::Rejected(format!("S3 client for {}: {e}", config.url)))?;
        Ok(S3Objects { store: std::sync::Arc::new(store), config: config.clone() })
    }

    /// The client, and the bucket created if missing ([`S3Objects::create_bucket`]).
    pub async fn connect(config: &S3Config) -> Result<S3Objects, PortError> {
        let objects = S3Objects::new(config)?;
        objects.create_bucket().await?;
        Ok(objects)
    }

    /// Create the bucket (S3 CreateBucket); `Ok` when it exists already.
    pub async fn create_bucket(&self) -> Result<(), PortError> {
        let url = self
            .store
            .signed_url(http::Method::PUT, &Path::from(""), Duration::from_secs(60))
            .await
            .map_err(port_error)?;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let request =
            HttpRequest { method: http::Method::PUT, authority, path, body: None, headers: Vec::new() };
        let response = RealHttp::new(Default::default()).send(request, self.config.timeout).await?;
        match response.status {
            200..=299 | 409 => Ok(()),
            status => Err(PortError::Rejected(format!(
                "CreateBucket {} at {}: HTTP {status}: {}",
                self.config.bucket,
                self.config.url,
                String::from_utf8_lossy(&response.body)
            ))),
        }
    }

    /// `call`, bounded by the configured timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, object_store::Error>>,
    ) -> Result<T, object_store::Error> {
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(object_store::Error::Generic {
                store: "S3",
                source: format!("{what}: no answer within {} ms", self.config.timeout.as_millis()).into(),
            }),
        }
    }

    /// The object's bytes, `None` when there is none; errors unmapped.
    async fn fetch(&self, path: &Path) -> Result<Option<Vec<u8>>, object_store::Error> {
        let read = async { self.store.get(path).await?.bytes().await };
        match self.bounded(&format!("GET {path}"), read).await {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// A key as an `object_store` path, refused unless it is plain (see the module doc).
fn path(key: &str) -> Result<Path, PortError> {
    let plain_segment = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !key.split('/').all(plain_segment) {
        return Err(PortError::Rejected(format!(
            "object key {key:?}: expected `/`-separated segments of letters, digits, `-`, `_` and `.`"
        )));
    }
    Path::parse(key).map_err(|e| PortError::Rejected(format!("object key {key:?}: {e}")))
}

/// The port contract's reading of a client error (see the module doc).
fn port_error(error: object_store::Error) -> PortError {
    use object_store::Error;
    match error {
        Error::NotFound { .. }
        | Error::InvalidPath { .. }
        | Error::NotSupported { .. }
        | Error::NotImplemented { .. }
        | Error::PermissionDenied { .. }
        | Error::Unauthenticated { .. }
        | Error::UnknownConfigurationKey { .. } => PortError::Rejected(error.to_string()),
        other => PortError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        let path = path(key)?;
        let put = self.store.put(&path, bytes.into());
        self.bounded(&format!("PUT {key}"), put).await.map(|_| ()).map_err(port_error)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.fetch(&path(key)?).await.map_err(port_error)
    }

    async fn list(&self) -> Result<Vec<ObjectInfo>, PortError> {
        let mut listing = self.store.list(None);
        let mut paths = Vec::new();
        while let Some(meta) = self.bounded("LIST", listing.try_next()).await.map_err(port_error)? {
            if paths.len() == LIST_OBJECTS_MAX {
                return Err(PortError::Rejected(format!(
                    "the bucket {} holds more than LIST_OBJECTS_MAX = {LIST_OBJECTS_MAX} objects",
                    self.config.bucket
                )));
            }
            paths.push(meta.location);
        }
        // Read back in key order, a bounded number at a time; an object deleted since the
        // listing is skipped (nothing deletes during a run's final read).
        let objects: Vec<Option<ObjectInfo>> = futures::stream::iter(paths)
            .map(|path| async move {
                let bytes = self.fetch(&path).await.map_err(port_error)?;
                Ok::<_, PortError>(bytes.map(|bytes| ObjectInfo::of(path.as_ref(), &bytes)))
            })
            .buffered(LIST_GETS_IN_FLIGHT_MAX)
            .try_collect()
            .await?;
        Ok(objects.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_read_back_as_themselves() {
        assert!(path("files/k-1").is_ok());
        assert!(path("thumbs/files/k-1").is_ok());
        for bad in ["", "/lead", "trail/", "a//b", "a/../b", "a/./b", "per%cent", "sp ace", "é"] {
            assert!(matches!(path(bad), Err(PortError::Rejected(_))), "{bad:?} must be refused");
        }
    }

    #[test]
    fn only_refusals_before_a_write_are_rejected() {
        let generic = object_store::Error::Generic { store: "S3", source: "HTTP 500".into() };
        assert!(matches!(port_error(generic), PortError::Unavailable(_)));
        let denied = object_store::Error::PermissionDenied { path: "k".into(), source: "403".into() };
        assert!(matches!(port_error(denied), PortError::Rejected(_)));
    }
}
