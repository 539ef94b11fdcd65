//! `report.html`: one self-contained page a reviewer reads in ten seconds — verdict first, then
//! the SLO table, the checks with their evidence, latency and throughput over time with the fault
//! windows shaded, the latency distribution, the fault timeline with what each fault hit, and the
//! replay command. Inline CSS and SVG only: no script, no fonts, no network. Built from the
//! aggregated report, so its size does not grow with the number of operations.

use std::fmt::Write;

use super::junit::escape;
use super::model::Report;
use super::svg::{Band, Series, lines, stacked};
use crate::check::Status;
use crate::scenario::model::Phase;

const STYLE: &str = r#"
:root{--ink:#1d2330;--mute:#5b6473;--line:#d9dde3;--pass:#1b7f3b;--fail:#b3261e;--unknown:#8a6100;--band:#f2b8b5}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fff}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:14px;margin:14px 0 4px}
.banner{padding:16px 24px;color:#fff}.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}.banner.unknown{background:var(--unknown)}.banner.caught{background:#245fa8}.banner.missed{background:#7a1c17}
.intro{max-width:1240px;margin:0 auto;padding:16px 24px 0}.banner .verdict{font-size:28px;font-weight:700;letter-spacing:.04em}.banner p{margin:4px 0 0;font-size:15px}
.meta{color:var(--mute);margin:10px 0 0}.meta code{color:var(--ink)}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f6f8;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:var(--pass);font-weight:700}.bad{color:var(--fail);font-weight:700}.warn{color:var(--unknown);font-weight:700}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:700;text-transform:uppercase}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.unknown{background:var(--unknown)}
.panel{border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:10px 0;break-inside:avoid}
.panel.fail{border-left:5px solid var(--fail)}.panel.pass{border-left:5px solid var(--pass)}.panel.unknown{border-left:5px solid var(--unknown)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:6px 0}dt{color:var(--mute)}dd{margin:0}
.chart{width:100%;height:auto;display:block}.chart .grid{stroke:#e8eaee}.chart .tick{font-size:10px;fill:var(--mute)}
.chart .band{fill:var(--band);opacity:.45}.chart .band-label{font-size:10px;fill:#7a1c17}
.legend span{margin-right:14px}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}pre{background:#f5f6f8;padding:8px 10px;border-radius:4px;white-space:pre-wrap;word-break:break-all}
.more{color:var(--mute);font-size:12px}
@media print{.banner{-webkit-print-color-adjust:exact;print-color-adjust:exact}main{padding:0}h2{break-after:avoid}.panel,table,svg{break-inside:avoid}}
"#;

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Unknown => "unknown",
    }
}

/// Render the report as one self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let title = format!(
        "{} — seed {} — {}",
        report.scenario.name,
        report.seed,
        super::console::Word::of(report).text()
    );
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    banner(&mut page, report);
    page.push_str("<main>");
    slo_table(&mut page, report);
    checks(&mut page, report);
    charts(&mut page, report);
    distribution(&mut page, report);
    faults(&mut page, report);
    facts(&mut page, report);
    page.push_str("</main></body></html>\n");
    page
}

fn banner(page: &mut String, report: &Report) {
    let class = status_class(report.verdict.status);
    let word = super::console::Word::of(report).text();
    let _ = write!(
        page,
        "<header class=\"banner {class} {}\"><div class=\"verdict\">{word}</div><p>{}</p></header><section class=\"intro\"><h1>{}</h1><p>{}</p><p class=\"meta\">seed <code>{}</code> · backend <code>{}</code> · file <code>{}</code> · sha256 <code>{}</code>{}</p></section>",
        word.to_lowercase(),
        escape(&report.verdict.summary),
        escape(&report.scenario.name),
        escape(&report.scenario.description),
        report.seed,
        escape(&report.backend),
        escape(&report.scenario.file),
        escape(report.scenario.sha256.get(..12).unwrap_or(&report.scenario.sha256)),
        report
            .scenario
            .overrides
            .iter()
            .map(|o| format!(" · <code>--set {}</code>", escape(o)))
            .collect::<String>()
    );
}

fn slo_table(page: &mut String, report: &Report) {
    page.push_str("<h2>Service-level objectives</h2>");
    if report.slo.is_empty() {
        page.push_str("<p class=\"more\">No SLO thresholds in this scenario.</p>");
        return;
    }
    page.push_str("<table><tr><th>op</th><th>phase</th><th>metric</th><th class=\"num\">observed</th><th class=\"num\">threshold</th><th></th></tr>");
    for row in &report.slo {
        // A threshold on a phase the run did not have (a fault lasting to the end leaves no
        // `post`) is not a missing measurement: say so rather than "no data".
        let had_phase = row.phase == Phase::All || report.phases.iter().any(|p| p.phase == row.phase);
        let absent = format!("<span class=\"warn\">? the run had no {} phase</span>", row.phase.name());
        let mark = match (row.ok, row.observed.as_str()) {
            (_, "no data") if !had_phase => absent.as_str(),
            (_, "no data") => "<span class=\"warn\">? no data</span>",
            (true, _) => "<span class=\"ok\">✓</span>",
            (false, _) => "<span class=\"bad\">✗</span>",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{mark}</td></tr>",
            escape(&row.op),
            row.phase.name(),
            escape(&row.metric),
            escape(&row.observed),
            escape(&row.threshold)
        );
    }
    page.push_str("</table>");
}

fn checks(page: &mut String, report: &Report) {
    page.push_str("<h2>Checks</h2>");
    for check in &report.checks {
        let class = status_class(check.status);
        let expected = match (check.expected, check.status, check.as_expected) {
            (crate::scenario::model::Expectation::Pass, _, _) => "",
            (_, Status::Unknown, _) => {
                " — expected to fail: undecided, so the bug was neither caught nor missed"
            }
            (_, _, true) => " — expected to fail: the planted bug was caught",
            (_, _, false) => " — expected to fail, but it did not",
        };
        let _ = write!(
            page,
            "<section class=\"panel {class}\"><h3>{} <span class=\"badge {class}\">{class}</span><span class=\"more\">{}</span></h3><p>{}</p>",
            escape(&check.name),
            expected,
            escape(&check.summary)
        );
        details(page, &check.details);
        page.push_str("</section>");
    }
}

/// Scalars as a definition list; evidence lists (`{items, total}`) and arrays of objects as tables.
fn details(page: &mut String, details: &serde_json::Value) {
    let Some(map) = details.as_object() else { return };
    page.push_str("<dl>");
    for (key, value) in map {
        if !(value.is_object() || value.is_array()) {
            let _ = write!(
                page,
                "<dt>{}</dt><dd>{}</dd>",
                escape(&key.replace('_', " ")),
                escape(&scalar(value))
            );
        }
    }
    page.push_str("</dl>");
    for (key, value) in map {
        let (items, total) = match value {
            serde_json::Value::Object(o) if o.contains_key("items") => (
                o["items"].as_array().cloned().unwrap_or_default(),
                o["total"].as_u64().unwrap_or(0) as usize,
            ),
            serde_json::Value::Array(a) => (a.clone(), a.len()),
            // A map of figures per key (visibility lag per phase): one row per key, the figures
            // as columns; a map of scalars: one row per key.
            serde_json::Value::Object(o) => {
                let rows: Vec<serde_json::Value> = o
                    .iter()
                    .map(|(k, v)| match v.as_object() {
                        Some(inner) => {
                            let mut row = serde_json::Map::new();
                            row.insert(String::new(), k.clone().into());
                            row.extend(inner.iter().map(|(ik, iv)| (ik.clone(), iv.clone())));
                            serde_json::Value::Object(row)
                        }
                        None => serde_json::json!({ "": k, "value": v }),
                    })
                    .collect();
                let n = rows.len();
                (rows, n)
            }
            _ => continue,
        };
        if items.is_empty() {
            continue;
        }
        let _ = write!(page, "<h3>{}</h3>", escape(&key.replace('_', " ")));
        table_of(page, &items);
        if total > items.len() {
            let _ =
                write!(page, "<p class=\"more\">… and {} more (all counted above)</p>", total - items.len());
        }
    }
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn table_of(page: &mut String, items: &[serde_json::Value]) {
    let mut columns: Vec<String> = Vec::new();
    for item in items {
        if let Some(map) = item.as_object() {
            for key in map.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    if columns.is_empty() {
        let list: Vec<String> = items.iter().map(|v| escape(&scalar(v))).collect();
        let _ = write!(page, "<p><code>{}</code></p>", list.join("</code> <code>"));
        return;
    }
    page.push_str("<table><tr>");
    for column in &columns {
        let _ = write!(page, "<th>{}</th>", escape(&column.replace('_', " ")));
    }
    page.push_str("</tr>");
    for item in items {
        page.push_str("<tr>");
        for column in &columns {
            let cell = match &item[column.as_str()] {
                serde_json::Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(" → "),
                serde_json::Value::Object(o) => serde_json::to_string(o).unwrap_or_default(),
                v => scalar(v),
            };
            let _ = write!(page, "<td>{}</td>", escape(&cell));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
}

fn bands(report: &Report) -> Vec<Band> {
    report
        .faults
        .iter()
        .map(|f| Band {
            start_ms: f.start_ms,
            end_ms: f.end_ms.unwrap_or(
                report.timeline.ops.first().map_or(0, |o| o.buckets.len() as u64) * report.timeline.bucket_ms,
            ),
            label: format!("{} {}", f.kind, f.hosts.join(",")),
        })
        .collect()
}

fn charts(page: &mut String, report: &Report) {
    let timeline = &report.timeline;
    let span_ms = timeline.ops.iter().map(|o| o.buckets.len() as u64).max().unwrap_or(0) * timeline.bucket_ms;
    if span_ms == 0 {
        return;
    }
    let bands = bands(report);
    page.push_str("<h2>Over time</h2><p class=\"more\">Each op is placed at its intended start; shaded bands are fault windows. Failed (red) and unknown/timed-out (amber) operations are drawn, not hidden.</p>");
    for op in &timeline.ops {
        let name = op.op.name();
        let latency = [
            Series {
                name: "p50".into(),
                color: "#2b6cb0",
                points: op.buckets.iter().map(|b| (b.start_ms, b.latency_ms_p50)).collect(),
            },
            Series {
                name: "p99".into(),
                color: "#c05621",
                points: op.buckets.iter().map(|b| (b.start_ms, b.latency_ms_p99)).collect(),
            },
        ];
        let _ = write!(
            page,
            "<h3>{name}: latency (ms)</h3><div class=\"legend\"><span><i style=\"background:#2b6cb0\"></i>p50</span><span><i style=\"background:#c05621\"></i>p99</span></div>{}",
            lines(&format!("{name} latency"), "", span_ms, &latency, &bands)
        );
        let per_second = 1000.0 / timeline.bucket_ms as f64;
        let counts: Vec<(u64, Vec<f64>)> = op
            .buckets
            .iter()
            .map(|b| {
                (
                    b.start_ms,
                    vec![
                        b.ok_count as f64 * per_second,
                        b.fail_count as f64 * per_second,
                        b.info_count as f64 * per_second,
                    ],
                )
            })
            .collect();
        let _ = write!(
            page,
            "<h3>{name}: throughput (ops/s)</h3><div class=\"legend\"><span><i style=\"background:#48a868\"></i>ok</span><span><i style=\"background:#d64541\"></i>fail</span><span><i style=\"background:#e0a526\"></i>unknown</span></div>{}",
            stacked(
                &format!("{name} throughput"),
                span_ms,
                timeline.bucket_ms,
                &counts,
                &["#48a868", "#d64541", "#e0a526"],
                &bands
            )
        );
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") })
}

fn distribution(page: &mut String, report: &Report) {
    page.push_str("<h2>Latency distribution (ms, from intended start)</h2><table><tr><th>op</th><th>phase</th><th class=\"num\">ops</th><th class=\"num\">ok</th><th class=\"num\">fail</th><th class=\"num\">unknown</th><th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p95</th><th class=\"num\">p99</th><th class=\"num\">p99.9</th><th class=\"num\">max</th><th class=\"num\">errors</th></tr>");
    for row in report.latency.iter().filter(|r| r.ops_count > 0) {
        let errors = format!("{:.2}%", row.error_rate * 100.0);
        let class = if row.error_rate > 0.0 { "bad" } else { "" };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num {class}\">{errors}</td></tr>",
            escape(&row.op),
            row.phase.name(),
            row.ops_count,
            row.ok_count,
            row.fail_count,
            row.info_count,
            ms(row.latency_ms_p50),
            ms(row.latency_ms_p90),
            ms(row.latency_ms_p95),
            ms(row.latency_ms_p99),
            ms(row.latency_ms_p999),
            ms(row.latency_ms_max)
        );
    }
    page.push_str("</table>");
}

fn faults(page: &mut String, report: &Report) {
    page.push_str("<h2>Fault timeline</h2>");
    if report.faults.is_empty() {
        page.push_str("<p class=\"more\">No faults: a steady-state run.</p>");
    } else {
        page.push_str("<table><tr><th>#</th><th>fault</th><th class=\"num\">start</th><th class=\"num\">end</th><th class=\"num\">ops failed</th><th class=\"num\">conns reset</th><th class=\"num\">msgs held</th><th class=\"num\">writes lost</th><th class=\"num\">publishes rejected</th><th></th></tr>");
        for f in &report.faults {
            let e = &f.effect;
            let flag = if f.vacuous { "<span class=\"warn\">vacuous: it hit nothing</span>" } else { "" };
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.1}s</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{flag}</td></tr>",
                f.index,
                escape(&f.description),
                f.start_ms as f64 / 1000.0,
                f.end_ms.map_or("end".into(), |e| format!("{:.1}s", e as f64 / 1000.0)),
                e.ops_failed_count,
                e.connections_reset_count,
                e.messages_held_count,
                e.writes_lost_count,
                e.publishes_rejected_count
            );
        }
        page.push_str("</table>");
    }
    page.push_str("<h3>Phases</h3><p>");
    for p in &report.phases {
        let _ = write!(
            page,
            "<code>{}</code> {:.1}–{:.1}s &nbsp; ",
            p.phase.name(),
            p.start_ms as f64 / 1000.0,
            p.end_ms as f64 / 1000.0
        );
    }
    page.push_str("</p>");
}

fn facts(page: &mut String, report: &Report) {
    let g = &report.generator;
    let _ = write!(
        page,
        "<h2>Load generator</h2><dl><dt>scheduled</dt><dd>{}</dd><dt>sent</dt><dd>{}</dd><dt>dropped (all sessions busy)</dt><dd>{}</dd><dt>worst lag behind schedule</dt><dd>{} ms</dd><dt>client sessions</dt><dd>{}</dd></dl>",
        g.scheduled_count, g.sent_count, g.dropped_count, g.lag_ms_max, g.processes_count
    );
    let r = &report.run;
    // On containers, "simulated" time is real time, and the stack's start-up is worth showing.
    let (covered, startup) = match r.startup_ms {
        Some(ms) => ("real time covered", format!("<dt>stack start-up</dt><dd>{ms} ms</dd>")),
        None => ("simulated time", String::new()),
    };
    let _ = write!(
        page,
        "<h2>Reproduce</h2><pre><code>{}</code></pre><h2>Run</h2><dl><dt>backend</dt><dd>{}</dd><dt>hosts started</dt><dd>{}</dd><dt>wall time</dt><dd>{} ms</dd>{startup}<dt>{covered}</dt><dd>{} ms</dd><dt>speed-up</dt><dd>{}×</dd><dt>shakedown</dt><dd>{}</dd><dt>report schema</dt><dd>{}</dd></dl>",
        escape(&report.replay),
        escape(&report.backend),
        hosts_started(report),
        r.wall_ms,
        r.simulated_ms,
        r.speedup,
        escape(&r.version),
        escape(&report.schema)
    );
}

/// The hosts the run started, or a note that a v1 report did not record them.
fn hosts_started(report: &Report) -> String {
    if report.hosts.is_empty() {
        return "not recorded".into();
    }
    format!("{} ({})", report.hosts.len(), escape(&report.hosts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultEffect;
    use crate::report::model::*;
    use crate::report::timeline::{Bucket, OpTimeline, Timeline};
    use crate::scenario::model::{Expectation, Op, Phase};

    /// A one-hour run: 3600 one-second buckets for each of the four ops, a crash, a failed check
    /// whose details hold a hostile string.
    fn hour_long_report() -> Report {
        let buckets: Vec<Bucket> = (0..3600)
            .map(|i| Bucket {
                start_ms: i * 1000,
                ok_count: 95,
                fail_count: 3,
                info_count: 2,
                latency_ms_p50: Some(4.2),
                latency_ms_p99: Some(40.0 + (i % 60) as f64),
            })
            .collect();
        let ops = Op::ALL.iter().map(|&op| OpTimeline { op: op.into(), buckets: buckets.clone() }).collect();
        Report {
            schema: SCHEMA.into(),
            scenario: ScenarioInfo {
                name: "hour <script>".into(),
                description: "d & e".into(),
                file: "s.yaml".into(),
                sha256: "ab".repeat(32),
                overrides: vec![],
                stack: None,
            },
            seed: 7,
            backend: "sim".into(),
            hosts: vec!["client".into(), "lb".into()],
            verdict: VerdictInfo { status: Status::Fail, exit_code: 1, summary: "FAIL: durability".into() },
            checks: vec![CheckEntry {
                name: "durability".into(),
                status: Status::Fail,
                expected: Expectation::Pass,
                as_expected: false,
                summary: "3 of 900 acknowledged writes lost".into(),
                details: serde_json::json!({ "lost_count": 3, "lost": { "items": [{ "key": "<img src=x>", "ack_ms": 20001 }], "total": 3 } }),
            }],
            slo: vec![],
            faults: vec![FaultEntry {
                index: 0,
                kind: "crash".into(),
                description: "crash pg-primary".into(),
                hosts: vec!["pg-primary".into()],
                start_ms: 20_000,
                end_ms: Some(35_000),
                effect: FaultEffect::default(),
                vacuous: true,
            }],
            phases: vec![PhaseEntry { phase: Phase::Steady, start_ms: 0, end_ms: 20_000 }],
            latency: vec![],
            timeline: Timeline { bucket_ms: 1000, ops },
            generator: GeneratorFacts::default(),
            replay: "shakedown run s.yaml --seed 7 --backend sim".into(),
            run: RunFacts {
                wall_ms: 1,
                simulated_ms: 3_600_000,
                speedup: 1.0,
                version: "0".into(),
                startup_ms: None,
            },
        }
    }

    #[test]
    fn self_contained_escaped_and_bounded_in_size() {
        let html = render_html(&hour_long_report());
        assert!(!html.contains("http://") && !html.contains("https://"), "no external references");
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains(" src=\""),
            "nothing to fetch or run"
        );
        assert!(
            html.contains("hour &lt;script&gt;") && html.contains("&lt;img src=x&gt;"),
            "report strings are escaped"
        );
        assert!(html.contains("vacuous"), "a fault that hit nothing is flagged");
        assert!(html.contains("… and 2 more"), "capped evidence says how much is left out");
        assert!(html.len() < 5 * 1024 * 1024, "{} bytes for a one-hour run", html.len());
    }

    /// Goal: the page reads as prose, not as data dumped. Method: a staleness check whose
    /// visibility lag is a map per phase becomes a table with a row per phase and a column per
    /// figure (no raw JSON); an SLO threshold on a phase the run did not have says so; the banner
    /// says what happened to a planted bug.
    #[test]
    fn figures_per_phase_are_a_table_and_absent_phases_are_named() {
        let mut report = hour_long_report();
        report.checks[0] = CheckEntry {
            name: "staleness".into(),
            status: Status::Pass,
            expected: Expectation::Pass,
            as_expected: true,
            summary: "ok".into(),
            details: serde_json::json!({ "visibility_lag_ms": {
                "steady": { "count": 12, "p50": 1.5, "p99": 4.0 },
                "fault": { "count": 3, "p50": 9.0, "p99": 20.0 } } }),
        };
        report.slo = vec![crate::check::SloEntry {
            op: "invest".into(),
            phase: Phase::Post,
            metric: "availability".into(),
            threshold: ">= 99%".into(),
            observed: "no data".into(),
            ok: false,
        }];
        let html = render_html(&report);
        assert!(!html.contains("{&quot;") && !html.contains("{\"count"), "no raw JSON in a cell");
        assert!(html.contains("<th>count</th><th>p50</th><th>p99</th>"), "one column per figure");
        assert!(html.contains("<td>steady</td><td>12</td><td>1.5</td><td>4.0</td>"), "one row per phase");
        assert!(html.contains("the run had no post phase"), "an absent phase is named");
        report.checks[0].expected = Expectation::Fail;
        report.checks[0].status = Status::Fail;
        report.verdict.status = Status::Pass;
        assert!(render_html(&report).contains("<div class=\"verdict\">CAUGHT</div>"));
    }
}
