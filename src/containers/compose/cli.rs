//! The Docker Compose CLI this machine has: `docker compose` (v2, the plugin) when it answers,
//! else `docker-compose` (v1, Python; the one Debian 12 packages). Only subcommands and flags
//! both spell the same are used: `-p`, `-f`, `build`, `up -d --no-build`, `down -v
//! --remove-orphans -t`. `SHAKEDOWN_COMPOSE=docker-compose` (or `"docker compose"`) picks one.
//!
//! Every command has a bound (`*_MAX` below, the caller's choice) and runs in its own process
//! group — a Ctrl-C reaches shakedown, which then removes the project, not a half-finished
//! `up` — and is killed when the bound passes or its future is dropped. Its output's last lines
//! are kept for the error.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::{ComposeError, last_lines};

/// Names the Compose CLI to use, skipping detection: `docker-compose` or `docker compose`.
pub const COMPOSE_ENV: &str = "SHAKEDOWN_COMPOSE";
/// The longest `… version` may take.
pub const VERSION_MAX: Duration = Duration::from_secs(20);
/// Lines of a failing command's output kept for its error.
const OUTPUT_TAIL_LINES_MAX: usize = 25;

/// Which Compose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `docker compose`, the CLI plugin (Go).
    V2,
    /// `docker-compose`, the standalone Python program.
    V1,
}

/// A working Compose CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeCli {
    /// Which one.
    pub flavor: Flavor,
    /// Its version, `major.minor.patch`.
    pub version: (u32, u32, u32),
}

/// The files and name of one compose project, as every command names them.
#[derive(Clone, Debug)]
pub(super) struct ProjectArgs {
    /// `-p`.
    pub(super) name: String,
    /// `-f` each, in order: the user's file, then our override.
    pub(super) files: Vec<PathBuf>,
    /// Variables for the file's `${VAR}` (the scenario's `stack.env`).
    pub(super) env: std::collections::BTreeMap<String, String>,
}

impl ComposeCli {
    /// Find the CLI: [`COMPOSE_ENV`] if set, else `docker compose`, else `docker-compose`.
    pub async fn detect() -> Result<ComposeCli, ComposeError> {
        let wanted = std::env::var(COMPOSE_ENV).ok().filter(|v| !v.trim().is_empty());
        let candidates = match wanted.as_deref().map(str::trim) {
            Some("docker-compose") => vec![Flavor::V1],
            Some("docker compose") => vec![Flavor::V2],
            Some(other) => {
                return Err(ComposeError::NoCompose {
                    detail: format!("{COMPOSE_ENV}=`{other}`: expected `docker compose` or `docker-compose`"),
                });
            }
            None => vec![Flavor::V2, Flavor::V1],
        };
        let mut tried = Vec::new();
        for flavor in candidates {
            let probe = ComposeCli { flavor, version: (0, 0, 0) };
            let mut command = probe.base_command();
            command.args(["version", "--short"]);
            match output(command, VERSION_MAX, "VERSION_MAX").await {
                Ok(text) => match parse_version(&text) {
                    Some(version) => return Ok(ComposeCli { flavor, version }),
                    None => tried.push(format!("`{}` printed `{}`", probe.program_line(), text.trim())),
                },
                Err(error) => {
                    tried.push(format!("`{}`: {}", probe.program_line(), first_line(&error.to_string())))
                }
            }
        }
        Err(ComposeError::NoCompose { detail: tried.join("; ") })
    }

    /// `docker compose` or `docker-compose`, for messages.
    pub fn program_line(&self) -> &'static str {
        match self.flavor {
            Flavor::V2 => "docker compose",
            Flavor::V1 => "docker-compose",
        }
    }

    /// The program with no arguments yet, in its own process group, killed on drop, no stdin.
    fn base_command(&self) -> tokio::process::Command {
        let mut command = match self.flavor {
            Flavor::V2 => {
                let mut c = tokio::process::Command::new("docker");
                c.arg("compose");
                c
            }
            Flavor::V1 => tokio::process::Command::new("docker-compose"),
        };
        command.stdin(Stdio::null()).kill_on_drop(true).process_group(0);
        // No colours or progress bars in the output we keep for errors.
        command.env("COMPOSE_INTERACTIVE_NO_CLI", "1").env("NO_COLOR", "1");
        command
    }

    /// `COMPOSE -p NAME -f FILE… ARGS…`.
    fn project_command(&self, project: &ProjectArgs, args: &[&str]) -> tokio::process::Command {
        let mut command = self.base_command();
        command.args(project_args(project)).args(args).envs(&project.env);
        command
    }

    /// Run `args` on the project, bounded by `max` (named `limit` in errors); its output.
    pub(super) async fn run(
        &self,
        project: &ProjectArgs,
        args: &[&str],
        max: Duration,
        limit: &'static str,
        hint: &str,
    ) -> Result<String, ComposeError> {
        let command = self.project_command(project, args);
        output(command, max, limit).await.map_err(|error| match error {
            ComposeError::Command { command, status, stderr_tail, .. } => {
                ComposeError::Command { command, status, stderr_tail, hint: hint.to_owned() }
            }
            other => other,
        })
    }

    /// `args` on the project, blocking the thread (for `Drop`, which cannot wait on a future);
    /// bounded by `max`. Whether it succeeded.
    pub(super) fn run_blocking(&self, project: &ProjectArgs, args: &[&str], max: Duration) -> bool {
        let mut command = match self.flavor {
            Flavor::V2 => {
                let mut c = std::process::Command::new("docker");
                c.arg("compose");
                c
            }
            Flavor::V1 => std::process::Command::new("docker-compose"),
        };
        command.args(project_args(project)).args(args).envs(&project.env);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        blocking_status(command, max)
    }
}

/// `-p NAME -f FILE…`.
fn project_args(project: &ProjectArgs) -> Vec<String> {
    let mut args = vec!["-p".to_owned(), project.name.clone()];
    for file in &project.files {
        args.push("-f".to_owned());
        args.push(file.display().to_string());
    }
    args
}

/// Run `command` to its end or `max`, whichever is first; its stdout, or an error with the tail
/// of stdout and stderr (Compose v1 reports on stderr, builds on stdout).
pub(super) async fn output(
    mut command: tokio::process::Command,
    max: Duration,
    limit: &'static str,
) -> Result<String, ComposeError> {
    let line = command_line(command.as_std());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    let child = command.spawn().map_err(|source| ComposeError::Spawn { program, source })?;
    let ended = tokio::time::timeout(max, child.wait_with_output()).await;
    let Ok(ended) = ended else {
        // The child future was dropped with the timeout: kill_on_drop has killed it.
        return Err(ComposeError::Timeout { command: line, limit, max, stderr_tail: String::new() });
    };
    let out = ended.map_err(|source| ComposeError::Spawn { program: line.clone(), source })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let both = format!("{}\n{}", stdout.trim_end(), String::from_utf8_lossy(&out.stderr));
    Err(ComposeError::Command {
        command: line,
        status: out.status,
        stderr_tail: last_lines(&both, OUTPUT_TAIL_LINES_MAX),
        hint: String::new(),
    })
}

/// Run a blocking command, killed after `max`; whether it exited 0.
pub(super) fn blocking_status(mut command: std::process::Command, max: Duration) -> bool {
    let Ok(mut child) = command.spawn() else { return false };
    let deadline = std::time::Instant::now() + max;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// A command as a shell line, for messages.
fn command_line(command: &std::process::Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text)
}

/// The version in `version --short` output: `2.24.6`, `v2.24.6`, `2.29.1-desktop.1`,
/// `1.29.2`; also the long `docker-compose version 1.29.2, build unknown`.
pub(super) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    text.split(|c: char| c.is_whitespace() || c == ',').find_map(|word| {
        let word = word.trim_start_matches('v');
        let core = word.split(['-', '+']).next()?;
        let mut numbers = core.split('.').map(|n| n.parse::<u32>().ok());
        let (major, minor) = (numbers.next()??, numbers.next()??);
        let patch = numbers.next().flatten().unwrap_or(0);
        Some((major, minor, patch))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_both_clis() {
        assert_eq!(parse_version("2.24.6\n"), Some((2, 24, 6)));
        assert_eq!(parse_version("v2.24.6"), Some((2, 24, 6)));
        assert_eq!(parse_version("2.29.1-desktop.1"), Some((2, 29, 1)));
        assert_eq!(parse_version("1.29.2\n"), Some((1, 29, 2)));
        assert_eq!(parse_version("docker-compose version 1.29.2, build unknown"), Some((1, 29, 2)));
        assert_eq!(parse_version("Docker Compose version v2.30.3"), Some((2, 30, 3)));
        assert_eq!(parse_version("docker: 'compose' is not a docker command."), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn every_command_names_the_project_and_its_files_in_order() {
        let project = ProjectArgs {
            name: "sd-ab12".into(),
            files: vec![PathBuf::from("/s/docker-compose.yml"), PathBuf::from("/tmp/run/override.yml")],
            env: Default::default(),
        };
        let v1 = ComposeCli { flavor: Flavor::V1, version: (1, 29, 2) };
        let command = v1.project_command(&project, &["up", "-d"]);
        assert_eq!(
            command_line(command.as_std()),
            "docker-compose -p sd-ab12 -f /s/docker-compose.yml -f /tmp/run/override.yml up -d"
        );
        let v2 = ComposeCli { flavor: Flavor::V2, version: (2, 24, 0) };
        assert!(
            command_line(v2.project_command(&project, &["down"]).as_std())
                .starts_with("docker compose -p sd-ab12 -f")
        );
    }

    // Goal: a command that outlives its bound is killed and reported with the bound's name.
    #[tokio::test]
    async fn a_command_past_its_bound_is_killed() {
        let mut command = tokio::process::Command::new("sleep");
        command.arg("5").kill_on_drop(true);
        let started = std::time::Instant::now();
        let error = output(command, Duration::from_millis(200), "TEST_MAX").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(error.to_string().contains("TEST_MAX"), "{error}");
        let mut failing = tokio::process::Command::new("sh");
        failing.args(["-c", "echo out; echo err >&2; exit 3"]);
        let error = output(failing, Duration::from_secs(5), "TEST_MAX").await.unwrap_err().to_string();
        assert!(error.contains("out\nerr") && error.contains("exit status: 3"), "{error}");
    }
}
