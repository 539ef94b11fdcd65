//! The `checks:` section as written: which checks run, their options, the SLO rows and what a
//! scenario expects of each check. Re-exported by `model`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// The checks to run. A check that is absent does not run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Every acknowledged write is present on the final primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Empty>,
    /// Replica reads: read-your-writes violations and visibility lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<StalenessCheck>,
    /// Stock conserved; every order complete or compensated, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga: Option<Empty>,
    /// Every accepted query completed, with its effect applied once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Empty>,
    /// Every acknowledged upload has its object, its row, a thumbnail and an audit entry; no row
    /// points at a missing object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesCheck>,
    /// Latency, error-rate and availability objectives per op per phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<SloRow>,
    /// Time from each fault to sustained success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryCheck>,
    /// After a restore: every write acknowledged before the recovery point is back; RPO and RTO
    /// within bounds; every catalogued backup exists and verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreCheck>,
    /// Compose stacks: boolean queries that must hold throughout the run and at its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<InvariantSpec>,
    /// Compose stacks: sums of values read from several clients after the drain, each equal to
    /// its constant total.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conservation: Vec<ConservationSpec>,
}

/// The `restore` check's objectives.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreCheck {
    /// Recovery point objective: the most time between the last acknowledged write a restore
    /// brought back and the disaster. Default `1s`.
    #[serde(default = "default_rpo")]
    pub rpo: Span,
    /// Recovery time objective: the most time from the disaster to the first write acknowledged
    /// after it. Default `60s`.
    #[serde(default = "default_rto")]
    pub rto: Span,
}

fn default_rpo() -> Span {
    Span(std::time::Duration::from_secs(1))
}
fn default_rto() -> Span {
    Span(std::time::Duration::from_secs(60))
}

impl Default for RestoreCheck {
    fn default() -> Self {
        RestoreCheck { rpo: default_rpo(), rto: default_rto() }
    }
}

/// The `files` check's options.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesCheck {
    /// Most objects with no metadata row (orphans: a PUT whose row was never written) before the
    /// check fails. Default: no bound (orphans are reported, not judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans_max: Option<u64>,
}

/// A check with no options: written `{}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Staleness bounds.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StalenessCheck {
    /// Longest tolerated visibility lag (write acknowledged → first replica read that shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Span>,
    /// The phase the lag bound applies to. Default `all`. Read-your-writes violations always count.
    #[serde(default = "default_phase_all")]
    pub phase: Phase,
}

fn default_phase_all() -> Phase {
    Phase::All
}

/// Which ops an SLO row covers: one op by name (built-in or declared), or `any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpSelector {
    /// `POST /invest`.
    Invest,
    /// `GET /history`.
    History,
    /// `POST /orders`.
    Order,
    /// `POST /queries` and its polling.
    Query,
    /// `POST /files`.
    Upload,
    /// An op a compose scenario declares.
    Declared(OpName),
    /// Every op together.
    Any,
}

impl OpSelector {
    /// The single built-in op this selects, or `None` for `any` and declared ops.
    pub fn op(self) -> Option<Op> {
        match self {
            OpSelector::Invest => Some(Op::Invest),
            OpSelector::History => Some(Op::History),
            OpSelector::Order => Some(Op::Order),
            OpSelector::Query => Some(Op::Query),
            OpSelector::Upload => Some(Op::Upload),
            OpSelector::Declared(_) | OpSelector::Any => None,
        }
    }

    /// The name as written: an op's, or `any`.
    pub fn name(self) -> &'static str {
        match self {
            OpSelector::Declared(name) => name.as_str(),
            OpSelector::Any => "any",
            builtin => builtin.op().expect("a built-in op").name(),
        }
    }

    /// The selector a name stands for.
    pub fn named(name: &str) -> OpSelector {
        match Op::ALL.into_iter().find(|op| op.name() == name) {
            Some(Op::Invest) => OpSelector::Invest,
            Some(Op::History) => OpSelector::History,
            Some(Op::Order) => OpSelector::Order,
            Some(Op::Query) => OpSelector::Query,
            Some(Op::Upload) => OpSelector::Upload,
            None if name == "any" => OpSelector::Any,
            None => OpSelector::Declared(OpName::new(name)),
        }
    }
}

impl Serialize for OpSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for OpSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = OpSelector;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an op's name (`invest`, `history`, `order`, `query`, `upload`, or a declared op's) or `any`")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<OpSelector, E> {
                Ok(OpSelector::named(name))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl JsonSchema for OpSelector {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OpSelector".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An op's name (`invest`, `history`, `order`, `query`, `upload`, or a declared op's `name`) or `any`.",
            "type": "string"
        })
    }
}

/// One service-level objective: thresholds on one op (or `any`) in one phase. Every threshold
/// given must hold.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloRow {
    /// The op, or `any`.
    pub op: OpSelector,
    /// The phase. Default `all`.
    #[serde(default = "default_phase_all")]
    pub phase: Phase,
    /// Upper bound on the median latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<Span>,
    /// Upper bound on the 90th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<Span>,
    /// Upper bound on the 95th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<Span>,
    /// Upper bound on the 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<Span>,
    /// Upper bound on the 99.9th percentile.
    #[serde(default, rename = "p99.9", skip_serializing_if = "Option::is_none")]
    pub p999: Option<Span>,
    /// Upper bound on the slowest op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Span>,
    /// Upper bound on the share of ops that failed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<Percent>,
    /// Lower bound on the share of ops that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Percent>,
}

/// Recovery-time objective.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCheck {
    /// Longest tolerated time from a fault's start to the first sustained success.
    pub rto: Span,
    /// How long successes must last to count as sustained. Default `1s`.
    #[serde(default = "default_sustain")]
    pub sustained: Span,
    /// Measure from the fault's `start` (the stack must recover while the fault lasts, e.g. by
    /// failing over) or its `end` (it can only recover once the fault is gone, e.g. a dependency
    /// outage). Default `start`.
    #[serde(default)]
    pub from: RecoverFrom,
}

/// Where a recovery time is measured from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoverFrom {
    /// The fault's start.
    #[default]
    Start,
    /// The fault's end (restart, heal).
    End,
}

fn default_sustain() -> Span {
    Span(std::time::Duration::from_secs(1))
}

/// The names of the checks, as written under `checks:` and `expect:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// See [`Checks::durability`].
    Durability,
    /// See [`Checks::staleness`].
    Staleness,
    /// See [`Checks::saga`].
    Saga,
    /// See [`Checks::delivery`].
    Delivery,
    /// See [`Checks::files`].
    Files,
    /// See [`Checks::slo`].
    Slo,
    /// See [`Checks::recovery`].
    Recovery,
    /// See [`Checks::restore`].
    Restore,
    /// See [`Checks::invariants`].
    Invariants,
    /// See [`Checks::conservation`].
    Conservation,
}

impl CheckName {
    /// Every check, in report order.
    pub const ALL: [CheckName; 10] = [
        CheckName::Durability,
        CheckName::Staleness,
        CheckName::Saga,
        CheckName::Delivery,
        CheckName::Files,
        CheckName::Slo,
        CheckName::Recovery,
        CheckName::Restore,
        CheckName::Invariants,
        CheckName::Conservation,
    ];

    /// The name used in YAML and reports.
    pub fn name(self) -> &'static str {
        match self {
            CheckName::Durability => "durability",
            CheckName::Staleness => "staleness",
            CheckName::Saga => "saga",
            CheckName::Delivery => "delivery",
            CheckName::Files => "files",
            CheckName::Slo => "slo",
            CheckName::Recovery => "recovery",
            CheckName::Restore => "restore",
            CheckName::Invariants => "invariants",
            CheckName::Conservation => "conservation",
        }
    }
}

/// What a scenario expects of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The check must pass (the default for every check).
    Pass,
    /// The check must fail: the scenario demonstrates a bug.
    Fail,
}
