//! Exit codes: the contract with CI systems and scripts (DESIGN.md, "Contracts").

/// Every check passed, or failed exactly as `expect` says.
pub const PASS: u8 = 0;
/// A check failed.
pub const FAIL: u8 = 1;
/// Inconclusive: too little data, or the load generator fell behind.
pub const UNKNOWN: u8 = 2;
/// Bad input: an invalid scenario, a bad flag.
pub const BAD_INPUT: u8 = 254;
/// A harness error (a bug in shakedown, or the environment failed).
pub const HARNESS_ERROR: u8 = 255;
