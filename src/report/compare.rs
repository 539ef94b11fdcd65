//! The comparison page (`shakedown report a.json b.json`): several reports side by side, e.g.
//! async vs sync replication, or two seeds.

use std::fmt::Write;

use super::junit::escape;
use super::model::Report;
use crate::check::Status;
use crate::scenario::model::Phase;

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Unknown => "UNKNOWN",
    }
}

fn status_cell(status: Status) -> String {
    let class = match status {
        Status::Pass => "ok",
        Status::Fail => "bad",
        Status::Unknown => "warn",
    };
    format!("<td class=\"{class}\">{}</td>", status_text(status))
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;color:#1d2330;max-width:1240px;margin:0 auto;padding:16px 24px}table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border-bottom:1px solid #d9dde3;padding:4px 8px;text-align:left}th{background:#f5f6f8}.ok{color:#1b7f3b;font-weight:700}.bad{color:#b3261e;font-weight:700}.warn{color:#8a6100;font-weight:700}h2{font-size:17px;margin-top:24px}code{font-family:ui-monospace,monospace}";

/// Several reports side by side: verdicts, each check, each SLO threshold, key latencies.
pub fn render_comparison(reports: &[Report]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>shakedown comparison</title><style>{STYLE}</style></head><body><h1>Comparison of {} runs</h1>",
        reports.len()
    );
    let header: String = reports
        .iter()
        .map(|r| {
            let overrides = r
                .scenario
                .overrides
                .iter()
                .map(|o| format!("<br><code>--set {}</code>", escape(o)))
                .collect::<String>();
            format!(
                "<th>{} · seed {} · {}{overrides}</th>",
                escape(&r.scenario.name),
                r.seed,
                escape(&r.backend)
            )
        })
        .collect();
    let _ = write!(page, "<h2>Verdicts</h2><table><tr><th></th>{header}</tr><tr><td>verdict</td>");
    for r in reports {
        page.push_str(&status_cell(r.verdict.status));
    }
    page.push_str("</tr><tr><td>summary</td>");
    for r in reports {
        let _ = write!(page, "<td>{}</td>", escape(&r.verdict.summary));
    }
    page.push_str("</tr></table><h2>Checks</h2><table>");
    let _ = write!(page, "<tr><th>check</th>{header}</tr>");
    let mut names: Vec<&str> =
        reports.iter().flat_map(|r| r.checks.iter().map(|c| c.name.as_str())).collect();
    names.dedup();
    names.sort();
    names.dedup();
    for name in names {
        let _ = write!(page, "<tr><td>{}</td>", escape(name));
        for r in reports {
            match r.checks.iter().find(|c| c.name == name) {
                Some(c) => {
                    let _ = write!(
                        page,
                        "{}",
                        status_cell(c.status)
                            .replace("</td>", &format!("<br><small>{}</small></td>", escape(&c.summary)))
                    );
                }
                None => page.push_str("<td>—</td>"),
            }
        }
        page.push_str("</tr>");
    }
    let _ = write!(
        page,
        "</table><h2>Latency p99 (ms) and errors, whole run</h2><table><tr><th>op</th>{header}</tr>"
    );
    for op in ["invest", "history", "order", "query", "any"] {
        let _ = write!(page, "<tr><td>{op}</td>");
        for r in reports {
            match r.latency.iter().find(|l| l.op == op && l.phase == Phase::All && l.ops_count > 0) {
                Some(l) => {
                    let p99 = l.latency_ms_p99.map_or("—".into(), |p| format!("{p:.1}"));
                    let _ = write!(
                        page,
                        "<td>{p99} · {:.2}% errors · {} ops</td>",
                        l.error_rate * 100.0,
                        l.ops_count
                    );
                }
                None => page.push_str("<td>—</td>"),
            }
        }
        page.push_str("</tr>");
    }
    page.push_str("</table></body></html>\n");
    page
}
