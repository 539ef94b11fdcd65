//! The hosts and host groups of the stack, as a scenario names them (DESIGN.md, "Topology").
//!
//! This is the one list every other module uses: validation suggests names from it, the
//! backends start one host per entry, and faults expand a group into its hosts here.
//!
//! [`Topology::new`] is the whole stack (what a scenario may name); [`Topology::needed`] keeps
//! only what one scenario uses, which is what the backends start: a run that never orders needs
//! no saga participants, and on the simulation every idle host still costs a poll per tick.

use super::model::{Op, StackConfig};

/// A host of the stack and the group it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// The host's name, e.g. `pg-primary` or `api-2`.
    pub name: String,
    /// Its group (`edge`, `api`, `deps`, `apps`, `workers`, `queue`, `db`, `control`,
    /// `storage`, `meta`, `backup`), or `None`
    /// for the client, which is never faulted.
    pub group: Option<&'static str>,
}

/// Every host of one stack, in a fixed order.
#[derive(Clone, Debug)]
pub struct Topology {
    hosts: Vec<HostEntry>,
}

/// The name of the host that runs the load generator. It is never faulted.
pub const CLIENT: &str = "client";

/// The groups a fault may name, in a fixed order.
pub const GROUPS: [&str; 11] =
    ["edge", "api", "deps", "apps", "workers", "queue", "db", "control", "storage", "meta", "backup"];

impl Topology {
    /// The topology for a stack configuration (`api_replicas` API hosts, `workers` workers; the
    /// backup agent and its catalogue only with `backup`).
    pub fn new(stack: &StackConfig) -> Topology {
        let mut hosts = vec![HostEntry { name: CLIENT.into(), group: None }];
        let mut add = |name: String, group: &'static str| {
            hosts.push(HostEntry { name, group: Some(group) });
        };
        add("lb".into(), "edge");
        for i in 1..=stack.api_replicas {
            add(format!("api-{i}"), "api");
        }
        add("pricefeed".into(), "deps");
        for name in ["inventory", "ordersvc", "reports"] {
            add(name.into(), "apps");
        }
        for i in 1..=stack.workers {
            add(format!("worker-{i}"), "workers");
        }
        add("broker".into(), "queue");
        for name in ["pg-primary", "pg-replica", "db-router"] {
            add(name.into(), "db");
        }
        add("watchdog".into(), "control");
        add("objects".into(), "storage");
        if stack.backup.is_some() {
            add("redis".into(), "meta");
            add("backup".into(), "backup");
        }
        Topology { hosts }
    }

    /// A compose stack's hosts: its services, in the order given (no groups: a compose
    /// scenario declares its own).
    pub fn of_services(services: impl IntoIterator<Item = String>) -> Topology {
        Topology { hosts: services.into_iter().map(|name| HostEntry { name, group: None }).collect() }
    }

    /// The hosts a scenario uses: the ones every op goes through (`client`, `lb`, the API
    /// replicas, the database group and the watchdog that fails it over), the ones its ops reach
    /// (`invest` the price feed; `order` the three saga participants; `query` the broker and the
    /// workers), and every host in `named` (what its faults hit), so a fault never names a host
    /// that is not there. The broker and the workers come together: a queue without consumers,
    /// or consumers without their queue, would only show a fault doing nothing. Order is that of
    /// [`Topology::new`].
    pub fn needed(stack: &StackConfig, ops: &[Op], named: &[String]) -> Topology {
        let full = Topology::new(stack);
        let mut groups = vec!["edge", "api", "db", "control"];
        groups.extend(["meta", "backup"]);
        let mut hosts: Vec<&str> = named.iter().map(String::as_str).collect();
        for op in ops {
            match op {
                Op::Invest => hosts.push("pricefeed"),
                Op::History => {}
                Op::Order => groups.push("apps"),
                Op::Query => groups.extend(["queue", "workers"]),
                // The bytes go to the object store, the events to the subscribers on the workers.
                Op::Upload => groups.extend(["storage", "queue", "workers"]),
            }
        }
        let in_group =
            |host: &str, group: &str| full.hosts.iter().any(|h| h.name == host && h.group == Some(group));
        if hosts.iter().any(|h| in_group(h, "queue") || in_group(h, "workers")) {
            groups.extend(["queue", "workers"]);
        }
        let keep =
            |h: &HostEntry| h.group.is_none_or(|g| groups.contains(&g)) || hosts.contains(&h.name.as_str());
        Topology { hosts: full.hosts.iter().filter(|h| keep(h)).cloned().collect() }
    }

    /// Every host, the client first.
    pub fn hosts(&self) -> &[HostEntry] {
        &self.hosts
    }

    /// The hosts a fault target names: a host, or every host of a group. `None` if the name is
    /// neither (or is the client, which cannot be faulted).
    pub fn resolve(&self, target: &str) -> Option<Vec<String>> {
        if GROUPS.contains(&target) {
            let members = self.hosts.iter().filter(|h| h.group == Some(target));
            return Some(members.map(|h| h.name.clone()).collect());
        }
        self.hosts.iter().find(|h| h.name == target && h.group.is_some()).map(|h| vec![h.name.clone()])
    }

    /// Every name a fault may use: the groups, then the faultable hosts.
    pub fn target_names(&self) -> Vec<String> {
        let hosts = self.hosts.iter().filter(|h| h.group.is_some()).map(|h| h.name.clone());
        let groups = GROUPS.iter().filter(|g| self.hosts.iter().any(|h| h.group == Some(**g)));
        groups.map(|g| g.to_string()).chain(hosts).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_expand_and_the_client_is_not_a_target() {
        let topology = Topology::new(&StackConfig { api_replicas: 3, ..StackConfig::default() });
        assert_eq!(topology.resolve("api").unwrap(), ["api-1", "api-2", "api-3"]);
        assert_eq!(topology.resolve("db").unwrap(), ["pg-primary", "pg-replica", "db-router"]);
        assert_eq!(topology.resolve("pg-primary").unwrap(), ["pg-primary"]);
        assert!(topology.resolve("client").is_none());
        assert!(topology.resolve("pg-primray").is_none());
    }

    fn names(topology: &Topology) -> Vec<&str> {
        topology.hosts().iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn a_scenario_starts_only_the_hosts_its_ops_and_faults_use() {
        let stack = StackConfig { api_replicas: 2, workers: 2, ..StackConfig::default() };
        let base = ["client", "lb", "api-1", "api-2", "pg-primary", "pg-replica", "db-router", "watchdog"];
        let only = Topology::needed(&stack, &[Op::History], &[]);
        assert_eq!(names(&only), base);
        let invest = Topology::needed(&stack, &[Op::Invest, Op::History], &[]);
        assert_eq!(names(&invest).len(), base.len() + 1);
        assert!(names(&invest).contains(&"pricefeed"));
        let all = Topology::needed(&stack, &Op::ALL, &[]);
        assert_eq!(names(&all), names(&Topology::new(&stack)));
        // A fault keeps the host it names; a queue host brings its consumers (and they it).
        let faulted = Topology::needed(&stack, &[Op::History], &["inventory".into(), "worker-2".into()]);
        let extra: Vec<&str> = names(&faulted).into_iter().filter(|h| !base.contains(h)).collect();
        assert_eq!(extra, ["inventory", "worker-1", "worker-2", "broker"]);
        let backups = StackConfig { backup: Some(Default::default()), ..stack };
        let with_backups = Topology::needed(&backups, &[Op::History], &[]);
        let extra: Vec<&str> = names(&with_backups).into_iter().filter(|h| !base.contains(h)).collect();
        assert_eq!(extra, ["redis", "backup"]);
    }
}
