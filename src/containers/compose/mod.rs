//! A user's docker-compose stack as the system under test: brought up through the Compose CLI
//! the machine has, labelled so that every sweep of ours covers it, faults applied to its
//! containers, and removed — whatever way the run ends.
//!
//! | file | owns |
//! |---|---|
//! | `cli.rs` | finding the Compose CLI (`docker compose` v2, else `docker-compose` v1), running its subcommands with a bound and the tail of their stderr |
//! | `override_file.rs` | the override file shakedown adds: labels on every service, network and volume; the ports published on 127.0.0.1 (pure) |
//! | `project.rs` | one compose project per run: [`Project::up`] (sweep, build, `up -d`, healthy), [`Project::down`], the cleanup on drop, panic, Ctrl-C and SIGTERM |
//! | `health.rs` | waiting until every service is healthy (or running), and saying which is not |
//! | `control.rs` | process faults on a service's container: kill, start, stop, pause, unpause, exec; its logs |
//! | `net.rs` | network cuts from a helper container in the target's network namespace |
//! | `latency.rs` | `latency`: a packet delayer (`shakedown serve delay`) in each service's network namespace |
//! | `debian.rs` | `shakedown/debian:bookworm`, the local base a user's Dockerfile can start `FROM` |
//!
//! Resources carry the built-in backend's labels (`layout::PROJECT_LABEL`, `RUN_LABEL`,
//! `OWNER_LABEL`, and `HOST_LABEL` = the service), so `shakedown down` and the dead-owner
//! sweep treat a compose run like any other. Must not: edit or write beside the user's file,
//! pull images, or remove anything without our labels (images the build made are kept, as a
//! cache, and carry only the project label).

mod cli;
mod control;
pub mod debian;
mod health;
mod latency;
mod net;
mod override_file;
mod project;

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::Duration;

pub use cli::{ComposeCli, Flavor};
pub use latency::Slowdown;
pub use net::Cut;
pub use override_file::PortMap;
pub use project::Project;

use super::layout::{OWNER_LABEL, PROJECT_LABEL, RUN_LABEL};

/// A run's identity on the engine: the labels every resource of the run carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunLabels {
    /// The run id (hex digits); the compose project is `sd-RUN`.
    pub run: String,
    /// The process that owns the run, `pid/start-time` (a run whose owner is gone is swept).
    pub owner: String,
}

impl RunLabels {
    /// A new run owned by this process; its id hashes `seed`, the pid and the clock.
    pub fn new(seed: u64) -> RunLabels {
        use sha2::{Digest, Sha256};
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let digest = Sha256::digest(format!("compose/{}/{}/{seed}", std::process::id(), clock.as_nanos()));
        let run = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let owner = super::owner::owner_token(std::process::id()).unwrap_or_default();
        RunLabels { run, owner }
    }

    /// The compose project name of the run.
    pub fn project(&self) -> String {
        format!("sd-{}", self.run)
    }

    /// The labels of every container, network and volume of the run.
    pub fn map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (PROJECT_LABEL.to_owned(), "shakedown".to_owned()),
            (RUN_LABEL.to_owned(), self.run.clone()),
            (OWNER_LABEL.to_owned(), self.owner.clone()),
        ])
    }
}

/// Why a compose stack could not be brought up, driven or removed. Each message says what
/// failed and what usually fixes it.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Neither `docker compose` nor `docker-compose` works.
    #[error(
        "no Docker Compose CLI: {detail}\nhint: install the compose plugin (`docker compose`) or `docker-compose` (Debian: `apt-get install docker-compose`); SHAKEDOWN_COMPOSE names one explicitly"
    )]
    NoCompose {
        /// What each attempt said.
        detail: String,
    },
    /// A command could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What spawning it said.
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{stderr_tail}\nhint: {hint}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its output.
        stderr_tail: String,
        /// What usually fixes it.
        hint: String,
    },
    /// A command ran past its bound and was killed.
    #[error("`{command}` did not finish within {} s ({limit}); it was killed. Last output:\n{stderr_tail}", max.as_secs())]
    Timeout {
        /// The command line.
        command: String,
        /// The bound's name (`BUILD_MAX`).
        limit: &'static str,
        /// Its value.
        max: Duration,
        /// The last lines of its output.
        stderr_tail: String,
    },
    /// A service did not become healthy (or running) in time, or exited.
    #[error("service `{service}` {why}\n--- its last log lines:\n{logs}")]
    NotHealthy {
        /// The service.
        service: String,
        /// What it did instead.
        why: String,
        /// Its last log lines.
        logs: String,
    },
    /// A service's image is not on this engine and the file has no `build:` for it.
    #[error(
        "service `{service}` uses image `{image}`, which is not on this engine, and nothing can be pulled here\nhint: build it first (`docker build -t {image} …`), or give the service a `build:` section (a Dockerfile can start `FROM shakedown/debian:bookworm`)"
    )]
    MissingImage {
        /// The service.
        service: String,
        /// Its image.
        image: String,
    },
    /// A service the caller named is not in the compose file.
    #[error("no service `{service}` in the compose project (services: {known})")]
    UnknownService {
        /// The name given.
        service: String,
        /// The services there are.
        known: String,
    },
    /// The Docker engine refused or failed a request.
    #[error("Docker engine: {0}")]
    Engine(String),
    /// The local Debian base could not be built.
    #[error(transparent)]
    Image(#[from] super::image::ImageError),
    /// The run's own files (the override) could not be written.
    #[error("cannot write {path}: {source}\nhint: check space and permissions in the temp dir (TMPDIR)")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What writing it said.
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM arrived during bring-up; what was started is removed.
    #[error("interrupted by {0}; the compose project was removed")]
    Interrupted(&'static str),
}

impl ComposeError {
    /// True when the machine or the user's files need fixing (no Compose CLI, no engine, an
    /// image that cannot be had) rather than something failing at run time: exit 254, not 255.
    pub fn needs_setup(&self) -> bool {
        match self {
            Self::NoCompose { .. } | Self::MissingImage { .. } | Self::UnknownService { .. } => true,
            Self::Image(image) => image.needs_setup(),
            _ => false,
        }
    }
}

/// The last `lines` lines of `text`.
fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_labels_name_the_project_and_carry_the_owner() {
        let labels = RunLabels::new(7);
        assert_eq!(labels.run.len(), 8);
        assert_eq!(labels.project(), format!("sd-{}", labels.run));
        assert_ne!(labels.run, RunLabels::new(7).run, "two runs of one seed differ");
        let map = labels.map();
        assert_eq!(map[PROJECT_LABEL], "shakedown");
        assert_eq!(map[RUN_LABEL], labels.run);
        assert!(super::super::owner::owner_alive(&map[OWNER_LABEL]), "this process owns it");
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    }
}
