//! WAL streaming to the backup host, as Barman does: `pg_receivewal` on the backup agent follows
//! the writer (through `db-router`) and writes each segment as it is produced, the current one
//! as `<segment>.partial`. The archive (`archive_command`, whole segments at least every
//! `archive_timeout`) stays the catalogued source of truth; the stream only supplies the tail
//! the archive has not received yet, so a restore to the latest loses milliseconds of commits,
//! not up to a segment switch's second.
//!
//! Each start of `pg_receivewal` writes into a generation directory of its own
//! (`stream/000001/`, …): after a failover or a restore the writer is another server on another
//! timeline, and a fresh directory lets `pg_receivewal` start at the new writer's current
//! segment instead of insisting on where the old one stopped. It runs without a replication
//! slot, so a backup host that is down never makes the primary keep WAL; what it misses, the
//! archive has. Not pruned: a run's stream is a few segments.
//!
//! [`tail`] is the decision (pure): after a chain that reached the end of the archive, the
//! streamed segments that continue it on its timeline, contiguous, ending at most with one
//! `.partial`. A chain that ends at a gap gets no tail — the stream never stands in for a segment
//! the archive should hold (that gap is what `checks.restore` must catch).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::backup::{PgTools, command_line, is_segment_name};
use crate::stack::ports::Lsn;

/// The stream's directory in the backup volume.
pub const STREAM_DIR: &str = "stream";
/// The suffix of the segment being written.
const PARTIAL: &str = ".partial";
/// Between an exit of `pg_receivewal` and its next start.
const RESTART_AFTER: Duration = Duration::from_millis(500);

/// Stream the writer's WAL into `dir` forever, a new generation per start of `pg_receivewal`.
pub async fn stream_loop(tools: PgTools, conninfo: String, dir: PathBuf) {
    let mut generation = newest_generation(&dir);
    loop {
        generation += 1;
        let into = dir.join(format!("{generation:06}"));
        if let Err(error) = std::fs::create_dir_all(&into) {
            tracing::warn!(%error, dir = %into.display(), "cannot make the stream's directory");
            tokio::time::sleep(RESTART_AFTER * 10).await;
            continue;
        }
        let args: Vec<OsString> = vec![
            "-D".into(),
            into.clone().into(),
            "-d".into(),
            conninfo.clone().into(),
            "--no-loop".into(),
            "--no-password".into(),
            "--status-interval=1".into(),
        ];
        let line = command_line(&tools, "pg_receivewal", &args, false);
        let mut command = tokio::process::Command::new(&line[0]);
        command.args(&line[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        command.kill_on_drop(true);
        match command.output().await {
            Ok(output) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().last().unwrap_or("");
                tracing::info!(status = %output.status, last, "pg_receivewal stopped; streaming again");
            }
            Err(error) => tracing::warn!(%error, "pg_receivewal did not start"),
        }
        // A start that never connected leaves an empty directory behind: not a generation.
        if std::fs::read_dir(&into).is_ok_and(|mut listing| listing.next().is_none()) {
            let _ = std::fs::remove_dir(&into);
            generation -= 1;
        }
        tokio::time::sleep(RESTART_AFTER).await;
    }
}

/// The greatest generation number under `dir` (0: none).
fn newest_generation(dir: &Path) -> u32 {
    let Ok(listing) = std::fs::read_dir(dir) else { return 0 };
    listing.flatten().filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()).max().unwrap_or(0)
}

/// Every streamed file under `dir`, by name (`<segment>` or `<segment>.partial`); where several
/// generations hold one, the newest generation's copy.
pub fn streamed_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut generations: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(listing) => listing.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect(),
        Err(_) => return BTreeMap::new(),
    };
    generations.sort();
    let mut files = BTreeMap::new();
    for generation in generations {
        let Ok(listing) = std::fs::read_dir(&generation) else { continue };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_segment_name(name.strip_suffix(PARTIAL).unwrap_or(&name)) {
                files.insert(name, entry.path());
            }
        }
    }
    files
}

/// The streamed files that continue a chain ending at `next` (the end of the archive, a segment
/// boundary) on `timeline` (8 hex digits) with segments of `size` bytes: each as (its file, the
/// segment name it is laid out under in `pg_wal`), in order — whole segments while they follow
/// each other, then the `.partial` of the next one if there is one.
pub fn tail(
    next: Lsn,
    timeline: &str,
    size: u64,
    streamed: &BTreeMap<String, PathBuf>,
) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    if !size.is_power_of_two() || size > 1 << 32 || timeline.len() != 8 {
        return out;
    }
    let mut lsn = next;
    // Each step takes one file; the bound is the number of files.
    for _ in 0..=streamed.len() {
        let name = format!("{timeline}{:08X}{:08X}", lsn >> 32, (lsn & 0xffff_ffff) / size);
        if let Some(path) = streamed.get(&name) {
            out.push((path.clone(), name));
            lsn += size;
        } else {
            if let Some(path) = streamed.get(&format!("{name}{PARTIAL}")) {
                out.push((path.clone(), name));
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn files(names: &[&str]) -> BTreeMap<String, PathBuf> {
        names.iter().map(|n| (n.to_string(), PathBuf::from(format!("/s/{n}")))).collect()
    }

    // Goal: the tail starts exactly where the archive ends, takes whole segments while they
    // follow each other, and ends with the partial one, laid out under its segment name.
    #[test]
    fn the_tail_continues_the_archive_and_ends_with_the_partial_segment() {
        let streamed = files(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006.partial",
        ]);
        let tail = tail(4 * MB, "00000001", MB, &streamed);
        let names: Vec<&str> = tail.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            ["000000010000000000000004", "000000010000000000000005", "000000010000000000000006"]
        );
        assert_eq!(tail[2].0, PathBuf::from("/s/000000010000000000000006.partial"));
    }

    // Goal: nothing is taken across a hole in the stream, from another timeline, or when the
    // stream does not reach the archive's end; segment numbers roll over into the next log.
    #[test]
    fn the_tail_never_skips_a_segment_or_changes_timeline() {
        let holey = files(&["000000010000000000000004", "000000010000000000000006.partial"]);
        assert_eq!(tail(4 * MB, "00000001", MB, &holey).len(), 1);
        let other = files(&["000000020000000000000004.partial"]);
        assert!(tail(4 * MB, "00000001", MB, &other).is_empty());
        let behind = files(&["000000010000000000000002.partial"]);
        assert!(tail(4 * MB, "00000001", MB, &behind).is_empty());
        let rollover = files(&["000000010000000000000FFF", "000000010000000100000000.partial"]);
        let names: Vec<String> =
            tail(0xFFF * MB, "00000001", MB, &rollover).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["000000010000000000000FFF", "000000010000000100000000"]);
    }

    // Goal: the newest generation's copy of a file wins, and files that are not segments (a
    // timeline history, pg_receivewal's leftovers) are not streamed segments.
    #[test]
    fn the_newest_generation_wins() {
        let dir = tempfile::tempdir().unwrap();
        for (generation, name, text) in [
            ("000001", "000000010000000000000004.partial", "old"),
            ("000002", "000000010000000000000004.partial", "new"),
            ("000002", "00000002.history", "h"),
        ] {
            std::fs::create_dir_all(dir.path().join(generation)).unwrap();
            std::fs::write(dir.path().join(generation).join(name), text).unwrap();
        }
        let found = streamed_files(dir.path());
        assert_eq!(found.keys().collect::<Vec<_>>(), ["000000010000000000000004.partial"]);
        let path = &found["000000010000000000000004.partial"];
        assert_eq!(std::fs::read_to_string(path).unwrap(), "new");
        assert_eq!(newest_generation(dir.path()), 2);
    }
}
