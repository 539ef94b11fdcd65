//! Reading the final state once the run has drained: from the durable storage of the node the
//! watchdog last made the writer (the final primary), plus any writes the other node committed
//! after that node was promoted (split brain).

use super::world::World;
use crate::check::{FileRecord, FinalState, OrderRecord, QueryRecord, StoredObject};
use crate::faults::Plan;
use crate::workload::CATALOG;

/// The stack's data at the end of the run.
pub(super) fn read_final_state(world: &World, _plan: &Plan) -> FinalState {
    let cluster = world.cluster.lock().expect("cluster lock");
    let primary = &cluster.nodes[&cluster.writer];
    let other = &cluster.nodes[&cluster.writer.peer()];
    let tables = &primary.tables;
    let mut state = FinalState {
        primary: cluster.writer.host().into(),
        initial_stock: CATALOG.iter().map(|(s, q)| (s.to_string(), *q)).collect(),
        stock: tables.stock.clone(),
        ..FinalState::default()
    };
    for key in tables.investment_keys.keys() {
        *state.investments.entry(key.clone()).or_default() += 1;
    }
    if cluster.archiving.is_some() {
        let catalogue = world.redis.lock().expect("redis lock").values().cloned().collect();
        state.backups = Some(world.backups.lock().expect("backups lock").state(catalogue));
    }
    // Writes the other node committed after the final primary was promoted never reached it.
    if let Some(promoted_ns) = primary.promoted_at_ns {
        for (write, at_ns) in &other.wal {
            if let super::db_model::Write::Invest(new) = write
                && *at_ns >= promoted_ns
                && !tables.investment_keys.contains_key(&new.key)
            {
                state.diverged_investments.push(new.key.clone());
            }
        }
    }
    let mut order_ids: Vec<&String> =
        tables.reservations.keys().chain(tables.orders.keys()).chain(tables.reports.keys()).collect();
    order_ids.sort();
    order_ids.dedup();
    for id in order_ids {
        let reservation = tables.reservations.get(id);
        let order = tables.orders.get(id);
        let report = tables.reports.get(id);
        let sku = reservation
            .map(|r| r.sku.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| order.map(|o| o.sku.clone()))
            .unwrap_or_default();
        let qty = order.map(|o| o.qty).or_else(|| reservation.map(|r| r.qty)).unwrap_or(0);
        state.orders.insert(
            id.clone(),
            OrderRecord {
                sku,
                qty,
                reserved_qty: reservation.filter(|r| !r.restocked).map_or(0, |r| r.qty),
                order_exists: order.is_some_and(|o| !o.cancelled),
                report_exists: report.is_some_and(|r| !r.cancelled),
                compensations: tables.restocks.get(id).copied().unwrap_or(0),
                trace: tables.saga.get(id).cloned().unwrap_or_default(),
            },
        );
    }
    for row in &tables.queries {
        let effects = tables.effects.get(&row.id).copied().unwrap_or(0);
        state
            .queries
            .insert(row.key.clone(), QueryRecord { id: row.id, status: row.status.clone(), effects });
    }
    for row in &tables.files {
        let record = FileRecord {
            id: row.id,
            object_key: row.file.object_key.clone(),
            size: row.file.size,
            checksum: row.file.checksum.clone(),
            thumbnail: row.thumbnail.clone(),
            thumbnails_applied: tables.thumbnails_applied.get(&row.id).copied().unwrap_or(0),
            audits: tables.audit.get(&row.id).map_or(0, |events| events.len() as u32),
        };
        state.files.insert(row.file.key.clone(), record);
    }
    let objects = world.objects.lock().expect("objects lock");
    for info in super::objects::info(&objects) {
        state.objects.insert(info.key, StoredObject { size: info.size, checksum: info.checksum });
    }
    state
}
