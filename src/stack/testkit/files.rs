//! Object storage and file metadata in memory, for the files service's tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::stack::ports::{FileRow, FileStore, NewFile, ObjectInfo, ObjectStore, PortError};

/// The objects by key, and the failure every call answers with while one is set.
type ObjectsInner = (BTreeMap<String, Vec<u8>>, Option<PortError>);

/// Objects by key, with an injectable failure.
#[derive(Default)]
pub struct MemObjects {
    inner: Mutex<ObjectsInner>,
}

impl MemObjects {
    /// Make every call fail with `err` (None: normal again).
    pub fn fail(&self, err: Option<PortError>) {
        self.inner.lock().expect("objects poisoned").1 = err;
    }

    /// An object's bytes.
    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.lock().expect("objects poisoned").0.get(key).cloned()
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, ObjectsInner>, PortError> {
        let inner = self.inner.lock().expect("objects poisoned");
        match &inner.1 {
            Some(err) => Err(err.clone()),
            None => Ok(inner),
        }
    }
}

#[async_trait]
impl ObjectStore for MemObjects {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        self.check()?.0.insert(key.into(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.check()?.0.get(key).cloned())
    }

    async fn list(&self) -> Result<Vec<ObjectInfo>, PortError> {
        let inner = self.check()?;
        Ok(inner.0.iter().map(|(key, bytes)| ObjectInfo::of(key, bytes)).collect())
    }
}

#[derive(Default)]
struct FilesInner {
    rows: Vec<FileRow>,
    thumbnails_applied: BTreeMap<u64, u32>,
    audit: BTreeMap<u64, Vec<String>>,
}

/// File rows, thumbnail marks and the audit table.
#[derive(Default)]
pub struct MemFiles {
    inner: Mutex<FilesInner>,
}

impl MemFiles {
    fn lock(&self) -> std::sync::MutexGuard<'_, FilesInner> {
        self.inner.lock().expect("files poisoned")
    }

    /// A row.
    pub fn row(&self, id: u64) -> Option<FileRow> {
        self.lock().rows.get((id as usize).wrapping_sub(1)).cloned()
    }

    /// How many rows.
    pub fn count(&self) -> usize {
        self.lock().rows.len()
    }

    /// Times file `id`'s thumbnail was recorded.
    pub fn thumbnails_applied(&self, id: u64) -> u32 {
        self.lock().thumbnails_applied.get(&id).copied().unwrap_or(0)
    }

    /// Audit entries for file `id`.
    pub fn audits(&self, id: u64) -> usize {
        self.lock().audit.get(&id).map_or(0, Vec::len)
    }
}

#[async_trait]
impl FileStore for MemFiles {
    async fn create(&self, file: &NewFile) -> Result<(FileRow, bool), PortError> {
        let mut inner = self.lock();
        if let Some(row) = inner.rows.iter().find(|r| r.file.key == file.key) {
            return Ok((row.clone(), true));
        }
        let row = FileRow { id: inner.rows.len() as u64 + 1, file: file.clone(), thumbnail: None };
        inner.rows.push(row.clone());
        Ok((row, false))
    }

    async fn get(&self, id: u64) -> Result<Option<FileRow>, PortError> {
        Ok(self.row(id))
    }

    async fn set_thumbnail(&self, id: u64, thumbnail_key: &str) -> Result<bool, PortError> {
        let mut inner = self.lock();
        let Some(row) = inner.rows.get_mut((id as usize).wrapping_sub(1)) else {
            return Err(PortError::Rejected(format!("no file {id}")));
        };
        if row.thumbnail.is_some() {
            return Ok(false);
        }
        row.thumbnail = Some(thumbnail_key.into());
        *inner.thumbnails_applied.entry(id).or_default() += 1;
        Ok(true)
    }

    async fn audit(&self, id: u64, event: &str, once: bool) -> Result<bool, PortError> {
        let mut inner = self.lock();
        let events = inner.audit.entry(id).or_default();
        if once && events.iter().any(|e| e == event) {
            return Ok(false);
        }
        events.push(event.into());
        Ok(true)
    }
}
