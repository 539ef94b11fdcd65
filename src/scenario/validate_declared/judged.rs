//! What a compose scenario judges at the end, validated: the final reads of its `write` ops,
//! the checks that need ops of a kind, the SQL invariants and the conservation sums across
//! clients.

use super::*;

pub(super) fn final_reads(scenario: &Scenario, report: &mut Report) {
    let writes: Vec<&str> = scenario
        .workload
        .iter()
        .filter(|l| l.kind == Some(OpKind::Write))
        .filter_map(|l| l.name.as_deref())
        .collect();
    for (op, read) in &scenario.final_state {
        let path = format!("final_state.{op}");
        if !writes.contains(&op.as_str()) {
            let hint = if writes.is_empty() {
                "no op has `kind: write`".to_owned()
            } else {
                format!("the write ops are {}", one_of(&writes))
            };
            report.error(&path, format!("`{op}` is not a `write` op"), Some(hint));
        }
        let sql_client = client_kind(scenario, &read.client, &format!("{path}.client"), report);
        statement(sql_client, read.sql.as_deref(), read.request.as_ref(), &path, false, report);
        if read.request.is_some() && read.keys_from.is_none() {
            report.error(&path, "a final read over HTTP needs `keys_from`", None);
        }
        if !read.per_node.is_empty() && read.sql.is_none() {
            report.error(&format!("{path}.per_node"), "`per_node` reads nodes over SQL", None);
        }
    }
    if scenario.checks.durability.is_some() {
        for op in writes.iter().filter(|op| !scenario.final_state.contains_key(**op)) {
            let hint =
                Some(format!("add `final_state: {{ {op}: {{ client: …, sql: \"SELECT key FROM …\" }} }}`"));
            report.error("checks.durability", format!("durability needs a final read of `{op}`"), hint);
        }
    }
}

pub(super) fn checks(scenario: &Scenario, report: &mut Report) {
    let has = |kind: OpKind| scenario.workload.iter().any(|l| l.kind == Some(kind));
    let needs = [
        ("durability", scenario.checks.durability.is_some(), OpKind::Write, "a `write` op"),
        ("staleness", scenario.checks.staleness.is_some(), OpKind::Read, "a `read` op"),
        ("delivery", scenario.checks.delivery.is_some(), OpKind::Submit, "a `submit` op"),
    ];
    for (check, on, kind, what) in needs {
        if on && !has(kind) {
            let hint = Some(format!("add {what} to the workload, or remove the check"));
            report.error(
                &format!("checks.{check}"),
                format!("`{check}` has nothing to judge without {what}"),
                hint,
            );
        }
    }
    for (check, on) in [
        ("saga", scenario.checks.saga.is_some()),
        ("files", scenario.checks.files.is_some()),
        ("restore", scenario.checks.restore.is_some()),
    ] {
        if on {
            let hint = Some("on a compose stack, state such properties as `checks.invariants` (SQL that returns true while they hold)".into());
            report.error(
                &format!("checks.{check}"),
                format!("`{check}` judges the built-in stack's data"),
                hint,
            );
        }
    }
    for (i, invariant) in scenario.checks.invariants.iter().enumerate() {
        let path = format!("checks.invariants[{i}]");
        if scenario.checks.invariants[..i].iter().any(|o| o.name == invariant.name) {
            report.error(
                &format!("{path}.name"),
                format!("another invariant is named `{}`", invariant.name),
                None,
            );
        }
        if client_kind(scenario, &invariant.client, &format!("{path}.client"), report) == Some(false) {
            report.error(
                &format!("{path}.client"),
                "an invariant is a query: it needs an `sql` client",
                None,
            );
        }
        template(&invariant.sql, &format!("{path}.sql"), false, false, report);
        if invariant.every.get().is_zero() {
            report.error(&format!("{path}.every"), "`every` is 0", None);
        }
    }
    conservation(scenario, report);
}

/// Every conservation check: a unique name, at least one part, each part an SQL query (no
/// placeholders) through a declared SQL client.
fn conservation(scenario: &Scenario, report: &mut Report) {
    let specs = &scenario.checks.conservation;
    for (i, spec) in specs.iter().enumerate() {
        let path = format!("checks.conservation[{i}]");
        if specs[..i].iter().any(|o| o.name == spec.name) {
            report.error(
                &format!("{path}.name"),
                format!("another conservation check is named `{}`", spec.name),
                None,
            );
        }
        if spec.parts.is_empty() {
            let hint = Some(
                "list each quantity to add up, e.g. `parts: [{ client: db, sql: \"SELECT SUM(n) FROM t\" }]`"
                    .into(),
            );
            report.error(&format!("{path}.parts"), "a conservation check needs at least one part", hint);
        }
        for (j, part) in spec.parts.iter().enumerate() {
            let at = format!("{path}.parts[{j}]");
            if client_kind(scenario, &part.client, &format!("{at}.client"), report) == Some(false) {
                let hint = Some("a part is read with SQL: name a client declared with `sql:`".into());
                report.error(
                    &format!("{at}.client"),
                    "a conservation part is a query: it needs an `sql` client",
                    hint,
                );
            }
            template(&part.sql, &format!("{at}.sql"), false, false, report);
        }
    }
}
