//! One compose project per run, as numbered steps:
//!
//! 1. find the Compose CLI; sweep what dead runs left (their owner process is gone);
//! 2. choose the host ports; write the override (`override_file.rs`) into the run's temp dir;
//! 3. build the services with `build:` — first `shakedown/debian:bookworm` when a Dockerfile
//!    starts from it and it is missing (nothing can be pulled here); check every other image
//!    is on the engine, so a missing one fails at once instead of in a registry timeout;
//! 4. `up -d --no-build`; find each service's container; wait until each is healthy (compose
//!    healthchecks) or running (`health.rs`);
//! 5. [`Project::down`]: `down -v --remove-orphans`, then a sweep of anything still carrying the
//!    run's label (helper containers, a network Compose failed to remove).
//!
//! Step 5 also runs when bring-up fails or is interrupted (SIGINT, SIGTERM), when the work
//! under [`Project::guarded`] ends, panics or is interrupted, and — blocking — when a project
//! is dropped without it. A harness killed with SIGKILL leaves its project to the next run's
//! sweep (step 1) or `shakedown down`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::ListContainersOptions;

use super::super::layout::RUN_LABEL;
use super::super::{cleanup, engine, runner};
use super::cli::{ComposeCli, ProjectArgs, blocking_status};
use super::override_file::{PortMap, render, service_images};
use super::{ComposeError, RunLabels, debian, health};
use crate::scenario::compose_file::ComposeFile;

/// The longest `build` may take (every service with `build:`; apt-get installs included).
pub const BUILD_MAX: Duration = Duration::from_secs(15 * 60);
/// The longest `up -d` may take (it waits for `depends_on: condition: service_healthy`).
pub const UP_MAX: Duration = Duration::from_secs(5 * 60);
/// The longest `down -v --remove-orphans` may take.
pub const DOWN_MAX: Duration = Duration::from_secs(2 * 60);
/// How long `down` lets each container stop cleanly before SIGKILL (`down -t`).
const DOWN_GRACE: Duration = Duration::from_secs(5);
/// Compose's own labels: which project and service a container belongs to.
const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
const COMPOSE_NUMBER_LABEL: &str = "com.docker.compose.container-number";

/// A compose stack that is up, and the run it belongs to.
pub struct Project {
    pub(super) cli: ComposeCli,
    pub(super) args: ProjectArgs,
    pub(super) labels: RunLabels,
    pub(super) ports: PortMap,
    pub(super) services: Vec<String>,
    /// Each service's container id (the first, if the service is scaled).
    pub(super) containers: BTreeMap<String, String>,
    pub(super) docker: Docker,
    /// Numbers the cuts of `net.rs` (their chain names).
    pub(super) cuts: AtomicU64,
    removed: AtomicBool,
    _dir: RunDir,
}

impl Project {
    /// Bring `file` up as a new project of the run `run`, publishing each (service, container
    /// port) of `publish` on 127.0.0.1; `progress` gets a line per step. Whatever was started is
    /// removed again if this fails or SIGINT / SIGTERM arrives meanwhile.
    pub async fn up(
        file: &ComposeFile,
        publish: &[(String, u16)],
        run: &RunLabels,
        progress: impl Fn(&str),
    ) -> Result<Project, ComposeError> {
        let cli = ComposeCli::detect().await?;
        let (major, minor, patch) = cli.version;
        progress(&format!("{} {major}.{minor}.{patch}", cli.program_line()));
        let docker = engine::docker().await.map_err(ComposeError::Engine)?;
        for dead in cleanup::sweep_dead_runs(&docker).await {
            progress(&format!("removed what the dead run {dead} left behind"));
        }
        warn_collisions(file, &progress);
        let ports = PortMap::allocate(publish, file)?;
        let dir = RunDir::create(&run.project())?;
        let override_path = dir.path.join("docker-compose.shakedown.yml");
        std::fs::write(&override_path, render(file, run, &ports))
            .map_err(|source| ComposeError::Io { path: override_path.clone(), source })?;
        let project = Project {
            cli,
            args: ProjectArgs {
                name: run.project(),
                files: vec![file.path.clone(), override_path],
                env: file.env.clone(),
            },
            labels: run.clone(),
            ports,
            services: file.services.keys().cloned().collect(),
            containers: BTreeMap::new(),
            docker,
            cuts: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            _dir: dir,
        };
        project.finish_up(file, progress).await
    }

    /// Steps 3 and 4, removed again on failure or interruption.
    async fn finish_up(
        mut self,
        file: &ComposeFile,
        progress: impl Fn(&str),
    ) -> Result<Project, ComposeError> {
        let outcome = {
            let work = self.build_and_start(file, &progress);
            tokio::select! {
                biased;
                signal = runner::interrupted() => Err(ComposeError::Interrupted(signal)),
                outcome = work => outcome,
            }
        };
        match outcome {
            Ok(containers) => {
                self.containers = containers;
                let started = Instant::now();
                let waited = tokio::select! {
                    biased;
                    signal = runner::interrupted() => Err(ComposeError::Interrupted(signal)),
                    waited = health::wait_all(&self, &progress) => waited,
                };
                match waited {
                    Ok(()) => {
                        progress(&format!(
                            "every service ready ({:.1} s after `up`)",
                            started.elapsed().as_secs_f64()
                        ));
                        Ok(self)
                    }
                    Err(error) => Err(self.remove_after(error).await),
                }
            }
            Err(error) => Err(self.remove_after(error).await),
        }
    }

    /// Remove the project after bring-up failed with `error`; the error.
    async fn remove_after(self, error: ComposeError) -> ComposeError {
        if let Err(why) = self.down().await {
            tracing::warn!(%why, "removing the compose project after a failed bring-up");
        }
        error
    }

    /// Steps 3 and 4 up to the containers: build, check images, `up -d`; each service's
    /// container.
    async fn build_and_start(
        &self,
        file: &ComposeFile,
        progress: &impl Fn(&str),
    ) -> Result<BTreeMap<String, String>, ComposeError> {
        let built: Vec<&str> = file.services.values().filter(|s| s.build).map(|s| s.name.as_str()).collect();
        if !built.is_empty() {
            prepare_bases(file, progress)?;
            progress(&format!("building {} ({} build)", built.join(", "), self.cli.program_line()));
            let started = Instant::now();
            let mut args = vec!["build"];
            args.extend(&built);
            let hint = "the build's output ends as shown; a Dockerfile here can start `FROM shakedown/debian:bookworm` (nothing can be pulled)";
            self.cli.run(&self.args, &args, BUILD_MAX, "BUILD_MAX", hint).await?;
            progress(&format!("built in {:.1} s", started.elapsed().as_secs_f64()));
        }
        for (service, image) in service_images(file) {
            if !file.services[&service].build && !self.image_present(&image).await {
                return Err(ComposeError::MissingImage { service, image });
            }
        }
        progress(&format!("starting {} (up -d)", self.services.join(", ")));
        let hint = "a service's own error is in its logs: `docker logs` the container named above";
        if let Err(error) =
            self.cli.run(&self.args, &["up", "-d", "--no-build"], UP_MAX, "UP_MAX", hint).await
        {
            // `up` stops at a dependency that is not healthy: name the service and show its logs.
            let containers = self.find_containers().await.unwrap_or_default();
            return Err(health::explain_failed_up(self, &containers, error).await);
        }
        self.find_containers().await
    }

    /// Each service's container on the engine, by Compose's own labels (both CLIs set them).
    pub(super) async fn find_containers(&self) -> Result<BTreeMap<String, String>, ComposeError> {
        let filter = format!("{COMPOSE_PROJECT_LABEL}={}", self.args.name);
        let filters = std::collections::HashMap::from([("label".to_owned(), vec![filter])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| ComposeError::Engine(format!("list the project's containers: {e}")))?;
        let mut found: BTreeMap<String, (u32, String)> = BTreeMap::new();
        for container in listed {
            let labels = container.labels.unwrap_or_default();
            let (Some(service), Some(id)) = (labels.get(COMPOSE_SERVICE_LABEL), container.id) else {
                continue;
            };
            let number = labels.get(COMPOSE_NUMBER_LABEL).and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
            if found.get(service).is_none_or(|(n, _)| number < *n) {
                found.insert(service.clone(), (number, id));
            }
        }
        Ok(found.into_iter().map(|(service, (_, id))| (service, id)).collect())
    }

    async fn image_present(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// The compose project's name (`sd-RUN`).
    pub fn name(&self) -> &str {
        &self.args.name
    }

    /// The run's labels.
    pub fn labels(&self) -> &RunLabels {
        &self.labels
    }

    /// The host port on 127.0.0.1 where `service`'s `container_port` is published, if it was
    /// asked for. Fixed for the run: a restarted container keeps it.
    pub fn host_port(&self, service: &str, container_port: u16) -> Option<u16> {
        self.ports.get(service, container_port)
    }

    /// Every published (service, container port, host port).
    pub fn published(&self) -> &PortMap {
        &self.ports
    }

    /// `service`'s container id (the first container, if the service is scaled); `None` for a
    /// service not in the file or with no container (a profile not enabled).
    pub fn container(&self, service: &str) -> Option<&str> {
        self.containers.get(service).map(String::as_str)
    }

    /// The services of the file, sorted.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Step 5: `down -v --remove-orphans`, then a sweep of anything still labelled with the
    /// run. Err if something of the run is left after both.
    pub async fn down(&self) -> Result<(), ComposeError> {
        self.removed.store(true, Ordering::SeqCst);
        let grace = DOWN_GRACE.as_secs().to_string();
        let args = ["down", "-v", "--remove-orphans", "-t", grace.as_str()];
        let hint = "`shakedown down` removes what is left of every run";
        let compose = self.cli.run(&self.args, &args, DOWN_MAX, "DOWN_MAX", hint).await;
        let swept = cleanup::remove_run(&self.docker, &self.labels.run).await;
        if swept > 0 {
            tracing::info!(project = self.args.name, swept, "removed by label after compose down");
        }
        let left = cleanup::remove_run(&self.docker, &self.labels.run).await;
        match compose {
            Ok(_) if left == 0 => Ok(()),
            Err(error) if left == 0 => {
                tracing::warn!(%error, "compose down failed; the label sweep removed the rest");
                Ok(())
            }
            Ok(_) | Err(_) => Err(ComposeError::Engine(format!(
                "{left} resources of run {} were still there after `down` and a sweep; `shakedown down --run {}` removes them",
                self.labels.run, self.labels.run
            ))),
        }
    }

    /// Run `work` until it ends, panics, or SIGINT / SIGTERM arrives — whichever is first —
    /// then [`Project::down`]. A panic or a signal is an error (after the removal).
    pub async fn guarded<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, ComposeError> {
        let ended = {
            let running = std::panic::AssertUnwindSafe(work).catch_unwind();
            tokio::select! {
                biased;
                signal = runner::interrupted() => Err(ComposeError::Interrupted(signal)),
                outcome = running => outcome.map_err(|panic| {
                    let what = panic.downcast_ref::<String>().cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    ComposeError::Engine(format!("the run panicked: {what}"))
                }),
            }
        };
        let removed = self.down().await;
        let value = ended?;
        removed.map(|()| value)
    }
}

impl Drop for Project {
    /// A project dropped without [`Project::down`] (an early return, a panic unwinding) is
    /// removed here, blocking: `down` through the CLI, then the label sweep through `docker`.
    fn drop(&mut self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        let grace = DOWN_GRACE.as_secs().to_string();
        self.cli.run_blocking(&self.args, &["down", "-v", "--remove-orphans", "-t", &grace], DOWN_MAX);
        sweep_blocking(&self.labels.run);
    }
}

/// Remove every container, network and volume labelled with `run`, through the `docker` CLI
/// (no async runtime needed).
fn sweep_blocking(run: &str) {
    let filter = format!("label={RUN_LABEL}={run}");
    for (list, remove) in [
        (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f", "-v"]),
        (vec!["network", "ls", "-q", "--filter", &filter], vec!["network", "rm"]),
        (vec!["volume", "ls", "-q", "--filter", &filter], vec!["volume", "rm", "-f"]),
    ] {
        let Ok(listed) =
            std::process::Command::new("docker").args(&list).stdin(std::process::Stdio::null()).output()
        else {
            continue;
        };
        let ids: Vec<String> =
            String::from_utf8_lossy(&listed.stdout).split_whitespace().map(str::to_owned).collect();
        if ids.is_empty() {
            continue;
        }
        let mut command = std::process::Command::new("docker");
        command
            .args(&remove)
            .args(&ids)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        blocking_status(command, DOWN_MAX);
    }
}

/// Build `shakedown/debian:bookworm` first when a Dockerfile starts from it (and it is missing
/// or stale); say so for any other base that is not on the engine (its build will try to pull).
fn prepare_bases(file: &ComposeFile, progress: &impl Fn(&str)) -> Result<(), ComposeError> {
    let mut bases: Vec<String> = Vec::new();
    for build in file.services.values().filter_map(|s| s.build_spec.as_ref()) {
        let Ok(text) = std::fs::read_to_string(&build.dockerfile) else { continue };
        let args: BTreeMap<String, String> = build
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().or_else(|| std::env::var(k).ok()).map(|v| (k.clone(), v)))
            .collect();
        for base in debian::dockerfile_bases(&text, &args) {
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
    }
    for base in &bases {
        if base == debian::DEBIAN_IMAGE {
            debian::ensure(&mut |line| progress(line))?;
        } else if !debian::image_present(base) {
            progress(&format!("base image {base} is not on this engine: the build will try to pull it"));
        }
    }
    Ok(())
}

/// Progress lines for what in the user's file can collide with another run or another program.
fn warn_collisions(file: &ComposeFile, progress: &impl Fn(&str)) {
    for service in file.services.values() {
        if !service.fixed_host_ports.is_empty() {
            let ports: Vec<String> = service.fixed_host_ports.iter().map(u16::to_string).collect();
            progress(&format!(
                "note: service `{}` publishes host port(s) {} itself (its `ports:`); shakedown publishes its own on 127.0.0.1",
                service.name,
                ports.join(", ")
            ));
        }
        if let Some(name) = &service.container_name {
            progress(&format!(
                "note: service `{}` has a fixed `container_name: {name}`: two runs of this file cannot overlap",
                service.name
            ));
        }
    }
}

/// The run's own directory under the temp dir (the override file); removed on drop.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create(project: &str) -> Result<RunDir, ComposeError> {
        let path = std::env::temp_dir().join(format!("shakedown-{project}-{}", std::process::id()));
        // create_dir, not create_dir_all: the directory must be new, or it would not be ours.
        std::fs::create_dir(&path).map_err(|source| ComposeError::Io { path: path.clone(), source })?;
        Ok(RunDir { path })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// A project moves between tasks (the run loop's, the fault tasks').
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<Project>();
};
