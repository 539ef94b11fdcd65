//! The Docker engine, as a run uses it: the run's labelled network and volumes, starting one
//! container from a [`ContainerSpec`] with testcontainers, and what testcontainers does not
//! expose (SIGKILL, a plain start of a killed container, removal by label) through its
//! re-exported bollard client.
//!
//! Every resource carries [`PROJECT_LABEL`], [`RUN_LABEL`] and [`OWNER_LABEL`]; nothing without
//! our label is ever removed. An engine made by [`Engine::attach`] acts on the containers of a
//! run another process started (`shakedown fault`): it has no image and starts nothing new. Ports are published on 127.0.0.1 only, at a host port chosen here
//! and fixed for the container's life, so a restarted container keeps its address.

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{NetworkCreateRequest, PortBinding, VolumeCreateRequest};
use testcontainers::bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use testcontainers::core::{ExecCommand, IntoContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::image::NodeImage;
use super::layout::{ContainerSpec, HOST_LABEL, OWNER_LABEL, PROJECT_LABEL, RUN_LABEL, RunNames};

/// The longest a container may take from create to running (not to ready: that is the stage's).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a container stopping cleanly is asked whether it stopped.
const STOP_POLL_EVERY: Duration = Duration::from_millis(100);

/// A started container of the run.
pub(super) type Running = ContainerAsync<GenericImage>;

/// One run's view of the engine.
pub(super) struct Engine {
    pub(super) docker: Docker,
    pub(super) names: RunNames,
    /// What new containers start from (`None`: attached to a run another process owns).
    image: Option<NodeImage>,
    owner: String,
}

impl Engine {
    /// Connect to the local engine (the socket testcontainers finds: `DOCKER_HOST` or
    /// `/var/run/docker.sock`).
    pub(super) async fn connect(names: RunNames, image: NodeImage) -> Result<Engine, String> {
        let docker = docker().await?;
        let owner = super::owner::owner_token(std::process::id()).unwrap_or_default();
        Ok(Engine { docker, names, image: Some(image), owner })
    }

    /// Act on the existing run `names` names (kill, start, pause, exec); it cannot start
    /// containers.
    pub(super) fn attach(docker: Docker, names: RunNames) -> Engine {
        Engine { docker, names, image: None, owner: String::new() }
    }

    /// The labels of every resource of this run.
    pub(super) fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (PROJECT_LABEL.to_string(), "shakedown".to_string()),
            (RUN_LABEL.to_string(), self.names.run.clone()),
            (OWNER_LABEL.to_string(), self.owner.clone()),
        ])
    }

    /// The run's private network and the database volumes, all labelled.
    pub(super) async fn create_network_and_volumes(&self, volumes: &[String]) -> Result<(), String> {
        let network = NetworkCreateRequest {
            name: self.names.network(),
            driver: Some("bridge".into()),
            labels: Some(self.labels()),
            ..Default::default()
        };
        self.docker.create_network(network).await.map_err(|e| format!("create network: {e}"))?;
        for volume in volumes {
            let request = VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(self.labels()),
                ..Default::default()
            };
            self.docker.create_volume(request).await.map_err(|e| format!("create volume {volume}: {e}"))?;
        }
        Ok(())
    }

    /// Create and start one container; it publishes `spec.port` on `127.0.0.1:host_port`.
    pub(super) async fn start(
        &self,
        spec: &ContainerSpec,
        host_port: Option<u16>,
    ) -> Result<Running, String> {
        let image = self.image.as_ref().expect("only an engine with an image starts containers");
        let mut request = GenericImage::new(&image.name, &image.tag)
            .with_cmd(spec.cmd.clone())
            .with_container_name(&spec.name)
            .with_network(self.names.network())
            .with_labels(self.labels())
            .with_label(HOST_LABEL, &spec.host)
            .with_startup_timeout(START_TIMEOUT)
            // Packet-filter rules inside its own network namespace, for partitions.
            .with_cap_add("NET_ADMIN");
        for (key, value) in &spec.env {
            request = request.with_env_var(key, value);
        }
        for (volume, path) in &spec.volumes {
            request = request.with_mount(Mount::volume_mount(volume, path));
        }
        if let (Some(port), Some(host_port)) = (spec.port, host_port) {
            // Exposes the port; the modifier below narrows the binding to loopback.
            request = request.with_mapped_port(host_port, port.tcp());
        }
        let bindings = match (spec.port, host_port) {
            (Some(port), Some(host_port)) => HashMap::from([(
                format!("{port}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host_port.to_string()),
                }]),
            )]),
            _ => HashMap::new(),
        };
        let request = request.with_host_config_modifier(move |config| {
            // Only what we publish, and only on loopback: never every exposed port on 0.0.0.0.
            config.publish_all_ports = Some(false);
            config.port_bindings = Some(bindings.clone());
        });
        request.start().await.map_err(|e| format!("start {}: {e}", spec.name))
    }

    /// SIGKILL a container: no shutdown, no flush — a machine losing power.
    pub(super) async fn kill(&self, container: &str) -> Result<(), String> {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        self.docker
            .kill_container(container, Some(options))
            .await
            .map_err(|e| format!("kill {container}: {e}"))
    }

    /// Start a stopped (killed) container again: same filesystem, same volumes, same port.
    pub(super) async fn restart(&self, container: &str) -> Result<(), String> {
        self.docker
            .start_container(
                container,
                None::<testcontainers::bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| format!("start {container}: {e}"))
    }

    /// Freeze every process of a container (the cgroup freezer).
    pub(super) async fn pause(&self, container: &str) -> Result<(), String> {
        self.docker.pause_container(container).await.map_err(|e| format!("pause {container}: {e}"))
    }

    /// Thaw a frozen container.
    pub(super) async fn unpause(&self, container: &str) -> Result<(), String> {
        self.docker.unpause_container(container).await.map_err(|e| format!("unpause {container}: {e}"))
    }

    /// What the engine says of a container now.
    async fn inspect(
        &self,
        container: &str,
    ) -> Result<testcontainers::bollard::models::ContainerInspectResponse, String> {
        self.docker
            .inspect_container(
                container,
                None::<testcontainers::bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|e| format!("inspect {container}: {e}"))
    }

    /// Whether a container runs now.
    pub(super) async fn running(&self, container: &str) -> Result<bool, String> {
        Ok(self.inspect(container).await?.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// SIGKILL a container if it runs; a stopped one is left as it is.
    pub(super) async fn kill_if_running(&self, container: &str) -> Result<(), String> {
        if self.running(container).await? { self.kill(container).await } else { Ok(()) }
    }

    /// Stop a container the way its main process asks to be stopped cleanly (`signal`, e.g.
    /// SIGINT: PostgreSQL's fast shutdown), waiting at most `max`; then SIGKILL. Whether it
    /// stopped cleanly (before `max`).
    pub(super) async fn stop_with(
        &self,
        container: &str,
        signal: &str,
        max: Duration,
    ) -> Result<bool, String> {
        if !self.running(container).await? {
            return Ok(true);
        }
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker
            .kill_container(container, Some(options))
            .await
            .map_err(|e| format!("{signal} to {container}: {e}"))?;
        let deadline = tokio::time::Instant::now() + max;
        while tokio::time::Instant::now() < deadline {
            if !self.running(container).await? {
                return Ok(true);
            }
            tokio::time::sleep(STOP_POLL_EVERY).await;
        }
        self.kill_if_running(container).await?;
        Ok(false)
    }

    /// A container's address on the run's network (it may change when the container restarts).
    pub(super) async fn ip(&self, container: &str) -> Result<String, String> {
        self.inspect(container)
            .await?
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&self.names.network()))
            .and_then(|n| n.ip_address)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| format!("{container} has no address on {} (not running?)", self.names.network()))
    }

    /// Run a command in a running container by name (bollard's exec: the fault tasks hold names,
    /// not testcontainers handles); its exit code and output.
    pub(super) async fn exec_named(&self, container: &str, cmd: &[&str]) -> Result<(i64, String), String> {
        use futures::StreamExt;
        use testcontainers::bollard::exec::StartExecResults;
        use testcontainers::bollard::models::ExecConfig;
        let config = ExecConfig {
            cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let fail = |e: testcontainers::bollard::errors::Error| format!("exec in {container}: {e}");
        let exec = self.docker.create_exec(container, config).await.map_err(fail)?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.map_err(fail)?
        {
            while let Some(Ok(chunk)) = output.next().await {
                text.push_str(&chunk.to_string());
            }
        }
        let code = self.docker.inspect_exec(&exec.id).await.map_err(fail)?.exit_code.unwrap_or(-1);
        Ok((code, text))
    }

    /// Run a command in a container; its exit code.
    pub(super) async fn exec(running: &Running, cmd: &[&str]) -> Result<i64, String> {
        let mut result =
            running.exec(ExecCommand::new(cmd.iter().copied())).await.map_err(|e| format!("exec: {e}"))?;
        // Drain the output so the exit code is final.
        let _ = result.stdout_to_vec().await;
        result.exit_code().await.map_err(|e| format!("exec: {e}"))?.ok_or_else(|| "exec: no exit code".into())
    }

    /// The last lines a container printed, for error messages.
    pub(super) async fn log_tail(running: &Running, lines: usize) -> String {
        let mut text = String::new();
        for part in [running.stdout_to_vec().await, running.stderr_to_vec().await].into_iter().flatten() {
            text.push_str(&String::from_utf8_lossy(&part));
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The local engine (the socket testcontainers finds: `DOCKER_HOST` or `/var/run/docker.sock`),
/// once it answers a ping.
pub(super) async fn docker() -> Result<Docker, String> {
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .map_err(|e| format!("no Docker engine: {e} (is the daemon running? DOCKER_HOST?)"))?;
    docker.ping().await.map_err(|e| format!("the Docker engine does not answer: {e}"))?;
    Ok(docker)
}

/// One container of ours as the engine lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listed {
    /// Its name (`sd-RUN-HOST`).
    pub(super) name: String,
    /// Its run ([`RUN_LABEL`]).
    pub(super) run: String,
    /// The topology host it plays ([`HOST_LABEL`]; `links` for the link proxy).
    pub(super) host: String,
    /// Its run's owner ([`OWNER_LABEL`], `pid/start-time`).
    pub(super) owner: Option<String>,
    /// Docker's state: `running`, `paused`, `exited`, `created`, …
    pub(super) state: String,
    /// Docker's status line (`Exited (137) 3 seconds ago`).
    pub(super) status: String,
    /// The port it publishes on 127.0.0.1, if any.
    pub(super) port: Option<u16>,
}

/// Every container labelled with `filter` (`key=value`), stopped ones too.
pub(super) async fn list_labelled(docker: &Docker, filter: &str) -> Result<Vec<Listed>, String> {
    let filters = HashMap::from([("label".to_string(), vec![filter.to_string()])]);
    let list = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let containers = docker.list_containers(Some(list)).await.map_err(|e| format!("list containers: {e}"))?;
    let mut out = Vec::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let name = container.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string());
        let (Some(name), Some(run)) = (name, labels.get(RUN_LABEL)) else { continue };
        let port = container.ports.unwrap_or_default().iter().find_map(|p| p.public_port);
        out.push(Listed {
            name,
            run: run.clone(),
            host: labels.get(HOST_LABEL).cloned().unwrap_or_default(),
            owner: labels.get(OWNER_LABEL).cloned(),
            state: container.state.map(|s| s.to_string()).unwrap_or_default(),
            status: container.status.unwrap_or_default(),
            port,
        });
    }
    out.sort_by(|a, b| (&a.run, &a.name).cmp(&(&b.run, &b.name)));
    Ok(out)
}

/// Remove every container, network and volume labelled with `filter` (`key=value`); returns how
/// many resources were removed. Errors on single resources are skipped (already gone).
pub(super) async fn remove_labelled(docker: &Docker, filter: &str) -> usize {
    let filters = HashMap::from([("label".to_string(), vec![filter.to_string()])]);
    let mut removed = 0;
    let list = ListContainersOptions { all: true, filters: Some(filters.clone()), ..Default::default() };
    for container in docker.list_containers(Some(list)).await.unwrap_or_default() {
        let Some(id) = container.id else { continue };
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        removed += usize::from(docker.remove_container(&id, Some(options)).await.is_ok());
    }
    let networks = ListNetworksOptions { filters: Some(filters.clone()) };
    for network in docker.list_networks(Some(networks)).await.unwrap_or_default() {
        let Some(id) = network.id else { continue };
        removed += usize::from(docker.remove_network(&id).await.is_ok());
    }
    let volumes = ListVolumesOptions { filters: Some(filters) };
    if let Ok(list) = docker.list_volumes(Some(volumes)).await {
        for volume in list.volumes.unwrap_or_default() {
            let options = RemoveVolumeOptions { force: true };
            removed += usize::from(docker.remove_volume(&volume.name, Some(options)).await.is_ok());
        }
    }
    removed
}

/// The runs our label shows, with their owners: `(run, owner token)`.
pub(super) async fn runs(docker: &Docker) -> Vec<(String, Option<String>)> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{PROJECT_LABEL}=shakedown")])]);
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut note = |labels: Option<HashMap<String, String>>| {
        let labels = labels.unwrap_or_default();
        if let Some(run) = labels.get(RUN_LABEL)
            && !out.iter().any(|(r, _)| r == run)
        {
            out.push((run.clone(), labels.get(OWNER_LABEL).cloned()));
        }
    };
    let list = ListContainersOptions { all: true, filters: Some(filters.clone()), ..Default::default() };
    for container in docker.list_containers(Some(list)).await.unwrap_or_default() {
        note(container.labels);
    }
    for network in docker
        .list_networks(Some(ListNetworksOptions { filters: Some(filters.clone()) }))
        .await
        .unwrap_or_default()
    {
        note(network.labels);
    }
    if let Ok(list) = docker.list_volumes(Some(ListVolumesOptions { filters: Some(filters) })).await {
        for volume in list.volumes.unwrap_or_default() {
            note(Some(volume.labels));
        }
    }
    out
}
