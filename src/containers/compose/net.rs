//! Network cuts between services, Pumba's way: a short-lived helper container joins the
//! target's network namespace (`network_mode: container:ID`, NET_ADMIN) and runs iptables
//! there, so the user's image needs neither iptables nor capabilities. The helper is
//! `shakedown/debian:bookworm` and carries the run's labels.
//!
//! A cut is Jepsen's: for every pair across the two sides, each drops the other's packets
//! coming in and going out, for every address the peer has (one per network it is on);
//! `one_way` drops only what `a` sends to `b` (so TCP fails both ways, UDP one way). The rules
//! live in two chains of their own per cut and target (`sd-cutN-in` / `-out`, jumped to from
//! INPUT and OUTPUT), so cuts overlap cleanly and their packet counts are theirs. Only the
//! `filter` table is touched: Docker's DNS lives in the container's `nat` table.
//!
//! A container that is not running when the cut starts has no address and is skipped (it is
//! cut off already); one that restarts during the cut comes back in a new namespace, without
//! the rules — [`Project::heal`] finds nothing to delete there and counts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use testcontainers::bollard::models::{ContainerCreateBody, HostConfig};
use testcontainers::bollard::query_parameters::{
    CreateContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
    WaitContainerOptions,
};

use super::super::layout::HOST_LABEL;
use super::project::Project;
use super::{ComposeError, debian};

/// The longest one helper container may take (create, iptables, remove).
pub const HELPER_MAX: Duration = Duration::from_secs(30);

/// A cut in force: what [`Project::heal`] undoes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Its number in the project (the chains' names).
    number: u64,
    /// Each target's rules.
    targets: Vec<Target>,
    /// Services left out: not running when the cut started.
    pub skipped: Vec<String>,
}

impl Cut {
    /// The services whose namespaces hold the cut's rules.
    pub fn services(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.service.as_str()).collect()
    }
}

/// The rules of a cut in one service's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    service: String,
    container: String,
    /// Drop packets coming from these addresses.
    drop_from: BTreeSet<String>,
    /// Drop packets going to these addresses.
    drop_to: BTreeSet<String>,
}

impl Project {
    /// Make sure the helper image exists, building it if needed (about half a minute): call it
    /// before the load starts when the plan has cuts, so the first cut is not late.
    pub fn prepare_partitions(&self, progress: &mut dyn FnMut(&str)) -> Result<(), ComposeError> {
        debian::ensure(progress).map_err(ComposeError::from)
    }

    /// Cut `a` from `b` (see the module doc); what was cut, for [`Project::heal`].
    pub async fn partition(&self, a: &[String], b: &[String], one_way: bool) -> Result<Cut, ComposeError> {
        let (addresses, skipped) = self.addresses_of(a.iter().chain(b)).await?;
        if self.docker.inspect_image(debian::DEBIAN_IMAGE).await.is_err() {
            self.prepare_partitions(&mut |line| tracing::info!("{line}"))?;
        }
        let number = self.cuts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut targets = Vec::new();
        for (service, (drop_from, drop_to)) in plan(a, b, one_way, &addresses) {
            let container = self.id(&service)?.to_owned();
            targets.push(Target { service, container, drop_from, drop_to });
        }
        let applied = futures::future::join_all(
            targets.iter().map(|t| self.helper(&t.service, &t.container, apply_script(number, t))),
        )
        .await;
        let cut = Cut { number, targets, skipped };
        for (target, result) in cut.targets.iter().zip(applied) {
            match result {
                Ok((0, _)) => {}
                Ok((code, output)) => {
                    self.heal(&cut).await;
                    return Err(ComposeError::Engine(format!(
                        "iptables in {}'s network namespace exited {code}: {}",
                        target.service,
                        output.trim()
                    )));
                }
                Err(error) => {
                    self.heal(&cut).await;
                    return Err(error);
                }
            }
        }
        Ok(cut)
    }

    /// Each running service's addresses, and the services that have none (not running).
    pub(super) async fn addresses_of(
        &self,
        services: impl Iterator<Item = &String>,
    ) -> Result<(BTreeMap<String, Vec<String>>, Vec<String>), ComposeError> {
        let mut addresses = BTreeMap::new();
        let mut skipped = Vec::new();
        for service in services {
            let found =
                if self.running(service).await? { self.addresses(service).await? } else { Vec::new() };
            if found.is_empty() {
                skipped.push(service.clone());
            } else {
                addresses.insert(service.clone(), found);
            }
        }
        Ok((addresses, skipped))
    }

    /// Undo a cut; the packets its rules dropped, counted before they are deleted. A target
    /// that stopped or restarted meanwhile lost the rules with its namespace: nothing is
    /// counted or deleted there, and that is not an error.
    pub async fn heal(&self, cut: &Cut) -> u64 {
        let healed = futures::future::join_all(
            cut.targets.iter().map(|t| self.helper(&t.service, &t.container, heal_script(cut.number))),
        )
        .await;
        let mut dropped = 0;
        for (target, result) in cut.targets.iter().zip(healed) {
            match result {
                Ok((_, listing)) => dropped += dropped_packets(&listing),
                Err(why) => {
                    tracing::info!(service = target.service, %why, "heal: its rules are gone already")
                }
            }
        }
        dropped
    }

    /// A helper container in `container`'s network namespace with NET_ADMIN, running `cmd`
    /// with `binds` mounted, labelled as the run's with `host` as its host label.
    pub(super) fn helper_body(
        &self,
        host: &str,
        container: &str,
        cmd: Vec<String>,
        binds: Vec<String>,
    ) -> ContainerCreateBody {
        let mut labels: std::collections::HashMap<String, String> = self.labels.map().into_iter().collect();
        labels.insert(HOST_LABEL.to_owned(), host.to_owned());
        ContainerCreateBody {
            image: Some(debian::DEBIAN_IMAGE.to_owned()),
            cmd: Some(cmd),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{container}")),
                cap_add: Some(vec!["NET_ADMIN".to_owned()]),
                binds: (!binds.is_empty()).then_some(binds),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Run `script` (sh) in a helper container in `container`'s network namespace; its exit
    /// code and output. The helper is removed whatever happens.
    async fn helper(
        &self,
        service: &str,
        container: &str,
        script: String,
    ) -> Result<(i64, String), ComposeError> {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), script];
        let body = self.helper_body(&format!("cut/{service}"), container, cmd, Vec::new());
        let fail = |what: &str, e: testcontainers::bollard::errors::Error| {
            ComposeError::Engine(format!("network helper for {service}: {what}: {e}"))
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|e| fail("create", e))?;
        let run = async {
            self.docker
                .start_container(&created.id, None::<StartContainerOptions>)
                .await
                .map_err(|e| fail("start", e))?;
            let mut waited = self.docker.wait_container(&created.id, None::<WaitContainerOptions>);
            let code = match waited.next().await {
                Some(Ok(response)) => response.status_code,
                // A non-zero exit arrives as an error carrying the code.
                Some(Err(testcontainers::bollard::errors::Error::DockerContainerWaitError {
                    code, ..
                })) => code,
                Some(Err(e)) => return Err(fail("wait", e)),
                None => -1,
            };
            let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
            let mut logs = self.docker.logs(&created.id, Some(options));
            let mut text = String::new();
            while let Some(Ok(chunk)) = logs.next().await {
                text.push_str(&chunk.to_string());
            }
            Ok((code, text))
        };
        let outcome = tokio::time::timeout(HELPER_MAX, run).await.unwrap_or_else(|_| {
            Err(ComposeError::Engine(format!(
                "network helper for {service} did not finish within {} s (HELPER_MAX)",
                HELPER_MAX.as_secs()
            )))
        });
        let remove = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let _ = self.docker.remove_container(&created.id, Some(remove)).await;
        outcome
    }
}

/// Which addresses each service must drop, from and to (pure): for every pair across the sides
/// (a service is never cut from itself), `x` drops what goes to `y` and `y` what comes from
/// `x`; both ways unless `one_way`. Services without addresses are left out.
pub(super) fn plan(
    a: &[String],
    b: &[String],
    one_way: bool,
    addresses: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut rules: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for x in a.iter().filter(|x| addresses.contains_key(*x)) {
        for y in b.iter().filter(|y| *y != x && addresses.contains_key(*y)) {
            rules.entry(x.clone()).or_default().1.extend(addresses[y].iter().cloned());
            rules.entry(y.clone()).or_default().0.extend(addresses[x].iter().cloned());
            if !one_way {
                rules.entry(x.clone()).or_default().0.extend(addresses[y].iter().cloned());
                rules.entry(y.clone()).or_default().1.extend(addresses[x].iter().cloned());
            }
        }
    }
    rules
}

fn chains(number: u64) -> (String, String) {
    (format!("sd-cut{number}-in"), format!("sd-cut{number}-out"))
}

/// The shell script that installs a target's rules: two chains, filled, then jumped to first
/// thing in INPUT and OUTPUT. `-w` waits for the xtables lock.
fn apply_script(number: u64, target: &Target) -> String {
    let (input, output) = chains(number);
    let mut lines =
        vec!["set -e".to_owned(), format!("iptables -w -N {input}"), format!("iptables -w -N {output}")];
    lines.extend(target.drop_from.iter().map(|ip| format!("iptables -w -A {input} -s {ip} -j DROP")));
    lines.extend(target.drop_to.iter().map(|ip| format!("iptables -w -A {output} -d {ip} -j DROP")));
    lines.push(format!("iptables -w -I INPUT 1 -j {input}"));
    lines.push(format!("iptables -w -I OUTPUT 1 -j {output}"));
    lines.join("\n")
}

/// The shell script that lists a cut's chains with their counters, then deletes them; missing
/// chains (a restarted namespace) are not an error.
fn heal_script(number: u64) -> String {
    let (input, output) = chains(number);
    let mut lines = Vec::new();
    for (hook, chain) in [("INPUT", &input), ("OUTPUT", &output)] {
        lines.push(format!("iptables -w -n -v -x -L {chain} 2>/dev/null"));
        lines.push(format!("iptables -w -D {hook} -j {chain} 2>/dev/null"));
        lines.push(format!("iptables -w -F {chain} 2>/dev/null"));
        lines.push(format!("iptables -w -X {chain} 2>/dev/null"));
    }
    lines.push("exit 0".to_owned());
    lines.join("\n")
}

/// Packets counted by the DROP rules of `iptables -n -v -x -L` listings.
fn dropped_packets(listing: &str) -> u64 {
    listing
        .lines()
        .filter(|line| line.split_whitespace().nth(2) == Some("DROP"))
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn addresses() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("pg1".to_string(), vec!["10.0.0.2".to_string(), "10.1.0.2".to_string()]),
            ("pg2".to_string(), vec!["10.0.0.3".to_string()]),
            ("etcd".to_string(), vec!["10.0.0.4".to_string()]),
        ])
    }

    // Goal: each side drops every address of every peer across the cut, on every network, both
    // ways; nobody is cut from itself; a service with no address is left out.
    #[test]
    fn a_cut_drops_every_peer_address_both_ways() {
        let rules = plan(&names(&["pg1"]), &names(&["pg2", "etcd", "pg1", "gone"]), false, &addresses());
        assert_eq!(rules.keys().collect::<Vec<_>>(), ["etcd", "pg1", "pg2"]);
        let both = set(&["10.0.0.3", "10.0.0.4"]);
        assert_eq!(rules["pg1"], (both.clone(), both));
        let pg1 = set(&["10.0.0.2", "10.1.0.2"]);
        assert_eq!(rules["pg2"], (pg1.clone(), pg1.clone()));
        assert_eq!(rules["etcd"], (pg1.clone(), pg1));
    }

    #[test]
    fn a_one_way_cut_drops_only_what_a_sends_to_b() {
        let rules = plan(&names(&["pg1"]), &names(&["pg2"]), true, &addresses());
        assert_eq!(rules["pg1"], (set(&[]), set(&["10.0.0.3"])));
        assert_eq!(rules["pg2"], (set(&["10.0.0.2", "10.1.0.2"]), set(&[])));
    }

    // Goal: the scripts touch only the filter table and only the cut's own chains, and heal
    // survives a namespace without them.
    #[test]
    fn scripts_use_their_own_chains_in_the_filter_table() {
        let target = Target {
            service: "pg1".into(),
            container: "abc".into(),
            drop_from: set(&["10.0.0.3"]),
            drop_to: set(&["10.0.0.4"]),
        };
        let apply = apply_script(7, &target);
        assert!(apply.starts_with("set -e\n"));
        assert!(apply.contains("iptables -w -A sd-cut7-in -s 10.0.0.3 -j DROP"));
        assert!(apply.contains("iptables -w -A sd-cut7-out -d 10.0.0.4 -j DROP"));
        assert!(apply.ends_with("iptables -w -I OUTPUT 1 -j sd-cut7-out"));
        let heal = heal_script(7);
        assert!(heal.ends_with("exit 0") && !heal.contains("set -e"));
        for script in [&apply, &heal] {
            assert!(!script.contains("-t ") && !script.contains("nat"), "{script}");
            assert!(!script.contains("-F\n") && !script.lines().any(|l| l.trim_end() == "iptables -w -F"));
        }
        assert!(chains(7).0.len() <= 28, "iptables chain names are at most 28 characters");
    }

    #[test]
    fn dropped_packets_sum_the_drop_rules_only() {
        let listing = "Chain sd-cut1-in (1 references)
    pkts      bytes target     prot opt in     out     source               destination
      17     1020 DROP       all  --  *      *       172.18.0.5           0.0.0.0/0
Chain sd-cut1-out (1 references)
    pkts      bytes target     prot opt in     out     source               destination
       4      240 DROP       all  --  *      *       0.0.0.0/0            172.18.0.5
       9      500 ACCEPT     all  --  *      *       0.0.0.0/0            172.18.0.6
";
        assert_eq!(dropped_packets(listing), 21);
        assert_eq!(dropped_packets(""), 0);
    }
}
