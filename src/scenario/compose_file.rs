//! A user's docker-compose file as shakedown needs to know it: its services (the hosts a
//! scenario names), the container ports a client may dial, what is built and from where, the
//! healthchecks, networks and volumes — read without running anything, so the scenario validator
//! can check names against it and the compose driver can write its override file.
//!
//! The text goes through the scenario's own YAML pass (`tree::parse`: anchors, aliases and `<<`
//! merge keys resolved, every position kept), so each error is reported as FILE:LINE:COL with a
//! hint, all of them at once. Strings are interpolated as Compose does (`${VAR}`, `${VAR:-x}`,
//! `$$`) from the environment and the `.env` file beside the compose file.
//!
//! Not feature-gated: validation runs on every build. Must not: talk to Docker, or keep more of
//! the file than the driver needs (the file stays the user's; Compose itself reads it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use super::compose_env::Environment;
use super::diagnostic::{Diagnostic, Diagnostics, Position, did_you_mean, one_of};
use super::tree::{self, SpanIndex};

/// The most ports one `a-b` range may expand to (Compose has no limit; a client names a few).
const PORT_RANGE_MAX: u32 = 1024;

/// A docker-compose file, read.
#[derive(Clone, Debug)]
pub struct ComposeFile {
    /// The file as given.
    pub path: PathBuf,
    /// Its `version:` as written (`"2.4"`), `None` for the Compose Specification's unversioned
    /// form. An override file must say the same: Compose v1 refuses mixed versions.
    pub version: Option<String>,
    /// Its services by name.
    pub services: BTreeMap<String, ComposeService>,
    /// The names under the top-level `networks:` (not `default` unless the file defines it).
    pub networks: Vec<String>,
    /// The names under the top-level `volumes:`.
    pub volumes: Vec<String>,
    /// SHA-256 of the file's text, hex.
    pub sha256: String,
    /// Each top-level network's definition as written (interpolated), `null` for `name:`.
    pub network_definitions: BTreeMap<String, serde_json::Value>,
    /// Each top-level volume's definition as written (interpolated), `null` for `name:`.
    pub volume_definitions: BTreeMap<String, serde_json::Value>,
    /// Variables the scenario sets (`stack.env`) for interpolation, over the process
    /// environment; the Compose CLI gets them too.
    pub env: BTreeMap<String, String>,
    spans: SpanIndex,
}

/// One service of a compose file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComposeService {
    /// Its name (the key under `services:`; also its DNS name on its networks).
    pub name: String,
    /// The TCP container ports a client may name: the container side of every `ports:` entry
    /// (short and long syntax, ranges expanded) and every `expose:` entry; sorted, no repeats.
    pub ports: Vec<u16>,
    /// It has a `build:` section.
    pub build: bool,
    /// What its `build:` section says, paths made absolute.
    pub build_spec: Option<ComposeBuild>,
    /// Its `image:`.
    pub image: Option<String>,
    /// It has a `healthcheck:` that is not disabled.
    pub healthcheck: bool,
    /// The networks it joins (`default` when it names none and has no `network_mode:`).
    pub networks: Vec<String>,
    /// The services it depends on.
    pub depends_on: Vec<String>,
    /// Its `container_name:`, if fixed (two runs of the file then collide).
    pub container_name: Option<String>,
    /// Its `network_mode:`, if set (`host`, `none`, `service:x`, `container:x`).
    pub network_mode: Option<String>,
    /// Host ports its own `ports:` entries publish at a fixed number (`"8080:80"`): they are
    /// published as written, next to shakedown's, and collide with anything else on that port.
    pub fixed_host_ports: Vec<u16>,
}

/// A service's `build:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeBuild {
    /// The build context, absolute.
    pub context: PathBuf,
    /// The Dockerfile, absolute (`context/Dockerfile` unless `dockerfile:` says otherwise).
    pub dockerfile: PathBuf,
    /// Its `args:`, interpolated (`None`: a bare name, taken from the environment by Compose).
    pub args: BTreeMap<String, Option<String>>,
}

/// Why a compose file could not be read: every problem, each with FILE:LINE:COL and a hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ComposeFileError(pub Diagnostics);

impl ComposeFile {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<ComposeFile, ComposeFileError> {
        ComposeFile::load_with(path, &BTreeMap::new())
    }

    /// Read and check `path`, with `env` over the process environment for `${VAR}` (a
    /// scenario's `stack.env`).
    pub fn load_with(path: &Path, env: &BTreeMap<String, String>) -> Result<ComposeFile, ComposeFileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = (e.kind() == std::io::ErrorKind::NotFound)
                .then(|| "`stack.compose` is relative to the scenario file".to_owned());
            ComposeFileError(Diagnostics(vec![Diagnostic {
                file: file.clone(),
                position: Position::File,
                message: format!("cannot read the compose file: {e}"),
                hint,
            }]))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut environment = Environment::for_dir(dir);
        environment.extend(env);
        let mut file = ComposeFile::parse(&text, path, &environment)?;
        file.env = env.clone();
        Ok(file)
    }

    /// Read compose text as if it were the file `path` (relative paths resolve against its
    /// directory), interpolating from `env`.
    pub fn parse(text: &str, path: &Path, env: &Environment) -> Result<ComposeFile, ComposeFileError> {
        let mut reader = Reader { file: path.display().to_string(), env, problems: Vec::new() };
        let (root, spans, duplicates) = tree::parse(text).map_err(|problems| {
            let diagnostics =
                problems.into_iter().map(|(at, message, hint)| reader.diagnostic(at, message, hint));
            ComposeFileError(Diagnostics(diagnostics.collect()))
        })?;
        if !duplicates.is_empty() {
            let diagnostics =
                duplicates.into_iter().map(|(at, message, hint)| reader.diagnostic(at, message, hint));
            return Err(ComposeFileError(Diagnostics(diagnostics.collect())));
        }
        let dir = absolute(path.parent().unwrap_or(Path::new(".")));
        let compose = reader.read(&root, &spans, &dir).map(|mut compose| {
            compose.path = path.to_owned();
            compose.sha256 = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            compose.spans = spans;
            compose
        });
        match (compose, reader.problems.is_empty()) {
            (Some(compose), true) => Ok(compose),
            _ => Err(ComposeFileError(Diagnostics(reader.problems))),
        }
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&ComposeService> {
        self.services.get(name)
    }

    /// The service names, sorted.
    pub fn service_names(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }

    /// Where a service is defined in the file (its key), for errors that point at it.
    pub fn service_position(&self, name: &str) -> Position {
        self.spans.key(&format!("services.{name}"))
    }
}

fn absolute(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

/// One pass over the parsed file, collecting problems.
struct Reader<'a> {
    file: String,
    env: &'a Environment,
    problems: Vec<Diagnostic>,
}

type Json = serde_json::Value;

impl Reader<'_> {
    fn diagnostic(&self, position: Position, message: String, hint: Option<String>) -> Diagnostic {
        Diagnostic { file: self.file.clone(), position, message, hint }
    }

    fn problem(&mut self, position: Position, message: impl Into<String>, hint: Option<&str>) {
        let diagnostic = self.diagnostic(position, message.into(), hint.map(str::to_owned));
        self.problems.push(diagnostic);
    }

    /// A scalar at `path` as interpolated text (numbers as written); a problem if it is not one.
    fn text(&mut self, value: &Json, path: &str, spans: &SpanIndex) -> Option<String> {
        let raw = match value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            _ => {
                self.problem(spans.value(path), format!("`{path}` must be a string"), None);
                return None;
            }
        };
        match self.env.interpolate(&raw) {
            Ok(text) => Some(text),
            Err(why) => {
                self.problem(spans.value(path), format!("`{path}`: {why}"), None);
                None
            }
        }
    }

    fn read(&mut self, root: &Json, spans: &SpanIndex, dir: &Path) -> Option<ComposeFile> {
        let Some(top) = root.as_object() else {
            self.problem(Position::At { line: 1, col: 1 }, "a compose file is a mapping", None);
            return None;
        };
        let version = top.get("version").and_then(|v| self.text(v, "version", spans));
        let Some(services) = top.get("services").and_then(Json::as_object) else {
            let hint = "write the services under a top-level `services:` key (the legacy version 1 format, services at the top level, is not supported)";
            self.problem(spans.key("services"), "the compose file has no `services:` mapping", Some(hint));
            return None;
        };
        let (networks, network_definitions) = self.top_level(top, "networks", spans);
        let (volumes, volume_definitions) = self.top_level(top, "volumes", spans);
        let mut out = BTreeMap::new();
        for (name, body) in services {
            let service = self.service(name, body, spans, dir);
            out.insert(name.clone(), service);
        }
        self.cross_check(&out, &networks, spans);
        Some(ComposeFile {
            path: PathBuf::new(),
            version,
            services: out,
            networks,
            volumes,
            sha256: String::new(),
            network_definitions,
            volume_definitions,
            env: BTreeMap::new(),
            spans: SpanIndex::default(),
        })
    }

    /// The names under a top-level section, and each definition interpolated.
    fn top_level(
        &mut self,
        top: &serde_json::Map<String, Json>,
        key: &str,
        spans: &SpanIndex,
    ) -> (Vec<String>, BTreeMap<String, Json>) {
        match top.get(key) {
            None | Some(Json::Null) => (Vec::new(), BTreeMap::new()),
            Some(Json::Object(map)) => {
                let definitions: BTreeMap<String, Json> =
                    map.iter().map(|(name, body)| (name.clone(), self.interpolated(body))).collect();
                (definitions.keys().cloned().collect(), definitions)
            }
            Some(_) => {
                self.problem(spans.value(key), format!("`{key}` must be a mapping of names"), None);
                (Vec::new(), BTreeMap::new())
            }
        }
    }

    /// A JSON value with every string interpolated (a malformed one is left as written:
    /// Compose reports it with its own words when it reads the file).
    fn interpolated(&self, value: &Json) -> Json {
        match value {
            Json::String(s) => Json::String(self.env.interpolate(s).unwrap_or_else(|_| s.clone())),
            Json::Array(items) => Json::Array(items.iter().map(|v| self.interpolated(v)).collect()),
            Json::Object(map) => {
                Json::Object(map.iter().map(|(k, v)| (k.clone(), self.interpolated(v))).collect())
            }
            other => other.clone(),
        }
    }

    fn service(&mut self, name: &str, body: &Json, spans: &SpanIndex, dir: &Path) -> ComposeService {
        let path = format!("services.{name}");
        let mut service = ComposeService { name: name.to_owned(), ..ComposeService::default() };
        let Some(map) = body.as_object() else {
            self.problem(spans.value(&path), format!("service `{name}` must be a mapping"), None);
            return service;
        };
        let at = |key: &str| format!("{path}.{key}");
        service.image = map.get("image").and_then(|v| self.text(v, &at("image"), spans));
        if let Some(build) = map.get("build") {
            service.build = true;
            service.build_spec = self.build(build, &at("build"), spans, dir);
        }
        if service.image.is_none() && !service.build {
            let hint = "give it an `image:` that exists locally, or a `build:` section";
            self.problem(
                spans.key(&path),
                format!("service `{name}` has neither `image:` nor `build:`"),
                Some(hint),
            );
        }
        service.healthcheck = map.get("healthcheck").is_some_and(enabled_healthcheck);
        service.container_name =
            map.get("container_name").and_then(|v| self.text(v, &at("container_name"), spans));
        service.network_mode = map.get("network_mode").and_then(|v| self.text(v, &at("network_mode"), spans));
        service.networks = self.names(map.get("networks"), &at("networks"), spans);
        if service.networks.is_empty() && service.network_mode.is_none() {
            service.networks.push("default".to_owned());
        }
        service.depends_on = self.names(map.get("depends_on"), &at("depends_on"), spans);
        self.ports(map, &path, spans, &mut service);
        service
    }

    /// A `build:` section: a context path, or a mapping with `context`, `dockerfile`, `args`.
    fn build(&mut self, build: &Json, path: &str, spans: &SpanIndex, dir: &Path) -> Option<ComposeBuild> {
        let (context, dockerfile, args) = match build {
            Json::Object(map) => {
                let context = match map.get("context") {
                    Some(v) => self.text(v, &format!("{path}.context"), spans)?,
                    None => ".".to_owned(),
                };
                let dockerfile =
                    map.get("dockerfile").and_then(|v| self.text(v, &format!("{path}.dockerfile"), spans));
                let args = self.build_args(map.get("args"), &format!("{path}.args"), spans);
                (context, dockerfile, args)
            }
            other => (self.text(other, path, spans)?, None, BTreeMap::new()),
        };
        if context.contains("://") || context.starts_with("git@") {
            self.problem(
                spans.value(path),
                format!("`{path}`: a remote build context (`{context}`) cannot be fetched here"),
                Some("build from a directory beside the compose file"),
            );
            return None;
        }
        let context = dir.join(context);
        let dockerfile = context.join(dockerfile.unwrap_or_else(|| "Dockerfile".to_owned()));
        Some(ComposeBuild { context, dockerfile, args })
    }

    fn build_args(
        &mut self,
        args: Option<&Json>,
        path: &str,
        spans: &SpanIndex,
    ) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        match args {
            None | Some(Json::Null) => {}
            Some(Json::Object(map)) => {
                for (key, value) in map {
                    let value = match value {
                        Json::Null => None,
                        v => self.text(v, &format!("{path}.{key}"), spans),
                    };
                    out.insert(key.clone(), value);
                }
            }
            Some(Json::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(text) = self.text(item, &format!("{path}[{i}]"), spans) else { continue };
                    match text.split_once('=') {
                        Some((key, value)) => out.insert(key.to_owned(), Some(value.to_owned())),
                        None => out.insert(text, None),
                    };
                }
            }
            Some(_) => self.problem(spans.value(path), format!("`{path}` must be a mapping or a list"), None),
        }
        out
    }

    /// Names from a list (`[a, b]`) or the keys of a mapping (`{a: {...}}`).
    fn names(&mut self, value: Option<&Json>, path: &str, spans: &SpanIndex) -> Vec<String> {
        match value {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Object(map)) => map.keys().cloned().collect(),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.text(v, &format!("{path}[{i}]"), spans))
                .collect(),
            Some(_) => {
                self.problem(spans.value(path), format!("`{path}` must be a list or a mapping"), None);
                Vec::new()
            }
        }
    }

    /// `ports:` (short and long syntax) and `expose:`.
    fn ports(
        &mut self,
        map: &serde_json::Map<String, Json>,
        path: &str,
        spans: &SpanIndex,
        service: &mut ComposeService,
    ) {
        let mut ports = Vec::new();
        for key in ["ports", "expose"] {
            let list_path = format!("{path}.{key}");
            let items = match map.get(key) {
                None | Some(Json::Null) => continue,
                Some(Json::Array(items)) => items,
                Some(_) => {
                    self.problem(spans.value(&list_path), format!("`{list_path}` must be a list"), None);
                    continue;
                }
            };
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{list_path}[{i}]");
                let parsed = match item {
                    Json::Object(long) if key == "ports" => self.long_port(long, &item_path, spans),
                    other => self.text(other, &item_path, spans).map(|text| {
                        if key == "ports" { parse_short_port(&text) } else { parse_expose(&text) }
                    }),
                };
                match parsed {
                    Some(Ok(entry)) => {
                        if entry.tcp {
                            ports.extend(entry.container);
                        }
                        service.fixed_host_ports.extend(entry.fixed_host);
                    }
                    Some(Err(why)) => {
                        let hint = if key == "ports" {
                            "e.g. `\"5432\"`, `\"8080:80\"`, `\"127.0.0.1::5432\"` or `{ target: 80 }`"
                        } else {
                            "e.g. `\"5432\"` or `\"8000-8010\"`"
                        };
                        self.problem(spans.value(&item_path), format!("`{item_path}`: {why}"), Some(hint));
                    }
                    None => {}
                }
            }
        }
        ports.sort_unstable();
        ports.dedup();
        service.ports = ports;
        service.fixed_host_ports.sort_unstable();
        service.fixed_host_ports.dedup();
    }

    /// A long-syntax `ports:` entry: `{ target, published, protocol, host_ip, mode }`.
    fn long_port(
        &mut self,
        long: &serde_json::Map<String, Json>,
        path: &str,
        spans: &SpanIndex,
    ) -> Option<Result<PortEntry, String>> {
        let Some(target) = long.get("target") else {
            return Some(Err("a long-syntax port needs `target:` (the container port)".to_owned()));
        };
        let target = self.text(target, &format!("{path}.target"), spans)?;
        let protocol = match long.get("protocol") {
            Some(p) => self.text(p, &format!("{path}.protocol"), spans)?,
            None => "tcp".to_owned(),
        };
        let published = match long.get("published") {
            Some(p) => self.text(p, &format!("{path}.published"), spans)?,
            None => String::new(),
        };
        let entry = (|| {
            let container = port_range(&target)?;
            let fixed_host = if published.is_empty() { Vec::new() } else { port_range(&published)? };
            Ok(PortEntry { container, fixed_host, tcp: protocol == "tcp" })
        })();
        Some(entry)
    }

    /// Names that must exist: `depends_on` services, service networks in the top level.
    fn cross_check(
        &mut self,
        services: &BTreeMap<String, ComposeService>,
        networks: &[String],
        spans: &SpanIndex,
    ) {
        let names: Vec<&str> = services.keys().map(String::as_str).collect();
        for service in services.values() {
            for (i, dependency) in service.depends_on.iter().enumerate() {
                if !services.contains_key(dependency) {
                    let path = format!("services.{}.depends_on", service.name);
                    let at = if spans.contains(&format!("{path}[{i}]")) {
                        spans.value(&format!("{path}[{i}]"))
                    } else {
                        spans.key(&format!("{path}.{dependency}"))
                    };
                    let hint = did_you_mean(dependency, names.iter().copied())
                        .unwrap_or_else(|| format!("services: {}", one_of(&names)));
                    self.problem(
                        at,
                        format!(
                            "service `{}` depends on `{dependency}`, which is not a service of this file",
                            service.name
                        ),
                        Some(&hint),
                    );
                }
            }
            for network in &service.networks {
                if network != "default" && !networks.contains(network) {
                    let path = format!("services.{}.networks", service.name);
                    let hint = format!(
                        "declare it under the top-level `networks:`{}",
                        did_you_mean(network, networks.iter().map(String::as_str))
                            .map_or(String::new(), |d| format!("; {d}"))
                    );
                    self.problem(
                        spans.value(&path),
                        format!(
                            "service `{}` joins network `{network}`, which the file does not declare",
                            service.name
                        ),
                        Some(&hint),
                    );
                }
            }
        }
    }
}

/// Whether a `healthcheck:` section checks anything (`disable: true` and `test: ["NONE"]` do
/// not).
fn enabled_healthcheck(section: &Json) -> bool {
    let disabled = section.get("disable").and_then(Json::as_bool).unwrap_or(false);
    let none = section.get("test").and_then(Json::as_array).and_then(|t| t.first()).and_then(Json::as_str)
        == Some("NONE");
    !disabled && !none
}

/// One `ports:` or `expose:` entry, parsed.
#[derive(Debug, PartialEq, Eq)]
struct PortEntry {
    /// The container ports it names.
    container: Vec<u16>,
    /// The host ports it publishes at a fixed number (none for `"5432"` or `"127.0.0.1::5432"`).
    fixed_host: Vec<u16>,
    /// TCP (not UDP or SCTP).
    tcp: bool,
}

/// A short-syntax `ports:` entry: `[[IP:](HOST|HOST-RANGE|):]CONTAINER[-RANGE][/PROTOCOL]`; an
/// IPv6 address is written in brackets.
fn parse_short_port(text: &str) -> Result<PortEntry, String> {
    let (spec, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    // An IPv6 host address `[::1]:` is taken off first: its colons are not separators.
    let spec = match spec.strip_prefix('[') {
        Some(rest) => {
            rest.split_once("]:").map(|(_, after)| after).ok_or("an IPv6 address needs `]:` after it")?
        }
        None => spec,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container) = match parts.as_slice() {
        [container] => ("", *container),
        [host, container] => (*host, *container),
        [_ip, host, container] => (*host, *container),
        _ => return Err(format!("`{text}` is not IP:HOST:CONTAINER")),
    };
    let container = port_range(container)?;
    let fixed_host = if host.is_empty() { Vec::new() } else { port_range(host)? };
    if !fixed_host.is_empty() && fixed_host.len() != container.len() && fixed_host.len() > 1 {
        return Err(format!("`{text}`: the host and container ranges differ in length"));
    }
    Ok(PortEntry { container, fixed_host, tcp: protocol.eq_ignore_ascii_case("tcp") })
}

/// An `expose:` entry: `PORT[-RANGE][/PROTOCOL]`.
fn parse_expose(text: &str) -> Result<PortEntry, String> {
    let (spec, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    Ok(PortEntry {
        container: port_range(spec)?,
        fixed_host: Vec::new(),
        tcp: protocol.eq_ignore_ascii_case("tcp"),
    })
}

/// `5432` or `8000-8010`, each port 1..=65535.
fn port_range(text: &str) -> Result<Vec<u16>, String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1 to 65535)")),
            Ok(port) => Ok(port),
        }
    };
    match text.split_once('-') {
        None => Ok(vec![port(text)?]),
        Some((low, high)) => {
            let (low, high) = (port(low)?, port(high)?);
            if high < low {
                return Err(format!("the range `{text}` runs backwards"));
            }
            if u32::from(high - low) >= PORT_RANGE_MAX {
                return Err(format!(
                    "the range `{text}` spans more than {PORT_RANGE_MAX} ports (PORT_RANGE_MAX)"
                ));
            }
            Ok((low..=high).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    fn parse(text: &str) -> Result<ComposeFile, ComposeFileError> {
        ComposeFile::parse(
            text,
            Path::new("/stack/docker-compose.yml"),
            &Environment::from_pairs([("PG", "6543")]),
        )
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text).unwrap_err().0.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn services_ports_builds_and_healthchecks() {
        let compose = parse(indoc! {r#"
            version: "2.4"
            services:
              db:
                image: postgres:15
                ports: ["5432", "127.0.0.1::5433", "8080:80", "${PG}:6000", "9000-9001:7000-7001", "[::1]:6001:6002", "53:53/udp"]
                expose: [8008, "8100-8101/tcp", "9999/udp"]
                healthcheck: { test: ["CMD", "pg_isready"] }
              app:
                build: ./app
                ports:
                  - { target: 3000, published: 13000 }
                  - target: 3001
                    protocol: udp
                depends_on: { db: { condition: service_healthy } }
                networks: [front, back]
                healthcheck: { test: ["NONE"] }
              web:
                build: { context: web, dockerfile: Dockerfile.web, args: { BASE: "${BASE:-debian:bookworm}", FLAG: } }
                network_mode: host
            networks: { front: {}, back: { labels: { a: b } } }
            volumes: { data: }
        "#})
        .unwrap();
        assert_eq!(compose.version.as_deref(), Some("2.4"));
        let db = compose.service("db").unwrap();
        assert_eq!(db.ports, [80, 5432, 5433, 6000, 6002, 7000, 7001, 8008, 8100, 8101]);
        assert_eq!(
            db.fixed_host_ports,
            [53, 6001, 6543, 8080, 9000, 9001],
            "UDP and IPv6 bindings hold host ports too"
        );
        assert!(db.healthcheck && !db.build && db.image.as_deref() == Some("postgres:15"));
        assert_eq!(db.networks, ["default"]);
        let app = compose.service("app").unwrap();
        assert_eq!(
            (app.ports.as_slice(), app.fixed_host_ports.as_slice()),
            ([3000].as_slice(), [13000].as_slice())
        );
        assert!(app.build && !app.healthcheck, "test: NONE disables the check");
        assert_eq!(app.depends_on, ["db"]);
        assert_eq!(app.networks, ["front", "back"]);
        let build = app.build_spec.as_ref().unwrap();
        assert_eq!(build.context, Path::new("/stack/./app"));
        assert_eq!(build.dockerfile, Path::new("/stack/./app/Dockerfile"));
        let web = compose.service("web").unwrap().build_spec.clone().unwrap();
        assert_eq!(web.dockerfile, Path::new("/stack/web/Dockerfile.web"));
        assert_eq!(web.args["BASE"].as_deref(), Some("debian:bookworm"));
        assert_eq!(web.args["FLAG"], None);
        assert!(compose.service("web").unwrap().networks.is_empty(), "network_mode: host joins none");
        assert_eq!(compose.networks, ["back", "front"]);
        assert_eq!(compose.volumes, ["data"]);
        assert_eq!(compose.network_definitions["back"]["labels"]["a"], "b");
        assert_eq!(compose.sha256.len(), 64);
    }

    // Goal: anchors, aliases and `<<` merge keys resolve as Compose resolves them; explicit keys
    // win over merged ones.
    #[test]
    fn anchors_and_merge_keys() {
        let compose = parse(indoc! {r#"
            version: "2.4"
            x-node: &node
              image: node:local
              expose: ["5432", "8008"]
              healthcheck: { test: ["CMD", "true"] }
            services:
              pg1: { <<: *node }
              pg2:
                <<: *node
                image: other:local
              haproxy:
                <<: *node
                expose: ["5000"]
        "#})
        .unwrap();
        assert_eq!(compose.service("pg1").unwrap().ports, [5432, 8008]);
        assert_eq!(compose.service("pg1").unwrap().image.as_deref(), Some("node:local"));
        assert_eq!(compose.service("pg2").unwrap().image.as_deref(), Some("other:local"));
        assert!(compose.service("pg2").unwrap().healthcheck);
        assert_eq!(compose.service("haproxy").unwrap().ports, [5000]);
        assert_eq!(compose.service_names(), ["haproxy", "pg1", "pg2"]);
    }

    #[test]
    fn every_error_has_its_position_and_a_hint() {
        let found = errors(indoc! {r#"
            version: "2.4"
            services:
              db:
                image: postgres
                ports: ["70000", "1:2:3:4"]
                expose: ["9-1"]
              app:
                depends_on: [dbb]
                networks: [front]
        "#});
        assert_eq!(found.len(), 6, "{found:#?}");
        assert!(
            found[0]
                .starts_with("/stack/docker-compose.yml:5:13: `services.db.ports[0]`: `70000` is not a port"),
            "{}",
            found[0]
        );
        assert!(
            found[1].starts_with("/stack/docker-compose.yml:5:22: `services.db.ports[1]`"),
            "{}",
            found[1]
        );
        assert!(
            found[2].contains(":6:14: `services.db.expose[0]`: the range `9-1` runs backwards"),
            "{}",
            found[2]
        );
        assert!(
            found[3].starts_with("/stack/docker-compose.yml:7:3: service `app` has neither"),
            "{}",
            found[3]
        );
        assert!(
            found[4].contains(":8:18: service `app` depends on `dbb`")
                && found[4].contains("did you mean `db`?"),
            "{}",
            found[4]
        );
        assert!(found[5].contains(":9:15: service `app` joins network `front`"), "{}", found[5]);
    }

    #[test]
    fn files_that_are_not_compose_files() {
        let legacy = errors("db:\n  image: postgres\n");
        assert!(
            legacy[0].contains("no `services:` mapping") && legacy[0].contains("legacy version 1"),
            "{legacy:?}"
        );
        let syntax = errors("services: [unclosed\n");
        assert!(syntax[0].starts_with("/stack/docker-compose.yml:1:"), "{syntax:?}");
        let missing = ComposeFile::load(Path::new("/nonexistent/compose.yml")).unwrap_err().to_string();
        assert!(missing.starts_with("/nonexistent/compose.yml: cannot read the compose file"), "{missing}");
    }

    #[test]
    fn short_port_syntax() {
        let entry = |text| parse_short_port(text).unwrap();
        assert_eq!(entry("5432"), PortEntry { container: vec![5432], fixed_host: vec![], tcp: true });
        assert_eq!(entry("127.0.0.1::5432").fixed_host, Vec::<u16>::new());
        assert_eq!(entry("127.0.0.1:1:5432").fixed_host, [1]);
        assert!(!entry("53:53/udp").tcp);
        assert_eq!(entry("[::1]:6001:6002").container, [6002]);
        assert!(parse_short_port("1-3:4-5").is_err());
        assert!(port_range("1-2000").unwrap_err().contains("PORT_RANGE_MAX"));
    }
}
