//! The `shakedown` binary: a thin shell around `shakedown::cli`.
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(shakedown::cli::main())
}
