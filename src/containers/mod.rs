//! The containers backend (`--features containers`): the stack as real containers — one per
//! topology host, real PostgreSQL 15 primary + streaming standby, real RabbitMQ, the stack's own
//! services as `shakedown serve` on the real adapters — on a private Docker network made for the
//! run, with real faults. Same scenario file, same history, checkers and reports as the
//! simulation; not deterministic (the seed fixes the load schedule and the fault plan, not the
//! interleaving).
//!
//! | file | owns |
//! |---|---|
//! | `image.rs` | the images, built here without a registry: the Debian base (mmdebstrap → `docker import`) and the thin layer with the `shakedown` binary |
//! | `layout.rs` | what each container is: name, command, environment, volumes, port, readiness, start stage (pure) |
//! | `engine.rs` | the Docker engine: network, volumes, starting (testcontainers), SIGKILL and start (bollard), removal by label |
//! | `runner.rs` | one run: stages, readiness, load, faults, drain, final state, teardown |
//! | `faults.rs` | the fault actuator (`faults::Actuator`): each fault kind applied and reverted, the counters its effect reads |
//! | `backups.rs` | the backup agent's clock, disasters and restores around the database containers, the backups' final state |
//! | `failback.rs` | a failback: the old primary rewound and rejoined, then a planned switchover to it |
//! | `proxy.rs` | the link proxy (`shakedown serve links`): per-link delay, jitter and cuts, since the kernel has no netem |
//! | `delayer.rs` | the packet delayer (`shakedown serve delay`): `latency` on a compose stack, NFQUEUE in a service's network namespace |
//! | `progress.rs` | the live line: elapsed, ops ok / failed, faults in force |
//! | `cleanup.rs` | labels, sweeping dead runs, removing a run, `shakedown down` |
//! | `owner.rs` | who owns a run (`pid/start-time` from `/proc`) and whether it still runs |
//! | `compose/` | a user's docker-compose stack: bring-up through the Compose CLI, labels, faults on its containers, the local Debian base |
//! | `up.rs` | `shakedown up`: the stack with no load or faults, its endpoints printed, until Ctrl-C |
//! | `manual.rs` | `shakedown fault`: crash, pause, partition and heal by hand on a stack that is up |

mod backups;
mod cleanup;
pub mod compose;
pub mod delayer;
mod engine;
mod failback;
mod faults;
pub mod image;
pub mod layout;
mod manual;
mod owner;
pub(crate) mod progress;
pub mod proxy;
mod runner;
mod up;

use std::path::PathBuf;

pub use cleanup::{Removed, down};
pub use manual::{Manual, ManualError, fault};
pub use up::up;

use crate::run::{Backend, BackendError, Observed};
use crate::scenario::Loaded;

/// The containers backend for `run::run_file`.
pub struct Containers {
    /// The `shakedown` binary (built with `--features containers`) the node image carries.
    pub binary: PathBuf,
}

impl Containers {
    /// The backend whose image carries the running binary.
    pub fn from_current_exe() -> Result<Containers, BackendError> {
        let binary = std::env::current_exe().map_err(|e| BackendError {
            backend: "containers",
            message: format!("where is this binary? {e}"),
        })?;
        Ok(Containers { binary })
    }
}

impl Backend for Containers {
    fn name(&self) -> &'static str {
        "containers"
    }

    fn check(&self, _loaded: &Loaded) -> Vec<String> {
        image::check_docker().err().map(|e| e.to_string()).into_iter().collect()
    }

    fn run(&self, loaded: &Loaded, seed: u64) -> Result<Observed, BackendError> {
        let image = image::ensure(&self.binary, &mut |line| eprintln!("  {line}"))
            .map_err(|e| error(e.to_string()))?;
        runtime()?.block_on(runner::run(loaded, seed, image))
    }
}

/// An error of this backend.
fn error(message: impl Into<String>) -> BackendError {
    BackendError { backend: "containers", message: message.into() }
}

/// The runtime a run (or `up`) drives the engine and the load on.
fn runtime() -> Result<tokio::runtime::Runtime, BackendError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| error(format!("a tokio runtime: {e}")))
}
