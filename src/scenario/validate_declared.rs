//! Validation of a scenario that tests a user's compose stack: every client, probe and role names
//! a service of the compose file and a container port it exposes; every op, setup step, final
//! read and invariant is complete for its kind and its client's protocol; every template parses;
//! faults target services, groups or roles, and only the kinds a compose stack supports. And the
//! reverse: a built-in scenario may not use these keys. Each error is reported at the offending
//! value, with a hint.

use std::collections::BTreeMap;

use super::declared::{OpKind, RequestSpec, Target};
use super::diagnostic::{did_you_mean, one_of};
use super::model::{FaultSpec, Op, Scenario};
use super::validate::Report;
use crate::workload::template::{Template, body_strings};

/// What validation needs of a compose file: its services and the container ports each exposes
/// (`ports:` container side and `expose:`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComposeServices {
    /// Service → exposed container ports.
    pub services: BTreeMap<String, Vec<u16>>,
    /// The compose file's path, as the scenario's directory and `stack.compose` make it.
    pub file: String,
    /// SHA-256 of its text, hex.
    pub sha256: String,
}

/// The protocol of a URL a scenario names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` (or `https://`).
    Http,
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `service:port` (a readiness probe).
    Tcp,
}

impl Scheme {
    /// The port a URL of this scheme uses when it names none.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Postgres => Some(5432),
            Scheme::MySql => Some(3306),
            Scheme::Tcp => None,
        }
    }
}

/// The service and container port a URL names (`{host}` stands for a role's member).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The protocol.
    pub scheme: Scheme,
    /// The compose service (or `{host}`).
    pub service: String,
    /// The container port.
    pub port: u16,
}

/// Parse a URL of one of the schemes shakedown speaks; `{host}` may stand for the host.
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
    let scheme = match url.split_once("://").map(|(s, _)| s) {
        Some("http" | "https") => Scheme::Http,
        Some("postgres" | "postgresql") => Scheme::Postgres,
        Some("mysql" | "mariadb") => Scheme::MySql,
        Some(other) => {
            return Err(format!("unsupported scheme `{other}://`: use http://, postgres:// or mysql://"));
        }
        None => return Err("not a URL: write e.g. `postgres://user:pass@db:5432/name`".into()),
    };
    let parsed = url::Url::parse(&url.replace("{host}", "shakedown-role-member"))
        .map_err(|e| format!("not a valid URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL names no host: write the compose service's name")?;
    let service = if host == "shakedown-role-member" { "{host}".to_owned() } else { host.to_owned() };
    let port = parsed.port().or(scheme.default_port()).expect("every URL scheme has a default port");
    Ok(Endpoint { scheme, service, port })
}

/// `service:port` of a TCP probe.
fn tcp_endpoint(text: &str) -> Result<Endpoint, String> {
    let (service, port) = text.rsplit_once(':').ok_or("write `service:port`, e.g. `etcd:2379`")?;
    let port = port.parse().map_err(|_| format!("`{port}` is not a port number"))?;
    Ok(Endpoint { scheme: Scheme::Tcp, service: service.to_owned(), port })
}

/// Keys that configure the built-in stack, refused under `stack` next to `compose`.
pub const BUILTIN_STACK_KEYS: [&str; 8] =
    ["replication", "api_replicas", "workers", "queue", "watchdog", "balancer", "bugs", "backup"];

/// Check a compose scenario's declared parts against its compose file (`None`: it could not be
/// read, already reported; the rules that need it are skipped).
pub(super) fn check(scenario: &Scenario, compose: Option<&ComposeServices>, report: &mut Report) {
    let names = Names::new(scenario, compose);
    stack_parts(scenario, &names, report);
    clients(scenario, &names, report);
    ops(scenario, &names, report);
    judged::final_reads(scenario, report);
    for (i, fault) in scenario.faults.iter().enumerate() {
        fault_targets(fault, &report.gaps.item("faults", i), &names, report);
    }
    judged::checks(scenario, report);
}

/// A built-in scenario may not use what only a compose stack has.
pub(super) fn refuse_in_builtin(scenario: &Scenario, report: &mut Report) {
    let hint =
        || Some("these keys belong to a compose stack: add `stack.compose: docker-compose.yml`".to_owned());
    for (key, set) in [
        ("clients", !scenario.clients.is_empty()),
        ("setup", !scenario.setup.is_empty()),
        ("final_state", !scenario.final_state.is_empty()),
        ("checks.invariants", !scenario.checks.invariants.is_empty()),
        ("checks.conservation", !scenario.checks.conservation.is_empty()),
        ("stack.groups", !scenario.stack.groups.is_empty()),
        ("stack.roles", !scenario.stack.roles.is_empty()),
        ("stack.ready", !scenario.stack.ready.is_empty()),
        ("stack.ready_timeout", scenario.stack.ready_timeout.is_some()),
        ("stack.env", !scenario.stack.env.is_empty()),
    ] {
        if set {
            report.error(key, format!("`{key}` applies only to a compose stack"), hint());
        }
    }
    for (i, load) in scenario.workload.iter().enumerate() {
        let path = report.gaps.item("workload", i);
        if load.op.is_none() {
            let hint = Some(format!("the built-in stack's ops are {}", one_of(&Op::ALL.map(Op::name))));
            report.error(&path, "this stream names no built-in `op`", hint);
        }
        let declared = [
            ("name", load.name.is_some()),
            ("client", load.client.is_some()),
            ("kind", load.kind.is_some()),
            ("sql", load.sql.is_some()),
            ("request", load.request.is_some()),
        ];
        if let Some((key, _)) = declared.iter().find(|(_, set)| *set) {
            report.error(
                &format!("{path}.{key}"),
                format!("`{key}` declares an op of a compose stack"),
                hint(),
            );
        }
    }
    for (i, fault) in scenario.faults.iter().enumerate() {
        let path = report.gaps.item("faults", i);
        for (key, set) in [("stop", fault.stop.is_some()), ("exec", fault.exec.is_some())] {
            if set {
                report.error(
                    &format!("{path}.{key}"),
                    format!("`{key}` is a fault for compose stacks"),
                    hint(),
                );
            }
        }
    }
}

/// The names a compose scenario may use, and what each is.
struct Names<'s> {
    compose: Option<&'s ComposeServices>,
    groups: &'s BTreeMap<String, Vec<String>>,
    roles: Vec<&'s str>,
    writes: Vec<&'s str>,
}

impl<'s> Names<'s> {
    fn new(scenario: &'s Scenario, compose: Option<&'s ComposeServices>) -> Names<'s> {
        let writes = scenario
            .workload
            .iter()
            .filter(|l| l.kind == Some(OpKind::Write))
            .filter_map(|l| l.name.as_deref())
            .collect();
        Names {
            compose,
            groups: &scenario.stack.groups,
            roles: scenario.stack.roles.keys().map(String::as_str).collect(),
            writes,
        }
    }

    fn services(&self) -> Vec<&str> {
        self.compose.map_or_else(Vec::new, |c| c.services.keys().map(String::as_str).collect())
    }

    /// Report an unknown service; `None` when the compose file is unreadable (nothing to judge).
    fn service(&self, name: &str, path: &str, report: &mut Report) -> Option<Vec<u16>> {
        let compose = self.compose?;
        if let Some(ports) = compose.services.get(name) {
            return Some(ports.clone());
        }
        let known = self.services();
        let hint = did_you_mean(name, known.iter().copied())
            .unwrap_or_else(|| format!("the compose file's services are {}", one_of(&known)));
        report.error(path, format!("`{name}` is not a service of the compose file"), Some(hint));
        None
    }

    /// A URL's service must exist and expose its port; `{host}` stands for each of `members`.
    fn reach(&self, url: &str, path: &str, members: &[String], report: &mut Report) -> Option<Endpoint> {
        let endpoint = match endpoint(url) {
            Ok(endpoint) => endpoint,
            Err(message) => {
                report.error(path, format!("`{url}`: {message}"), None);
                return None;
            }
        };
        self.exposes(&endpoint, path, members, report);
        Some(endpoint)
    }

    fn exposes(&self, endpoint: &Endpoint, path: &str, members: &[String], report: &mut Report) {
        let services: Vec<&str> = if endpoint.service == "{host}" {
            members.iter().map(String::as_str).collect()
        } else {
            vec![endpoint.service.as_str()]
        };
        for service in services {
            let Some(ports) = self.service(service, path, report) else { continue };
            if !ports.contains(&endpoint.port) {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                let listed = if ports.is_empty() { "none".to_owned() } else { one_of(&ports) };
                let hint = format!(
                    "list it under the service's `expose:` (or `ports:`) in the compose file: `expose: [\"{}\"]` (exposed now: {listed})",
                    endpoint.port
                );
                report.error(
                    path,
                    format!("port {} of `{service}` is not exposed", endpoint.port),
                    Some(hint),
                );
            }
        }
    }

    /// A fault target: a service, a group or a role.
    fn target(&self, name: &str, path: &str, report: &mut Report) {
        if self.groups.contains_key(name) || self.roles.contains(&name) {
            return;
        }
        let Some(compose) = self.compose else { return };
        if compose.services.contains_key(name) {
            return;
        }
        let mut known: Vec<&str> = self.services();
        known.extend(self.groups.keys().map(String::as_str));
        known.extend(self.roles.iter().copied());
        let hint = did_you_mean(name, known.iter().copied())
            .unwrap_or_else(|| format!("known services, groups and roles: {}", one_of(&known)));
        report.error(path, format!("unknown service, group or role `{name}`"), Some(hint));
    }
}

fn stack_parts(scenario: &Scenario, names: &Names, report: &mut Report) {
    let stack = &scenario.stack;
    for (group, members) in &stack.groups {
        let path = format!("stack.groups.{group}");
        if members.is_empty() {
            report.error(
                &path,
                format!("the group `{group}` has no members"),
                Some("list its services".into()),
            );
        }
        if names.compose.is_some_and(|c| c.services.contains_key(group)) {
            report.error(
                &path,
                format!("`{group}` is a service's name too"),
                Some("rename the group".into()),
            );
        }
        for (i, member) in members.iter().enumerate() {
            names.service(member, &format!("{path}[{i}]"), report);
        }
    }
    for (role, spec) in &stack.roles {
        let path = format!("stack.roles.{role}");
        if names.compose.is_some_and(|c| c.services.contains_key(role)) || stack.groups.contains_key(role) {
            report.error(
                &path,
                format!("`{role}` is a service's or group's name too"),
                Some("rename the role".into()),
            );
        }
        let Some(members) = stack.groups.get(&spec.of) else {
            let known: Vec<&str> = stack.groups.keys().map(String::as_str).collect();
            let hint = did_you_mean(&spec.of, known.iter().copied()).unwrap_or_else(|| {
                "a role is found among a group's members: add `groups: { db: [pg1, pg2] }` under `stack`"
                    .into()
            });
            report.error(&format!("{path}.of"), format!("`{}` is not a group", spec.of), Some(hint));
            continue;
        };
        match (&spec.http, &spec.sql) {
            (Some(url), None) => probe_url(names, url, &format!("{path}.http"), members, report),
            (None, Some(url)) => {
                probe_url(names, url, &format!("{path}.sql"), members, report);
                if spec.query.is_none() {
                    let hint = Some("add e.g. `query: \"SELECT NOT pg_is_in_recovery()\"`".into());
                    report.error(
                        &path,
                        "an `sql` role needs a `query` returning true for the member that has it",
                        hint,
                    );
                }
            }
            _ => {
                let hint = Some("e.g. `http: \"http://{host}:8008/primary\"` (Patroni's REST API)".into());
                report.error(&path, "a role is probed by exactly one of `http` or `sql`", hint);
            }
        }
    }
    for (i, probe) in stack.ready.iter().enumerate() {
        let path = format!("stack.ready[{i}]");
        let set = [probe.sql.is_some(), probe.http.is_some(), probe.tcp.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            let hint = Some("e.g. `{ sql: \"postgres://…@haproxy:5000/db\", query: \"SELECT 1\" }`".into());
            report.error(&path, "a readiness probe has exactly one of `sql`, `http` or `tcp`", hint);
            continue;
        }
        let at = |key: &str| format!("{path}.{key}");
        if let Some(url) = &probe.sql {
            names.reach(url, &at("sql"), &[], report);
        } else if let Some(url) = &probe.http {
            names.reach(url, &at("http"), &[], report);
        } else if let Some(text) = &probe.tcp {
            match tcp_endpoint(text) {
                Ok(endpoint) => names.exposes(&endpoint, &at("tcp"), &[], report),
                Err(message) => report.error(&at("tcp"), format!("`{text}`: {message}"), None),
            }
        }
    }
}

/// A role's probe URL must carry `{host}`, and every member must expose its port.
fn probe_url(names: &Names, url: &str, path: &str, members: &[String], report: &mut Report) {
    if !url.contains("{host}") {
        let hint = Some("write the member as `{host}`: `http://{host}:8008/primary`".into());
        report.error(path, "a role's probe must name its member as `{host}`", hint);
        return;
    }
    names.reach(url, path, members, report);
}

fn clients(scenario: &Scenario, names: &Names, report: &mut Report) {
    for (name, client) in &scenario.clients {
        let path = format!("clients.{name}");
        match (&client.http, &client.sql) {
            (Some(url), None) => {
                if let Some(e) = names.reach(url, &format!("{path}.http"), &[], report)
                    && e.scheme != Scheme::Http
                {
                    report.error(&format!("{path}.http"), "an `http` client needs an http:// URL", None);
                }
                if client.target != Target::Any {
                    report.error(&format!("{path}.target"), "`target` applies to `sql` clients", None);
                }
            }
            (None, Some(urls)) => {
                let items = urls.items();
                if items.is_empty() {
                    report.error(&format!("{path}.sql"), "no URL given", None);
                }
                let schemes: Vec<Scheme> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, url)| {
                        let at =
                            if items.len() == 1 { format!("{path}.sql") } else { format!("{path}.sql[{i}]") };
                        let e = names.reach(url, &at, &[], report)?;
                        if e.scheme == Scheme::Http {
                            report.error(&at, "an `sql` client needs a postgres:// or mysql:// URL", None);
                        }
                        Some(e.scheme)
                    })
                    .collect();
                if schemes.windows(2).any(|w| w[0] != w[1]) {
                    report.error(
                        &format!("{path}.sql"),
                        "every URL of one client speaks the same protocol",
                        None,
                    );
                }
            }
            _ => {
                let hint = Some("e.g. `{ sql: \"postgres://postgres:postgres@haproxy:5000/postgres\" }` or `{ http: \"http://api:8000\" }`".into());
                report.error(&path, "a client has exactly one of `http` or `sql`", hint);
            }
        }
        if client.timeout.get().is_zero() {
            report.error(&format!("{path}.timeout"), "`timeout` is 0", None);
        }
    }
    for (i, step) in scenario.setup.iter().enumerate() {
        let path = format!("setup[{i}]");
        let kind = client_kind(scenario, &step.client, &format!("{path}.client"), report);
        statement(kind, step.sql.as_deref(), step.request.as_ref(), &path, false, report);
    }
}

/// Whether a client speaks SQL (`Some(true)`), HTTP (`Some(false)`), or is unknown (reported).
fn client_kind(scenario: &Scenario, name: &str, path: &str, report: &mut Report) -> Option<bool> {
    if let Some(client) = scenario.clients.get(name) {
        return Some(client.sql.is_some());
    }
    let known: Vec<&str> = scenario.clients.keys().map(String::as_str).collect();
    let hint = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
        if known.is_empty() {
            "declare it under `clients:`, e.g. `clients: { rw: { sql: \"postgres://…@haproxy:5000/db\" } }`"
                .into()
        } else {
            format!("the clients are {}", one_of(&known))
        }
    });
    report.error(path, format!("unknown client `{name}`"), Some(hint));
    None
}

/// Exactly one of `sql` / `request`, matching the client, with templates that parse.
fn statement(
    sql_client: Option<bool>,
    sql: Option<&str>,
    request: Option<&RequestSpec>,
    path: &str,
    placeholders: bool,
    report: &mut Report,
) {
    match (sql, request, sql_client) {
        (Some(_), Some(_), _) | (None, None, _) => {
            report.error(path, "give exactly one of `sql` or `request`", None);
        }
        (Some(_), None, Some(false)) => {
            report.error(&format!("{path}.sql"), "an `sql` statement needs an `sql` client", None)
        }
        (None, Some(_), Some(true)) => {
            report.error(&format!("{path}.request"), "a `request` needs an `http` client", None)
        }
        _ => {}
    }
    if let Some(sql) = sql {
        template(sql, &format!("{path}.sql"), placeholders, false, report);
        if let Some(&offset) = Template::quoted_placeholders(sql).first() {
            let hint =
                Some("remove the quotes: a placeholder becomes a bind parameter, already typed".into());
            report.error(
                &format!("{path}.sql"),
                format!("a placeholder inside quotes (at byte {offset})"),
                hint,
            );
        }
    }
    if let Some(request) = request {
        request_templates(request, &format!("{path}.request"), placeholders, false, report);
    }
}

fn request_templates(request: &RequestSpec, path: &str, placeholders: bool, id: bool, report: &mut Report) {
    template(&request.path, &format!("{path}.path"), placeholders, id, report);
    if !request.path.starts_with('/') {
        report.error(&format!("{path}.path"), "a path starts with `/`", None);
    }
    let method = request.method();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
        let hint = Some("use GET, POST, PUT, PATCH or DELETE".into());
        report.error(&format!("{path}.method"), format!("unsupported method `{method}`"), hint);
    }
    for (name, value) in &request.headers {
        template(value, &format!("{path}.headers.{name}"), placeholders, id, report);
    }
    if let Some(body) = &request.body {
        for text in body_strings(body) {
            template(text, &format!("{path}.body"), placeholders, id, report);
        }
    }
}

fn template(text: &str, path: &str, placeholders: bool, id: bool, report: &mut Report) {
    match Template::parse(text, id) {
        Err(e) => report.error(path, format!("{} (at byte {} of `{text}`)", e.message, e.offset), None),
        Ok(t)
            if !placeholders
                && t.pieces().iter().any(|p| !matches!(p, crate::workload::template::Piece::Text(_))) =>
        {
            report.error(
                path,
                "placeholders are for workload ops; setup, final reads and invariants run once",
                None,
            )
        }
        Ok(_) => {}
    }
}

fn ops(scenario: &Scenario, names: &Names, report: &mut Report) {
    for (i, load) in scenario.workload.iter().enumerate() {
        let path = report.gaps.item("workload", i);
        if let Some(op) = load.op {
            let hint = Some(format!(
                "declare it: `{{ name: {}, client: …, sql: … or request: …, kind: write }}`",
                op.name()
            ));
            report.error(
                &format!("{path}.op"),
                format!("`op: {}` is the built-in stack's op", op.name()),
                hint,
            );
            continue;
        }
        let Some(name) = load.name.as_deref() else {
            report.error(&path, "a declared op needs a `name`", Some("e.g. `name: put`".into()));
            continue;
        };
        reserved(name, &format!("{path}.name"), report);
        if scenario.workload[..i].iter().any(|l| l.name.as_deref() == Some(name)) {
            report.error(&format!("{path}.name"), format!("another op is named `{name}`"), None);
        }
        if load.size.is_some() {
            report.error(&format!("{path}.size"), "`size` belongs to the built-in `upload` op", None);
        }
        let Some(client) = load.client.as_deref() else {
            report.error(&path, "a declared op needs a `client`", None);
            continue;
        };
        let sql_client = client_kind(scenario, client, &format!("{path}.client"), report);
        statement(sql_client, load.sql.as_deref(), load.request.as_ref(), &path, true, report);
        kind_parts(load, &path, sql_client, names, report);
    }
}

/// Names a declared op may not take: the built-in ops', `any`, and the fault events'.
fn reserved(name: &str, path: &str, report: &mut Report) {
    let builtin = Op::ALL.iter().any(|op| op.name() == name);
    if builtin || ["any", "fault_start", "fault_stop"].contains(&name) || name.is_empty() {
        let hint = Some("built-in op names keep their meaning for the built-in stack: choose another".into());
        report.error(path, format!("`{name}` is a reserved name"), hint);
    }
}

/// What each kind needs: `{key}` or `key_from` for a write, keys for a read, an id and a poll
/// for a submit; and no key that belongs to another kind.
fn kind_parts(
    load: &super::model::Load,
    path: &str,
    sql_client: Option<bool>,
    names: &Names,
    report: &mut Report,
) {
    let http = sql_client == Some(false);
    match load.kind {
        Some(OpKind::Write) => write_parts(load, path, http, report),
        Some(OpKind::Read) => read_parts(load, path, http, names, report),
        Some(OpKind::Submit) => submit_parts(load, path, http, report),
        None => {}
    }
    misplaced_parts(load, path, report);
}

/// A write sends its key: `{key}` somewhere in its statement or request, or `key_from` in the
/// HTTP answer.
fn write_parts(load: &super::model::Load, path: &str, http: bool, report: &mut Report) {
    if load.key_from.is_some() && !http {
        report.error(&format!("{path}.key_from"), "`key_from` reads an HTTP answer", None);
    }
    let mut texts: Vec<&str> = load.sql.iter().map(String::as_str).collect();
    if let Some(r) = &load.request {
        texts.push(&r.path);
        texts.extend(r.headers.values().map(String::as_str));
        texts.extend(r.body.iter().flat_map(body_strings));
    }
    if load.key_from.is_none() && !texts.iter().any(|t| t.contains("{key}")) {
        let hint =
            Some("write `{key}` where the key goes, or `key_from: /id` when the server makes it".into());
        report.error(path, "a `write` op never sends its key", hint);
    }
}

/// A read says where its keys are (HTTP) and which write op it lists when there are several.
fn read_parts(load: &super::model::Load, path: &str, http: bool, names: &Names, report: &mut Report) {
    if http && load.keys_from.is_none() {
        report.error(
            path,
            "an HTTP `read` needs `keys_from` (where the keys are, e.g. `/items/*/key`)",
            None,
        );
    }
    match (&load.of, names.writes.as_slice()) {
        (Some(of), writes) if !writes.contains(&of.as_str()) => {
            let hint = Some(format!("the write ops are {}", one_of(writes)));
            report.error(&format!("{path}.of"), format!("`{of}` is not a `write` op"), hint);
        }
        (None, writes) if writes.len() > 1 => {
            let hint = Some(format!("add `of:` naming one of {}", one_of(writes)));
            report.error(path, "a `read` among several write ops says which it lists", hint);
        }
        _ => {}
    }
    if load.page == Some(0) {
        report.error(&format!("{path}.page"), "`page` is 0", None);
    }
}

/// A submit is an HTTP request whose answer names the job, and a poll that names it back.
fn submit_parts(load: &super::model::Load, path: &str, http: bool, report: &mut Report) {
    if !http {
        report.error(path, "a `submit` op is an HTTP request", None);
    }
    if load.id_from.is_none() {
        report.error(path, "a `submit` op needs `id_from` (where the job's id is, e.g. `/id`)", None);
    }
    let Some(poll) = &load.poll else {
        report.error(path, "a `submit` op needs `poll` (how to tell its job is done)", None);
        return;
    };
    request_templates(&poll.request, &format!("{path}.poll.request"), true, true, report);
    if !poll.request.path.contains("{id}") {
        report.error(&format!("{path}.poll.request.path"), "the poll never names the job: add `{id}`", None);
    }
    if poll.every.get().is_zero() {
        report.error(&format!("{path}.poll.every"), "`every` is 0", None);
    }
}

/// Keys that belong to another kind than the op's.
fn misplaced_parts(load: &super::model::Load, path: &str, report: &mut Report) {
    let kind = load.kind;
    let misplaced = [
        ("key_from", load.key_from.is_some(), OpKind::Write),
        ("keys_from", load.keys_from.is_some(), OpKind::Read),
        ("of", load.of.is_some(), OpKind::Read),
        ("page", load.page.is_some(), OpKind::Read),
        ("id_from", load.id_from.is_some(), OpKind::Submit),
        ("poll", load.poll.is_some(), OpKind::Submit),
    ];
    for (key, set, belongs) in misplaced {
        if set && kind != Some(belongs) {
            let kind = match belongs {
                OpKind::Write => "write",
                OpKind::Read => "read",
                OpKind::Submit => "submit",
            };
            report.error(&format!("{path}.{key}"), format!("`{key}` applies to `{kind}` ops"), None);
        }
    }
}

fn fault_targets(fault: &FaultSpec, path: &str, names: &Names, report: &mut Report) {
    let builtin = [
        ("backpressure", fault.backpressure.is_some(), "acts on the built-in stack's queue"),
        ("pricefeed_outage", fault.pricefeed_outage.is_some(), "acts on the built-in price feed"),
        ("disaster", fault.disaster.is_some(), "acts on the built-in stack's backups"),
        ("restore", fault.restore.is_some(), "acts on the built-in stack's backups"),
        ("failback", fault.failback.is_some(), "acts on the built-in watchdog"),
    ];
    for (key, set, why) in builtin {
        if set {
            let hint = Some("on a compose stack use `crash`, `stop`, `pause`, `partition`, `latency` or `exec` (e.g. a `rabbitmqctl set_policy`)".into());
            report.error(
                &format!("{path}.{key}"),
                format!("`{key}` is not available on a compose stack: it {why}"),
                hint,
            );
        }
    }
    for (key, target) in [("crash", &fault.crash), ("pause", &fault.pause), ("stop", &fault.stop)] {
        if let Some(target) = target {
            names.target(target, &format!("{path}.{key}"), report);
        }
    }
    if let Some(exec) = &fault.exec {
        names.target(&exec.on, &format!("{path}.exec.on"), report);
        if exec.run.items().is_empty() || exec.run.items().iter().all(|s| s.trim().is_empty()) {
            report.error(&format!("{path}.exec.run"), "an empty command", None);
        }
    }
    let sides = [
        ("partition", fault.partition.as_ref()),
        ("latency.between", fault.latency.as_ref().map(|l| &l.between)),
    ];
    for (key, sides) in sides {
        let Some(sides) = sides else { continue };
        for (s, side) in sides.iter().enumerate() {
            for (t, name) in side.iter().enumerate() {
                names.target(name, &format!("{path}.{key}[{s}][{t}]"), report);
            }
        }
        if sides.len() != 2 || sides.iter().any(Vec::is_empty) {
            let hint = Some("write two lists: `[[leader], [db, dcs]]`".into());
            report.error(
                &format!("{path}.{key}"),
                format!("`{key}` needs exactly two non-empty sides"),
                hint,
            );
        }
    }
}

mod judged;
#[cfg(test)]
pub(crate) mod tests;
