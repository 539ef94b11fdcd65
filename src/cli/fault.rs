//! `shakedown fault …`: a fault applied by hand to a stack that is up (`shakedown up`), from
//! another terminal (`crate::containers::fault`). Exit 0 once applied (with `--for`: once
//! reverted too), 254 for a bad target or run, 255 when the engine fails. Needs a binary built
//! with `--features containers`.

use super::args::FaultArgs;
use crate::exit;

/// Run `shakedown fault ACTION`.
#[cfg(feature = "containers")]
pub(super) fn run(args: &FaultArgs) -> u8 {
    use super::args::FaultAction;
    use crate::containers::Manual;
    let hold = |hold: &Option<crate::scenario::units::Span>| hold.map(|h| h.get());
    if let FaultAction::Crash { hold: Some(h), .. }
    | FaultAction::Pause { hold: Some(h), .. }
    | FaultAction::Partition { hold: Some(h), .. } = &args.action
        && h.get().is_zero()
    {
        eprintln!(
            "shakedown fault: --for must be longer than 0 (leave it out to keep the fault until `heal`)"
        );
        return exit::BAD_INPUT;
    }
    let manual = match &args.action {
        FaultAction::Crash { target, hold: h } => Manual::Crash { target: target.clone(), hold: hold(h) },
        FaultAction::Pause { target, hold: h } => Manual::Pause { target: target.clone(), hold: hold(h) },
        FaultAction::Partition { a, b, one_way, hold: h } => {
            Manual::Partition { a: a.clone(), b: b.clone(), one_way: *one_way, hold: hold(h) }
        }
        FaultAction::Heal => Manual::Heal,
    };
    match crate::containers::fault(args.run.as_deref(), &manual) {
        Ok(()) => exit::PASS,
        Err(error) => {
            eprintln!("shakedown fault: {error}");
            if error.is_bad_input() { exit::BAD_INPUT } else { exit::HARNESS_ERROR }
        }
    }
}

/// `shakedown fault` without the backend.
#[cfg(not(feature = "containers"))]
pub(super) fn run(_args: &FaultArgs) -> u8 {
    eprintln!(
        "shakedown fault: this binary was built without the containers backend; build it with `cargo build --release --features containers`"
    );
    exit::BAD_INPUT
}
