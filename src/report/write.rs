//! Writing a run's files: into a fresh temporary directory that is renamed into place once every
//! file is complete, so a crash or a full disk never leaves a half-written report where a reader
//! (or CI) would take it for a finished one.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why a run's output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    /// The file or directory that failed.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError { path: path.to_path_buf(), source }
}

/// A directory being filled; [`OutputDir::commit`] moves it to its final place.
#[derive(Debug)]
pub struct OutputDir {
    staging: PathBuf,
    target: PathBuf,
}

impl OutputDir {
    /// Start writing the files that will end up in `target` (created with its parents).
    pub fn create(target: &Path) -> Result<OutputDir, WriteError> {
        let parent = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(at(parent))?;
        let name = target.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(at(&staging))?;
        }
        fs::create_dir(&staging).map_err(at(&staging))?;
        Ok(OutputDir { staging, target: target.to_path_buf() })
    }

    /// Write one file through a buffered writer.
    pub fn write_with(
        &self,
        file_name: &str,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), WriteError> {
        let path = self.staging.join(file_name);
        let file = fs::File::create(&path).map_err(at(&path))?;
        let mut out = BufWriter::new(file);
        fill(&mut out).map_err(at(&path))?;
        out.flush().map_err(at(&path))?;
        out.get_ref().sync_all().map_err(at(&path))
    }

    /// Write one file from a string.
    pub fn write(&self, file_name: &str, contents: &str) -> Result<(), WriteError> {
        self.write_with(file_name, |out| out.write_all(contents.as_bytes()))
    }

    /// Move the finished files into place, replacing an earlier run of the same seed.
    pub fn commit(self) -> Result<PathBuf, WriteError> {
        if self.target.exists() {
            fs::remove_dir_all(&self.target).map_err(at(&self.target))?;
        }
        fs::rename(&self.staging, &self.target).map_err(at(&self.target))?;
        Ok(self.target.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        // An abandoned (uncommitted) staging directory is removed; after commit it no longer exists.
        let _ = fs::remove_dir_all(&self.staging);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_appear_only_on_commit_and_replace_the_old_run() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("scenario").join("7");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("stale.txt"), "old").unwrap();

        let out = OutputDir::create(&target).unwrap();
        out.write("report.json", "{}").unwrap();
        assert!(!target.join("report.json").exists(), "visible before commit");
        out.commit().unwrap();
        assert_eq!(fs::read_to_string(target.join("report.json")).unwrap(), "{}");
        assert!(!target.join("stale.txt").exists());

        let abandoned = OutputDir::create(&root.path().join("other")).unwrap();
        abandoned.write("history.jsonl", "").unwrap();
        drop(abandoned);
        let leftovers: Vec<_> = fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["scenario"], "the abandoned staging dir must be removed");
    }
}
