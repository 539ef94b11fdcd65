//! `shakedown merge DIR…`: an `explore --shard` campaign's shard summaries into the one summary
//! its unsharded run would have written, each failure group shrunk once here. Exit codes as
//! `explore`'s: 1 when a failure was found, 0 when none, 255 when only harness errors; bad or
//! incomplete shards are bad input (254).

use super::args::MergeArgs;
use super::explore::{exit_code, print_summary};
use crate::exit;
use crate::explore::shard::{find, merge, merged_dir};
use crate::explore::{Options, Progress, SeedRun, shrink_groups, write_summary};

/// Merge, shrink, write, print.
pub(super) fn run(args: &MergeArgs) -> u8 {
    let merged = find(&args.dirs).and_then(|shards| Ok((shards.len(), merge(shards)?)));
    let (shards_count, mut summary) = match merged {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("shakedown merge: {error}");
            return exit::BAD_INPUT;
        }
    };
    let loaded = match crate::scenario::load_str(&summary.scenario_yaml, &summary.file, &[]) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            eprintln!(
                "shakedown merge: the shards' scenario no longer loads with this shakedown:\n{diagnostics}"
            );
            return exit::BAD_INPUT;
        }
    };
    let dir = merged_dir(&args.out, &summary);
    eprintln!(
        "merged {} of {}: {}, {}",
        crate::check::plural(shards_count, "shard"),
        summary.file,
        crate::check::plural(summary.runs.len(), "seed"),
        crate::check::plural(summary.groups.len(), "failure group")
    );
    if !args.no_shrink && !summary.groups.is_empty() {
        let options = Options {
            seeds: summary.seeds_count,
            swarm: summary.swarm,
            jobs: args
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            out: args.out.clone(),
            slo: summary.slo,
            shrink_runs: args.shrink_runs,
            shrink_seeds: args.shrink_seeds.max(1),
            ..Options::default()
        };
        if let Err(error) =
            shrink_groups(&loaded, &crate::sim::Sim, &options, &Lines, &mut summary, &dir, None)
        {
            eprintln!("shakedown merge: {error}");
            return exit::HARNESS_ERROR;
        }
    }
    if let Err(error) = write_summary(&summary, &dir) {
        eprintln!("shakedown merge: {error}");
        return exit::HARNESS_ERROR;
    }
    print_summary(&summary, &dir);
    exit_code(&summary)
}

/// Shrinking's notes as lines on stderr (the merge has no seeds to count).
struct Lines;

impl Progress for Lines {
    fn seed_done(&self, _run: &SeedRun) {}
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}
