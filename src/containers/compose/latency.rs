//! `latency` between services of a compose stack: one packet delayer (`shakedown serve delay`,
//! `containers::delayer`) per service, each in a helper container that joins the service's
//! network namespace with NET_ADMIN — the partitions' method (`net.rs`), but long-lived. The
//! helper is `shakedown/debian:bookworm` (it has iptables) with this very binary mounted
//! read-only, so the user's images need nothing and no image is built for it.
//!
//! Each service delays what it sends to the far side's addresses, so each direction is delayed
//! once. A service that is not running when the fault starts is skipped; one that restarts
//! during it comes back without its delayer (the helper shares, and loses, its namespace).

use std::path::PathBuf;
use std::time::Duration;

use testcontainers::bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};

use super::net::{HELPER_MAX, plan};
use super::project::Project;
use super::{ComposeError, debian};

/// Where the binary is mounted in a delayer's container.
const MOUNTED_BINARY: &str = "/usr/local/bin/shakedown";

/// A latency fault in force: what [`Project::undelay`] stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slowdown {
    /// Each delayer: the service it delays and its helper container's id.
    delayers: Vec<(String, String)>,
    /// Services left out: not running when the fault started.
    pub skipped: Vec<String>,
}

impl Slowdown {
    /// The services whose packets are delayed.
    pub fn services(&self) -> Vec<&str> {
        self.delayers.iter().map(|(service, _)| service.as_str()).collect()
    }
}

impl Project {
    /// Delay every packet between `a` and `b` by `delay` plus a uniform draw in `0..jitter`,
    /// each way; `seed` seeds the draws. Started delayers are stopped again if one fails.
    pub async fn delay(
        &self,
        a: &[String],
        b: &[String],
        delay: Duration,
        jitter: Duration,
        seed: u64,
    ) -> Result<Slowdown, ComposeError> {
        let (addresses, skipped) = self.addresses_of(a.iter().chain(b)).await?;
        if self.docker.inspect_image(debian::DEBIAN_IMAGE).await.is_err() {
            self.prepare_partitions(&mut |line| tracing::info!("{line}"))?;
        }
        let binary = binary()?;
        let number = self.cuts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut slowdown = Slowdown { delayers: Vec::new(), skipped };
        for (index, (service, (_, to))) in plan(a, b, false, &addresses).into_iter().enumerate() {
            let mut argv: Vec<String> = vec![MOUNTED_BINARY.into(), "serve".into(), "delay".into()];
            argv.extend(to.iter().flat_map(|ip| ["--to".to_owned(), ip.clone()]));
            argv.extend([
                format!("--nfqueue={}", number % 65_536),
                format!("--delay-ms={}", delay.as_millis()),
                format!("--jitter-ms={}", jitter.as_millis()),
                format!("--seed={}", seed.wrapping_add(index as u64)),
            ]);
            match self.start_delayer(&service, &binary, argv).await {
                Ok(id) => slowdown.delayers.push((service, id)),
                Err(error) => {
                    self.undelay(&slowdown).await;
                    return Err(error);
                }
            }
        }
        Ok(slowdown)
    }

    /// Stop a slowdown's delayers (each lets its held packets go and removes its rules); the
    /// packets they delayed. A delayer whose service went away meanwhile counts nothing.
    pub async fn undelay(&self, slowdown: &Slowdown) -> u64 {
        let stopped =
            futures::future::join_all(slowdown.delayers.iter().map(|(_, id)| self.stop_delayer(id))).await;
        stopped.into_iter().sum()
    }

    /// Start a delayer in `service`'s namespace and wait until its rules are in (its first line),
    /// or say why it stopped.
    async fn start_delayer(
        &self,
        service: &str,
        binary: &str,
        argv: Vec<String>,
    ) -> Result<String, ComposeError> {
        let container = self.id(service)?.to_owned();
        let binds = vec![format!("{binary}:{MOUNTED_BINARY}:ro")];
        let body = self.helper_body(&format!("delay/{service}"), &container, argv, binds);
        let fail = |what: &str, e: testcontainers::bollard::errors::Error| {
            ComposeError::Engine(format!("packet delayer for {service}: {what}: {e}"))
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|e| fail("create", e))?;
        let started = self.docker.start_container(&created.id, None::<StartContainerOptions>).await;
        let ready = match started {
            Err(e) => Err(fail("start", e)),
            Ok(()) => self.delayer_ready(service, &created.id).await,
        };
        if let Err(error) = ready {
            let remove = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
            let _ = self.docker.remove_container(&created.id, Some(remove)).await;
            return Err(error);
        }
        Ok(created.id)
    }

    /// Wait (at most [`HELPER_MAX`]) for a delayer's "delaying" line; its output if it exits.
    async fn delayer_ready(&self, service: &str, id: &str) -> Result<(), ComposeError> {
        let deadline = tokio::time::Instant::now() + HELPER_MAX;
        loop {
            let log = self.logs_of(id, 20).await;
            if log.contains("delaying packets") {
                return Ok(());
            }
            let running = self.inspect_id(id).await?.state.and_then(|s| s.running).unwrap_or(false);
            if !running || tokio::time::Instant::now() >= deadline {
                let why = if running { "did not start within HELPER_MAX" } else { "stopped" };
                return Err(ComposeError::Engine(format!(
                    "the packet delayer for {service} {why}: {}",
                    log.trim()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM a delayer, read what it delayed, remove it.
    async fn stop_delayer(&self, id: &str) -> u64 {
        let stop = StopContainerOptionsBuilder::new().t(10).build();
        if let Err(why) = self.docker.stop_container(id, Some(stop)).await {
            tracing::info!(%why, "a packet delayer was gone already");
        }
        let text = self.logs_of(id, 20).await;
        let remove = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let _ = self.docker.remove_container(id, Some(remove)).await;
        delayed_packets(&text)
    }
}

/// The binary a delayer runs: the one the harness was started as (`SHAKEDOWN_BIN` overrides,
/// as in the tests), which carries the `containers` feature since this code runs.
fn binary() -> Result<String, ComposeError> {
    let path = match std::env::var_os("SHAKEDOWN_BIN") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe().map_err(|e| {
            ComposeError::Engine(format!("where is this binary (for the packet delayer)? {e}"))
        })?,
    };
    Ok(path.to_string_lossy().into_owned())
}

/// The count in a delayer's last line, `delayed N packets`.
fn delayed_packets(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("delayed ")?.strip_suffix(" packets")?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_read_from_the_delayer_s_last_line() {
        let log = "delaying packets to 10.0.0.2 by 100 ms (+ up to 0 ms), queue 3\ndelayed 1234 packets\n";
        assert_eq!(delayed_packets(log), 1234);
        assert_eq!(delayed_packets("delaying packets to 10.0.0.2\n"), 0);
        assert_eq!(delayed_packets(""), 0);
    }
}
