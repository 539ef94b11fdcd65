//! `shakedown image build`: make the containers backend's images on this machine, with no
//! registry (`crate::containers::image`: a Debian base by mmdebstrap, then a thin layer with this
//! binary). Prints the node image (`shakedown-node:TAG`) on stdout, progress on stderr.
//! `shakedown image debian`: make `shakedown/debian:bookworm`, the base a compose stack's
//! Dockerfile can start `FROM` (`crate::containers::compose::debian`); prints its name. Both need
//! a binary built with `--features containers`.

use super::args::{ImageAction, ImageArgs};
use crate::exit;

/// Run `shakedown image ACTION`.
pub(super) fn run(args: &ImageArgs) -> u8 {
    match &args.action {
        ImageAction::Build { binary } => build(binary.as_deref()),
        ImageAction::Debian => debian(),
    }
}

#[cfg(feature = "containers")]
fn build(binary: Option<&std::path::Path>) -> u8 {
    let binary = match binary {
        Some(path) => path.to_owned(),
        None => match std::env::current_exe() {
            Ok(path) => path,
            Err(error) => {
                eprintln!(
                    "shakedown image build: cannot find the running binary ({error}); pass --binary FILE"
                );
                return exit::BAD_INPUT;
            }
        },
    };
    let mut say = |line: &str| eprintln!("shakedown image: {line}");
    match crate::containers::image::ensure(&binary, &mut say) {
        Ok(node) => {
            println!("{node}");
            exit::PASS
        }
        Err(error) => {
            eprintln!("shakedown image build: {error}");
            if error.needs_setup() { exit::BAD_INPUT } else { exit::HARNESS_ERROR }
        }
    }
}

#[cfg(feature = "containers")]
fn debian() -> u8 {
    use crate::containers::compose::debian;
    let mut say = |line: &str| eprintln!("shakedown image: {line}");
    match debian::ensure(&mut say) {
        Ok(()) => {
            println!("{}", debian::DEBIAN_IMAGE);
            exit::PASS
        }
        Err(error) => {
            eprintln!("shakedown image debian: {error}");
            if error.needs_setup() { exit::BAD_INPUT } else { exit::HARNESS_ERROR }
        }
    }
}

#[cfg(not(feature = "containers"))]
fn debian() -> u8 {
    eprintln!(
        "shakedown image debian: this binary was built without the containers backend; rebuild with `cargo build --release --features containers`"
    );
    exit::BAD_INPUT
}

#[cfg(not(feature = "containers"))]
fn build(_binary: Option<&std::path::Path>) -> u8 {
    eprintln!(
        "shakedown image build: this binary was built without the containers backend; rebuild with `cargo build --release --features containers` (or run `make image`)"
    );
    exit::BAD_INPUT
}
