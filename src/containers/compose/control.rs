//! Process faults on a service's container, through the engine API (not the Compose CLI: no
//! process to start, and the same calls for both CLIs): SIGKILL, start, a clean stop, the
//! cgroup freezer, a command inside it; and what faults and errors need to read — its state,
//! its addresses, its last log lines.

use std::time::Duration;

use futures::StreamExt;
use testcontainers::bollard::exec::StartExecResults;
use testcontainers::bollard::models::{ContainerInspectResponse, ExecConfig};
use testcontainers::bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptionsBuilder, LogsOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};

use super::ComposeError;
use super::project::Project;

/// The longest a command run by [`Project::exec`] may take.
pub const EXEC_MAX: Duration = Duration::from_secs(60);

impl Project {
    /// `service`'s container id, or an error naming the services there are.
    pub(super) fn id(&self, service: &str) -> Result<&str, ComposeError> {
        self.container(service).ok_or_else(|| ComposeError::UnknownService {
            service: service.to_owned(),
            known: self.services.join(", "),
        })
    }

    /// SIGKILL `service`'s container: no shutdown, no flush — a machine losing power. Its
    /// restart policy (`restart:`) may start it again; Compose files usually have none.
    pub async fn kill(&self, service: &str) -> Result<(), ComposeError> {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        let id = self.id(service)?;
        self.docker.kill_container(id, Some(options)).await.map_err(|e| engine(service, "kill", e))
    }

    /// Start `service`'s stopped (killed) container again: same filesystem, volumes and
    /// published ports; its network namespace is new (rules of a cut in it are gone) and its
    /// address may change.
    pub async fn start(&self, service: &str) -> Result<(), ComposeError> {
        let id = self.id(service)?;
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| engine(service, "start", e))
    }

    /// Stop `service`'s container as Docker stops it: its stop signal (SIGTERM unless the image
    /// or `stop_signal:` says otherwise), then SIGKILL after `grace`.
    pub async fn stop(&self, service: &str, grace: Duration) -> Result<(), ComposeError> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let id = self.id(service)?;
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        self.docker.stop_container(id, Some(options)).await.map_err(|e| engine(service, "stop", e))
    }

    /// Freeze every process of `service`'s container (the cgroup freezer). Its peers' TCP
    /// connects still complete — the kernel answers — then nothing replies: a gray failure.
    pub async fn pause(&self, service: &str) -> Result<(), ComposeError> {
        let id = self.id(service)?;
        self.docker.pause_container(id).await.map_err(|e| engine(service, "pause", e))
    }

    /// Thaw a frozen container.
    pub async fn unpause(&self, service: &str) -> Result<(), ComposeError> {
        let id = self.id(service)?;
        self.docker.unpause_container(id).await.map_err(|e| engine(service, "unpause", e))
    }

    /// Whether `service`'s container runs now (a paused one does).
    pub async fn running(&self, service: &str) -> Result<bool, ComposeError> {
        Ok(self.inspect(service).await?.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// Run `argv` in `service`'s container (no shell unless `argv` starts one), bounded by
    /// [`EXEC_MAX`]: its exit code and its output (stdout and stderr, interleaved).
    pub async fn exec<S: AsRef<str>>(
        &self,
        service: &str,
        argv: &[S],
    ) -> Result<(i64, String), ComposeError> {
        let id = self.id(service)?.to_owned();
        let config = ExecConfig {
            cmd: Some(argv.iter().map(|a| a.as_ref().to_owned()).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let fail = |e| engine(service, "exec", e);
        let exec = self.docker.create_exec(&id, config).await.map_err(fail)?;
        let run = async {
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
        };
        tokio::time::timeout(EXEC_MAX, run).await.map_err(|_| {
            let command: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
            ComposeError::Engine(format!(
                "`{}` in {service} did not finish within {} s (EXEC_MAX)",
                command.join(" "),
                EXEC_MAX.as_secs()
            ))
        })?
    }

    /// The last `lines` lines `service`'s container printed (stdout and stderr), for errors and
    /// reports; empty if it cannot be read.
    pub async fn logs_tail(&self, service: &str, lines: usize) -> String {
        match self.container(service) {
            Some(id) => self.logs_of(id, lines).await,
            None => String::new(),
        }
    }

    /// The last `lines` lines of a container's log.
    pub(super) async fn logs_of(&self, id: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        super::last_lines(&text, lines)
    }

    /// What the engine says of `service`'s container now.
    pub(super) async fn inspect(&self, service: &str) -> Result<ContainerInspectResponse, ComposeError> {
        let id = self.id(service)?.to_owned();
        self.inspect_id(&id).await
    }

    /// What the engine says of a container now.
    pub(super) async fn inspect_id(&self, id: &str) -> Result<ContainerInspectResponse, ComposeError> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| ComposeError::Engine(format!("inspect {id}: {e}")))
    }

    /// `service`'s IPv4 addresses, one per network it is on (none while it is not running).
    pub async fn addresses(&self, service: &str) -> Result<Vec<String>, ComposeError> {
        let inspected = self.inspect(service).await?;
        let networks = inspected.network_settings.and_then(|n| n.networks).unwrap_or_default();
        let mut out: Vec<String> =
            networks.into_values().filter_map(|n| n.ip_address).filter(|ip| !ip.is_empty()).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn engine(service: &str, what: &str, error: testcontainers::bollard::errors::Error) -> ComposeError {
    ComposeError::Engine(format!("{what} {service}: {error}"))
}
