//! What each container of a run is — name, command, environment, volumes, the port published on
//! 127.0.0.1, how its readiness is judged, and the stage it starts in — derived from the
//! scenario's topology alone. Pure: nothing here talks to Docker, so it is tested as a table.
//!
//! Naming: the run id `r` gives the network `sd-r`, containers `sd-r-<host>` (Docker's DNS
//! resolves them on that network) and the database volumes `sd-r-pg-primary` /
//! `sd-r-pg-replica`. Services name their peers as in the topology (`pricefeed:80`); a peer table
//! (`--peer pricefeed:80=sd-r-pricefeed:80`) maps those names to containers.
//!
//! Writes reach PostgreSQL through `db-router` (HAProxy's role: a TCP proxy to whichever node takes
//! writes); reads of the standby go to `pg-replica` directly. The watchdog probes both nodes
//! directly and fences through their data volumes, mounted at `/fence/primary` and
//! `/fence/standby` — STONITH on storage: a fenced node restarts read-only, in recovery.

use crate::scenario::model::{Replication, StackConfig};
use crate::stack::topology::{CLIENT, Topology};

/// Every container, network and volume of ours carries this label (value `shakedown`).
pub const PROJECT_LABEL: &str = "shakedown.project";
/// The run a resource belongs to.
pub const RUN_LABEL: &str = "shakedown.run";
/// The harness that owns the run, as `pid/start-time`: a run whose owner is gone is swept.
pub const OWNER_LABEL: &str = "shakedown.owner";
/// The topology host a container plays.
pub const HOST_LABEL: &str = "shakedown.host";

/// The container that carries the proxied links (not a topology host: faults cannot name it).
pub const LINKS_HOST: &str = "links";

/// The links that go through the link proxy, as (source host, target host, target port, proxy
/// port): a `latency` fault between two groups acts on every link between their hosts. Today the
/// replication stream (the standby dials the primary); other paths are direct.
pub const LINKS: [(&str, &str, u16, u16); 1] = [("pg-replica", "pg-primary", 5432, 15432)];

/// A link's name in the proxy: `source~target`.
pub fn link_name(source: &str, target: &str) -> String {
    format!("{source}~{target}")
}

/// The proxied links between any host of `a` and any host of `b`, either way.
pub fn links_between(a: &[String], b: &[String]) -> Vec<String> {
    let has = |side: &[String], host: &str| side.iter().any(|h| h == host);
    LINKS
        .iter()
        .filter(|(s, t, _, _)| (has(a, s) && has(b, t)) || (has(b, s) && has(a, t)))
        .map(|(s, t, _, _)| link_name(s, t))
        .collect()
}

/// Where PostgreSQL keeps its data inside a database container (a volume).
pub const PGDATA: &str = "/var/lib/shakedown/pg";

/// How the harness decides a container is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// PostgreSQL answers `SELECT 1` on the published port (the standby: and streams).
    Postgres,
    /// The AMQP port accepts a connection inside the container (`rabbitmq-diagnostics ping`
    /// answers 10-15 s earlier, before the rabbit app has booted, and each call costs an
    /// Erlang VM's start: ~2 s of CPU on a broker that is itself booting).
    Broker,
    /// `GET /health` on the published port answers 200.
    Http,
    /// The container is running (services with no port: watchdog, workers).
    Running,
}

/// One container to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The topology host it plays (`pg-primary`, `api-2`).
    pub host: String,
    /// The container's name, also its DNS name on the run's network.
    pub name: String,
    /// The command (the image has no entrypoint).
    pub cmd: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Named volumes: (volume, mount path).
    pub volumes: Vec<(String, String)>,
    /// The container port published on 127.0.0.1, if any.
    pub port: Option<u16>,
    /// How readiness is judged.
    pub readiness: Readiness,
    /// Start order: stage `n` starts once every container due ready by stage `n - 1` is.
    pub stage: u8,
    /// The stage by whose end it must be ready (at least `stage`): the broker boots for
    /// 15-25 s, so it starts first and need only be ready before the services that use it.
    pub ready_stage: u8,
}

/// A run's names, derived from its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunNames {
    /// The run id (a few hex digits).
    pub run: String,
}

impl RunNames {
    /// The run's network.
    pub fn network(&self) -> String {
        format!("sd-{}", self.run)
    }

    /// The container that plays `host`.
    pub fn container(&self, host: &str) -> String {
        format!("sd-{}-{host}", self.run)
    }

    /// The data volume of a database host.
    pub fn volume(&self, host: &str) -> String {
        format!("sd-{}-{host}", self.run)
    }

    /// A PostgreSQL URL for `host` on the run's network.
    fn pg_url(&self, host: &str) -> String {
        format!("postgres://postgres@{}:5432/postgres", self.container(host))
    }
}

/// Every container of a stack, in start order.
pub fn containers(stack: &StackConfig, names: &RunNames) -> Vec<ContainerSpec> {
    let stack_json = serde_json::to_string(stack).expect("the stack config serialises");
    let topology = Topology::new(stack);
    let http_hosts: Vec<&str> =
        topology.hosts().iter().map(|h| h.name.as_str()).filter(|h| is_http_service(h)).collect();
    let peers: Vec<String> = http_hosts
        .iter()
        .flat_map(|h| ["--peer".to_string(), format!("{h}:80={}:80", names.container(h))])
        .collect();
    let db_env = |direct: bool| {
        let writer = if direct { "pg-primary" } else { "db-router" };
        vec![
            ("SHAKEDOWN_PG_PRIMARY_URL".to_string(), names.pg_url(writer)),
            ("SHAKEDOWN_PG_STANDBY_URL".to_string(), names.pg_url("pg-replica")),
        ]
    };
    let mut specs = Vec::new();
    for entry in topology.hosts().iter().filter(|h| h.name != CLIENT) {
        let host = entry.name.as_str();
        let spec = |cmd: Vec<String>, env: Vec<(String, String)>, port, readiness, stage| ContainerSpec {
            host: host.to_string(),
            name: names.container(host),
            cmd,
            env,
            volumes: Vec::new(),
            port,
            readiness,
            stage,
            ready_stage: stage,
        };
        let serve = |service: &str, listen: &str| -> Vec<String> {
            let mut cmd = ["shakedown", "serve", service, "--listen", listen].map(String::from).to_vec();
            cmd.extend(peers.iter().cloned());
            cmd
        };
        let mut service_env = db_env(false);
        service_env.push((
            "SHAKEDOWN_AMQP_URL".into(),
            format!("amqp://guest:guest@{}:5672/%2f", names.container("broker")),
        ));
        service_env.push(("SHAKEDOWN_STACK".into(), stack_json.clone()));
        service_env.push(("RUST_LOG".into(), "info".into()));
        let made = match host {
            "pg-primary" => {
                let env = vec![(
                    "SHAKEDOWN_REPLICATION".to_string(),
                    replication_name(stack.replication).to_string(),
                )];
                let mut s = spec(node_cmd("pg-primary"), env, Some(5432), Readiness::Postgres, 0);
                s.volumes.push((names.volume(host), PGDATA.into()));
                s
            }
            "pg-replica" => {
                // The standby streams from the primary through the link proxy.
                let env = vec![
                    ("SHAKEDOWN_PRIMARY_HOST".to_string(), names.container(LINKS_HOST)),
                    ("SHAKEDOWN_PRIMARY_PORT".to_string(), LINKS[0].3.to_string()),
                ];
                let mut s = spec(node_cmd("pg-replica"), env, Some(5432), Readiness::Postgres, 1);
                s.volumes.push((names.volume(host), PGDATA.into()));
                s
            }
            "broker" => ContainerSpec {
                ready_stage: 2,
                ..spec(node_cmd("broker"), Vec::new(), None, Readiness::Broker, 0)
            },
            "db-router" => {
                let mut cmd = serve("db-router", "0.0.0.0:5432");
                cmd.extend(["--admin".into(), "0.0.0.0:80".into()]);
                let mut env = db_env(true);
                env.push(("RUST_LOG".into(), "info".into()));
                spec(cmd, env, Some(80), Readiness::Http, 2)
            }
            "watchdog" => {
                let mut env = db_env(true);
                env.push(("SHAKEDOWN_REAL_DIR".into(), "/fence".into()));
                env.push((
                    "SHAKEDOWN_DB_ROUTER_ADMIN".into(),
                    format!("http://{}:80", names.container("db-router")),
                ));
                env.push(("SHAKEDOWN_STACK".into(), stack_json.clone()));
                env.push(("RUST_LOG".into(), "info".into()));
                let mut s = spec(serve("watchdog", "0.0.0.0:80"), env, None, Readiness::Running, 3);
                s.volumes.push((names.volume("pg-primary"), "/fence/primary".into()));
                s.volumes.push((names.volume("pg-replica"), "/fence/standby".into()));
                s
            }
            "lb" => spec(serve("balancer", "0.0.0.0:80"), service_env, Some(80), Readiness::Http, 4),
            worker if worker.starts_with("worker-") => {
                // Its port answers /health once consuming, and takes backpressure's switch.
                spec(serve("worker", "0.0.0.0:80"), service_env, Some(80), Readiness::Http, 3)
            }
            api if api.starts_with("api-") => {
                spec(serve("api", "0.0.0.0:80"), service_env, Some(80), Readiness::Http, 3)
            }
            other => spec(serve(other, "0.0.0.0:80"), service_env, Some(80), Readiness::Http, 3),
        };
        specs.push(made);
    }
    specs.push(links(names));
    specs.sort_by_key(|s| s.stage);
    specs
}

/// The link proxy's container: every link of [`LINKS`], its admin API on port 80.
fn links(names: &RunNames) -> ContainerSpec {
    let mut cmd = ["shakedown", "serve", "links", "--listen", "0.0.0.0:80"].map(String::from).to_vec();
    for (source, target, port, proxy_port) in LINKS {
        cmd.push("--link".into());
        cmd.push(format!("{}={proxy_port}:{}:{port}", link_name(source, target), names.container(target)));
    }
    ContainerSpec {
        host: LINKS_HOST.into(),
        name: names.container(LINKS_HOST),
        cmd,
        env: vec![("RUST_LOG".into(), "info".into())],
        volumes: Vec::new(),
        port: Some(80),
        readiness: Readiness::Http,
        stage: 0,
        ready_stage: 0,
    }
}

/// Hosts that serve HTTP on port 80 and appear in every service's peer table.
fn is_http_service(host: &str) -> bool {
    matches!(host, "lb" | "pricefeed" | "inventory" | "ordersvc" | "reports") || host.starts_with("api-")
}

fn node_cmd(role: &str) -> Vec<String> {
    vec!["shakedown-node".into(), role.into()]
}

fn replication_name(replication: Replication) -> &'static str {
    match replication {
        Replication::Async => "async",
        Replication::Sync => "sync",
        Replication::RemoteApply => "remote_apply",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Vec<ContainerSpec> {
        let stack = StackConfig { api_replicas: 2, workers: 1, ..StackConfig::default() };
        containers(&stack, &RunNames { run: "ab12".into() })
    }

    /// One container per topology host but the client, databases first and the balancer last.
    #[test]
    fn one_container_per_host_in_dependency_order() {
        let specs = layout();
        let hosts: Vec<&str> = specs.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(hosts.len(), 14, "{hosts:?}");
        assert_eq!(
            &hosts[..3],
            ["broker", "pg-primary", "links"],
            "the broker boots longest: it starts first"
        );
        assert_eq!(*hosts.last().unwrap(), "lb");
        assert!(!hosts.contains(&"client"));
        let stage = |h: &str| specs.iter().find(|s| s.host == h).unwrap().stage;
        assert!(stage("pg-replica") > stage("pg-primary"));
        assert!(stage("db-router") > stage("pg-replica") && stage("api-1") > stage("db-router"));
        assert!(specs.iter().all(|s| s.name == format!("sd-ab12-{}", s.host)));
        let broker = specs.iter().find(|s| s.host == "broker").unwrap();
        assert!(broker.ready_stage < stage("api-1") && broker.ready_stage < stage("worker-1"));
    }

    /// Services write through the router and read the standby directly; the watchdog goes to
    /// both nodes directly and can reach both data volumes to fence them.
    #[test]
    fn writes_go_through_the_router_and_the_watchdog_fences_on_storage() {
        let specs = layout();
        let get = |h: &str| specs.iter().find(|s| s.host == h).unwrap().clone();
        let env = |s: &ContainerSpec, k: &str| s.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let api = get("api-2");
        assert_eq!(
            env(&api, "SHAKEDOWN_PG_PRIMARY_URL").unwrap(),
            "postgres://postgres@sd-ab12-db-router:5432/postgres"
        );
        assert!(api.cmd.windows(2).any(|w| w == ["--peer", "pricefeed:80=sd-ab12-pricefeed:80"]));
        let watchdog = get("watchdog");
        assert_eq!(
            env(&watchdog, "SHAKEDOWN_PG_PRIMARY_URL").unwrap(),
            "postgres://postgres@sd-ab12-pg-primary:5432/postgres"
        );
        assert_eq!(
            watchdog.volumes,
            [
                ("sd-ab12-pg-primary".to_string(), "/fence/primary".to_string()),
                ("sd-ab12-pg-replica".to_string(), "/fence/standby".to_string())
            ]
        );
        assert_eq!(get("pg-primary").volumes[0].1, PGDATA);
        assert_eq!(env(&get("pg-primary"), "SHAKEDOWN_REPLICATION").unwrap(), "sync");
        assert_eq!(env(&get("pg-replica"), "SHAKEDOWN_PRIMARY_HOST").unwrap(), "sd-ab12-links");
        assert!(
            get("links").cmd.contains(&"pg-replica~pg-primary=15432:sd-ab12-pg-primary:5432".to_string())
        );
    }

    #[test]
    fn links_between_groups_either_way() {
        let v = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(links_between(&v(&["pg-primary"]), &v(&["pg-replica"])), ["pg-replica~pg-primary"]);
        assert_eq!(
            links_between(&v(&["pg-replica", "db-router"]), &v(&["pg-primary"])),
            ["pg-replica~pg-primary"]
        );
        assert!(links_between(&v(&["api-1"]), &v(&["pg-replica"])).is_empty());
    }
}
