//! `shakedown up FILE` and `shakedown down`: a scenario's stack in containers for people to use
//! (`crate::containers::up`, or `crate::compose::up` for a compose stack), and its removal (`crate::containers::down`). `up` loads and
//! validates the file as `run` does (errors as `FILE:LINE:COL`, exit 254), builds the images if
//! missing, prints the endpoints on stdout and stays until Ctrl-C. Needs a binary built with
//! `--features containers`; without it, both say how to get one.

use super::args::{DownArgs, UpArgs};
use crate::exit;

/// What a binary without the containers backend says, and how to get one.
#[cfg(not(feature = "containers"))]
const NO_CONTAINERS: &str = "this binary was built without the containers backend; build it with `cargo build --release --features containers`";

/// `shakedown up FILE`.
#[cfg(feature = "containers")]
pub(super) fn up(args: &UpArgs) -> u8 {
    let loaded = match crate::scenario::load_file(&args.file, &args.overrides) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return exit::BAD_INPUT;
        }
    };
    if let Err(error) = crate::containers::image::check_docker() {
        eprintln!("shakedown up: {error}");
        return exit::BAD_INPUT;
    }
    if loaded.scenario.stack.is_compose() {
        // The user's own stack: no node image; the compose file's `build:` sections are built.
        return ended(crate::compose::up(&loaded));
    }
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(error) => {
            eprintln!("shakedown up: where is this binary? {error}");
            return exit::HARNESS_ERROR;
        }
    };
    let image = match crate::containers::image::ensure(&binary, &mut |line| eprintln!("  {line}")) {
        Ok(image) => image,
        Err(error) => {
            eprintln!("shakedown up: {error}");
            return if error.needs_setup() { exit::BAD_INPUT } else { exit::HARNESS_ERROR };
        }
    };
    ended(crate::containers::up(&loaded, image))
}

/// How `up` ended: the stack removed after a signal, or an error.
#[cfg(feature = "containers")]
fn ended<E: std::fmt::Display>(outcome: Result<String, E>) -> u8 {
    match outcome {
        Ok(ended) => {
            println!("shakedown up: {ended}");
            exit::PASS
        }
        Err(error) => {
            eprintln!("shakedown up: {error}");
            exit::HARNESS_ERROR
        }
    }
}

/// `shakedown up FILE` without the backend.
#[cfg(not(feature = "containers"))]
pub(super) fn up(_args: &UpArgs) -> u8 {
    eprintln!("shakedown up: {NO_CONTAINERS} (or run `make up SCENARIO=FILE`)");
    exit::BAD_INPUT
}

/// `shakedown down [--run ID]`: remove everything of ours on the engine (containers, networks,
/// volumes labelled `shakedown.project=shakedown`), live runs included, or one run; images stay.
#[cfg(feature = "containers")]
pub(super) fn down(args: &DownArgs) -> u8 {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(crate::containers::down(args.run.as_deref())) {
        Ok(removed) if removed.is_empty() => {
            eprintln!("shakedown down: nothing of ours on this engine");
            exit::PASS
        }
        Ok(removed) => {
            for run in removed {
                let owner =
                    run.owner.map(|o| format!("; it was live ({o}) and ends now")).unwrap_or_default();
                eprintln!(
                    "shakedown down: removed run {}: {} containers, networks and volumes{owner}",
                    run.run, run.count
                );
            }
            exit::PASS
        }
        Err(error) => {
            eprintln!("shakedown down: {error}");
            exit::BAD_INPUT
        }
    }
}

/// `shakedown down` without the backend.
#[cfg(not(feature = "containers"))]
pub(super) fn down(_args: &DownArgs) -> u8 {
    eprintln!("shakedown down: {NO_CONTAINERS} (or run `make down`)");
    exit::BAD_INPUT
}
