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

use crate::faults::{FaultKind, Plan};
use crate::scenario::model::{Bug, Replication, StackConfig};
use crate::scenario::topology::{CLIENT, Topology};
use crate::stack::ports::DbNode;

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

/// The first port the link proxy listens on; each further link takes the next one.
const FIRST_PROXY_PORT: u16 = 15432;

/// A directed connection path that goes through the link proxy: `source` dials
/// `links:proxy_port`, which forwards to `target:target_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The host that dials.
    pub source: String,
    /// The host it reaches.
    pub target: String,
    /// The target's port.
    pub target_port: u16,
    /// The proxy's port for this link.
    pub proxy_port: u16,
}

impl Link {
    /// Its name in the proxy: `source~target`.
    pub fn name(&self) -> String {
        format!("{}~{}", self.source, self.target)
    }
}

/// The links a run proxies. The replication stream always goes through the proxy; any other
/// connection path does when a `latency` fault of the plan has its two ends on opposite sides,
/// so a run pays the extra hop only where a scenario asks for latency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    links: Vec<Link>,
}

impl Links {
    /// The links `plan`'s latency faults need between the hosts of `topology` (the run's).
    pub fn for_plan(topology: &Topology, plan: &Plan) -> Links {
        let mut paths = vec![("pg-replica".to_string(), "pg-primary".to_string(), 5432)];
        for fault in &plan.faults {
            let FaultKind::Latency { a, b, .. } = &fault.kind else { continue };
            for source in topology.hosts().iter().map(|h| h.name.as_str()) {
                for (target, port) in dials(topology, source) {
                    let path = (source.to_string(), target, port);
                    if crosses(a, b, &path.0, &path.1) && !paths.contains(&path) {
                        paths.push(path);
                    }
                }
            }
        }
        let links = paths
            .into_iter()
            .zip(FIRST_PROXY_PORT..)
            .map(|((source, target, target_port), proxy_port)| Link {
                source,
                target,
                target_port,
                proxy_port,
            })
            .collect();
        Links { links }
    }

    /// Every link, in proxy-port order.
    pub fn all(&self) -> &[Link] {
        &self.links
    }

    /// The names of the links between any host of `a` and any host of `b`, either way.
    pub fn between(&self, a: &[String], b: &[String]) -> Vec<String> {
        self.links.iter().filter(|l| crosses(a, b, &l.source, &l.target)).map(Link::name).collect()
    }

    /// The names of the links that start or end at any of `hosts`.
    pub fn touching(&self, hosts: &[String]) -> Vec<String> {
        let has = |host: &String| hosts.contains(host);
        self.links.iter().filter(|l| has(&l.source) || has(&l.target)).map(Link::name).collect()
    }

    /// Where `source` dials `target:port` on the run's network: the target itself, or the proxy.
    fn address(&self, names: &RunNames, source: &str, target: &str, port: u16) -> (String, u16) {
        match self.links.iter().find(|l| l.source == source && l.target == target && l.target_port == port) {
            Some(link) => (names.container(LINKS_HOST), link.proxy_port),
            None => (names.container(target), port),
        }
    }
}

/// Whether a path from `source` to `target` has its ends on opposite sides of `a` | `b`.
pub(super) fn crosses(a: &[String], b: &[String], source: &str, target: &str) -> bool {
    let has = |side: &[String], host: &str| side.iter().any(|h| h == host);
    (has(a, source) && has(b, target)) || (has(b, source) && has(a, target))
}

/// Every connection path `host` opens, as (target host, port): the edges a `latency` fault can
/// delay on containers. Services reach the writable node only through `db-router` and read the
/// standby directly, as on the simulation; the watchdog and `db-router` dial both nodes.
pub fn dials(topology: &Topology, host: &str) -> Vec<(String, u16)> {
    let named = |prefix: &str, port: u16| -> Vec<(String, u16)> {
        let hosts = topology.hosts().iter().filter(|h| h.name.starts_with(prefix));
        hosts.map(|h| (h.name.clone(), port)).collect()
    };
    let to = |targets: &[(&str, u16)]| targets.iter().map(|(t, p)| (t.to_string(), *p)).collect::<Vec<_>>();
    let database = [("db-router", 5432), ("pg-replica", 5432)];
    let has = |name: &str| topology.hosts().iter().any(|h| h.name == name);
    match host {
        "lb" => named("api-", 80),
        "inventory" | "ordersvc" | "reports" => to(&database),
        "db-router" => to(&[("pg-primary", 5432), ("pg-replica", 5432)]),
        "watchdog" => to(&[("pg-primary", 5432), ("pg-replica", 5432), ("db-router", 80)]),
        "pg-primary" if has("backup") => to(&[("backup", 80)]),
        "pg-replica" if has("backup") => to(&[("pg-primary", 5432), ("backup", 80)]),
        "pg-replica" => to(&[("pg-primary", 5432)]),
        "backup" => to(&[("db-router", 5432), ("redis", REDIS_PORT)]),
        api if api.starts_with("api-") => {
            let peers = [
                ("pricefeed", 80),
                ("inventory", 80),
                ("ordersvc", 80),
                ("reports", 80),
                ("broker", 5672),
                ("objects", OBJECTS_PORT),
            ];
            to(&[&peers[..], &database[..]].concat())
        }
        worker if worker.starts_with("worker-") => {
            to(&[("broker", 5672), ("objects", OBJECTS_PORT), database[0], database[1]])
        }
        _ => Vec::new(),
    }
}

/// Where PostgreSQL keeps its data inside a database container (a volume).
pub const PGDATA: &str = "/var/lib/shakedown/pg";
/// Where the object store keeps its objects inside `objects` (a volume, so a crash keeps them).
pub const OBJECTS_DIR: &str = "/var/lib/shakedown/objects";
/// The object store's S3 port (`shakedown-node objects`: s3s-fs).
pub const OBJECTS_PORT: u16 = 9000;
/// Redis's port (`shakedown-node redis`: the backup catalogue).
pub const REDIS_PORT: u16 = 6379;
/// Where a database node's data volume is mounted in the `backup` container (`/restore/<host>`):
/// a disaster empties it, a restore lays the primary out in it.
pub const RESTORE_MOUNT: &str = crate::real::agent::VOLUMES_DIR;

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
    /// The object store answers an HTTP request on the published port (any status: an
    /// unsigned request is refused, which is an answer).
    ObjectStore,
    /// Redis answers a catalogue listing on the published port.
    Redis,
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
}

/// A PostgreSQL URL for an address on the run's network.
fn pg_url((host, port): (String, u16)) -> String {
    format!("postgres://postgres@{host}:{port}/postgres")
}

/// Where the watchdog's container mounts a database node's data volume (`SHAKEDOWN_REAL_DIR`
/// `/fence`, then `PgCluster`'s subdirectory): fencing, and a failback's rewind, act there.
pub fn fence_mount(node: DbNode) -> &'static str {
    match node {
        DbNode::PgPrimary => "/fence/primary",
        DbNode::PgReplica => "/fence/standby",
    }
}

/// Every container of a stack, one per host of `topology` (the hosts the scenario uses,
/// `Loaded::topology`), in start order; each host dials its peers directly or, where `links`
/// says so, through the link proxy. Without a broker in the run, services are told so
/// (`SHAKEDOWN_AMQP_URL` empty) and do not wait for one.
pub fn containers(
    stack: &StackConfig,
    topology: &Topology,
    links: &Links,
    names: &RunNames,
) -> Vec<ContainerSpec> {
    let wiring = Wiring::new(stack, topology, links, names);
    let mut specs: Vec<ContainerSpec> =
        topology.hosts().iter().filter(|h| h.name != CLIENT).map(|h| wiring.container(&h.name)).collect();
    specs.push(links_container(links, names));
    specs.sort_by_key(|s| s.stage);
    specs
}

/// What every container's command and environment are made from: the stack, which optional
/// hosts the run has, and where each host reaches each other host.
struct Wiring<'a> {
    stack: &'a StackConfig,
    stack_json: String,
    links: &'a Links,
    names: &'a RunNames,
    has_broker: bool,
    has_objects: bool,
    has_backup: bool,
    /// The hosts in every service's peer table.
    http_hosts: Vec<&'a str>,
}

impl<'a> Wiring<'a> {
    fn new(
        stack: &'a StackConfig,
        topology: &'a Topology,
        links: &'a Links,
        names: &'a RunNames,
    ) -> Wiring<'a> {
        let has = |name: &str| topology.hosts().iter().any(|h| h.name == name);
        Wiring {
            stack,
            stack_json: serde_json::to_string(stack).expect("the stack config serialises"),
            links,
            names,
            has_broker: has("broker"),
            has_objects: has("objects"),
            has_backup: has("backup"),
            http_hosts: topology
                .hosts()
                .iter()
                .map(|h| h.name.as_str())
                .filter(|h| is_http_service(h))
                .collect(),
        }
    }

    /// Where `source` dials `target:port`.
    fn at(&self, source: &str, target: &str, port: u16) -> (String, u16) {
        self.links.address(self.names, source, target, port)
    }

    /// The container that plays `host`.
    fn container(&self, host: &str) -> ContainerSpec {
        match host {
            "pg-primary" | "pg-replica" => self.database_node(host),
            "objects" => {
                let mut s = self.spec(
                    host,
                    node_cmd("objects"),
                    Vec::new(),
                    Some(OBJECTS_PORT),
                    Readiness::ObjectStore,
                    0,
                );
                s.volumes.push((self.names.volume(host), OBJECTS_DIR.into()));
                s
            }
            "redis" => self.spec(host, node_cmd("redis"), Vec::new(), Some(REDIS_PORT), Readiness::Redis, 0),
            "backup" => self.backup_agent(),
            "broker" => ContainerSpec {
                ready_stage: 2,
                ..self.spec(host, node_cmd("broker"), Vec::new(), None, Readiness::Broker, 0)
            },
            "db-router" => {
                let mut cmd = self.serve(host, "db-router", "0.0.0.0:5432");
                cmd.extend(["--admin".into(), "0.0.0.0:80".into()]);
                let mut env = self.db_env(host, true);
                env.push(("RUST_LOG".into(), "info".into()));
                self.spec(host, cmd, env, Some(80), Readiness::Http, 2)
            }
            "watchdog" => self.watchdog(),
            "lb" => {
                let cmd = self.serve(host, "balancer", "0.0.0.0:80");
                self.spec(host, cmd, self.service_env(host), Some(80), Readiness::Http, 4)
            }
            // Its port answers /health once consuming, and takes backpressure's switch.
            worker if worker.starts_with("worker-") => {
                let cmd = self.serve(host, "worker", "0.0.0.0:80");
                self.spec(host, cmd, self.service_env(host), Some(80), Readiness::Http, 3)
            }
            api if api.starts_with("api-") => {
                let mut cmd = self.serve(host, "api", "0.0.0.0:80");
                cmd.extend(["--name".into(), api.into()]);
                self.spec(host, cmd, self.service_env(host), Some(80), Readiness::Http, 3)
            }
            other => {
                let cmd = self.serve(host, other, "0.0.0.0:80");
                self.spec(host, cmd, self.service_env(host), Some(80), Readiness::Http, 3)
            }
        }
    }

    fn spec(
        &self,
        host: &str,
        cmd: Vec<String>,
        env: Vec<(String, String)>,
        port: Option<u16>,
        readiness: Readiness,
        stage: u8,
    ) -> ContainerSpec {
        ContainerSpec {
            host: host.to_string(),
            name: self.names.container(host),
            cmd,
            env,
            volumes: Vec::new(),
            port,
            readiness,
            stage,
            ready_stage: stage,
        }
    }

    /// `shakedown serve SERVICE --listen LISTEN` with `host`'s peer table.
    fn serve(&self, host: &str, service: &str, listen: &str) -> Vec<String> {
        let mut cmd = ["shakedown", "serve", service, "--listen", listen].map(String::from).to_vec();
        for peer in &self.http_hosts {
            let (address, port) = self.at(host, peer, 80);
            cmd.extend(["--peer".to_string(), format!("{peer}:80={address}:{port}")]);
        }
        cmd
    }

    /// PostgreSQL as `source` reaches it: writes through `db-router` (or, `direct`, the
    /// primary), reads on the standby.
    fn db_env(&self, source: &str, direct: bool) -> Vec<(String, String)> {
        let writer = if direct { "pg-primary" } else { "db-router" };
        vec![
            ("SHAKEDOWN_PG_PRIMARY_URL".to_string(), pg_url(self.at(source, writer, 5432))),
            ("SHAKEDOWN_PG_STANDBY_URL".to_string(), pg_url(self.at(source, "pg-replica", 5432))),
        ]
    }

    /// A stack service's environment: the database, the broker (empty: none in this run), the
    /// stack, the object store (empty: none).
    fn service_env(&self, host: &str) -> Vec<(String, String)> {
        let mut env = self.db_env(host, false);
        let (broker, broker_port) = self.at(host, "broker", 5672);
        let amqp = if self.has_broker {
            format!("amqp://guest:guest@{broker}:{broker_port}/%2f")
        } else {
            String::new()
        };
        env.push(("SHAKEDOWN_AMQP_URL".into(), amqp));
        env.push(("SHAKEDOWN_STACK".into(), self.stack_json.clone()));
        env.push(("RUST_LOG".into(), "info".into()));
        let s3 = if self.has_objects {
            let (objects, port) = self.at(host, "objects", OBJECTS_PORT);
            format!("http://{objects}:{port}")
        } else {
            String::new()
        };
        env.push(("SHAKEDOWN_S3_URL".into(), s3));
        env
    }

    /// Where a database node archives its WAL: the backup agent (`docker/node.sh`).
    fn archive_env(&self, source: &str) -> Vec<(String, String)> {
        if !self.has_backup {
            return Vec::new();
        }
        let (agent, port) = self.at(source, "backup", 80);
        let mut env = vec![("SHAKEDOWN_ARCHIVE_URL".to_string(), format!("http://{agent}:{port}"))];
        if self.stack.bugs.contains(&Bug::WalArchiveGap) {
            env.push(("SHAKEDOWN_ARCHIVE_IGNORE_FAILURES".into(), "1".into()));
        }
        env
    }

    /// `pg-primary` (replication mode), or `pg-replica` (streaming from the primary through
    /// the link proxy); each on its data volume.
    fn database_node(&self, host: &str) -> ContainerSpec {
        let (mut env, stage) = if host == "pg-primary" {
            let mode = replication_name(self.stack.replication).to_string();
            (vec![("SHAKEDOWN_REPLICATION".to_string(), mode)], 0)
        } else {
            let (primary, primary_port) = self.at(host, "pg-primary", 5432);
            let env = vec![
                ("SHAKEDOWN_PRIMARY_HOST".to_string(), primary),
                ("SHAKEDOWN_PRIMARY_PORT".to_string(), primary_port.to_string()),
            ];
            (env, 1)
        };
        env.extend(self.archive_env(host));
        let mut s = self.spec(host, node_cmd(host), env, Some(5432), Readiness::Postgres, stage);
        s.volumes.push((self.names.volume(host), PGDATA.into()));
        s
    }

    /// The backup agent: base backups from the writer (through db-router), the catalogue in
    /// Redis, the nodes' volumes to empty (a disaster) and lay a restore out in.
    fn backup_agent(&self) -> ContainerSpec {
        let host = "backup";
        let (router, router_port) = self.at(host, "db-router", 5432);
        let (redis, redis_port) = self.at(host, "redis", REDIS_PORT);
        let env = vec![
            (
                "SHAKEDOWN_BACKUP_CONNINFO".to_string(),
                format!("host={router} port={router_port} user=postgres"),
            ),
            ("SHAKEDOWN_REDIS_URL".into(), format!("redis://{redis}:{redis_port}")),
            ("SHAKEDOWN_STACK".into(), self.stack_json.clone()),
            ("RUST_LOG".into(), "info".into()),
        ];
        let cmd = ["shakedown", "serve", "backup", "--listen", "0.0.0.0:80"].map(String::from).to_vec();
        let mut s = self.spec(host, cmd, env, Some(80), Readiness::Http, 0);
        s.volumes.push((self.names.volume(host), crate::real::agent::BACKUP_DIR.into()));
        for node in ["pg-primary", "pg-replica"] {
            s.volumes.push((self.names.volume(node), format!("{RESTORE_MOUNT}/{node}")));
        }
        s
    }

    /// The watchdog: both nodes directly, the db-router's admin, both data volumes to fence
    /// on; its port takes `POST /control/hold` and `/control/reset` (restores, failbacks).
    fn watchdog(&self) -> ContainerSpec {
        let host = "watchdog";
        let mut env = self.db_env(host, true);
        env.push(("SHAKEDOWN_REAL_DIR".into(), "/fence".into()));
        let (router, router_port) = self.at(host, "db-router", 80);
        env.push(("SHAKEDOWN_DB_ROUTER_ADMIN".into(), format!("http://{router}:{router_port}")));
        env.push(("SHAKEDOWN_STACK".into(), self.stack_json.clone()));
        env.push(("RUST_LOG".into(), "info".into()));
        let mut s =
            self.spec(host, self.serve(host, "watchdog", "0.0.0.0:80"), env, Some(80), Readiness::Http, 3);
        for node in [DbNode::PgPrimary, DbNode::PgReplica] {
            s.volumes.push((self.names.volume(node.host()), fence_mount(node).into()));
        }
        s
    }
}

/// The link proxy's container: every link of `links`, its admin API on port 80.
fn links_container(links: &Links, names: &RunNames) -> ContainerSpec {
    let mut cmd = ["shakedown", "serve", "links", "--listen", "0.0.0.0:80"].map(String::from).to_vec();
    for link in links.all() {
        cmd.push("--link".into());
        cmd.push(format!(
            "{}={}:{}:{}",
            link.name(),
            link.proxy_port,
            names.container(&link.target),
            link.target_port
        ));
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
    use crate::faults::PlannedFault;
    use std::time::Duration;

    fn stack() -> StackConfig {
        StackConfig { api_replicas: 2, workers: 1, ..StackConfig::default() }
    }

    fn plan(faults: Vec<FaultKind>) -> Plan {
        let faults = faults
            .into_iter()
            .enumerate()
            .map(|(index, kind)| PlannedFault { index, start: Duration::ZERO, end: None, kind })
            .collect();
        Plan { duration: Duration::from_secs(10), faults, phases: Vec::new() }
    }

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    fn latency(a: &[&str], b: &[&str]) -> FaultKind {
        FaultKind::Latency {
            a: hosts(a),
            b: hosts(b),
            delay: Duration::from_millis(50),
            jitter: Duration::ZERO,
        }
    }

    fn layout_for(faults: Vec<FaultKind>) -> Vec<ContainerSpec> {
        let stack = stack();
        let topology = Topology::new(&stack);
        containers(
            &stack,
            &topology,
            &Links::for_plan(&topology, &plan(faults)),
            &RunNames { run: "ab12".into() },
        )
    }

    fn layout() -> Vec<ContainerSpec> {
        layout_for(Vec::new())
    }

    fn get(specs: &[ContainerSpec], host: &str) -> ContainerSpec {
        specs.iter().find(|s| s.host == host).unwrap().clone()
    }

    fn env(spec: &ContainerSpec, key: &str) -> String {
        spec.env.iter().find(|(n, _)| n == key).map(|(_, v)| v.clone()).unwrap()
    }

    /// One container per topology host but the client, databases first and the balancer last.
    #[test]
    fn one_container_per_host_in_dependency_order() {
        let specs = layout();
        let hosts: Vec<&str> = specs.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(hosts.len(), 15, "{hosts:?}");
        assert_eq!(
            &hosts[..4],
            ["broker", "pg-primary", "objects", "links"],
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

    /// The object store keeps its objects on a volume (a crash loses nothing it acknowledged),
    /// and the api hosts and workers are told where it is; a stack without one is told so.
    #[test]
    fn the_object_store_has_a_volume_and_its_clients_its_address() {
        let specs = layout();
        let objects = get(&specs, "objects");
        assert_eq!(objects.volumes, [("sd-ab12-objects".to_string(), OBJECTS_DIR.to_string())]);
        assert_eq!((objects.port, objects.readiness), (Some(OBJECTS_PORT), Readiness::ObjectStore));
        for host in ["api-1", "worker-1"] {
            assert_eq!(env(&get(&specs, host), "SHAKEDOWN_S3_URL"), "http://sd-ab12-objects:9000");
        }
        let stack = StackConfig::default();
        let without = Topology::needed(&stack, &[crate::scenario::model::Op::Invest], &[]);
        let names = RunNames { run: "ab12".into() };
        let specs = containers(&stack, &without, &Links::default(), &names);
        assert_eq!(env(&get(&specs, "api-1"), "SHAKEDOWN_S3_URL"), "");
    }

    /// Services write through the router and read the standby directly; the watchdog goes to
    /// both nodes directly and can reach both data volumes to fence them.
    #[test]
    fn writes_go_through_the_router_and_the_watchdog_fences_on_storage() {
        let specs = layout();
        let api = get(&specs, "api-2");
        assert_eq!(
            env(&api, "SHAKEDOWN_PG_PRIMARY_URL"),
            "postgres://postgres@sd-ab12-db-router:5432/postgres"
        );
        assert!(api.cmd.windows(2).any(|w| w == ["--peer", "pricefeed:80=sd-ab12-pricefeed:80"]));
        let watchdog = get(&specs, "watchdog");
        assert_eq!(
            env(&watchdog, "SHAKEDOWN_PG_PRIMARY_URL"),
            "postgres://postgres@sd-ab12-pg-primary:5432/postgres"
        );
        assert_eq!(
            watchdog.volumes,
            [
                ("sd-ab12-pg-primary".to_string(), "/fence/primary".to_string()),
                ("sd-ab12-pg-replica".to_string(), "/fence/standby".to_string())
            ]
        );
        assert_eq!(get(&specs, "pg-primary").volumes[0].1, PGDATA);
        assert_eq!(env(&get(&specs, "pg-primary"), "SHAKEDOWN_REPLICATION"), "sync");
    }

    /// With no latency fault only the replication stream is proxied: no other request pays
    /// the extra hop.
    #[test]
    fn only_the_replication_stream_is_proxied_without_latency_faults() {
        let specs = layout();
        assert_eq!(env(&get(&specs, "pg-replica"), "SHAKEDOWN_PRIMARY_HOST"), "sd-ab12-links");
        assert_eq!(env(&get(&specs, "pg-replica"), "SHAKEDOWN_PRIMARY_PORT"), "15432");
        let links: Vec<String> = get(&specs, "links").cmd.into_iter().filter(|a| a.contains('~')).collect();
        assert_eq!(links, ["pg-replica~pg-primary=15432:sd-ab12-pg-primary:5432"]);
    }

    /// A latency fault between `api` and `deps` + `db` routes exactly the paths the api hosts
    /// open to those hosts through the proxy, each on its own port; other paths stay direct.
    #[test]
    fn a_latency_fault_routes_the_paths_between_its_sides_through_the_proxy() {
        let specs = layout_for(vec![latency(&["api-1", "api-2"], &["pricefeed", "db-router", "pg-replica"])]);
        let api = get(&specs, "api-1");
        let proxied = |spec: &ContainerSpec, peer: &str| {
            spec.cmd
                .iter()
                .find(|a| a.starts_with(&format!("{peer}:80=")))
                .unwrap()
                .contains("sd-ab12-links:")
        };
        assert!(proxied(&api, "pricefeed"), "{:?}", api.cmd);
        assert!(!proxied(&api, "inventory"), "inventory is on neither side");
        assert!(env(&api, "SHAKEDOWN_PG_PRIMARY_URL").starts_with("postgres://postgres@sd-ab12-links:"));
        assert!(env(&api, "SHAKEDOWN_PG_STANDBY_URL").starts_with("postgres://postgres@sd-ab12-links:"));
        assert!(env(&api, "SHAKEDOWN_AMQP_URL").contains("@sd-ab12-broker:5672/"));
        let worker = get(&specs, "worker-1");
        assert_eq!(
            env(&worker, "SHAKEDOWN_PG_PRIMARY_URL"),
            "postgres://postgres@sd-ab12-db-router:5432/postgres"
        );
        let link_args: Vec<String> =
            get(&specs, "links").cmd.iter().filter(|a| a.contains('~')).cloned().collect();
        assert_eq!(link_args.len(), 1 + 2 * 3, "{link_args:?}");
        let ports: std::collections::BTreeSet<&str> =
            link_args.iter().map(|a| a.split(['=', ':']).nth(1).unwrap()).collect();
        assert_eq!(ports.len(), link_args.len(), "one port per link: {link_args:?}");
        assert!(
            link_args.contains(&"api-2~pricefeed=15436:sd-ab12-pricefeed:80".to_string()),
            "{link_args:?}"
        );
    }

    #[test]
    fn links_between_groups_either_way_and_touching_hosts() {
        let stack = stack();
        let links =
            Links::for_plan(&Topology::new(&stack), &plan(vec![latency(&["lb"], &["api-1", "api-2"])]));
        assert_eq!(
            links.between(&hosts(&["pg-primary"]), &hosts(&["pg-replica"])),
            ["pg-replica~pg-primary"]
        );
        assert_eq!(
            links.between(&hosts(&["pg-replica", "db-router"]), &hosts(&["pg-primary"])),
            ["pg-replica~pg-primary"]
        );
        assert!(links.between(&hosts(&["api-1"]), &hosts(&["pg-replica"])).is_empty());
        assert_eq!(links.between(&hosts(&["api-2"]), &hosts(&["lb"])), ["lb~api-2"]);
        assert_eq!(links.touching(&hosts(&["pg-primary"])), ["pg-replica~pg-primary"]);
    }

    /// With backups the agent and Redis run; the database nodes archive to the agent (and ignore
    /// failed pushes only under the `wal-archive-gap` bug); the agent mounts both data volumes.
    #[test]
    fn backups_add_the_agent_and_redis_and_the_nodes_archive_to_the_agent() {
        let with = |bugs: Vec<Bug>| {
            let stack = StackConfig { backup: Some(Default::default()), bugs, ..stack() };
            let topology = Topology::new(&stack);
            let links = Links::for_plan(&topology, &plan(Vec::new()));
            containers(&stack, &topology, &links, &RunNames { run: "ab12".into() })
        };
        let specs = with(Vec::new());
        let agent = get(&specs, "backup");
        assert_eq!(
            env(&agent, "SHAKEDOWN_BACKUP_CONNINFO"),
            "host=sd-ab12-db-router port=5432 user=postgres"
        );
        assert_eq!(env(&agent, "SHAKEDOWN_REDIS_URL"), "redis://sd-ab12-redis:6379");
        let mounts: Vec<&str> = agent.volumes.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(mounts, [crate::real::agent::BACKUP_DIR, "/restore/pg-primary", "/restore/pg-replica"]);
        assert_eq!(agent.volumes[1].0, "sd-ab12-pg-primary");
        assert_eq!(get(&specs, "redis").readiness, Readiness::Redis);
        for node in ["pg-primary", "pg-replica"] {
            let spec = get(&specs, node);
            assert_eq!(env(&spec, "SHAKEDOWN_ARCHIVE_URL"), "http://sd-ab12-backup:80");
            assert!(!spec.env.iter().any(|(k, _)| k == "SHAKEDOWN_ARCHIVE_IGNORE_FAILURES"));
        }
        let buggy = with(vec![Bug::WalArchiveGap]);
        assert_eq!(env(&get(&buggy, "pg-primary"), "SHAKEDOWN_ARCHIVE_IGNORE_FAILURES"), "1");
        assert!(!layout().iter().any(|s| s.host == "backup" || s.host == "redis"));
        assert!(!get(&layout(), "pg-primary").env.iter().any(|(k, _)| k == "SHAKEDOWN_ARCHIVE_URL"));
    }

    /// Hosts that never talk have no path: a latency fault between them proxies nothing (and is
    /// reported vacuous).
    #[test]
    fn a_latency_fault_between_hosts_that_never_talk_adds_no_link() {
        let stack = stack();
        let links =
            Links::for_plan(&Topology::new(&stack), &plan(vec![latency(&["pricefeed"], &["broker"])]));
        assert_eq!(links.all().len(), 1);
    }
}
