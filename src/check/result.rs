//! A checker's verdict.

use serde::{Deserialize, Serialize};

/// pass / fail / unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The property held.
    Pass,
    /// Could not decide (too little data, the generator fell behind, the checker errored).
    Unknown,
    /// The property was violated.
    Fail,
}

impl Status {
    /// Combine by precedence Fail > Unknown > Pass.
    pub fn combine(self, other: Status) -> Status {
        self.max(other)
    }
}

/// What one checker concluded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name (`durability`, `saga`, …).
    pub name: String,
    /// Its status.
    pub status: Status,
    /// One line a reviewer reads first, with the key figures.
    pub summary: String,
    /// Checker-specific figures and evidence (counts, lost ids, step traces), capped in size.
    pub details: serde_json::Value,
}
