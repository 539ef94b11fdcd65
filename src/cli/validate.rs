//! `shakedown validate FILE...`: load each file, print `FILE: ok` or every error.

use super::args::ValidateArgs;
use crate::exit;
use crate::scenario::load_file;

/// Validate every file; exit 254 if any is invalid.
pub(super) fn run(args: &ValidateArgs) -> u8 {
    let mut code = exit::PASS;
    for file in &args.files {
        match load_file(file, &args.overrides) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                let count = diagnostics.0.len();
                eprintln!("found {count} error{} in {}", if count == 1 { "" } else { "s" }, file.display());
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}
