//! `shakedown wal-push`: PostgreSQL's `archive_command` on a database node of a containers run —
//! send one WAL file to the backup agent (`SHAKEDOWN_ARCHIVE_URL`, its `PUT` route).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::http::RealHttp;
use crate::stack::ports::{HttpClient as _, HttpRequest};

/// How long one `wal-push` waits for the agent: a 1 MB segment takes milliseconds on the run's
/// network, and a push that hangs (a partition drops its packets) must fail before the
/// partition ends, or PostgreSQL's archiver, which pushes one file at a time, would just wait.
const WAL_PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a failed push is reported as a success (`SHAKEDOWN_ARCHIVE_IGNORE_FAILURES=1`, the
/// `wal-archive-gap` bug): the archive then misses the segment.
pub fn ignore_failures() -> bool {
    std::env::var("SHAKEDOWN_ARCHIVE_IGNORE_FAILURES").is_ok_and(|v| v == "1")
}

/// Send the file at `path` to the agent as `name`; `Ok` once the agent stored it.
pub fn push(path: &Path, name: &str) -> Result<(), String> {
    let url = std::env::var("SHAKEDOWN_ARCHIVE_URL")
        .map_err(|_| "SHAKEDOWN_ARCHIVE_URL is not set (the backup agent's http://HOST:PORT)".to_string())?;
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("SHAKEDOWN_ARCHIVE_URL={url}: expected http://HOST:PORT"))?
        .trim_end_matches('/')
        .to_string();
    let body = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let request = HttpRequest {
        method: http::Method::PUT,
        authority,
        path: format!("{}{name}", super::agent::WAL_PATH),
        body: Some(body),
        headers: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a tokio runtime: {e}"))?;
    let response = runtime
        .block_on(RealHttp::new(BTreeMap::new()).send(request, WAL_PUSH_TIMEOUT))
        .map_err(|e| format!("PUT to {url}: {e}"))?;
    if response.status == 200 {
        Ok(())
    } else {
        Err(format!("{url} answered {}: {}", response.status, String::from_utf8_lossy(&response.body)))
    }
}
