//! Waiting for a compose stack after `up -d`: each service's container must be healthy when it
//! has a healthcheck (the file's or its image's), else running — or exited 0, a one-shot job
//! that did its work. A container that exits otherwise fails at once; one that is still not
//! there after [`HEALTHY_MAX`] fails then. Either way the error names the service, says what
//! it did, and carries its last log lines.

use std::collections::BTreeMap;
use std::time::Duration;

use testcontainers::bollard::models::{ContainerInspectResponse, HealthStatusEnum};

use super::project::Project;
use super::{ComposeError, last_lines};

/// The longest every service together may take to become healthy after `up -d`.
pub const HEALTHY_MAX: Duration = Duration::from_secs(180);
/// How often the containers are inspected while waiting.
const HEALTH_POLL_EVERY: Duration = Duration::from_millis(250);
/// Log lines kept for a service that did not come up.
pub(super) const LOG_LINES_ON_FAILURE: usize = 30;

/// What one container looks like now, as far as readiness goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// Docker's state: `running`, `exited`, `restarting`, `created`, `paused`, `dead`.
    pub(super) status: String,
    /// Its main process's exit code (meaningful once it exited).
    pub(super) exit_code: i64,
    /// Its health (`starting`, `healthy`, `unhealthy`), if it has a healthcheck.
    pub(super) health: Option<String>,
    /// The last healthcheck's output, if any.
    pub(super) health_output: Option<String>,
}

/// Where a container stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Healthy, running without a healthcheck, or a one-shot job that exited 0.
    Ready,
    /// Not yet: why.
    Waiting(String),
    /// Never will be: why.
    Failed(String),
}

/// The verdict on what was seen (pure).
pub(super) fn verdict(seen: &Seen) -> Verdict {
    let last_check = || seen.health_output.as_deref().map(|o| format!(": {}", o.trim())).unwrap_or_default();
    match (seen.status.as_str(), seen.health.as_deref()) {
        ("running", None | Some("healthy")) => Verdict::Ready,
        ("running", Some("unhealthy")) => Verdict::Waiting(format!("is unhealthy{}", last_check())),
        ("running", Some(other)) => Verdict::Waiting(format!("health is `{other}`{}", last_check())),
        ("exited", None) if seen.exit_code == 0 => Verdict::Ready,
        ("exited" | "dead", _) => {
            Verdict::Failed(format!("exited with code {} during bring-up", seen.exit_code))
        }
        ("restarting", _) => {
            Verdict::Waiting(format!("keeps restarting (last exit code {})", seen.exit_code))
        }
        (other, _) => Verdict::Waiting(format!("is `{other}`")),
    }
}

/// What the engine says of a container, as a [`Seen`].
pub(super) fn seen(inspected: &ContainerInspectResponse) -> Seen {
    let state = inspected.state.clone().unwrap_or_default();
    let health = state.health.as_ref();
    let status = health
        .and_then(|h| h.status)
        .filter(|s| *s != HealthStatusEnum::NONE && *s != HealthStatusEnum::EMPTY);
    Seen {
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        exit_code: state.exit_code.unwrap_or_default(),
        health: status.map(|s| s.to_string()),
        health_output: health.and_then(|h| h.log.as_ref()?.last()?.output.clone()),
    }
}

/// Wait until every service's container is ready (see the module doc); `progress` gets a line
/// as each becomes ready.
pub(super) async fn wait_all(project: &Project, progress: &impl Fn(&str)) -> Result<(), ComposeError> {
    let started = tokio::time::Instant::now();
    let deadline = started + HEALTHY_MAX;
    let mut waiting: BTreeMap<String, String> =
        project.containers.keys().map(|s| (s.clone(), "not inspected yet".to_owned())).collect();
    for service in project.services.iter().filter(|s| !project.containers.contains_key(*s)) {
        progress(&format!("service `{service}` has no container (a profile not enabled?); not waited for"));
    }
    loop {
        let names: Vec<String> = waiting.keys().cloned().collect();
        for service in names {
            let seen = match project.inspect(&service).await {
                Ok(inspected) => seen(&inspected),
                Err(error) => Seen { status: format!("not inspectable ({error})"), ..Seen::default() },
            };
            match verdict(&seen) {
                Verdict::Ready => {
                    waiting.remove(&service);
                    let how = if seen.health.is_some() { "healthy" } else { "running" };
                    progress(&format!("{service} {how} ({:.1} s)", started.elapsed().as_secs_f64()));
                }
                Verdict::Waiting(why) => {
                    waiting.insert(service, why);
                }
                Verdict::Failed(why) => {
                    let logs = project.logs_tail(&service, LOG_LINES_ON_FAILURE).await;
                    return Err(ComposeError::NotHealthy { service, why, logs });
                }
            }
        }
        let Some((service, why)) = waiting.first_key_value() else { return Ok(()) };
        if tokio::time::Instant::now() >= deadline {
            let (service, why) = (service.clone(), why.clone());
            let logs = project.logs_tail(&service, LOG_LINES_ON_FAILURE).await;
            let why = format!("was not ready within {} s (HEALTHY_MAX): it {why}", HEALTHY_MAX.as_secs());
            return Err(ComposeError::NotHealthy { service, why, logs });
        }
        tokio::time::sleep(HEALTH_POLL_EVERY).await;
    }
}

/// `up -d` failed: if a service's container exited or is unhealthy (what makes `up` stop at a
/// `depends_on: condition: service_healthy`), that service and its logs; else the error as is.
pub(super) async fn explain_failed_up(
    project: &Project,
    containers: &BTreeMap<String, String>,
    error: ComposeError,
) -> ComposeError {
    for (service, id) in containers {
        let Ok(inspected) = project.inspect_id(id).await else { continue };
        let seen = seen(&inspected);
        let why = match verdict(&seen) {
            Verdict::Failed(why) => why,
            Verdict::Waiting(why) if seen.health.as_deref() == Some("unhealthy") => why,
            _ => continue,
        };
        let logs = project.logs_of(id, LOG_LINES_ON_FAILURE).await;
        let why = format!("{why}, so `up` stopped:\n{}", last_lines(&error.to_string(), 8));
        return ComposeError::NotHealthy { service: service.clone(), why, logs };
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(status: &str, exit_code: i64, health: Option<&str>) -> Verdict {
        let seen = Seen {
            status: status.into(),
            exit_code,
            health: health.map(str::to_owned),
            health_output: Some("connection refused\n".into()),
        };
        verdict(&seen)
    }

    #[test]
    fn ready_waiting_and_failed() {
        assert_eq!(at("running", 0, None), Verdict::Ready);
        assert_eq!(at("running", 0, Some("healthy")), Verdict::Ready);
        assert_eq!(
            at("running", 0, Some("starting")),
            Verdict::Waiting("health is `starting`: connection refused".into())
        );
        assert!(
            matches!(at("running", 0, Some("unhealthy")), Verdict::Waiting(w) if w.starts_with("is unhealthy")),
            "it may recover"
        );
        assert_eq!(at("exited", 0, None), Verdict::Ready, "a one-shot job that did its work");
        assert_eq!(
            at("exited", 0, Some("unhealthy")),
            Verdict::Failed("exited with code 0 during bring-up".into())
        );
        assert_eq!(at("exited", 3, None), Verdict::Failed("exited with code 3 during bring-up".into()));
        assert!(matches!(at("restarting", 1, None), Verdict::Waiting(w) if w.contains("exit code 1")));
        assert_eq!(at("created", 0, None), Verdict::Waiting("is `created`".into()));
    }
}
