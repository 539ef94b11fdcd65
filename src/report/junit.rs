//! `junit.xml`: one `<testsuite>` per scenario, one `<testcase>` per check and per SLO threshold,
//! so CI systems show shakedown's verdicts natively. A check that failed *as expected* (a bug
//! demonstration) is a passing test case; an undecided check is `<skipped>` with "undecided: " and
//! its reason, so it is visible without failing the build on its own (the process exit code
//! still says 2). The suite's `verdict` property carries the verdict's summary, which lists failed
//! and undecided checks apart.

use std::fmt::Write;

use super::model::Report;
use crate::check::Status;

/// Escape text for XML attributes and content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// Render a report as JUnit XML.
pub fn render_junit(report: &Report) -> String {
    let name = escape(&report.scenario.name);
    let classname = format!("shakedown.{name}");
    let mut cases = String::new();
    let mut failures = 0;
    let mut skipped = 0;
    for check in &report.checks {
        let _ = writeln!(cases, "    <testcase classname=\"{classname}\" name=\"{}\">", escape(&check.name));
        if !check.as_expected && check.status != Status::Unknown {
            failures += 1;
            let details = serde_json::to_string_pretty(&check.details).unwrap_or_default();
            let _ = writeln!(
                cases,
                "      <failure message=\"{}\">{}</failure>",
                escape(&check.summary),
                escape(&details)
            );
        } else if check.status == Status::Unknown {
            skipped += 1;
            let message = format!("undecided: {}", check.summary);
            let _ = writeln!(cases, "      <skipped message=\"{}\"/>", escape(&message));
        } else {
            let _ = writeln!(cases, "      <system-out>{}</system-out>", escape(&check.summary));
        }
        cases.push_str("    </testcase>\n");
    }
    for row in &report.slo {
        let case = format!("slo {} {} {} {}", row.op, row.phase.name(), row.metric, row.threshold);
        let _ = writeln!(cases, "    <testcase classname=\"{classname}.slo\" name=\"{}\">", escape(&case));
        let message = format!("observed {} (threshold {})", row.observed, row.threshold);
        if row.observed == "no data" {
            skipped += 1;
            let _ = writeln!(cases, "      <skipped message=\"{}\"/>", escape(&message));
        } else if !row.ok {
            failures += 1;
            let _ = writeln!(cases, "      <failure message=\"{}\"/>", escape(&message));
        }
        cases.push_str("    </testcase>\n");
    }
    let tests = report.checks.len() + report.slo.len();
    let seconds = report.run.wall_ms as f64 / 1000.0;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"shakedown\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">\n  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{seconds:.3}\">\n    <properties>\n      <property name=\"verdict\" value=\"{}\"/>\n      <property name=\"seed\" value=\"{}\"/>\n      <property name=\"backend\" value=\"{}\"/>\n      <property name=\"replay\" value=\"{}\"/>\n    </properties>\n{cases}  </testsuite>\n</testsuites>\n",
        escape(&report.verdict.summary),
        report.seed,
        escape(&report.backend),
        escape(&report.replay)
    )
}
