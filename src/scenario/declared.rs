//! The scenario language for a user's own stack: a docker-compose file as the stack, clients
//! declared by URL, operations declared as HTTP requests or SQL statements with a *kind* that
//! tells the checkers what an outcome obliges, the final state and invariants as queries, and
//! roles that a fault resolves when it starts.
//!
//! Only the types live here (the first pass of loading); `validate_declared` checks them against
//! the compose file, and `workload::template` parses the `{key}` / `{seq}` / `{int:a..b}` /
//! `{choice:a|b}` placeholders. The built-in stack's ops (`op: invest`, …) keep their meaning
//! for the built-in stack only; a compose scenario declares its own (`name: put`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::Span;

/// The name of an operation, built-in (`invest`) or declared (`put`): interned, so an op name is
/// `Copy` and compares by value like the built-in ops. Names come from scenario files, so the
/// interner holds a handful per process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpName(&'static str);

static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

impl OpName {
    /// The interned name `name`.
    pub fn new(name: &str) -> OpName {
        let mut names = INTERNED.lock().expect("op names lock");
        if let Some(known) = names.get(name) {
            return OpName(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        OpName(leaked)
    }

    /// The name as written.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Debug for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// What an outcome of a declared op obliges (Jepsen's models, as `checks` read them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Adds a fresh unique key (`{key}`, or the server's from `key_from`): once acknowledged, it
    /// must be in the final state (`durability`, Jepsen's set).
    Write,
    /// Returns the keys it saw (`keys_from`, or the first SQL column): read-your-writes and
    /// visibility lag (`staleness`).
    Read,
    /// An asynchronous job accepted with an id (`id_from`) and polled (`poll`) until done: every
    /// accepted job must complete (`delivery`).
    Submit,
}

/// Which server a multi-URL SQL client uses (libpq's `target_session_attrs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The first URL that answers.
    #[default]
    Any,
    /// The first URL whose server accepts writes; on failure, the list is tried again.
    ReadWrite,
}

/// One string or a list of them: `sql: URL` or `sql: [URL, URL]`; `run: "cmd"` or `run: [argv]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OneOrMany {
    /// A single string.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl OneOrMany {
    /// Every string, in order.
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(list) => list.iter().map(String::as_str).collect(),
        }
    }
}

impl Serialize for OneOrMany {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OneOrMany::One(s) => serializer.serialize_str(s),
            OneOrMany::Many(list) => list.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(s.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A string or a list of strings.",
            "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ]
        })
    }
}

/// How a declared client reaches the stack: by HTTP or SQL, at a compose service's container
/// port (`http://api:8000`, `postgres://u:p@haproxy:5000/db`, `mysql://u:p@inventory-db:3306/db`);
/// shakedown maps the service and port to the port it publishes on 127.0.0.1.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The base URL of an HTTP service; requests give their path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A PostgreSQL (`postgres://`) or MySQL/MariaDB (`mysql://`) URL, or several (see `target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<OneOrMany>,
    /// With several `sql` URLs: `read-write` uses the first whose server accepts writes (as
    /// libpq's `target_session_attrs=read-write`), for stacks without a proxy. Default `any`.
    #[serde(default)]
    pub target: Target,
    /// Longest time one request or statement may take (connecting included). Default `2s`.
    #[serde(default = "default_client_timeout")]
    pub timeout: Span,
}

fn default_client_timeout() -> Span {
    Span(std::time::Duration::from_secs(2))
}

/// An HTTP request, with placeholders in `path`, header values and body strings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`. Default `GET`, or `POST` when there is a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path and query (`/orders`, `/consultar/{id}`).
    pub path: String,
    /// A JSON body. A string that is exactly one numeric placeholder (`"{int:1..5}"`, `"{seq}"`)
    /// becomes a JSON number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Extra headers (`Idempotency-Key: "{key}"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl RequestSpec {
    /// The method, defaulted.
    pub fn method(&self) -> &str {
        match &self.method {
            Some(m) => m.as_str(),
            None if self.body.is_some() => "POST",
            None => "GET",
        }
    }
}

/// How a `submit` op learns that its job is done: a request polled every `every` until the JSON
/// value at `until.pointer` equals `until.equals`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// The request; `{id}` is the job's id.
    pub request: RequestSpec,
    /// When the job is done.
    pub until: UntilSpec,
    /// Time between two polls. Default `200ms`.
    #[serde(default = "default_poll_every")]
    pub every: Span,
}

fn default_poll_every() -> Span {
    Span(std::time::Duration::from_millis(200))
}

/// A JSON value to wait for.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UntilSpec {
    /// A JSON pointer into the answer (`/status`).
    pub pointer: String,
    /// The value that means done (`done`, `completed`, `true`).
    pub equals: serde_json::Value,
}

/// One `setup` step: run once, in order, when the stack is ready and before load starts.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupStep {
    /// The client that runs it.
    pub client: String,
    /// An SQL statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// An HTTP request; any answer but 2xx fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
}

/// How to read the keys a write op left, once faults are healed and the drain is over.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalRead {
    /// The client that reads (the node that accepts writes, through it).
    pub client: String,
    /// A query whose first column is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// An HTTP GET whose answer lists the keys (`keys_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
    /// For `request`: where the keys are in the answer (`/items/*/key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_from: Option<String>,
    /// For `sql`: also read each of these services directly (same URL, host and port replaced),
    /// to tell a lost write from one another node holds (split brain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_node: Vec<String>,
    /// The container port `per_node` reads on. Default: the engine's (5432, or 3306 for MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_node_port: Option<u16>,
}

/// A boolean query checked during the run and at its end (`at: periodic`, the default), or only
/// at its end (`at: end`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvariantSpec {
    /// A short name for reports.
    pub name: String,
    /// The client that runs the query.
    pub client: String,
    /// A query returning one row whose first column is a boolean (or 0/1): true while it holds.
    pub sql: String,
    /// Time between two checks (`at: periodic` only). Default `1s`.
    #[serde(default = "default_invariant_every")]
    pub every: Span,
    /// When it is evaluated. Default `periodic`.
    #[serde(default, skip_serializing_if = "InvariantAt::is_periodic")]
    pub at: InvariantAt,
}

/// When an invariant is evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvariantAt {
    /// Every `every` during the run, and once more after the drain.
    #[default]
    Periodic,
    /// Only once, after the drain: for a property that in-flight operations break for a moment
    /// (an order is `pending` until its saga ends).
    End,
}

impl InvariantAt {
    /// Whether this is the default, `periodic`.
    pub fn is_periodic(&self) -> bool {
        *self == InvariantAt::Periodic
    }
}

/// An end-of-run conservation check: values read from several clients (each part one SQL query
/// whose first column of its first row is an integer) add up to `total`. The parts are read one
/// after the other once the load has drained: not atomically across engines, so only a quiet
/// stack gives a meaningful sum.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConservationSpec {
    /// A short name for reports.
    pub name: String,
    /// What the parts must add up to.
    pub total: i64,
    /// The parts, each read once through its client.
    pub parts: Vec<ConservationPart>,
}

/// One part of a [`ConservationSpec`].
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConservationPart {
    /// The SQL client that reads it.
    pub client: String,
    /// A query whose first row's first column is an integer (`SELECT COALESCE(SUM(n), 0) …`).
    pub sql: String,
}

fn default_invariant_every() -> Span {
    Span(std::time::Duration::from_secs(1))
}

/// A role a fault can target (`crash: leader`), resolved when the fault starts: the first member
/// of the group `of` whose probe qualifies.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// The group whose members are probed, in order.
    pub of: String,
    /// An HTTP URL with `{host}` for the member (`http://{host}:8008/primary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// For `http`: the status that qualifies. Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// An SQL URL with `{host}` for the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// For `sql`: a query returning one boolean, true for the member that has the role
    /// (`SELECT NOT pg_is_in_recovery()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// One readiness probe: all must answer before setup and load start (never a sleep).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// An SQL URL; `query` must run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// For `sql`: the query. Default `SELECT 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// An HTTP URL; it must answer `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// For `http`: the status. Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `service:port`: a TCP connection must open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
}

/// The longest a compose stack may take to get ready (healthchecks and probes) by default.
pub const READY_TIMEOUT_DEFAULT: Span = Span(std::time::Duration::from_secs(300));

/// A command run in a service's container: one string (run by `sh -c`) or an argv list.
pub type Command = OneOrMany;

/// `exec`: a command in a service (or the service a role resolves to) when the fault starts, and
/// optionally another when it ends.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecFault {
    /// The service, group or role it runs in.
    pub on: String,
    /// The command at the fault's start (`patronictl switchover --force`).
    pub run: Command,
    /// The command at its end (`for`, or the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Command>,
}
