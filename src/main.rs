//! The `shakedown` command line.
fn main() {
    std::process::exit(i32::from(shakedown::exit::HARNESS_ERROR));
}
