//! `saga`: the orders saga's invariants. Stock is conserved at every snapshot and at the end
//! (per SKU: initial = on hand + taken by live orders); every order is either *completed* (order
//! row, report row, its stock taken) or *compensated* (no order, no report, stock restored); no
//! order is compensated twice; and what clients were told matches the end state (an order answered
//! `completed` is completed; one answered 409 is not).

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckResult, FinalState, OrderRecord, Status, evidence};
use crate::history::{EntryOp, EntryType, History};

/// How an order ended, judged from the participants' state.
fn outcome(order: &OrderRecord) -> &'static str {
    match (order.order_exists, order.report_exists, order.reserved_qty) {
        (true, true, taken) if taken == order.qty => "completed",
        (false, false, 0) => "compensated",
        _ => "broken",
    }
}

/// Check the saga's invariants.
pub fn check(history: &History, state: &FinalState) -> CheckResult {
    let mut violations = Vec::new();
    // Conservation at the end: on hand + taken by orders = initial.
    let mut taken: BTreeMap<&str, u64> = BTreeMap::new();
    for order in state.orders.values() {
        *taken.entry(order.sku.as_str()).or_default() += order.reserved_qty;
    }
    for (sku, &initial) in &state.initial_stock {
        let on_hand = state.stock.get(sku).copied().unwrap_or(0);
        let held = taken.get(sku.as_str()).copied().unwrap_or(0);
        if on_hand + held != initial {
            violations.push(json!({ "kind": "stock not conserved at the end", "sku": sku, "initial": initial, "on_hand": on_hand, "taken_by_orders": held }));
        }
    }
    for snapshot in &state.stock_snapshots {
        for (sku, &initial) in &state.initial_stock {
            let on_hand = snapshot.on_hand.get(sku).copied().unwrap_or(0);
            let held = snapshot.reserved.get(sku).copied().unwrap_or(0);
            if on_hand + held != initial {
                violations.push(json!({ "kind": "stock not conserved", "at_ms": snapshot.time_ns / 1_000_000, "sku": sku, "initial": initial, "on_hand": on_hand, "reserved": held }));
            }
        }
    }
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, order) in &state.orders {
        let ended = outcome(order);
        *counts.entry(ended).or_default() += 1;
        if ended == "broken" {
            violations.push(json!({ "kind": "neither completed nor compensated", "order": id, "order_row": order.order_exists, "report_row": order.report_exists, "stock_taken": order.reserved_qty, "qty": order.qty, "trace": order.trace }));
        }
        if order.compensations > 1 {
            violations.push(json!({ "kind": "compensated more than once", "order": id, "compensations": order.compensations, "trace": order.trace }));
        }
    }
    let mut told = 0;
    for (invoke, done) in history.ops() {
        let (EntryOp::Order, Some(done)) = (invoke.op, done) else { continue };
        let Some(key) = invoke.value.key.as_deref() else { continue };
        let ended = state.orders.get(key).map_or("absent", outcome);
        let contradiction = match done.kind {
            EntryType::Ok => ended != "completed",
            EntryType::Fail => ended == "completed",
            _ => false,
        };
        told += 1;
        if contradiction {
            let answered = if done.kind == EntryType::Ok { "completed" } else { "not applied" };
            let trace = state.orders.get(key).map(|o| o.trace.clone()).unwrap_or_default();
            violations.push(json!({ "kind": "client told something else", "order": key, "client_was_told": answered, "ended": ended, "trace": trace }));
        }
    }
    let details = json!({
        "orders_count": state.orders.len(),
        "completed_count": counts.get("completed").copied().unwrap_or(0),
        "compensated_count": counts.get("compensated").copied().unwrap_or(0),
        "broken_count": counts.get("broken").copied().unwrap_or(0),
        "snapshots_count": state.stock_snapshots.len(),
        "answered_orders_count": told,
        "violation_count": violations.len(),
        "violations": evidence(violations.clone()),
    });
    let (status, summary) = if let Some(first) = violations.first() {
        let kind = first["kind"].as_str().unwrap_or("violation");
        (Status::Fail, format!("{} saga violations, first: {kind}", violations.len()))
    } else if state.orders.is_empty() {
        (Status::Unknown, "no order reached the saga: nothing to check".to_owned())
    } else {
        let (c, k) = (counts.get("completed").unwrap_or(&0), counts.get("compensated").unwrap_or(&0));
        (
            Status::Pass,
            format!("stock conserved; {c} orders completed and {k} compensated, each exactly once"),
        )
    };
    CheckResult { name: "saga".into(), status, summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::order;

    fn state_with(orders: &[(&str, OrderRecord)], on_hand: u64) -> FinalState {
        FinalState {
            initial_stock: [("sku-1".to_string(), 10)].into(),
            stock: [("sku-1".to_string(), on_hand)].into(),
            orders: orders.iter().map(|(k, o)| (k.to_string(), o.clone())).collect(),
            ..Default::default()
        }
    }

    fn completed(qty: u64) -> OrderRecord {
        OrderRecord {
            sku: "sku-1".into(),
            qty,
            reserved_qty: qty,
            order_exists: true,
            report_exists: true,
            ..Default::default()
        }
    }

    fn compensated(qty: u64) -> OrderRecord {
        OrderRecord { sku: "sku-1".into(), qty, compensations: 1, ..Default::default() }
    }

    #[test]
    fn conserved_completed_and_compensated_orders_pass() {
        let mut history = History::new();
        order(&mut history, 1, "o1", EntryType::Ok);
        order(&mut history, 2, "o2", EntryType::Fail);
        let state = state_with(&[("o1", completed(3)), ("o2", compensated(2))], 7);
        assert_eq!(check(&history, &state).status, Status::Pass);
    }

    #[test]
    fn each_violation_fails() {
        let history = History::new();
        // Stock taken for an order that does not exist (skipped compensation).
        let leak = OrderRecord { reserved_qty: 2, ..compensated(2) };
        let result = check(&history, &state_with(&[("o1", leak)], 8));
        assert_eq!(result.status, Status::Fail);
        assert_eq!(result.details["violations"]["items"][0]["kind"], "neither completed nor compensated");
        // Not conserved.
        assert_eq!(check(&history, &state_with(&[("o1", completed(3))], 9)).status, Status::Fail);
        // Compensated twice.
        let twice = OrderRecord { compensations: 2, ..compensated(2) };
        assert_eq!(check(&history, &state_with(&[("o1", twice)], 10)).status, Status::Fail);
        // Told completed, ended compensated.
        let mut told = History::new();
        order(&mut told, 1, "o1", EntryType::Ok);
        let result = check(&told, &state_with(&[("o1", compensated(2))], 10));
        assert_eq!(result.details["violations"]["items"][0]["kind"], "client told something else");
    }
}
