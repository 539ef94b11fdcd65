//! Campaigns across machines: `explore --shard K/N` runs the K-th of N disjoint slices of the seed
//! range and writes a shard summary; `shakedown merge DIR…` gathers every shard's summary into
//! the campaign summary an unsharded run would have written, then shrinks each failure group
//! once.
//!
//! The split depends only on the seed range and N, never on timing: seed index `i` (the scenario's
//! seed + `i`) belongs to shard `i mod N + 1`. Interleaving rather than cutting the range into
//! blocks spreads slow seeds (long schedules, deep faults) evenly over the shards.
//!
//! Where the shards run is someone else's business: a Kubernetes Indexed Job
//! (`deploy/k8s/explore-job.yaml`, the index from `JOB_COMPLETION_INDEX`) or a GitHub Actions
//! matrix (`.github/workflows/explore.yml`). A shard summary carries the scenario it explored
//! (after `--set` overrides), so the merge needs nothing but the summaries.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ExploreError, Group, Summary, explore_dir, groups};

/// The environment variable a Kubernetes Indexed Job sets: this pod's index, from 0.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";
/// The environment variable that gives the number of shards when `--shard` has no value.
pub const COUNT_VARIABLE: &str = "SHAKEDOWN_SHARDS";

/// One slice of a campaign: the `index`-th (from 1) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which slice, 1 ..= count.
    pub index: u64,
    /// How many slices.
    pub count: u64,
}

impl Shard {
    /// Parse `K/N` (1 ≤ K ≤ N).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let usage =
            || format!("`{text}` is not a shard: write K/N, the K-th of N shards (1 ≤ K ≤ N), as in 2/8");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u64 = index.trim().parse().map_err(|_| usage())?;
        let count: u64 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }

    /// The shard the environment names: `JOB_COMPLETION_INDEX` (from 0, as Kubernetes numbers its
    /// pods) and `SHAKEDOWN_SHARDS`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let read = |name: &str| -> Result<u64, String> {
            let value = var(name).ok_or_else(|| {
                format!(
                    "--shard without K/N reads the shard from the environment, and {name} is not set; set {INDEX_VARIABLE} (from 0; a Kubernetes Indexed Job sets it) and {COUNT_VARIABLE} (the number of shards), or write --shard K/N"
                )
            })?;
            value.trim().parse().map_err(|_| format!("{name}={value} is not a whole number"))
        };
        let (index, count) = (read(INDEX_VARIABLE)?, read(COUNT_VARIABLE)?);
        if index >= count {
            return Err(format!(
                "{INDEX_VARIABLE}={index} is not below {COUNT_VARIABLE}={count}: the index counts from 0"
            ));
        }
        Ok(Shard { index: index + 1, count })
    }

    /// Whether seed index `i` (from the scenario's seed) is this shard's.
    pub fn holds(&self, i: u64) -> bool {
        i % self.count == self.index - 1
    }

    /// How many of `seeds` seed indices are this shard's.
    pub fn size(&self, seeds: u64) -> u64 {
        (0..seeds).filter(|&i| self.holds(i)).count() as u64
    }

    /// The shard's directory under an exploration's: `shard-2-of-8`.
    pub fn dir_name(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why shard summaries could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no shard summaries (summary.json written by `explore --shard`) under {0}")]
    NoShards(String),
    /// A summary could not be read.
    #[error("{path}: {error}")]
    Unreadable {
        /// Which.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// Shards of different campaigns.
    #[error(
        "{first} and {other} are shards of different campaigns (their {what} differ); merge the shards of one `explore --shard` campaign at a time"
    )]
    Mismatch {
        /// A shard of the first campaign.
        first: PathBuf,
        /// A shard of another.
        other: PathBuf,
        /// What differs.
        what: &'static str,
    },
    /// The same shard twice.
    #[error("shard {shard} twice: {first} and {other}; keep one")]
    Duplicate {
        /// Which shard.
        shard: Shard,
        /// One copy.
        first: PathBuf,
        /// The other.
        other: PathBuf,
    },
    /// Shards not found.
    #[error(
        "shards {missing} of {count} are missing (found {found}); a merge needs every shard — rerun the missing ones (`explore … --shard K/{count}`) or pass the directories that hold them"
    )]
    Missing {
        /// The missing shards, `2, 5`.
        missing: String,
        /// How many shards the campaign has.
        count: u64,
        /// The summaries found.
        found: String,
    },
    /// Writing the merged summary.
    #[error(transparent)]
    Write(#[from] ExploreError),
}

/// Every shard summary under `dirs` (searched recursively), with its path, ordered by shard.
pub fn find(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Summary)>, MergeError> {
    let mut files = Vec::new();
    for dir in dirs {
        collect(dir, &mut files).map_err(|error| MergeError::Unreadable { path: dir.clone(), error })?;
    }
    files.sort();
    let mut shards = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| MergeError::Unreadable { path: path.clone(), error: error.to_string() })?;
        let summary: Summary = serde_json::from_str(&text).map_err(|error| MergeError::Unreadable {
            path: path.clone(),
            error: format!("not an exploration summary: {error}"),
        })?;
        if summary.shard.is_some() {
            shards.push((path, summary));
        }
    }
    if shards.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(MergeError::NoShards(names.join(", ")));
    }
    shards.sort_by_key(|(_, s)| s.shard.map(|s| s.index));
    Ok(shards)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|e| e.to_string())?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?.path();
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if entry.file_name().is_some_and(|n| n == "summary.json") {
            files.push(entry);
        }
    }
    Ok(())
}

/// Merge one campaign's shard summaries into the summary its unsharded run would have written
/// (every seed, groups by signature across shards, in first-seed order), without shrinking.
/// `wall_ms` is the longest shard's (shards run side by side), `jobs` the threads of all of them.
pub fn merge(shards: Vec<(PathBuf, Summary)>) -> Result<Summary, MergeError> {
    let (first_path, first) = &shards[0];
    let count = first.shard.expect("find keeps shards only").count;
    let mut seen: Vec<(Shard, &Path)> = Vec::new();
    for (path, summary) in &shards {
        let shard = summary.shard.expect("find keeps shards only");
        let differs = [
            ("scenarios", summary.scenario_yaml != first.scenario_yaml),
            ("swarm vocabularies", summary.swarm != first.swarm),
            ("seed counts", summary.seeds_count != first.seeds_count),
            ("shard counts", shard.count != count),
            ("judging (--slo)", summary.slo != first.slo),
        ];
        if let Some((what, _)) = differs.iter().find(|(_, differs)| *differs) {
            return Err(MergeError::Mismatch { first: first_path.clone(), other: path.clone(), what });
        }
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == shard) {
            return Err(MergeError::Duplicate { shard, first: other.to_path_buf(), other: path.clone() });
        }
        seen.push((shard, path));
    }
    let missing: Vec<String> =
        (1..=count).filter(|k| !seen.iter().any(|(s, _)| s.index == *k)).map(|k| k.to_string()).collect();
    if !missing.is_empty() {
        let found: Vec<String> = seen.iter().map(|(s, p)| format!("{s} in {}", p.display())).collect();
        return Err(MergeError::Missing { missing: missing.join(", "), count, found: found.join("; ") });
    }
    let mut runs: Vec<_> = shards.iter().flat_map(|(_, s)| s.runs.iter().cloned()).collect();
    runs.sort_by_key(|r| r.seed);
    let groups: Vec<Group> = groups(&runs);
    Ok(Summary {
        scenario: first.scenario.clone(),
        file: first.file.clone(),
        scenario_yaml: first.scenario_yaml.clone(),
        swarm: first.swarm,
        slo: first.slo,
        seeds_count: first.seeds_count,
        shard: None,
        runs,
        groups,
        skipped_count: shards.iter().map(|(_, s)| s.skipped_count).sum(),
        wall_ms: shards.iter().map(|(_, s)| s.wall_ms).max().unwrap_or(0),
        jobs: shards.iter().map(|(_, s)| s.jobs).sum(),
    })
}

/// Where a merged campaign writes: where its unsharded run would have.
pub fn merged_dir(out: &Path, summary: &Summary) -> PathBuf {
    explore_dir(out, &summary.scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_seed_range_into_disjoint_slices_that_cover_it() {
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
        for i in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.holds(i)).count(), 1, "seed index {i}");
        }
        assert_eq!(shards.iter().map(|s| s.size(10)).collect::<Vec<_>>(), vec![4, 3, 3]);
        assert!(shards[1].holds(1) && shards[1].holds(4) && !shards[1].holds(2));
    }

    #[test]
    fn a_shard_is_read_from_k_of_n_or_from_the_environment() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        for bad in ["0/8", "9/8", "2", "a/b", "1/0", ""] {
            let error = Shard::parse(bad).unwrap_err();
            assert!(error.contains("K/N"), "{bad}: {error}");
        }
        let env = |index: Option<&'static str>, count: Option<&'static str>| {
            move |name: &str| match name {
                INDEX_VARIABLE => index.map(str::to_owned),
                COUNT_VARIABLE => count.map(str::to_owned),
                _ => None,
            }
        };
        assert_eq!(Shard::from_env(env(Some("0"), Some("4"))), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(Shard::from_env(env(Some("3"), Some("4"))), Ok(Shard { index: 4, count: 4 }));
        assert!(Shard::from_env(env(Some("4"), Some("4"))).unwrap_err().contains("from 0"));
        assert!(
            Shard::from_env(env(None, Some("4"))).unwrap_err().contains("JOB_COMPLETION_INDEX is not set")
        );
        assert!(Shard::from_env(env(Some("1"), None)).unwrap_err().contains("SHAKEDOWN_SHARDS is not set"));
    }
}
