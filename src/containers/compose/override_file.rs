//! The override file shakedown passes after the user's (`-f theirs -f ours`), written into the
//! run's own temp dir, never beside the user's file. It adds, and changes nothing else:
//!
//! - the run's labels on every service's containers (plus `HOST_LABEL` = the service);
//! - the run's labels on every network the services join (`default` included) and every named
//!   volume. Compose v1 *replaces* a top-level network or volume an override names rather than
//!   merging it, so each is written out whole: the user's definition plus our labels. External
//!   ones are left out (not ours; Compose does not create them);
//! - `127.0.0.1:HOST:CONTAINER` for each (service, container port) the caller asks for, at a
//!   host port chosen free here and fixed for the run: a dynamic binding (`127.0.0.1::5432`)
//!   may move when a container restarts after a crash;
//! - for a service with `build:` and no `image:`, a stable image name
//!   (`shakedown-compose/SERVICE:HASH` of the file's path) so the next run's build is a cache
//!   hit instead of a new image per project, and the project label on what the build makes.
//!
//! The user's own `ports:` stay as written (Compose concatenates port lists; an override
//! cannot remove one). The file has the user's `version:` — Compose v1 refuses mixed versions.
//! It is JSON, which every YAML parser reads. Pure: the tests read it back.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::super::layout::{HOST_LABEL, PROJECT_LABEL};
use super::{ComposeError, RunLabels};
use crate::scenario::compose_file::ComposeFile;

/// The repository of the images shakedown names for `build:` services without an `image:`.
pub const BUILT_IMAGE_REPOSITORY: &str = "shakedown-compose";

/// The host port on 127.0.0.1 of each published (service, container port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMap {
    ports: BTreeMap<(String, u16), u16>,
}

impl PortMap {
    /// A free loopback port for each pair (no two alike); every service must be in `file`.
    pub fn allocate(publish: &[(String, u16)], file: &ComposeFile) -> Result<PortMap, ComposeError> {
        let mut ports = BTreeMap::new();
        // Below the kernel's ephemeral range, so no connection of ours takes one as its source
        // port while the images build; distinct by construction.
        for (service, port) in publish {
            if file.service(service).is_none() {
                let known = file.service_names().join(", ");
                return Err(ComposeError::UnknownService { service: service.clone(), known });
            }
            if ports.contains_key(&(service.clone(), *port)) {
                continue;
            }
            let host = super::super::runner::free_port().map_err(ComposeError::Engine)?;
            ports.insert((service.clone(), *port), host);
        }
        Ok(PortMap { ports })
    }

    /// Fixed pairs (tests).
    pub fn from_pairs(pairs: impl IntoIterator<Item = ((String, u16), u16)>) -> PortMap {
        PortMap { ports: pairs.into_iter().collect() }
    }

    /// The host port of `service`'s `container_port`, if it is published.
    pub fn get(&self, service: &str, container_port: u16) -> Option<u16> {
        self.ports.get(&(service.to_owned(), container_port)).copied()
    }

    /// Every (service, container port) → host port.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u16, u16)> {
        self.ports.iter().map(|((service, port), host)| (service.as_str(), *port, *host))
    }
}

/// The image name shakedown gives a `build:` service that names none: stable for one compose
/// file (so builds reuse the cache) and distinct between files.
pub fn built_image(file: &ComposeFile, service: &str) -> String {
    let path = std::path::absolute(&file.path).unwrap_or_else(|_| file.path.clone());
    let digest = Sha256::digest(path.display().to_string().as_bytes());
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{BUILT_IMAGE_REPOSITORY}/{}:{tag}", repository_component(service))
}

/// A service name as a repository path component: lowercase `[a-z0-9]` runs joined by `-`.
fn repository_component(name: &str) -> String {
    let lowered: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let parts: Vec<&str> = lowered.split('-').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() { "service".to_owned() } else { parts.join("-") }
}

/// The image each service runs: its `image:`, else the name [`built_image`] gives it.
pub fn service_images(file: &ComposeFile) -> BTreeMap<String, String> {
    file.services
        .iter()
        .filter_map(|(name, service)| {
            let image = service.image.clone().or_else(|| service.build.then(|| built_image(file, name)))?;
            Some((name.clone(), image))
        })
        .collect()
}

/// The override file's text.
pub fn render(file: &ComposeFile, labels: &RunLabels, ports: &PortMap) -> String {
    let run_labels: Map<String, Value> =
        labels.map().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let mut services = Map::new();
    for (name, service) in &file.services {
        let mut container_labels = run_labels.clone();
        container_labels.insert(HOST_LABEL.to_owned(), Value::String(name.clone()));
        let mut body = Map::new();
        body.insert("labels".into(), Value::Object(container_labels));
        let published: Vec<Value> = ports
            .iter()
            .filter(|(s, _, _)| s == name)
            .map(|(_, container, host)| Value::String(format!("127.0.0.1:{host}:{container}")))
            .collect();
        if !published.is_empty() {
            body.insert("ports".into(), Value::Array(published));
        }
        if service.build {
            if service.image.is_none() {
                body.insert("image".into(), Value::String(built_image(file, name)));
            }
            body.insert("build".into(), json!({ "labels": { PROJECT_LABEL: "shakedown" } }));
        }
        services.insert(name.clone(), Value::Object(body));
    }
    let mut root = Map::new();
    if let Some(version) = &file.version {
        root.insert("version".into(), Value::String(version.clone()));
    }
    root.insert("services".into(), Value::Object(services));
    let networks = labelled(&used_networks(file), &file.network_definitions, &run_labels);
    if !networks.is_empty() {
        root.insert("networks".into(), Value::Object(networks));
    }
    let volumes = labelled(&file.volumes, &file.volume_definitions, &run_labels);
    if !volumes.is_empty() {
        root.insert("volumes".into(), Value::Object(volumes));
    }
    let header =
        "# Written by shakedown for one run: labels and published ports over the user's compose file.\n";
    format!(
        "{header}{}\n",
        serde_json::to_string_pretty(&Value::Object(root)).expect("JSON values serialise")
    )
}

/// The top-level networks to label: those declared, and `default` when a service joins it.
fn used_networks(file: &ComposeFile) -> Vec<String> {
    let mut names = file.networks.clone();
    let joins_default = file.services.values().any(|s| s.networks.iter().any(|n| n == "default"));
    if joins_default && !names.iter().any(|n| n == "default") {
        names.push("default".to_owned());
    }
    names
}

/// Each named definition, whole, with `labels` added (external ones left out).
fn labelled(
    names: &[String],
    definitions: &BTreeMap<String, Value>,
    run_labels: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for name in names {
        let mut definition = match definitions.get(name) {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        if definition.get("external").is_some_and(|e| e.as_bool() != Some(false) && !e.is_null()) {
            continue;
        }
        let mut labels = label_map(definition.get("labels"));
        labels.extend(run_labels.clone());
        definition.insert("labels".into(), Value::Object(labels));
        out.insert(name.clone(), Value::Object(definition));
    }
    out
}

/// Labels written as a mapping or as a `KEY=VALUE` list, as a mapping.
fn label_map(labels: Option<&Value>) -> Map<String, Value> {
    match labels {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                (key.to_owned(), Value::String(value.to_owned()))
            })
            .collect(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::compose_file::Environment;
    use indoc::indoc;
    use std::path::Path;

    fn file(text: &str) -> ComposeFile {
        ComposeFile::parse(text, Path::new("/stack/docker-compose.yml"), &Environment::default()).unwrap()
    }

    fn run() -> RunLabels {
        RunLabels { run: "ab12cd34".into(), owner: "812/4455".into() }
    }

    const STACK: &str = indoc! {r#"
        version: "2.4"
        services:
          db: { image: "postgres:15", expose: ["5432"], networks: [back] }
          app: { build: ., ports: ["8080:80"], networks: [back, default] }
          api: { build: ./api, image: "mine/api:dev" }
        networks:
          back: { driver: bridge, labels: ["team=db"] }
          outside: { external: true }
        volumes:
          data: { driver_opts: { type: tmpfs, device: tmpfs } }
          shared: { external: { name: shared } }
    "#};

    // Goal: the override labels every service, network (default included) and volume, keeps
    // the user's network and volume definitions whole (v1 replaces them), leaves external ones
    // alone, and publishes exactly the asked pairs on loopback. Method: render, read it back as
    // YAML (the way Compose will), and look.
    #[test]
    fn labels_everything_and_publishes_only_what_is_asked() {
        let file = file(STACK);
        let ports =
            PortMap::from_pairs([(("db".to_string(), 5432), 41001), (("app".to_string(), 80), 41002)]);
        let text = render(&file, &run(), &ports);
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back["version"], "2.4");
        for service in ["db", "app", "api"] {
            let labels = &back["services"][service]["labels"];
            assert_eq!(labels["shakedown.project"], "shakedown");
            assert_eq!(labels["shakedown.run"], "ab12cd34");
            assert_eq!(labels["shakedown.owner"], "812/4455");
            assert_eq!(labels["shakedown.host"], service);
        }
        assert_eq!(back["services"]["db"]["ports"], json!(["127.0.0.1:41001:5432"]));
        assert_eq!(back["services"]["app"]["ports"], json!(["127.0.0.1:41002:80"]));
        assert!(back["services"]["api"].get("ports").is_none());
        assert_eq!(back["services"]["app"]["image"], built_image(&file, "app"));
        assert!(back["services"]["api"].get("image").is_none(), "the user's image name stays");
        assert_eq!(back["services"]["api"]["build"]["labels"]["shakedown.project"], "shakedown");
        assert!(back["services"]["db"].get("build").is_none());
        let networks = back["networks"].as_object().unwrap();
        assert_eq!(networks.keys().collect::<Vec<_>>(), ["back", "default"], "external ones are not ours");
        assert_eq!(networks["back"]["driver"], "bridge");
        assert_eq!(networks["back"]["labels"]["team"], "db");
        assert_eq!(networks["default"]["labels"]["shakedown.run"], "ab12cd34");
        let volumes = back["volumes"].as_object().unwrap();
        assert_eq!(volumes.keys().collect::<Vec<_>>(), ["data"]);
        assert_eq!(volumes["data"]["driver_opts"]["type"], "tmpfs");
        assert_eq!(volumes["data"]["labels"]["shakedown.owner"], "812/4455");
    }

    #[test]
    fn an_unversioned_file_gets_an_unversioned_override_and_default_only_when_used() {
        let file = file("services:\n  a: { image: x, networks: [net] }\nnetworks: { net: }\n");
        let back: Value = serde_saphyr::from_str(&render(&file, &run(), &PortMap::default())).unwrap();
        assert!(back.get("version").is_none());
        assert_eq!(back["networks"].as_object().unwrap().keys().collect::<Vec<_>>(), ["net"]);
        assert!(back.get("volumes").is_none());
    }

    #[test]
    fn ports_are_distinct_free_and_only_for_known_services() {
        let file = file(STACK);
        let asked = [("db".to_string(), 5432), ("app".to_string(), 80), ("db".to_string(), 5432)];
        let ports = PortMap::allocate(&asked, &file).unwrap();
        let (db, app) = (ports.get("db", 5432).unwrap(), ports.get("app", 80).unwrap());
        assert_ne!(db, app);
        assert_eq!(ports.iter().count(), 2);
        assert_eq!(ports.get("db", 80), None);
        assert!(std::net::TcpListener::bind(("127.0.0.1", db)).is_ok(), "released after choosing");
        let unknown = PortMap::allocate(&[("dbb".to_string(), 1)], &file).unwrap_err();
        assert!(
            unknown.to_string().contains("no service `dbb`") && unknown.to_string().contains("api, app, db")
        );
    }

    #[test]
    fn built_image_names_are_valid_and_per_file() {
        let one = built_image(&file(STACK), "My_App.1");
        assert!(one.starts_with("shakedown-compose/my-app-1:"), "{one}");
        let mut other = file(STACK);
        other.path = "/elsewhere/docker-compose.yml".into();
        assert_ne!(one, built_image(&other, "My_App.1"));
        assert_eq!(repository_component("__"), "service");
        let images = service_images(&file(STACK));
        assert_eq!(images["db"], "postgres:15");
        assert_eq!(images["api"], "mine/api:dev");
    }
}
