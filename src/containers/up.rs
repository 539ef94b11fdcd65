//! `shakedown up FILE`: a scenario's stack in containers for people to use — `docker compose
//! up` for shakedown. No load and no faults run; the stack stays until SIGINT or SIGTERM, and
//! faults are applied by hand from another terminal (`shakedown fault`, `manual.rs`).
//!
//! 1. the node image (`image::ensure`, by the CLI), then the runner's steps 1–3 (`runner::start_run`,
//!    `runner::bring_up`): the same containers, stages, readiness checks, tables and stock as a
//!    `shakedown run` of the same file — one code path, so what `up` shows is what a run tests;
//! 2. the endpoints printed on stdout: every port published on 127.0.0.1, with a command to paste
//!    (`psql` for the database nodes, `curl` for the HTTP services and admin APIs);
//! 3. the stack watched: a line whenever a container changes state (crashed, paused, started
//!    again — by `shakedown fault` or on its own); when every container of the run is gone
//!    (`shakedown down`), `up` ends;
//! 4. on SIGINT / SIGTERM (or an error, or a panic) everything of the run is removed
//!    (`runner::guarded`). A SIGKILLed `up` cannot clean up: its owner label lets the next run,
//!    or `shakedown down`, sweep what it left.
//!
//! Must not: start load or faults, or touch any run but its own.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::engine::{Engine, list_labelled};
use super::error;
use super::image::NodeImage;
use super::layout::{LINKS_HOST, RUN_LABEL};
use super::runner::{self, Ended};
use crate::run::BackendError;
use crate::scenario::Loaded;
use crate::scenario::topology::{CLIENT, Topology};

/// How often the stack's containers are listed for state changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Consecutive failed listings (one per [`WATCH_EVERY`]) after which `up` gives up on the engine.
const ENGINE_ERRORS_MAX: u32 = 30;

/// Bring `loaded`'s stack up from `image`, print its endpoints, and keep it
/// until a signal (or `shakedown down`); then remove it. Returns why it ended.
pub fn up(loaded: &Loaded, image: NodeImage) -> Result<String, BackendError> {
    super::runtime()?.block_on(async {
        let engine = runner::start_run(loaded.scenario.seed, image).await?;
        let run = engine.names.run.clone();
        println!("shakedown up: run {run}: starting the stack of {} (Ctrl-C to stop)", loaded.scenario.name);
        let ended = runner::guarded(&engine, serve(loaded, &engine)).await;
        let removed = format!("run {run}'s containers, network and volumes were removed");
        match ended {
            Ended::Interrupted(signal) => Ok(format!("stopped by {signal}; {removed}")),
            Ended::Finished(Ok(why)) => Ok(format!("{why}; {removed}")),
            Ended::Finished(Err(e)) => Err(error(format!("{}; {removed}", e.message))),
        }
    })
}

/// Steps 1 to 3 inside the guard: up, printed, watched until every container is gone.
async fn serve(loaded: &Loaded, engine: &Engine) -> Result<String, BackendError> {
    let (stack, startup_ms) = runner::bring_up(loaded, engine).await?;
    let hosts = hosts_in_order(&loaded.topology());
    let rows = endpoints(&hosts, &stack.ports, |host| engine.names.container(host));
    let header = format!(
        "{} containers healthy in {:.1} s (no load, no faults)",
        hosts.len(),
        startup_ms as f64 / 1000.0
    );
    println!("{}", render(&engine.names.run, &loaded.scenario.name, &header, &rows));
    let watched = watch(engine).await;
    // The stack's handles live until here: dropping them removes the containers.
    drop(stack);
    watched
}

/// Every container's host, in topology order (the balancer first), the link proxy last.
fn hosts_in_order(topology: &Topology) -> Vec<String> {
    let hosts = topology.hosts().iter().map(|h| h.name.clone()).filter(|h| h != CLIENT);
    hosts.chain(std::iter::once(LINKS_HOST.to_string())).collect()
}

/// One row of the endpoint table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// The topology host (`links` for the link proxy).
    pub(super) host: String,
    /// Its container.
    pub(super) container: String,
    /// `127.0.0.1:PORT`, if it publishes a port.
    pub(super) address: Option<String>,
    /// Commands to paste, each with what it shows.
    pub(super) connect: Vec<String>,
}

/// The endpoint table's rows: for each host, its address on 127.0.0.1 and how to talk to it.
pub(super) fn endpoints(
    hosts: &[String],
    ports: &BTreeMap<String, u16>,
    container: impl Fn(&str) -> String,
) -> Vec<Endpoint> {
    hosts
        .iter()
        .map(|host| {
            let port = ports.get(host).copied();
            Endpoint {
                host: host.clone(),
                container: container(host),
                address: port.map(|p| format!("127.0.0.1:{p}")),
                connect: port
                    .map_or_else(|| vec!["(on the run's network only)".into()], |p| connect(host, p)),
            }
        })
        .collect()
}

/// How to talk to `host` on `port`.
fn connect(host: &str, port: u16) -> Vec<String> {
    let http = format!("http://127.0.0.1:{port}");
    match host {
        "pg-primary" => vec![format!("psql postgres://postgres@127.0.0.1:{port}/postgres   # primary")],
        "pg-replica" => {
            vec![format!("psql postgres://postgres@127.0.0.1:{port}/postgres   # hot standby, read-only")]
        }
        "db-router" => vec![format!("curl {http}/route   # admin: which node takes writes")],
        "watchdog" => {
            vec![format!(
                "curl {http}/control/state   # who is primary, the standby as last seen, fenced nodes"
            )]
        }
        "lb" => vec![
            format!("curl {http}/health"),
            format!(
                "curl -X POST {http}/invest -d '{{\"key\":\"k-1\",\"coin\":\"bitcoin\",\"amount_usd_cents\":1000}}'"
            ),
            format!("curl '{http}/history?limit=5'"),
        ],
        LINKS_HOST => vec![format!("curl {http}/links   # the link proxy: links, toxics, counters")],
        "objects" => vec![format!(
            "S3 at {http}, bucket shakedown, key shakedown / shakedown-secret (e.g. aws --endpoint-url {http} s3 ls s3://shakedown --recursive)"
        )],
        _ => vec![format!("curl {http}/health")],
    }
}

/// The table and the how-to lines `up` prints once the stack is ready.
pub(super) fn render(run: &str, scenario: &str, header: &str, rows: &[Endpoint]) -> String {
    let width =
        |f: &dyn Fn(&Endpoint) -> usize, title: &str| rows.iter().map(f).max().unwrap_or(0).max(title.len());
    let host_w = width(&|r| r.host.len(), "HOST");
    let container_w = width(&|r| r.container.len(), "CONTAINER");
    let address_w = width(&|r| r.address.as_deref().map_or(1, str::len), "ENDPOINT");
    let mut out = format!("shakedown up: run {run}: {scenario} is up; {header}\n\n");
    let line = |host: &str, container: &str, address: &str, connect: &str| {
        format!("  {host:<host_w$}  {container:<container_w$}  {address:<address_w$}  {connect}\n")
    };
    out.push_str(&line("HOST", "CONTAINER", "ENDPOINT", "CONNECT"));
    for row in rows {
        for (i, connect) in row.connect.iter().enumerate() {
            out.push_str(&if i == 0 {
                line(&row.host, &row.container, row.address.as_deref().unwrap_or("-"), connect)
            } else {
                line("", "", "", connect)
            });
        }
    }
    out.push_str(&format!(
        "\n  faults:  shakedown fault crash pg-primary [--for 10s]\n\
         \x20          shakedown fault pause api-1 --for 5s\n\
         \x20          shakedown fault partition api pg-replica [--one-way] --for 10s\n\
         \x20          shakedown fault heal\n\
         \x20          (add --run {run} when several stacks are up)\n\
         \x20 stop:    Ctrl-C here, or shakedown down --run {run}"
    ));
    out
}

/// Step 3: print every change of a container's state until the run has no container left.
/// Bounded by the signal that ends `up`, by `shakedown down`, or by [`ENGINE_ERRORS_MAX`].
async fn watch(engine: &Engine) -> Result<String, BackendError> {
    let filter = format!("{RUN_LABEL}={}", engine.names.run);
    let started = Instant::now();
    let mut last = BTreeMap::new();
    let mut errors = 0;
    loop {
        match list_labelled(&engine.docker, &filter).await {
            Ok(listed) if listed.is_empty() => {
                return Ok("every container of the run was removed (by `shakedown down`?)".into());
            }
            Ok(listed) => {
                errors = 0;
                let now: BTreeMap<String, (String, String)> =
                    listed.into_iter().map(|c| (c.host, (c.state, c.status))).collect();
                if !last.is_empty() {
                    for change in changes(&last, &now) {
                        println!("  [+{:.1} s] {change}", started.elapsed().as_secs_f64());
                    }
                }
                last = now;
            }
            Err(why) => {
                errors += 1;
                if errors >= ENGINE_ERRORS_MAX {
                    return Err(error(format!(
                        "the Docker engine did not list the run's containers {ENGINE_ERRORS_MAX} times in a row (ENGINE_ERRORS_MAX): {why}"
                    )));
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The state changes between two listings (host → (state, status)), one line each.
pub(super) fn changes(
    before: &BTreeMap<String, (String, String)>,
    now: &BTreeMap<String, (String, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (host, (state, status)) in now {
        match before.get(host) {
            Some((was, _)) if was == state => {}
            Some((was, _)) => out.push(format!("{host}: {was} → {state} ({status})")),
            None => out.push(format!("{host}: appeared, {state} ({status})")),
        }
    }
    for host in before.keys().filter(|h| !now.contains_key(*h)) {
        out.push(format!("{host}: removed"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::StackConfig;

    fn rows() -> Vec<Endpoint> {
        let hosts = hosts_in_order(&Topology::new(&StackConfig {
            api_replicas: 2,
            workers: 1,
            ..Default::default()
        }));
        let ports: BTreeMap<String, u16> = [
            ("lb", 41000),
            ("pg-primary", 41001),
            ("pg-replica", 41002),
            ("db-router", 41003),
            ("links", 41004),
        ]
        .into_iter()
        .map(|(h, p)| (h.to_string(), p))
        .collect();
        endpoints(&hosts, &ports, |h| format!("sd-ab12-{h}"))
    }

    /// Every container gets a row in topology order, the link proxy last; a host without a
    /// published port says so; each published port comes with a command to paste.
    #[test]
    fn every_host_gets_a_row_with_a_command_to_paste() {
        let rows = rows();
        let hosts: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts.first(), Some(&"lb"));
        assert_eq!(hosts.last(), Some(&"links"));
        assert!(!hosts.contains(&"client"));
        assert_eq!(hosts.len(), 15, "{hosts:?}");
        let row = |h: &str| rows.iter().find(|r| r.host == h).unwrap().clone();
        assert_eq!(row("pg-primary").address.as_deref(), Some("127.0.0.1:41001"));
        assert!(
            row("pg-primary").connect[0].starts_with("psql postgres://postgres@127.0.0.1:41001/postgres")
        );
        assert!(
            row("pg-replica").connect[0].starts_with("psql postgres://postgres@127.0.0.1:41002/postgres")
        );
        assert!(row("db-router").connect[0].starts_with("curl http://127.0.0.1:41003/route"));
        assert_eq!(row("lb").connect[0], "curl http://127.0.0.1:41000/health");
        assert_eq!(row("broker").address, None);
        assert_eq!(row("broker").connect, ["(on the run's network only)"]);
    }

    /// The printed table: one line per host (first command), columns aligned, the run id in the
    /// header and in the how-to lines.
    #[test]
    fn the_table_names_the_run_and_lines_up() {
        let text = render("ab12", "steady-state", "15 containers healthy in 20.0 s", &rows());
        assert!(text.starts_with("shakedown up: run ab12: steady-state is up; 15 containers"), "{text}");
        let lb = text.lines().find(|l| l.trim_start().starts_with("lb ")).unwrap();
        let words: Vec<&str> = lb.split_whitespace().collect();
        assert_eq!(words[..4], ["lb", "sd-ab12-lb", "127.0.0.1:41000", "curl"]);
        let router = text.lines().find(|l| l.trim_start().starts_with("db-router ")).unwrap();
        assert_eq!(lb.find("127.0.0.1"), router.find("127.0.0.1"), "columns line up:\n{text}");
        assert!(text.contains("shakedown down --run ab12"));
        assert!(text.contains("shakedown fault heal"));
    }

    #[test]
    fn state_changes_are_reported_once() {
        let listing = |entries: &[(&str, &str)]| -> BTreeMap<String, (String, String)> {
            entries.iter().map(|(h, s)| (h.to_string(), (s.to_string(), format!("{s}!")))).collect()
        };
        let before = listing(&[("pg-primary", "running"), ("lb", "running"), ("api-1", "running")]);
        let now = listing(&[("pg-primary", "exited"), ("lb", "running"), ("api-2", "running")]);
        assert_eq!(
            changes(&before, &now),
            [
                "api-2: appeared, running (running!)",
                "pg-primary: running → exited (exited!)",
                "api-1: removed"
            ]
        );
        assert!(changes(&now, &now).is_empty());
    }
}
