//! Helpers shared by integration tests.
#[cfg(feature = "real")]
pub mod real;
