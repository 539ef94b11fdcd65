//! The checkers: each turns the history and the final state into a verdict.
//!
//! One file per checker, each a pure function `check(&History, &FinalState, …) -> CheckResult`.
//! `check/` reads only the history and the final state: it never imports from `sim/`,
//! `containers/` or `stack/` services. A checker that cannot decide returns `Unknown` with the
//! reason; it never aborts the run. Results combine by precedence Fail > Unknown > Pass.

mod result;
mod state;

pub use result::{CheckResult, Status};
pub use state::{FinalState, OrderRecord, QueryRecord, StockSnapshot};
