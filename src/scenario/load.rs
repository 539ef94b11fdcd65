//! Loading: text → [`Scenario`] → validated → [`Plan`], collecting every error with its position.
//!
//! Shape errors (unknown keys, wrong types, bad units) are found by deserialising each section
//! and each list item on its own, so one typo does not hide the next; semantic errors come from
//! `validate`, on the whole scenario when the shape is right and otherwise on what `salvage`
//! could still read, so a file with both kinds of error reports both.

use std::path::Path;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::compose_file::{ComposeFile, ComposeFileError};
use super::diagnostic::{Diagnostic, Diagnostics, Position, did_you_mean, nearest, one_of};
use super::model::Scenario;
use super::plan::{Plan, plan};
use super::salvage::{Broken, Gaps, LISTS, salvage};
use super::topology::Topology;
use super::tree::{self, SpanIndex};
use super::validate;
use super::validate_declared::{BUILTIN_STACK_KEYS, ComposeServices};

/// A scenario that loaded and validated, with its resolved plan.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The validated scenario (overrides applied).
    pub scenario: Scenario,
    /// Its resolved timeline.
    pub plan: Plan,
    /// The file as given.
    pub file: String,
    /// SHA-256 of the file's text, hex.
    pub source_sha256: String,
    /// The `--set` overrides applied, in order.
    pub overrides: Vec<String>,
    /// A compose scenario's compose file as read when it was validated.
    pub compose: Option<ComposeServices>,
}

impl Loaded {
    /// The hosts a run of this scenario starts, on either backend: what its workload's ops reach
    /// and every host its faults name (`Topology::needed`). The report lists them.
    pub fn topology(&self) -> Topology {
        if let Some(compose) = &self.compose {
            return Topology::of_services(compose.services.keys().cloned());
        }
        let ops: Vec<_> = self.scenario.workload.iter().filter_map(|load| load.op).collect();
        let named: Vec<String> = self.plan.faults.iter().flat_map(|f| f.kind.hosts()).collect();
        Topology::needed(&self.scenario.stack, &ops, &named)
    }
}

/// Load, override, validate and plan a scenario file. Every error is reported, each with its
/// position.
pub fn load_file(path: &Path, overrides: &[String]) -> Result<Loaded, Diagnostics> {
    let file = path.display().to_string();
    let one = |position: Position, message: String, hint: Option<String>| {
        Diagnostics(vec![Diagnostic { file: file.clone(), position, message, hint }])
    };
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = (e.kind() == std::io::ErrorKind::NotFound)
            .then(|| "check the path; `shakedown list` shows the shipped scenarios".to_owned());
        one(Position::File, format!("cannot read the scenario: {e}"), hint)
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (position, message) = not_utf8(e.as_bytes(), e.utf8_error());
        let hint = "a scenario is UTF-8 text; convert the file (e.g. `iconv -f latin1 -t utf-8`)";
        one(position, message, Some(hint.into()))
    })?;
    load_str(&text, &file, overrides)
}

/// Where the first byte that is not UTF-8 is (line, and column in characters, from 1), and a
/// message naming it.
fn not_utf8(bytes: &[u8], error: std::str::Utf8Error) -> (Position, String) {
    let offset = error.valid_up_to();
    let good = std::str::from_utf8(&bytes[..offset]).expect("valid up to the error");
    let line = good.matches('\n').count() as u64 + 1;
    let col = good.rsplit('\n').next().unwrap_or_default().chars().count() as u64 + 1;
    let message = format!(
        "the file is not UTF-8 text: byte 0x{:02x} at line {line}, column {col} (byte offset {offset}) is not valid UTF-8",
        bytes[offset]
    );
    (Position::At { line, col }, message)
}

/// Load a scenario from text; `file` names it in errors.
pub fn load_str(text: &str, file: &str, overrides: &[String]) -> Result<Loaded, Diagnostics> {
    let diagnostic = |position: Position, message: String, hint: Option<String>| Diagnostic {
        file: file.to_owned(),
        position,
        message,
        hint,
    };
    let (mut value, mut index, duplicates) = tree::parse(text).map_err(|found| {
        Diagnostics(found.into_iter().map(|(at, message, hint)| diagnostic(at, message, hint)).collect())
    })?;
    let mut errors: Vec<Diagnostic> =
        duplicates.into_iter().map(|(at, message, hint)| diagnostic(at, message, hint)).collect();
    let mut overridden = true;
    for text in overrides {
        if let Err((message, hint)) = apply_override(&mut value, &mut index, text) {
            errors.push(diagnostic(Position::Override(text.clone()), message, hint));
            overridden = false;
        }
    }
    if overridden {
        let (shape, broken) = shape_errors(&value, &index);
        let shape_broken = !shape.is_empty();
        errors.extend(shape.into_iter().map(|(p, m, h)| diagnostic(p, m, h)));
        if let Some((scenario, gaps)) =
            readable(&value, &index, &broken, shape_broken, &mut errors, &diagnostic)
        {
            let compose = compose_services(&scenario, file, &value, &index, &mut errors);
            let found = validate::validate(&scenario, &index, &gaps, compose.as_ref());
            errors.extend(found.into_iter().map(|(p, m, h)| diagnostic(p, m, h)));
            if errors.is_empty() {
                return Ok(Loaded {
                    plan: plan(&scenario),
                    scenario,
                    file: file.to_owned(),
                    source_sha256: hex(&Sha256::digest(text.as_bytes())),
                    overrides: overrides.to_vec(),
                    compose,
                });
            }
        }
    }
    errors.sort_by(|a, b| a.position.cmp(&b.position));
    errors.dedup();
    Err(Diagnostics(errors))
}

/// The services of the compose file a compose scenario names (relative to the scenario's
/// directory), with the errors of reading it; and the built-in stack's keys refused beside it.
fn compose_services(
    scenario: &Scenario,
    file: &str,
    value: &serde_json::Value,
    index: &SpanIndex,
    errors: &mut Vec<Diagnostic>,
) -> Option<ComposeServices> {
    let compose = scenario.stack.compose.as_ref()?;
    let at = |path: &str| Diagnostic {
        file: file.to_owned(),
        position: index.key(path),
        message: String::new(),
        hint: None,
    };
    let written = value.get("stack").and_then(|s| s.as_object());
    for key in BUILTIN_STACK_KEYS.iter().filter(|k| written.is_some_and(|w| w.contains_key(**k))) {
        errors.push(Diagnostic {
            message: format!("`stack.{key}` configures the built-in stack, not a compose stack"),
            hint: Some("remove it: a compose stack is configured in its compose file".into()),
            ..at(&format!("stack.{key}"))
        });
    }
    let path = compose_path(file, compose);
    match ComposeFile::load_with(&path, &scenario.stack.env) {
        Ok(parsed) => Some(ComposeServices {
            services: parsed.services.iter().map(|(name, s)| (name.clone(), s.ports.clone())).collect(),
            file: path.display().to_string(),
            sha256: parsed.sha256.clone(),
        }),
        Err(ComposeFileError(found))
            if found.0.iter().all(|d| d.file == path.display().to_string()) && path.exists() =>
        {
            errors.extend(found.0);
            None
        }
        Err(ComposeFileError(found)) => {
            let why = found.0.first().map_or_else(String::new, |d| d.message.clone());
            errors.push(Diagnostic {
                position: index.value("stack.compose"),
                message: format!("cannot read the compose file `{}`: {why}", path.display()),
                hint: Some("the path is relative to the scenario file".into()),
                ..at("stack.compose")
            });
            None
        }
    }
}

/// Where a scenario's compose file is: `compose` relative to the scenario file's directory.
pub fn compose_path(scenario_file: &str, compose: &str) -> std::path::PathBuf {
    let dir = Path::new(scenario_file).parent().unwrap_or(Path::new("."));
    dir.join(compose)
}

/// The scenario semantic validation can judge: the whole file when its shape is right (`errors`
/// empty), else what [`salvage`] could read around the shape errors, with its gaps. `None` when
/// nothing can be judged; the reason is in `errors`.
/// The scenario semantic validation can judge: the whole file when its shape is right
/// (`shape_broken` false), else what [`salvage`] could read around the shape errors, with its
/// gaps. `None` when nothing can be judged; the reason is in `errors`.
fn readable(
    value: &serde_json::Value,
    index: &SpanIndex,
    broken: &Broken,
    shape_broken: bool,
    errors: &mut Vec<Diagnostic>,
    diagnostic: &dyn Fn(Position, String, Option<String>) -> Diagnostic,
) -> Option<(Scenario, Gaps)> {
    if shape_broken {
        // If even the salvaged value does not read, the shape errors already say why.
        let (salvaged, gaps) = salvage(value, broken)?;
        return serde_json::from_value::<Scenario>(salvaged).ok().map(|scenario| (scenario, gaps));
    }
    match serde_path_to_error::deserialize::<_, Scenario>(value) {
        Ok(scenario) => Some((scenario, Gaps::default())),
        Err(error) => {
            let (position, message, hint) = explain(&error, "", index);
            errors.push(diagnostic(position, message, hint));
            None
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Found = (Position, String, Option<String>);

/// Deserialise each section (and each list item) alone, to report every shape error at once,
/// and say which failed (for [`salvage`]).
fn shape_errors(value: &serde_json::Value, index: &SpanIndex) -> (Vec<Found>, Broken) {
    use super::model::*;
    let mut found = Vec::new();
    let mut broken = Broken::default();
    let Some(map) = value.as_object() else {
        return (vec![not_a_mapping(value, index)], broken);
    };
    for (key, section) in map {
        let mut whole = |result: Option<Found>| {
            if let Some(error) = result {
                found.push(error);
                broken.sections.insert(key.clone());
            }
        };
        match key.as_str() {
            "name" | "description" => whole(try_as::<String>(section, key, index)),
            "seed" | "ops_max" => whole(try_as::<u64>(section, key, index)),
            "duration" | "duration_max" => whole(try_as::<super::units::Span>(section, key, index)),
            "stack" => whole(try_as::<StackConfig>(section, key, index)),
            "phases" => whole(try_as::<PhaseConfig>(section, key, index)),
            "expect" => {
                whole(try_as::<std::collections::BTreeMap<CheckName, Expectation>>(section, key, index))
            }
            "report" => whole(try_as::<ReportOptions>(section, key, index)),
            "clients" => whole(try_as::<Clients>(section, key, index)),
            "setup" => whole(try_as::<Vec<super::declared::SetupStep>>(section, key, index)),
            "final_state" => whole(try_as::<FinalReads>(section, key, index)),
            "workload" => each::<Load>(section, LISTS[0], index, &mut found, &mut broken),
            "faults" => each::<FaultSpec>(section, LISTS[1], index, &mut found, &mut broken),
            "checks" => {
                let mut without_slo = section.clone();
                let slo = without_slo.as_object_mut().and_then(|m| m.remove("slo"));
                whole(try_as::<Checks>(&without_slo, key, index));
                if let Some(slo) = slo {
                    each::<SloRow>(&slo, LISTS[2], index, &mut found, &mut broken);
                }
            }
            unknown => {
                let known = TOP_LEVEL_KEYS;
                let meant = nearest(unknown, known.iter().copied()).filter(|k| !map.contains_key(*k));
                let hint = did_you_mean(unknown, known.iter().copied())
                    .unwrap_or_else(|| format!("the top-level keys are {}", one_of(known)));
                found.push((index.key(unknown), format!("unknown key `{unknown}`"), Some(hint)));
                broken.sections.insert(unknown.to_owned()); // so `salvage` leaves it out
                // A misspelt section is one validation cannot see: `chekcs` hides the checks.
                broken.misspelt.extend(meant.map(str::to_owned));
            }
        }
    }
    let missing =
        REQUIRED_KEYS.into_iter().filter(|k| !map.contains_key(*k) && !broken.misspelt.contains(*k));
    for required in missing {
        found.push((index.value(""), format!("missing key `{required}`"), None));
    }
    (found, broken)
}

type Clients = std::collections::BTreeMap<String, super::declared::ClientSpec>;
type FinalReads = std::collections::BTreeMap<String, super::declared::FinalRead>;
/// Why a file whose top level is not a mapping is no scenario, in terms of what it holds.
fn not_a_mapping(value: &serde_json::Value, index: &SpanIndex) -> Found {
    let mapping = "a scenario is one mapping with `name`, `duration`, `workload`, …";
    let (message, hint) = match value {
        serde_json::Value::Null => (
            "the file is empty (no YAML in it, or only comments)".to_owned(),
            format!("{mapping}; `shakedown list` shows the shipped scenarios to start from"),
        ),
        serde_json::Value::Array(items) => (
            format!(
                "the file holds a list ({}), not a mapping of scenario keys",
                crate::check::plural(items.len(), "item")
            ),
            format!("{mapping}; write its keys at the top level, without `- `; one scenario per file"),
        ),
        other => (
            format!("the file holds a single value ({}), not a mapping of scenario keys", other),
            mapping.to_owned(),
        ),
    };
    (index.value(""), message, Some(hint))
}

/// The top-level keys without a default.
const REQUIRED_KEYS: [&str; 3] = ["name", "duration", "workload"];

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "duration",
    "duration_max",
    "ops_max",
    "stack",
    "clients",
    "setup",
    "workload",
    "final_state",
    "faults",
    "phases",
    "checks",
    "expect",
    "report",
];

fn try_as<T: DeserializeOwned>(value: &serde_json::Value, path: &str, index: &SpanIndex) -> Option<Found> {
    serde_path_to_error::deserialize::<_, T>(value).err().map(|e| explain(&e, path, index))
}

/// Read each item of the list at `path` alone; a list that is not a list is broken as a whole.
fn each<T: DeserializeOwned>(
    value: &serde_json::Value,
    path: &'static str,
    index: &SpanIndex,
    found: &mut Vec<Found>,
    broken: &mut Broken,
) {
    let Some(items) = value.as_array() else {
        if let Some(error) = try_as::<Vec<T>>(value, path, index) {
            found.push(error);
            // `checks.slo` is not a section of its own: its rows are what `checks` lacks then.
            broken.sections.insert(path.split('.').next().expect("a path").to_owned());
        }
        return;
    };
    for (i, item) in items.iter().enumerate() {
        if let Some(error) = try_as::<T>(item, &format!("{path}[{i}]"), index) {
            found.push(error);
            broken.items.entry(path).or_default().insert(i);
        }
    }
}

/// Turn a serde error at a path into a positioned message with a hint.
fn explain(error: &serde_path_to_error::Error<serde_json::Error>, base: &str, index: &SpanIndex) -> Found {
    let mut path = base.to_owned();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => path = tree::child(&path, key),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    let raw = error.inner().to_string();
    let shown = if path.is_empty() { "the scenario".to_owned() } else { format!("`{path}`") };
    if let Some((found, expected)) = parse_unknown(&raw, "unknown field `") {
        let parent = tree::parent(&path).unwrap_or("");
        let place = if parent.is_empty() { "at the top level".to_owned() } else { format!("in `{parent}`") };
        let hint = did_you_mean(&found, expected.iter().map(String::as_str))
            .or_else(|| Some(format!("valid keys here: {}", one_of(&expected))));
        return (index.key(&path), format!("unknown key `{found}` {place}"), hint);
    }
    if let Some((found, expected)) = parse_unknown(&raw, "unknown variant `") {
        let hint = did_you_mean(&found, expected.iter().map(String::as_str))
            .map(|h| format!("{h} (expected {})", one_of(&expected)))
            .or_else(|| Some(format!("expected {}", one_of(&expected))));
        return (index.value(&path), format!("{shown}: unknown value `{found}`"), hint);
    }
    if let Some(field) = raw.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
        let at = if index.contains(&path) { index.key(&path) } else { index.value(&path) };
        let whole = tree::child(&path, field);
        return (at, format!("missing key `{whole}`"), None);
    }
    (index.value(&path), format!("{shown}: {raw}"), None)
}

/// Parse serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`") messages.
fn parse_unknown(raw: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = raw.strip_prefix(prefix)?;
    let (found, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((found.to_owned(), expected))
}

/// Apply one `--set dotted.path=value`: the value is read as YAML (`async`, `5`, `[a, b]`).
fn apply_override(
    value: &mut serde_json::Value,
    index: &mut SpanIndex,
    text: &str,
) -> Result<(), (String, Option<String>)> {
    let usage =
        Some("write it as `--set dotted.path=value`, e.g. `--set stack.replication=async`".to_owned());
    let Some((path, raw)) = text.split_once('=') else {
        return Err(("an override needs `=`".into(), usage));
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(("an override needs a path before `=`".into(), usage));
    }
    let new: serde_json::Value = serde_saphyr::from_str(raw).map_err(|e| {
        (format!("cannot read `{raw}` as a YAML value: {}", e.to_string().lines().next().unwrap_or("")), None)
    })?;
    let slot = walk_mut(value, path)?;
    let scalar = (!new.is_object() && !new.is_array() && !new.is_null()).then(|| raw.trim().to_owned());
    *slot = new;
    index.mark_override(path, text, scalar);
    Ok(())
}

/// Find (creating maps as needed) the slot a dotted path with `[i]` indexes names.
fn walk_mut<'a>(
    mut value: &'a mut serde_json::Value,
    path: &str,
) -> Result<&'a mut serde_json::Value, (String, Option<String>)> {
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            if value.is_null() {
                *value = serde_json::Value::Object(Default::default());
            }
            let map =
                value.as_object_mut().ok_or_else(|| (format!("`{key}` is not inside a mapping"), None))?;
            value = map.entry(key.to_owned()).or_insert(serde_json::Value::Null);
        }
        for raw in indexes.split('[').skip(1) {
            let i: usize = raw
                .strip_suffix(']')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| (format!("bad list index `[{raw}` in `{path}`"), None))?;
            let list = value
                .as_array_mut()
                .ok_or_else(|| (format!("`{part}` indexes something that is not a list"), None))?;
            let length = list.len();
            value = list.get_mut(i).ok_or_else(|| {
                (format!("index {i} is out of range in `{path}`: the list has {length} items"), None)
            })?;
        }
    }
    Ok(value)
}
