//! The scenario as written: the serde types of the YAML language.
//!
//! Every struct denies unknown keys, and no type uses `untagged` or `flatten`, so a typo is an
//! error that names its path (STYLE.md 9). Defaults live on the types that hold them. These types
//! are the first pass of loading (text → `Scenario`); `validate` checks what serde cannot, and
//! `plan::Plan` is the resolved form the backends run.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::declared::{
    ClientSpec, ConservationSpec, ExecFault, FinalRead, InvariantSpec, OpKind, OpName, PollSpec, Probe,
    RequestSpec, RoleSpec, SetupStep,
};
pub use super::tuning::{BalancerConfig, QueueConfig, WatchdogConfig};
use super::units::{ByteSize, Percent, Rate, RestoreTarget, Span};

mod checks;
pub use checks::*;

/// One chaos experiment: the stack to bring up, the load to drive, the faults to inject on a
/// timeline, and the checks that judge the run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short identifier, used in report paths (`reports/<name>/<seed>/`).
    pub name: String,
    /// One or two sentences: what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Every random choice derives from it; `--seed` overrides. Default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long load runs, in simulated (or real) time.
    pub duration: Span,
    /// The longest `duration`, and op `timeout`, the file may ask for. Default 24h: a typo such
    /// as `99999h` is refused rather than starting a run that would not end for months. Raise it
    /// here or with `--set duration_max=48h` when a longer run is meant.
    #[serde(default = "default_duration_max", skip_serializing_if = "is_default_duration_max")]
    pub duration_max: Span,
    /// The most operations the workload may plan: every stream's rate times how long it runs,
    /// summed. Default 1000000: each operation holds about 4 kB until the run ends (a simulated
    /// run of 100,166 invests peaked at 387 MB), so a typo such as `1000000000/s` is refused
    /// rather than exhausting memory. Raise it here or with `--set ops_max=5000000` when a
    /// larger run is meant.
    #[serde(default = "default_ops_max", skip_serializing_if = "is_default_ops_max")]
    pub ops_max: u64,
    /// The stack under test.
    #[serde(default)]
    pub stack: StackConfig,
    /// Compose stacks: the clients ops, setup, final reads and invariants go through, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<String, ClientSpec>,
    /// Compose stacks: statements or requests run once, in order, when the stack is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<SetupStep>,
    /// The operations the open-loop generator issues, each at its own rate.
    pub workload: Vec<Load>,
    /// Compose stacks: how to read, after the run, the keys each `write` op left, by op name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_state: BTreeMap<String, FinalRead>,
    /// The fault timeline.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Phase boundaries that are not implied by the fault timeline.
    #[serde(default)]
    pub phases: PhaseConfig,
    /// What to check once the run ends.
    #[serde(default)]
    pub checks: Checks,
    /// Checks expected to fail: a scenario that demonstrates a bug passes when they do.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expect: BTreeMap<CheckName, Expectation>,
    /// Which report files to write.
    #[serde(default)]
    pub report: ReportOptions,
}

fn default_seed() -> u64 {
    1
}

/// The default of [`Scenario::duration_max`]: one day.
pub const DURATION_MAX_DEFAULT: Span = Span(std::time::Duration::from_secs(24 * 3600));

fn default_duration_max() -> Span {
    DURATION_MAX_DEFAULT
}

fn is_default_duration_max(span: &Span) -> bool {
    *span == DURATION_MAX_DEFAULT
}

/// The default of [`Scenario::ops_max`].
pub const OPS_MAX_DEFAULT: u64 = 1_000_000;

fn default_ops_max() -> u64 {
    OPS_MAX_DEFAULT
}

fn is_default_ops_max(ops: &u64) -> bool {
    *ops == OPS_MAX_DEFAULT
}

/// How the stack is built.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    /// When a commit is acknowledged: `async` (primary only), `sync` (the replica has flushed
    /// it) or `remote_apply` (the replica has applied it). Default `sync`.
    #[serde(default)]
    pub replication: Replication,
    /// Number of API replicas behind the balancer (`api-1` … `api-N`). Default 2.
    #[serde(default = "default_two")]
    pub api_replicas: u32,
    /// Number of queue workers (`worker-1` … `worker-M`). Default 2.
    #[serde(default = "default_two")]
    pub workers: u32,
    /// The query queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// The failover watchdog.
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    /// The round-robin balancer's health checks.
    #[serde(default)]
    pub balancer: BalancerConfig,
    /// Bug-zoo switches: each plants one realistic bug. Default none.
    #[serde(default)]
    pub bugs: Vec<Bug>,
    /// Scheduled base backups and continuous WAL archiving (hosts `backup` and `redis`). Absent:
    /// no backups are taken, and `disaster` / `restore` cannot be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfig>,
    /// A docker-compose file (relative to the scenario) to test instead of the built-in stack:
    /// its services are the hosts. The keys above are the built-in stack's and do not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<String>,
    /// Compose stacks: named groups of services a fault can target (`db: [pg1, pg2, pg3]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Compose stacks: roles a fault can target, resolved by a probe when the fault starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleSpec>,
    /// Compose stacks: probes that must all answer before setup and load (after the compose
    /// healthchecks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready: Vec<Probe>,
    /// Compose stacks: variables for the compose file's `${VAR}` interpolation, over the process
    /// environment (`SYNCHRONOUS_MODE: "false"`); `--set stack.env.NAME=value` makes a variant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Compose stacks: the longest bring-up (build excluded) may take before the run fails with
    /// the service that did not get ready. Default `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<Span>,
}

impl StackConfig {
    /// Whether this is a user's compose stack rather than the built-in one.
    pub fn is_compose(&self) -> bool {
        self.compose.is_some()
    }
}

/// Backups: a base backup every `every`, the newest `keep` kept, WAL archived continuously
/// between them; a catalogue of both in Redis.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Time between the starts of two base backups; the first starts after `every`. Default `20s`.
    #[serde(default = "default_backup_every")]
    pub every: Span,
    /// Base backups kept (older ones, and the WAL only they need, are pruned). Default 3.
    #[serde(default = "default_backup_keep")]
    pub keep: u32,
}

fn default_backup_every() -> Span {
    Span(std::time::Duration::from_secs(20))
}
fn default_backup_keep() -> u32 {
    3
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { every: default_backup_every(), keep: default_backup_keep() }
    }
}

fn default_two() -> u32 {
    2
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            replication: Replication::default(),
            api_replicas: 2,
            workers: 2,
            queue: QueueConfig::default(),
            watchdog: WatchdogConfig::default(),
            balancer: BalancerConfig::default(),
            bugs: Vec::new(),
            backup: None,
            compose: None,
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            ready: Vec::new(),
            env: BTreeMap::new(),
            ready_timeout: None,
        }
    }
}

/// PostgreSQL's `synchronous_commit` levels that matter for loss on failover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// Acknowledged once the primary has it: a primary crash can lose acknowledged commits.
    Async,
    /// Acknowledged once the replica has flushed it too.
    #[default]
    Sync,
    /// Acknowledged once the replica has applied it: replica reads see it at once.
    RemoteApply,
}

/// The bug zoo: switches that plant one realistic bug each, so that the checkers can prove they
/// catch it. All off by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// The investments API answers 201 before its transaction commits (caught by `durability`).
    AckBeforeCommit,
    /// The saga does not restock when a later step fails (caught by `saga`).
    SkipCompensation,
    /// A redelivered query is processed again (caught by `delivery`).
    NonIdempotentWorker,
    /// The watchdog promotes without fencing the old primary, which takes writes again after a
    /// restart (caught by `durability`: split brain).
    NoFencing,
    /// A read that presents a write's LSN is answered by a lagging replica without waiting
    /// (caught by `staleness`).
    StaleReadYourWrites,
    /// The gateway answers 202 without waiting for the broker's publisher confirm, so a
    /// rejected publish is lost (caught by `delivery`).
    UnconfirmedPublish,
    /// The watchdog promotes the standby whatever its replication state: a standby that was cut
    /// off while a non-strict synchronous primary (or an async one) committed alone is promoted,
    /// and what only the old primary had is lost (caught by `durability`).
    PromoteLaggingStandby,
    /// The files api commits a file's metadata row before its bytes are stored, so an upload
    /// whose PUT fails leaves a row pointing at nothing (caught by `files`).
    MetadataBeforeObject,
    /// The audit subscriber acknowledges an event when it receives it, before its entry is
    /// written, so an event whose write fails is never redelivered (caught by `files`).
    AutoackSubscriber,
    /// The backup agent marks a base backup `done` in the catalogue before its bytes are stored,
    /// so a backup interrupted while it copies is catalogued as good (caught by `restore`).
    CatalogBeforeBackup,
    /// The primary's WAL archiving ignores a failed archive command and moves on, leaving a gap
    /// in the archive that no restore can replay past (caught by `restore`).
    WalArchiveGap,
}

/// The operations the workload can issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST /invest`: record an investment at the current price (a write).
    Invest,
    /// `GET /history`: read investments from the replica, presenting the session's last LSN.
    History,
    /// `POST /orders`: run the orders saga (a write).
    Order,
    /// `POST /queries`, then poll `GET /queries/{id}` until completed.
    Query,
    /// `POST /files`: store a file's bytes, its metadata row and a `file.uploaded` event (a write).
    Upload,
}

impl Op {
    /// Every op, in a fixed order.
    pub const ALL: [Op; 5] = [Op::Invest, Op::History, Op::Order, Op::Query, Op::Upload];

    /// The name used in YAML and reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Invest => "invest",
            Op::History => "history",
            Op::Order => "order",
            Op::Query => "query",
            Op::Upload => "upload",
        }
    }
}

/// One stream of operations in the open-loop workload: a built-in op (`op: invest`) or, on a
/// compose stack, an op declared here (`name: put`, a `client`, a `sql` statement or `request`,
/// and a `kind`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Which built-in operation (built-in stack only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    /// A declared op's name (compose stacks), used in reports and SLO rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A declared op's client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// What the checkers make of a declared op's outcome; none: SLO and recovery only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<OpKind>,
    /// A declared op's SQL statement (placeholders become bind parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// A declared op's HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
    /// `write`: the key is the server's, at this JSON pointer of the answer (`/id`), instead of
    /// `{key}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_from: Option<String>,
    /// `read` over HTTP: where the keys are in the answer (`/items/*/key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_from: Option<String>,
    /// `submit`: the job's id in the acceptance (`/consulta_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_from: Option<String>,
    /// `submit`: how to poll the job until done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollSpec>,
    /// `read`: the write op whose keys it lists (needed when there are several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// `read`: the read returns at most this many keys, newest (highest `{seq}`) first, so an
    /// older write off the page is not a stale read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Intended arrivals (Poisson, seeded), independent of how fast the stack answers.
    pub rate: Rate,
    /// How long one operation may take before it is abandoned (`info` for a write, `fail` for a
    /// read). Default `2s`.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// When this stream starts. Default `0s`.
    #[serde(default)]
    pub start: Span,
    /// When this stream stops. Default: the end of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Span>,
    /// `upload` only: the size of each file (`64kB`). Default `64kB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
}

/// An upload's size when its stream names none.
pub const UPLOAD_SIZE_DEFAULT: u64 = 64 << 10;

impl Load {
    /// The op's name as written: the built-in op's (`invest`) or the declared one's (`put`);
    /// `?` for a stream with neither (refused by validation).
    pub fn op_name(&self) -> &str {
        match (&self.op, &self.name) {
            (Some(op), _) => op.name(),
            (None, Some(name)) => name,
            (None, None) => "?",
        }
    }

    /// The size of each upload of this stream, in bytes.
    pub fn upload_size(&self) -> u64 {
        self.size.map_or(UPLOAD_SIZE_DEFAULT, |s| s.0)
    }
}

fn default_timeout() -> Span {
    Span(std::time::Duration::from_secs(2))
}

/// One fault on the timeline, as written: `at`, an optional window, and exactly one kind
/// (`crash`, `pause`, `partition`, `latency`, `backpressure` or `pricefeed_outage`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When the fault starts, from the start of the run.
    pub at: Span,
    /// How long it lasts; it is reverted automatically at the end. Crashes use `restart_after`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Span>,
    /// Kill a host (or every host of a group). Without `restart_after` it stays down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
    /// For `crash` and `stop`: start the host again this long after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<Span>,
    /// Compose stacks: stop a service, group or role gracefully (SIGTERM, then SIGKILL after
    /// 10 s); without `restart_after` it stays stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
    /// Compose stacks: run a command in a service (or role) at `at`, and optionally another at
    /// the end of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecFault>,
    /// Freeze a host or group: its links hold every message until the window ends (a gray failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<String>,
    /// Cut the network between two lists of hosts or groups: `[[api], [pg-replica]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Vec<Vec<String>>>,
    /// For `partition`: drop only messages from the first list to the second. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_way: bool,
    /// Slow the links between two lists of hosts or groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyFault>,
    /// Stall the queue's consumers or shrink its capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backpressure: Option<BackpressureFault>,
    /// Make the price feed fail or answer slowly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricefeed_outage: Option<OutageFault>,
    /// Lose database nodes with their storage (needs `stack.backup`): they stay down, empty,
    /// until a `restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaster: Option<DisasterFault>,
    /// Rebuild the primary from the newest verified base backup plus archived WAL, up to `to`,
    /// then a standby from it (needs `stack.backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreAction>,
    /// A planned switchover back to this node (`pg-primary` or `pg-replica`) once it streams as
    /// a caught-up standby: writes stop on the current primary, the node catches up, is
    /// promoted, and the old primary follows it. Loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<String>,
}

/// Which nodes a disaster takes, storage and all.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisasterFault {
    /// Database nodes or the `db` group: `[pg-primary, pg-replica]`.
    pub lose: Vec<String>,
}

/// A restore from backups.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreAction {
    /// The recovery target: `latest` (all archived WAL) or a time from the start of the run
    /// (`38s`: point-in-time recovery, PostgreSQL's `recovery_target_time`). Default `latest`.
    #[serde(default)]
    pub to: RestoreTarget,
}

impl RestoreTarget {
    /// The target time, `None` for `latest`.
    pub fn time(self) -> Option<std::time::Duration> {
        match self {
            RestoreTarget::Latest => None,
            RestoreTarget::At(span) => Some(span.get()),
        }
    }
}

/// Extra delay on the links between two lists of hosts or groups.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyFault {
    /// The two sides: `[[api], [db]]`.
    pub between: Vec<Vec<String>>,
    /// Added one-way delay per message.
    pub delay: Span,
    /// Extra random delay, uniform in `0..jitter`. Default `0s`.
    #[serde(default)]
    pub jitter: Span,
}

/// Queue backpressure.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackpressureFault {
    /// What the consumers do during the window. Default `pause`.
    #[serde(default)]
    pub consumers: ConsumerMode,
    /// For `slow`: extra time per message. Default `100ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_by: Option<Span>,
    /// Shrink the queue's capacity during the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

/// What queue consumers do under backpressure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerMode {
    /// Consume nothing.
    #[default]
    Pause,
    /// Take `slow_by` longer per message.
    Slow,
}

/// A price-feed outage.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageFault {
    /// `errors` (answers 503) or `slow` (answers after `delay`). Default `errors`.
    #[serde(default)]
    pub mode: OutageMode,
    /// For `slow`: how late each answer is. Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Span>,
}

/// How the price feed misbehaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Every request answers 503.
    #[default]
    Errors,
    /// Every request answers late.
    Slow,
}

/// Phase boundaries. `steady`, `fault` and `post` come from the fault timeline; `recovery` is a
/// window after the last fault ends.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    /// Length of the `recovery` phase after the last fault ends. Default `10s`.
    #[serde(default = "default_recovery")]
    pub recovery: Span,
}

fn default_recovery() -> Span {
    Span(std::time::Duration::from_secs(10))
}

impl Default for PhaseConfig {
    fn default() -> Self {
        PhaseConfig { recovery: default_recovery() }
    }
}

/// A phase of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first fault.
    Steady,
    /// While any fault is active.
    Fault,
    /// A window (`phases.recovery`) after the last fault ends.
    Recovery,
    /// After the recovery window.
    Post,
    /// The whole run.
    All,
}

impl Phase {
    /// Every phase, in timeline order, `all` last.
    pub const ALL: [Phase; 5] = [Phase::Steady, Phase::Fault, Phase::Recovery, Phase::Post, Phase::All];

    /// The name used in YAML and reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Fault => "fault",
            Phase::Recovery => "recovery",
            Phase::Post => "post",
            Phase::All => "all",
        }
    }
}

/// Which report files a run writes next to `history.jsonl` and `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportOptions {
    /// Write `report.html`. Default true.
    #[serde(default = "default_true")]
    pub html: bool,
    /// Write `junit.xml`. Default true.
    #[serde(default = "default_true")]
    pub junit: bool,
    /// Width of a timeline bucket in the report. Default `1s`.
    #[serde(default = "default_bucket")]
    pub bucket: Span,
}

fn default_true() -> bool {
    true
}
fn default_bucket() -> Span {
    Span(std::time::Duration::from_secs(1))
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { html: true, junit: true, bucket: default_bucket() }
    }
}
