//! The built-in stack's fault actuator on real containers (`ContainerFaults`): how each fault
//! kind is applied and reverted, and the counters its effect reads. When each fault starts and
//! stops, healing before the drain, the history events and the effects are the lifecycle's
//! (`faults::drive`).
//!
//! | fault | applied as | reverted as |
//! |---|---|---|
//! | crash | SIGKILL of each host's container (no shutdown, like a power cut); the TCP connections established in it then are its `connections_reset_count` | `docker start`: same filesystem and volumes, crash recovery |
//! | pause | the cgroup freezer (`docker pause`): the kernel still completes TCP handshakes, then nothing answers — a gray failure | `docker unpause` |
//! | partition | `iptables` DROP rules in both hosts' own network namespaces for every pair (input and output, so established connections are cut too; `one_way`: only `a` → `b` packets), and any proxied link between the sides cut | the same rules deleted (their packet counts are the effect); links restored |
//! | backpressure | each worker's `POST /control/mode` (paused or slowed, as on the simulation); a smaller capacity as a RabbitMQ policy (`max-length`, `reject-publish`; the smaller of policy and queue argument wins) | workers running; the policy cleared |
//! | pricefeed outage | the price feed's `POST /control/outage` (errors or slow) | answering normally |
//! | disaster | SIGKILL of each node's container, then the backup agent empties its data volume (`backups.rs`) | — (a `restore` rebuilds) |
//! | restore | both database containers stopped, the agent lays the newest verified base backup + WAL out in `pg-primary`'s volume, the watchdog reset, the nodes started (`backups.rs`) | — (instant) |
//! | failback | the old primary rewound (`pg_rewind`) and started as the standby, then a planned switchover to it with the watchdog held (`failback.rs`) | — (instant) |
//! | latency | every connection path between the two sides goes through the link proxy for the whole run (`layout::Links::for_plan`); each chunk is delayed by `delay` plus `0..jitter`, both ways (`proxy.rs`) | the links forward at once |
//!
//! A latency fault between hosts that open no connection to each other delays nothing: its
//! `messages_held_count` is 0 and the report flags it vacuous, as on the simulation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::backups::Backups;
use super::engine::Engine;
use super::layout::Links;
use super::proxy::{Toxics, list_links, set_toxics};
use crate::faults::{Actuator, Counters, FaultKind, PlannedFault};
use crate::real::http::RealHttp;
use crate::stack::control::{OUTAGE_PATH, OutageRequest, WORKER_MODE_PATH, WorkerModeRequest};
use crate::stack::ports::{HttpClient, HttpRequest};
use crate::stack::pricefeed::Outage;
use crate::stack::worker::WorkerMode;

/// Upper bound on one call to a control endpoint (the link proxy's, a worker's, the feed's).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The built-in stack's containers as a fault actuator (`faults::drive` runs it).
pub(super) struct ContainerFaults {
    engine: Arc<Engine>,
    /// t = 0 of the run (a disaster and a restore record their times on it).
    start: Instant,
    /// The link proxy's admin address on 127.0.0.1 (`127.0.0.1:PORT`).
    links_admin: String,
    /// The links the proxy carries.
    links: Links,
    /// Each host's port published on 127.0.0.1 (the control endpoints of workers and the feed).
    ports: BTreeMap<String, u16>,
    /// The run's backups (disasters and restores act through them), when it takes any.
    backups: Option<Arc<Backups>>,
    /// The packet-filter rules each partition put in, by fault index, to delete at its end.
    rules: Mutex<BTreeMap<usize, Vec<Rule>>>,
    /// The TCP connections each crash cut (established in its containers when they were
    /// killed), by fault index.
    killed_connections: Mutex<BTreeMap<usize, u64>>,
}

/// One packet-filter rule in one container: `(container, [chain, -s|-d, address])`.
pub(super) type Rule = (String, [String; 3]);

impl ContainerFaults {
    pub(super) fn new(
        engine: Arc<Engine>,
        start: Instant,
        links: Links,
        links_admin: String,
        ports: BTreeMap<String, u16>,
        backups: Option<Arc<Backups>>,
    ) -> ContainerFaults {
        ContainerFaults {
            engine,
            start,
            links_admin,
            links,
            ports,
            backups,
            rules: Mutex::default(),
            killed_connections: Mutex::default(),
        }
    }

    /// The proxied links a fault acts on or disturbs: those between its sides, or those that
    /// start or end at a host it crashes or freezes (their counters are its effect).
    fn links_of(&self, kind: &FaultKind) -> Vec<String> {
        match kind {
            FaultKind::Partition { a, b, .. } | FaultKind::Latency { a, b, .. } => self.links.between(a, b),
            FaultKind::Crash { hosts } | FaultKind::Pause { hosts } => self.links.touching(hosts),
            FaultKind::Backpressure { .. }
            | FaultKind::PricefeedOutage { .. }
            | FaultKind::Disaster { .. }
            | FaultKind::Restore { .. }
            | FaultKind::Failback { .. }
            | FaultKind::Stop { .. }
            | FaultKind::Exec { .. } => Vec::new(),
        }
    }
}

#[async_trait]
impl Actuator for ContainerFaults {
    /// The plan's hosts: the built-in stack has no roles to resolve.
    async fn targets(&self, fault: &PlannedFault) -> Result<Vec<String>, String> {
        Ok(fault.kind.hosts())
    }

    async fn apply(&self, fault: &PlannedFault, _hosts: &[String]) -> Result<(), String> {
        apply(self, fault).await
    }

    async fn revert(&self, fault: &PlannedFault, _hosts: &[String]) -> Result<(), String> {
        revert(self, fault).await
    }

    /// Connections: those the proxy reset on the fault's links, plus those a crash cut in its
    /// containers. Messages: packets a partition's DROP rules counted; chunks a latency fault's
    /// links held back.
    async fn counters(&self, fault: &PlannedFault, _hosts: &[String]) -> Counters {
        let links = link_counters(&self.links_admin, &self.links_of(&fault.kind)).await;
        let killed = self.killed_connections.lock().expect("killed connections").get(&fault.index).copied();
        let messages_held = match fault.kind {
            FaultKind::Partition { .. } => {
                let rules = self.rules.lock().expect("rules").get(&fault.index).cloned().unwrap_or_default();
                dropped_by(&self.engine, &rules).await
            }
            FaultKind::Latency { .. } => links.delayed,
            FaultKind::Crash { .. }
            | FaultKind::Pause { .. }
            | FaultKind::Backpressure { .. }
            | FaultKind::PricefeedOutage { .. }
            | FaultKind::Disaster { .. }
            | FaultKind::Restore { .. }
            | FaultKind::Failback { .. }
            | FaultKind::Stop { .. }
            | FaultKind::Exec { .. } => 0,
        };
        Counters { connections_reset: links.resets + killed.unwrap_or(0), messages_held }
    }
}

async fn apply(faults: &ContainerFaults, fault: &PlannedFault) -> Result<(), String> {
    let (engine, links_admin) = (&*faults.engine, faults.links_admin.as_str());
    match &fault.kind {
        FaultKind::Crash { hosts } => {
            let mut reset = 0;
            for host in hosts {
                let container = engine.names.container(host);
                reset += established_connections(engine, &container).await;
                engine.kill(&container).await?;
            }
            faults.killed_connections.lock().expect("killed connections").insert(fault.index, reset);
            Ok(())
        }
        FaultKind::Pause { hosts } => {
            for host in hosts {
                engine.pause(&engine.names.container(host)).await?;
            }
            Ok(())
        }
        FaultKind::Partition { a, b, one_way } => {
            let rules = partition_rules(engine, a, b, *one_way).await;
            // Kept before they go in: a partial application is reverted from this list.
            faults.rules.lock().expect("rules").insert(fault.index, rules.clone());
            for (container, rule) in &rules {
                iptables(engine, container, "-A", rule).await?;
            }
            // A proxied link is one TCP stream: cutting either direction cuts it.
            set_toxics(links_admin, &faults.links.between(a, b), Toxics { cut: true, ..Toxics::default() })
                .await
        }
        FaultKind::Backpressure { consumers, slow_by, capacity } => {
            set_workers(faults, WorkerMode::from_fault(*consumers, *slow_by)).await?;
            match capacity {
                Some(capacity) => {
                    let policy = format!(r#"{{"max-length":{capacity},"overflow":"reject-publish"}}"#);
                    rabbitmqctl(
                        engine,
                        &["set_policy", "--apply-to", "queues", CAPACITY_POLICY, "^queries$", &policy],
                    )
                    .await
                }
                None => Ok(()),
            }
        }
        FaultKind::PricefeedOutage { mode, delay } => {
            set_outage(faults, Outage::from_fault(*mode, *delay)).await
        }
        FaultKind::Latency { a, b, delay, jitter } => {
            let toxics = Toxics {
                delay_ms: delay.as_millis() as u64,
                jitter_ms: jitter.as_millis() as u64,
                cut: false,
            };
            set_toxics(links_admin, &faults.links.between(a, b), toxics).await
        }
        FaultKind::Disaster { hosts } => backups(faults)?.disaster(engine, hosts, faults.start).await,
        FaultKind::Restore { to } => backups(faults)?.restore(engine, fault, *to, faults.start).await,
        FaultKind::Failback { node } => {
            super::failback::failback(engine, &faults.ports, crate::stack::ports::DbNode::named(node)).await
        }
        FaultKind::Stop { .. } | FaultKind::Exec { .. } => {
            Err("compose-only faults reached the built-in stack (validation refuses them)".into())
        }
    }
}

async fn revert(faults: &ContainerFaults, fault: &PlannedFault) -> Result<(), String> {
    let (engine, links_admin) = (&*faults.engine, faults.links_admin.as_str());
    match &fault.kind {
        FaultKind::Crash { hosts } => {
            for host in hosts {
                engine.restart(&engine.names.container(host)).await?;
            }
            Ok(())
        }
        FaultKind::Pause { hosts } => {
            for host in hosts {
                engine.unpause(&engine.names.container(host)).await?;
            }
            Ok(())
        }
        FaultKind::Partition { a, b, .. } => {
            let rules = faults.rules.lock().expect("rules").remove(&fault.index).unwrap_or_default();
            heal(engine, &rules).await;
            set_toxics(links_admin, &faults.links.between(a, b), Toxics::default()).await
        }
        FaultKind::Latency { a, b, .. } => {
            set_toxics(links_admin, &faults.links.between(a, b), Toxics::default()).await
        }
        FaultKind::Backpressure { capacity, .. } => {
            set_workers(faults, WorkerMode::Running).await?;
            match capacity {
                Some(_) => rabbitmqctl(engine, &["clear_policy", CAPACITY_POLICY]).await,
                None => Ok(()),
            }
        }
        FaultKind::PricefeedOutage { .. } => set_outage(faults, Outage::None).await,
        FaultKind::Disaster { .. } | FaultKind::Restore { .. } | FaultKind::Failback { .. } => Ok(()),
        FaultKind::Stop { .. } | FaultKind::Exec { .. } => Ok(()),
    }
}

/// The TCP connections established in a running container (`/proc/net/tcp` and `tcp6`, state
/// `01`): the ones a SIGKILL resets. 0 when it cannot be asked.
async fn established_connections(engine: &Engine, container: &str) -> u64 {
    match engine.exec_named(container, &["cat", "/proc/net/tcp", "/proc/net/tcp6"]).await {
        Ok((_, listing)) => count_established(&listing),
        Err(_) => 0,
    }
}

/// The `ESTABLISHED` rows (`st` = `01`) of a `/proc/net/tcp` listing.
fn count_established(listing: &str) -> u64 {
    listing.lines().filter(|line| line.split_whitespace().nth(3) == Some("01")).count() as u64
}

/// The run's backups; validation lets no disaster or restore into a stack without them.
fn backups(faults: &ContainerFaults) -> Result<&Backups, String> {
    faults.backups.as_deref().ok_or_else(|| "this stack takes no backups (no `stack.backup`)".to_string())
}

/// The RabbitMQ policy a `backpressure` fault's `capacity` sets on the queries queue.
const CAPACITY_POLICY: &str = "shakedown-backpressure";

/// Switch every worker's mode through its control endpoint.
async fn set_workers(faults: &ContainerFaults, mode: WorkerMode) -> Result<(), String> {
    let body = serde_json::to_vec(&WorkerModeRequest::from_mode(mode)).expect("the request serialises");
    for (host, port) in faults.ports.iter().filter(|(h, _)| h.starts_with("worker-")) {
        post(&format!("127.0.0.1:{port}"), WORKER_MODE_PATH, body.clone())
            .await
            .map_err(|e| format!("{host}: {e}"))?;
    }
    Ok(())
}

/// Switch the price feed's outage through its control endpoint.
async fn set_outage(faults: &ContainerFaults, outage: Outage) -> Result<(), String> {
    let port = faults.ports.get("pricefeed").ok_or("the price feed publishes no port")?;
    let body = serde_json::to_vec(&OutageRequest::from_outage(outage)).expect("the request serialises");
    post(&format!("127.0.0.1:{port}"), OUTAGE_PATH, body).await.map_err(|e| format!("pricefeed: {e}"))
}

/// `POST path` with a JSON body; any answer but 200 is an error.
async fn post(authority: &str, path: &str, body: Vec<u8>) -> Result<(), String> {
    let request = admin_request(authority, http::Method::POST, path.into(), Some(body));
    let response =
        RealHttp::new(Default::default()).send(request, ADMIN_TIMEOUT).await.map_err(|e| e.to_string())?;
    if response.status == 200 {
        Ok(())
    } else {
        Err(format!("{path} answered {}: {}", response.status, String::from_utf8_lossy(&response.body)))
    }
}

/// `rabbitmqctl ARGS` in the broker's container (an Erlang VM's start: about 2 s).
async fn rabbitmqctl(engine: &Engine, args: &[&str]) -> Result<(), String> {
    let mut cmd = vec!["rabbitmqctl", "-q"];
    cmd.extend_from_slice(args);
    match engine.exec_named(&engine.names.container("broker"), &cmd).await? {
        (0, _) => Ok(()),
        (code, output) => Err(format!("{} exited {code}: {}", cmd.join(" "), output.trim())),
    }
}

/// The rules that cut `a` from `b`: for every pair, each side drops the other's packets coming
/// in and going out (Jepsen's way); `one_way` drops only what `a` sends to `b`. A host that is
/// down (crashed) has no address and is skipped: it is cut off already.
pub(super) async fn partition_rules(engine: &Engine, a: &[String], b: &[String], one_way: bool) -> Vec<Rule> {
    let mut ips = std::collections::BTreeMap::new();
    for host in a.iter().chain(b) {
        match engine.ip(&engine.names.container(host)).await {
            Ok(ip) => {
                ips.insert(host.clone(), ip);
            }
            Err(why) => tracing::warn!(host, %why, "partition: host has no address; skipped"),
        }
    }
    let rule = |host: &str, chain: &str, flag: &str, ip: &str| -> Rule {
        (engine.names.container(host), [chain.to_string(), flag.to_string(), ip.to_string()])
    };
    let mut rules = Vec::new();
    for x in a.iter().filter(|h| ips.contains_key(*h)) {
        for y in b.iter().filter(|h| ips.contains_key(*h)) {
            rules.push(rule(x, "OUTPUT", "-d", &ips[y]));
            rules.push(rule(y, "INPUT", "-s", &ips[x]));
            if !one_way {
                rules.push(rule(x, "INPUT", "-s", &ips[y]));
                rules.push(rule(y, "OUTPUT", "-d", &ips[x]));
            }
        }
    }
    rules
}

/// Add (`-A`) or delete (`-D`) one DROP rule in the filter table (never `nat`: Docker's DNS
/// lives there).
pub(super) async fn iptables(
    engine: &Engine,
    container: &str,
    action: &str,
    rule: &[String; 3],
) -> Result<(), String> {
    let [chain, flag, ip] = rule;
    let cmd = ["iptables", "-w", action, chain, flag, ip, "-j", "DROP"];
    match engine.exec_named(container, &cmd).await? {
        (0, _) => Ok(()),
        (code, output) => Err(format!("{} in {container} exited {code}: {}", cmd.join(" "), output.trim())),
    }
}

/// The packets the DROP rules in the containers of `rules` have counted so far. A container
/// that cannot be asked (it restarted, and lost its rules with its network namespace) counts 0.
pub(super) async fn dropped_by(engine: &Engine, rules: &[Rule]) -> u64 {
    let mut dropped = 0;
    let mut counted = std::collections::BTreeSet::new();
    for (container, _) in rules {
        if counted.insert(container.clone())
            && let Ok((0, listing)) =
                engine.exec_named(container, &["iptables", "-w", "-n", "-v", "-x", "-L"]).await
        {
            dropped += dropped_packets(&listing);
        }
    }
    dropped
}

/// Delete a partition's rules. A container that restarted meanwhile lost its rules with its
/// network namespace: nothing to delete there.
pub(super) async fn heal(engine: &Engine, rules: &[Rule]) {
    for (container, rule) in rules {
        if let Err(why) = iptables(engine, container, "-D", rule).await {
            tracing::info!(container, %why, "partition heal: rule already gone");
        }
    }
}

/// Packets counted by the DROP rules of an `iptables -n -v -x -L` listing.
fn dropped_packets(listing: &str) -> u64 {
    listing
        .lines()
        .filter(|line| line.split_whitespace().nth(2) == Some("DROP"))
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn admin_request(admin: &str, method: http::Method, path: String, body: Option<Vec<u8>>) -> HttpRequest {
    HttpRequest { method, authority: admin.to_string(), path, body, headers: Vec::new() }
}

/// What the proxy has counted so far over some links.
#[derive(Clone, Copy, Debug, Default)]
struct LinkCounters {
    /// Chunks held back by a delay.
    delayed: u64,
    /// Connections closed by a cut, refused, or whose target could not be reached.
    resets: u64,
}

/// The proxy's counters summed over the named links (zero if it cannot be asked).
async fn link_counters(admin: &str, names: &[String]) -> LinkCounters {
    if names.is_empty() {
        return LinkCounters::default();
    }
    let Ok(links) = list_links(admin).await else { return LinkCounters::default() };
    let mine = links.iter().filter(|l| names.contains(&l.name));
    mine.fold(LinkCounters::default(), |sum, l| LinkCounters {
        delayed: sum.delayed + l.chunks_delayed_count,
        resets: sum.resets + l.connections_reset_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_connections_are_the_rows_in_state_01() {
        let listing =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0200120A:0050 0300120A:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0200120A:C350 0400120A:18EB 01 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0200120A:C352 0400120A:18EB 06 00000000:00000000 03:00000000 00000000     0        0 0 3
";
        assert_eq!(count_established(listing), 2);
    }

    #[test]
    fn dropped_packets_sum_the_drop_rules_only() {
        let listing = "Chain INPUT (policy ACCEPT 120 packets, 9000 bytes)
    pkts      bytes target     prot opt in     out     source               destination
      17     1020 DROP       all  --  *      *       172.18.0.5           0.0.0.0/0
Chain OUTPUT (policy ACCEPT 80 packets, 7000 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       4      240 DROP       all  --  *      *       0.0.0.0/0            172.18.0.5
       9      500 ACCEPT     all  --  *      *       0.0.0.0/0            172.18.0.6
";
        assert_eq!(dropped_packets(listing), 21);
    }
}
