//! The simulated backup agent (host `backup`): base backups on a schedule, the WAL archive the
//! primary pushes to, the catalogue in Redis kept in step with what is stored, and restores.
//!
//! - **Base backups**, at every multiple of `stack.backup.every` from the start of the run: the catalogue entry goes in as `running`, the
//!   agent takes the writer's whole durable state over the network (`pg_basebackup`), copies it
//!   for [`BASE_COPY`], stores it, then marks the entry `done` with the stored bytes' checksum.
//!   The `catalog-before-backup` bug writes `done` first, so a backup interrupted while it
//!   copies stays catalogued as good. Older base backups than the newest `keep`, and the WAL
//!   only they need, are pruned: catalogue entry first, then the bytes.
//! - **WAL archive**: `POST /archive` stores what a primary pushes (see `db::archive`) as
//!   segments keyed by LSN range. Entries that differ from stored ones at the same LSN mean a
//!   new timeline (a failover discarded the old primary's tail): the stored segments from there
//!   on are dropped and the new entries kept (`recovery_target_timeline = latest`). A catalogue
//!   loop records each new segment `done` and removes dropped ones.
//! - **Restore**, when the scheduler asks: the base backup and the WAL chain after it, as
//!   `stack::backup_policy` chooses them (the newest `done` base backup that ended by the target
//!   and verifies; then the catalogued, verified segments from its start up to the first gap),
//!   replayed up to the target; after [`RESTORE_COST`], both database nodes are rebuilt from it
//!   (primary, and a standby copied from it) and the scheduler restarts them.
//!
//! Every decision (which base, which WAL, what to prune) is `stack::backup_policy`'s, shared with
//! the real agent; this file is its adapter: the [`Volume`] is the policy's `BackupStorage`.
//! A base backup is an atomic snapshot at the writer's LSN `L`: catalogued with the policy's
//! half-open convention, `start_lsn = stop_lsn = L + 1` (replay goes on from `L + 1`; nothing to
//! replay for consistency), ended when the snapshot came back. A segment holding LSNs `s..=e`
//! is catalogued `[s, e + 1)`.
//!
//! The storage (the backup volume) lives outside the host, so it survives the host's crashes;
//! a crash interrupts whatever the agent was doing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use http::Method;

use super::db::{ArchivePush, Cluster, Read, ReadAnswer, now_ns};
use super::db_model::{Node, Role, WAL_BYTES_PER_COMMIT, Write};
use super::net::SimHttp;
use super::redis::SimCatalogue;
use crate::check::{BackupsState, RestoreRecord};
use crate::scenario::model::BackupConfig;
use crate::stack::backup_policy::{self, BackupStorage, Chain};
use crate::stack::bugs::Bugs;
use crate::stack::ports::{
    BackupKind, BackupState, Catalogue, CatalogueEntry, DbNode, HttpClient, HttpRequest, Lsn, checksum,
};

/// How long copying a base backup takes (it is stored only at the end).
pub const BASE_COPY: Duration = Duration::from_secs(1);
/// How long rebuilding the nodes from a base backup takes, before replaying the WAL.
pub const RESTORE_COST: Duration = Duration::from_secs(2);
/// How often the catalogue is brought in step with the storage.
const CATALOGUE_EVERY: Duration = Duration::from_millis(250);
/// Bound on one catalogue or database call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One stored base backup.
#[derive(Clone, Debug)]
struct StoredBase {
    node: Node,
    checksum: String,
}

/// One stored WAL segment.
#[derive(Clone, Debug)]
struct Segment {
    id: String,
    start: Lsn,
    entries: Vec<(Write, u64)>,
    checksum: String,
    catalogued: bool,
}

impl Segment {
    fn stop(&self) -> Lsn {
        self.start + self.entries.len() as Lsn - 1
    }

    fn entry(&self) -> CatalogueEntry {
        CatalogueEntry {
            id: self.id.clone(),
            kind: BackupKind::Wal,
            start_lsn: self.start,
            stop_lsn: self.stop() + 1,
            time_ns: self.entries[0].1,
            stop_time_ns: self.entries[self.entries.len() - 1].1,
            size: self.entries.len() as u64 * WAL_BYTES_PER_COMMIT,
            checksum: self.checksum.clone(),
            state: BackupState::Done,
        }
    }
}

/// A restore the scheduler asked for.
#[derive(Clone, Copy, Debug)]
pub struct RestoreRequest {
    /// When, ns.
    pub requested_ns: u64,
    /// The recovery target, ns; `None` for `latest`.
    pub target_ns: Option<u64>,
}

/// The backup volume and the agent's mailbox with the scheduler.
#[derive(Debug, Default)]
pub struct Volume {
    bases: BTreeMap<String, StoredBase>,
    segments: BTreeMap<Lsn, Segment>,
    /// Segments dropped from storage whose catalogue entries are still to be removed.
    dropped: Vec<String>,
    next_base: u64,
    /// A restore asked for and not started.
    pub request: Option<RestoreRequest>,
    /// When the last disaster struck, ns.
    pub last_disaster_ns: Option<u64>,
    /// Restores done (or failed).
    pub restores: Vec<RestoreRecord>,
    /// Set when a restore rebuilt the nodes: the scheduler restarts them and clears it.
    pub rebuilt: bool,
}

/// The volume, created outside the host.
pub type Backups = Arc<Mutex<Volume>>;

/// The policy's storage port: an entry verifies if the volume holds it under its id with the
/// catalogued checksum.
impl BackupStorage for Volume {
    fn verify(&self, entry: &CatalogueEntry) -> Result<(), String> {
        let stored = match entry.kind {
            BackupKind::Base => self.bases.get(&entry.id).map(|b| &b.checksum),
            BackupKind::Wal => {
                self.segments.get(&entry.start_lsn).filter(|s| s.id == entry.id).map(|s| &s.checksum)
            }
        };
        match stored {
            Some(sum) if *sum == entry.checksum => Ok(()),
            Some(_) => Err("the stored bytes do not match its checksum".into()),
            None => Err("catalogued done, but not in storage".into()),
        }
    }
}

impl Volume {
    /// What the final state needs: the stored backups' checksums and the restores.
    pub fn state(&self, catalogue: Vec<CatalogueEntry>) -> BackupsState {
        let bases = self.bases.iter().map(|(id, b)| (id.clone(), b.checksum.clone()));
        let segments = self.segments.values().map(|s| (s.id.clone(), s.checksum.clone()));
        BackupsState { catalogue, stored: bases.chain(segments).collect(), restores: self.restores.clone() }
    }

    /// Store pushed WAL: drop a diverged tail, keep the LSNs not yet stored as new segments.
    fn merge(&mut self, push: ArchivePush) {
        if push.entries.is_empty() {
            return;
        }
        let end = push.from + push.entries.len() as Lsn - 1;
        let pushed = |lsn: Lsn| &push.entries[(lsn - push.from) as usize];
        let mut diverged: Option<Lsn> = None;
        for segment in self.segments.values().filter(|s| s.stop() >= push.from && s.start <= end) {
            let overlap = segment.start.max(push.from)..=segment.stop().min(end);
            if let Some(lsn) =
                overlap.into_iter().find(|&l| segment.entries[(l - segment.start) as usize] != *pushed(l))
            {
                diverged = Some(diverged.map_or(lsn, |d| d.min(lsn)));
            }
        }
        if let Some(at) = diverged {
            let gone: Vec<Lsn> = self.segments.values().filter(|s| s.stop() >= at).map(|s| s.start).collect();
            for start in gone {
                let segment = self.segments.remove(&start).expect("listed");
                tracing::info!(segment = segment.id, at, "archive: a new timeline replaces this segment");
                self.dropped.push(segment.id);
            }
        }
        let covered =
            |lsn: Lsn| self.segments.range(..=lsn).next_back().is_some_and(|(_, s)| s.stop() >= lsn);
        let mut runs: Vec<(Lsn, Lsn)> = Vec::new();
        for lsn in push.from..=end {
            if covered(lsn) {
                continue;
            }
            match runs.last_mut() {
                Some(run) if run.1 + 1 == lsn => run.1 = lsn,
                _ => runs.push((lsn, lsn)),
            }
        }
        for (start, stop) in runs {
            let entries: Vec<(Write, u64)> = (start..=stop).map(|l| pushed(l).clone()).collect();
            let bytes = serde_json::to_vec(&entries).expect("WAL serialises");
            let id = format!("wal-{start:010}-{stop:010}");
            let segment = Segment { id, start, entries, checksum: checksum(&bytes), catalogued: false };
            self.segments.insert(start, segment);
        }
    }
}

#[derive(Clone)]
struct Agent {
    backups: Backups,
    cluster: Cluster,
    http: SimHttp,
    catalogue: Arc<SimCatalogue>,
    config: BackupConfig,
    bugs: Bugs,
}

/// The `backup` host: the archive endpoint, and the base-backup, catalogue and restore loops.
pub async fn backup_host(
    backups: Backups,
    cluster: Cluster,
    http: SimHttp,
    config: BackupConfig,
    bugs: Bugs,
) -> turmoil::Result {
    let catalogue = Arc::new(SimCatalogue::new(http.clone(), CALL_TIMEOUT));
    let agent = Agent { backups, cluster, http, catalogue, config, bugs };
    crate::stack::spawn(base_backups(agent.clone()));
    crate::stack::spawn(keep_catalogue(agent.clone()));
    crate::stack::spawn(restores(agent.clone()));
    let router = Router::new().route("/archive", post(archive)).with_state(agent);
    super::net::serve_framed(router).await
}

async fn archive(State(agent): State<Agent>, Json(push): Json<ArchivePush>) -> StatusCode {
    agent.backups.lock().expect("backups lock").merge(push);
    StatusCode::OK
}

/// A base backup at every multiple of `every`.
async fn base_backups(agent: Agent) {
    // Entries still `running` were abandoned by a crash of this host: nothing will finish them.
    if let Ok(entries) = agent.catalogue.list().await {
        for entry in entries.iter().filter(|e| e.state == BackupState::Running) {
            let _ = agent.catalogue.remove(&entry.id).await;
        }
    }
    // On a fixed grid (a cron schedule): at every multiple of `every` from the start of the run.
    let every = agent.config.every.get().as_nanos() as u64;
    loop {
        let now = now_ns();
        tokio::time::sleep(Duration::from_nanos((now / every + 1) * every - now)).await;
        if let Err(why) = base_backup(&agent).await {
            tracing::warn!(%why, "base backup failed");
        }
    }
}

async fn base_backup(agent: &Agent) -> Result<(), String> {
    let started_ns = now_ns();
    let id = {
        let mut volume = agent.backups.lock().expect("backups lock");
        volume.next_base += 1;
        format!("base-{:06}", volume.next_base)
    };
    let node = snapshot(agent).await?;
    let ended_ns = now_ns();
    let bytes = serde_json::to_vec(&node).expect("nodes serialise");
    let entry = CatalogueEntry {
        id: id.clone(),
        kind: BackupKind::Base,
        start_lsn: node.lsn() + 1,
        stop_lsn: node.lsn() + 1,
        time_ns: started_ns,
        stop_time_ns: ended_ns,
        size: bytes.len() as u64,
        checksum: String::new(),
        state: BackupState::Running,
    };
    let done = CatalogueEntry { checksum: checksum(&bytes), state: BackupState::Done, ..entry.clone() };
    let first = if agent.bugs.catalog_before_backup { &done } else { &entry };
    agent.catalogue.put(first).await.map_err(|e| format!("cataloguing {id}: {e}"))?;
    tokio::time::sleep(BASE_COPY).await;
    let stored = StoredBase { node, checksum: done.checksum.clone() };
    agent.backups.lock().expect("backups lock").bases.insert(id.clone(), stored);
    if !agent.bugs.catalog_before_backup {
        agent.catalogue.put(&done).await.map_err(|e| format!("marking {id} done: {e}"))?;
    }
    tracing::info!(backup = id, lsn = done.stop_lsn - 1, "base backup done");
    Ok(())
}

/// The writer's durable state, over the network through the db-router.
async fn snapshot(agent: &Agent) -> Result<Node, String> {
    let request = HttpRequest {
        method: Method::POST,
        authority: "db-router:80".into(),
        path: "/read".into(),
        body: Some(super::net::to_postcard(&Read::BaseBackup)),
        headers: Vec::new(),
    };
    let response = agent.http.send(request, CALL_TIMEOUT).await.map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("db-router answered {}", response.status));
    }
    match super::net::from_postcard(&response.body).map_err(|e| e.to_string())? {
        ReadAnswer::Base(node) => Ok(*node),
        _ => Err("unexpected answer to a base backup".into()),
    }
}

/// Keep the catalogue in step with the storage: new segments `done`, dropped ones removed, old
/// backups pruned (catalogue entry first, so it never names what is gone for good).
async fn keep_catalogue(agent: Agent) {
    loop {
        tokio::time::sleep(CATALOGUE_EVERY).await;
        let (dropped, new): (Vec<String>, Vec<CatalogueEntry>) = {
            let volume = agent.backups.lock().expect("backups lock");
            let live = |id: &String| volume.segments.values().any(|s| &s.id == id);
            let dropped = volume.dropped.iter().filter(|id| !live(id)).cloned().collect();
            (dropped, volume.segments.values().filter(|s| !s.catalogued).map(Segment::entry).collect())
        };
        for id in dropped {
            if agent.catalogue.remove(&id).await.is_ok() {
                agent.backups.lock().expect("backups lock").dropped.retain(|d| *d != id);
            }
        }
        for entry in new {
            if agent.catalogue.put(&entry).await.is_ok() {
                let mut volume = agent.backups.lock().expect("backups lock");
                if let Some(segment) = volume.segments.get_mut(&entry.start_lsn).filter(|s| s.id == entry.id)
                {
                    segment.catalogued = true;
                }
            }
        }
        prune(&agent).await;
    }
}

/// Drop what `backup_policy::prune` says: base backups older than the newest `keep` done ones,
/// and the segments only they need.
async fn prune(agent: &Agent) {
    let Ok(entries) = agent.catalogue.list().await else { return };
    let pruned = backup_policy::prune(&entries, agent.config.keep);
    for entry in pruned.bases.iter().chain(&pruned.wal) {
        if agent.catalogue.remove(&entry.id).await.is_err() {
            return;
        }
        let mut volume = agent.backups.lock().expect("backups lock");
        volume.bases.remove(&entry.id);
        if volume.segments.get(&entry.start_lsn).is_some_and(|s| s.id == entry.id) {
            volume.segments.remove(&entry.start_lsn);
        }
    }
}

/// Wait for the scheduler's restore requests and carry them out.
async fn restores(agent: Agent) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(request) = agent.backups.lock().expect("backups lock").request.take() else { continue };
        restore(&agent, request).await;
    }
}

async fn restore(agent: &Agent, request: RestoreRequest) {
    let lost_at_ns =
        agent.backups.lock().expect("backups lock").last_disaster_ns.unwrap_or(request.requested_ns);
    let mut record = RestoreRecord {
        requested_ns: request.requested_ns,
        lost_at_ns,
        target_ns: request.target_ns,
        ..RestoreRecord::default()
    };
    let entries = catalogue_list(agent).await;
    let target = request.target_ns.unwrap_or(u64::MAX);
    let chosen = {
        let volume = agent.backups.lock().expect("backups lock");
        let choice = backup_policy::choose_base(&entries, request.target_ns, &*volume);
        record.skipped = choice.skipped;
        choice.base.map(|base| (base.clone(), volume.bases[&base.id].node.clone()))
    };
    let Some((base, mut node)) = chosen else {
        record.stopped = "no verified base backup".into();
        tracing::warn!(skipped = ?record.skipped, "restore: no verified base backup; nothing restored");
        agent.backups.lock().expect("backups lock").restores.push(record);
        return;
    };
    tokio::time::sleep(RESTORE_COST).await;
    // The WAL as catalogued now, once the base is in place (a restore_command fetches each
    // segment when recovery needs it, so what was archived meanwhile counts too).
    let entries = catalogue_list(agent).await;
    let (segments, stopped) = {
        let volume = agent.backups.lock().expect("backups lock");
        let chain = backup_policy::wal_chain(&entries, &base, &*volume);
        replay(&volume, &chain, &mut node, target)
    };
    let base = base.id;
    record.base = Some(base.clone());
    record.segments = segments;
    record.recovered_lsn = node.lsn();
    record.recovered_until_ns = node.wal.last().map_or(0, |(_, at)| *at);
    record.stopped = stopped;
    record.completed_ns = Some(now_ns());
    tracing::info!(base, lsn = node.lsn(), segments, stopped = record.stopped, "restore: nodes rebuilt");
    rebuild(&agent.cluster, node);
    let mut volume = agent.backups.lock().expect("backups lock");
    volume.restores.push(record);
    volume.rebuilt = true;
}

/// The catalogue, asked until it answers.
async fn catalogue_list(agent: &Agent) -> Vec<CatalogueEntry> {
    loop {
        match agent.catalogue.list().await {
            Ok(entries) => return entries,
            Err(e) => {
                tracing::warn!(%e, "restore: the catalogue does not answer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Replay `chain` (verified against `volume` just now, under the same lock) onto `node`, up to
/// `target`: how many segments were used, and why replay stopped.
fn replay(volume: &Volume, chain: &Chain, node: &mut Node, target: u64) -> (u32, String) {
    let mut used = 0;
    for entry in &chain.segments {
        let segment = &volume.segments[&entry.start_lsn];
        let next = node.lsn() + 1;
        assert!(
            segment.start <= next && next <= segment.stop(),
            "the chain is contiguous from the base: {} does not hold LSN {next}",
            segment.id
        );
        let from = (next - segment.start) as usize;
        let wanted: Vec<(Write, u64)> =
            segment.entries[from..].iter().take_while(|(_, at)| *at <= target).cloned().collect();
        let reached = wanted.len() < segment.entries.len() - from;
        node.replay(&wanted);
        used += 1;
        if reached {
            return (used, "reached the recovery target".into());
        }
    }
    (used, chain.end_text(|lsn| format!("LSN {lsn}")))
}

/// Both nodes rebuilt from `restored`: `pg-primary` takes writes, `pg-replica` is its standby.
fn rebuild(cluster: &Cluster, restored: Node) {
    let primary = Node {
        name: DbNode::PgPrimary,
        role: Role::Primary,
        fenced: false,
        standby_lsn: 0,
        promoted_at_ns: None,
        standby_seen_ns: None,
        acked_alone_lsn: 0,
        sync_reported: false,
        archived_lsn: restored.lsn(),
        ..restored
    };
    let standby = Node { name: DbNode::PgReplica, role: Role::Standby, ..primary.clone() };
    let mut cluster = cluster.lock().expect("cluster lock");
    cluster.nodes.insert(DbNode::PgPrimary, primary);
    cluster.nodes.insert(DbNode::PgReplica, standby);
    cluster.writer = DbNode::PgPrimary;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::backup_policy::tests::contract::{self, Stored, TestStorage};
    use crate::stack::ports::NewInvestment;

    fn wal(keys: &[&str], t0: u64) -> Vec<(Write, u64)> {
        let invest = |key: &str| {
            Write::Invest(NewInvestment {
                key: key.into(),
                coin: "bitcoin".into(),
                amount_usd_cents: 1,
                price_usd_micros: 1,
            })
        };
        keys.iter().enumerate().map(|(i, k)| (invest(k), t0 + i as u64)).collect()
    }

    #[test]
    fn the_archive_keeps_new_lsns_and_drops_a_diverged_tail() {
        let mut volume = Volume::default();
        volume.merge(ArchivePush { from: 1, entries: wal(&["a", "b", "c"], 1) });
        volume.merge(ArchivePush { from: 1, entries: wal(&["a", "b", "c", "d"], 1) });
        let ranges = |v: &Volume| v.segments.values().map(|s| (s.start, s.stop())).collect::<Vec<_>>();
        assert_eq!(ranges(&volume), [(1, 3), (4, 4)], "what is stored is not stored twice");
        // A promoted standby had only a, b; its timeline goes on with x.
        let mut new_timeline = wal(&["a", "b"], 1);
        new_timeline.extend(wal(&["x"], 100));
        volume.merge(ArchivePush { from: 1, entries: new_timeline });
        assert_eq!(ranges(&volume), [(1, 3)]);
        assert_eq!(volume.segments[&1].entries[2].1, 100, "the new timeline's entry at LSN 3");
        assert_eq!(volume.dropped, ["wal-0000000001-0000000003", "wal-0000000004-0000000004"]);
        // A push past a hole stores what it has; replay stops at the hole.
        volume.merge(ArchivePush { from: 6, entries: wal(&["z"], 200) });
        let done: Vec<CatalogueEntry> = volume.segments.values().map(Segment::entry).collect();
        let empty = CatalogueEntry { kind: BackupKind::Base, start_lsn: 1, stop_lsn: 1, ..done[0].clone() };
        let chain = backup_policy::wal_chain(&done, &empty, &volume);
        let mut node = Node::new(DbNode::PgPrimary, Role::Primary, Default::default());
        let (used, stopped) = replay(&volume, &chain, &mut node, u64::MAX);
        assert_eq!((used, node.lsn()), (1, 3));
        assert_eq!(stopped, "a gap in the archive: nothing from LSN 4 until LSN 6");
        // Point in time: only what committed by the target.
        let mut node = Node::new(DbNode::PgPrimary, Role::Primary, Default::default());
        let (_, stopped) = replay(&volume, &chain, &mut node, 2);
        assert_eq!((node.lsn(), stopped.as_str()), (2, "reached the recovery target"));
    }

    impl TestStorage for Volume {
        fn store(&mut self, entry: &mut CatalogueEntry, stored: Stored) {
            let bytes = entry.id.as_bytes();
            (entry.checksum, entry.size) = (checksum(bytes), bytes.len() as u64);
            let held = match stored {
                Stored::Whole => entry.checksum.clone(),
                Stored::Corrupt => checksum(b"other bytes"),
                Stored::Missing => return,
            };
            let id = entry.id.clone();
            if entry.kind == BackupKind::Base {
                let node = Node::new(DbNode::PgPrimary, Role::Primary, Default::default());
                self.bases.insert(id, StoredBase { node, checksum: held });
            } else {
                let keys: Vec<String> = (entry.start_lsn..entry.stop_lsn).map(|l| format!("k{l}")).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let segment = Segment {
                    id,
                    start: entry.start_lsn,
                    entries: wal(&keys, 1),
                    checksum: held,
                    catalogued: true,
                };
                assert_eq!(segment.entry().stop_lsn, entry.stop_lsn, "half-open");
                self.segments.insert(entry.start_lsn, segment);
            }
        }
    }

    /// The simulated volume as the policy's storage: catalogued with the half-open convention
    /// (a segment holding 1..=3 is `[1, 4)`), found by id and checksum.
    #[test]
    fn the_volume_meets_the_backup_storage_contract() {
        contract::run(&mut Volume::default());
    }
}
