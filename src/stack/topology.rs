//! The hosts and host groups of the stack, as a scenario names them (DESIGN.md, "Topology").
//!
//! This is the one list every other module uses: validation suggests names from it, the
//! backends start one host per entry, and faults expand a group into its hosts here.

use crate::scenario::model::StackConfig;

/// A host of the stack and the group it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// The host's name, e.g. `pg-primary` or `api-2`.
    pub name: String,
    /// Its group (`edge`, `api`, `deps`, `apps`, `workers`, `queue`, `db`, `control`), or `None`
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
pub const GROUPS: [&str; 8] = ["edge", "api", "deps", "apps", "workers", "queue", "db", "control"];

impl Topology {
    /// The topology for a stack configuration (`api_replicas` API hosts, `workers` workers).
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
        Topology { hosts }
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
        GROUPS.iter().map(|g| g.to_string()).chain(hosts).collect()
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
}
