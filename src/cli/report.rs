//! `shakedown report REPORT_JSON... [--out FILE]`: re-render HTML from report.json files. One
//! file: its report page (default: `report.html` next to it). Several: one comparison page
//! (default: `comparison.html` in the current directory).

use std::path::{Path, PathBuf};

use super::args::ReportArgs;
use crate::exit;
use crate::report::{Report, render_comparison, render_html};

/// Read a report, naming the file and the problem when it is not a `shakedown.report/v3` (or
/// v1) file.
pub(super) fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let report: Report = serde_json::from_str(&text).map_err(|e| {
        format!("{}:{}:{}: not a {} report: {e}", path.display(), e.line(), e.column(), crate::report::SCHEMA)
    })?;
    if !crate::report::SCHEMAS_READ.contains(&report.schema.as_str()) {
        return Err(format!(
            "{}: schema `{}` is not `{}`",
            path.display(),
            report.schema,
            crate::report::SCHEMA
        ));
    }
    Ok(report)
}

/// Render and write the page; print its path.
pub(super) fn run(args: &ReportArgs) -> u8 {
    let mut reports = Vec::new();
    for path in &args.reports {
        match read_report(path) {
            Ok(report) => reports.push(report),
            Err(message) => {
                eprintln!("{message}");
                return exit::BAD_INPUT;
            }
        }
    }
    let (html, default_out) = match reports.as_slice() {
        [one] => (render_html(one), args.reports[0].with_file_name("report.html")),
        many => (render_comparison(many), PathBuf::from("comparison.html")),
    };
    let out = args.out.clone().unwrap_or(default_out);
    if let Err(e) = std::fs::write(&out, html) {
        eprintln!("cannot write {}: {e}", out.display());
        return exit::HARNESS_ERROR;
    }
    println!("{}", out.display());
    exit::PASS
}
