//! `index.html`, the page a reviewer scans after `make chaos`: one row per run with its word
//! (pass / fail / caught / missed / undecided), a chip per check, the worst SLO margin, the
//! recovery time, the writes lost, backend, seed and `--set` overrides; failures first; a filter
//! box; and the explorations (`explore`, `merge`) found under the output directory, each linked
//! to its summary and its shrunk failures. Self-contained: inline CSS and one small inline script
//! for the filter (the rows are all there without it).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::console::{Word, caught, failed, missed};
use super::junit::escape;
use super::model::{CheckEntry, Report};
use crate::check::Status;
use crate::check::slo::worst;

/// One run on the index: its report and the link to it, relative to the index.
pub struct IndexEntry {
    /// The run's report.
    pub report: Report,
    /// Link to its report.html (or report.json), relative to the index.
    pub href: String,
}

/// One exploration found beside the runs: its `summary.json`, read back loosely (any version).
pub struct Exploration {
    /// The summary as written.
    pub summary: serde_json::Value,
    /// Link to `summary.json`, relative to the index.
    pub href: String,
    /// The directory the summary is in, relative to the index (for its groups' files).
    pub dir: PathBuf,
}

const STYLE: &str = r#"
:root{--ink:#1d2330;--mute:#5b6473;--line:#d9dde3;--pass:#1b7f3b;--fail:#b3261e;--unknown:#8a6100;--caught:#245fa8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink)}
main{max-width:1400px;margin:0 auto;padding:16px 24px 48px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.counts span{margin-right:14px}.mute{color:var(--mute)}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f5f6f8;font-weight:600;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.word{display:inline-block;min-width:84px;text-align:center;padding:2px 8px;border-radius:4px;color:#fff;font-weight:700;font-size:12px;letter-spacing:.04em}
.w-pass{background:var(--pass)}.w-fail{background:var(--fail)}.w-missed{background:#7a1c17}.w-undecided{background:var(--unknown)}.w-caught{background:var(--caught)}
.chip{display:inline-block;margin:1px 3px 1px 0;padding:0 7px;border-radius:10px;font-size:12px;border:1px solid var(--line);white-space:nowrap}
.c-pass{background:#e6f4ea;border-color:#a8d5b5}.c-fail{background:#fbe4e2;border-color:#e8a9a4;font-weight:700}.c-unknown{background:#fdf2d5;border-color:#e3c777}
.c-caught{background:#e3edf9;border-color:#9dbbe3;font-weight:700}.c-missed{background:#f7d4d1;border-color:#c0473e;font-weight:700}
.bad{color:var(--fail);font-weight:700}.ok{color:var(--pass)}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.why{font-size:12.5px;color:var(--mute);margin-top:2px}#filter{font:inherit;padding:6px 10px;width:420px;max-width:100%;border:1px solid #b9bfc9;border-radius:4px}
a{color:#1f4f99}
"#;

/// Filters rows on every word typed (case-insensitive); `#q=words` in the address fills the box.
const SCRIPT: &str = r#"
(function(){var box=document.getElementById('filter'),rows=[].slice.call(document.querySelectorAll('tr[data-search]')),shown=document.getElementById('shown');
function apply(){var terms=box.value.toLowerCase().split(/\s+/).filter(Boolean),n=0;rows.forEach(function(r){var hit=terms.every(function(t){return r.getAttribute('data-search').indexOf(t)>=0});r.style.display=hit?'':'none';if(hit)n++});shown.textContent=n+' of '+rows.length+' runs shown';}
var m=/[#&]q=([^&]*)/.exec(location.hash);if(m)box.value=decodeURIComponent(m[1]);box.addEventListener('input',apply);apply();})();
"#;

/// Render the index of `entries` (in any order: failures are put first) and `explorations`.
pub fn render_index(entries: &[IndexEntry], explorations: &[Exploration]) -> String {
    let mut sorted: Vec<&IndexEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |e: &IndexEntry| (Word::of(&e.report), e.report.scenario.name.clone(), e.report.seed);
        key(a).cmp(&key(b))
    });
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>shakedown: {}</title><style>{STYLE}</style></head><body><main><h1>shakedown: {}</h1>",
        plural(entries.len(), "run"),
        plural(entries.len(), "run")
    );
    counts(&mut page, entries);
    page.push_str("<p><input id=\"filter\" type=\"search\" placeholder=\"filter: fail, caught, durability, async, seed 7…\" aria-label=\"filter runs\"> <span id=\"shown\" class=\"mute\"></span></p>");
    page.push_str("<table><thead><tr><th>verdict</th><th>run</th><th>checks</th><th>worst SLO margin</th><th class=\"num\">RTO</th><th class=\"num\">writes lost</th><th>backend</th><th class=\"num\">seed</th><th>overrides</th></tr></thead><tbody>");
    for entry in sorted {
        row(&mut page, entry);
    }
    page.push_str("</tbody></table>");
    explorations_section(&mut page, explorations);
    let _ = writeln!(page, "</main><script>{SCRIPT}</script></body></html>");
    page
}

fn plural(count: usize, noun: &str) -> String {
    crate::check::plural(count, noun)
}

fn counts(page: &mut String, entries: &[IndexEntry]) {
    page.push_str("<p class=\"counts\">");
    for word in [Word::Fail, Word::Missed, Word::Undecided, Word::Caught, Word::Pass] {
        let n = entries.iter().filter(|e| Word::of(&e.report) == word).count();
        let class = word.text().to_lowercase();
        let _ = write!(page, "<span><span class=\"word w-{class}\">{}</span> {n}</span>", word.text());
    }
    page.push_str("</p>");
}

fn row(page: &mut String, entry: &IndexEntry) {
    let report = &entry.report;
    let word = Word::of(report);
    let class = word.text().to_lowercase();
    let chips: String = report.checks.iter().map(chip).collect();
    let margin = slo_margin(report);
    let overrides: String =
        report.scenario.overrides.iter().map(|o| format!("<code>--set {}</code><br>", escape(o))).collect();
    let search = format!(
        "{} {} {} seed {} {} {} {}",
        class,
        report.scenario.name,
        report.scenario.file,
        report.seed,
        report.backend,
        report.scenario.overrides.join(" "),
        report.checks.iter().map(|c| format!("{} {}", c.name, chip_state(c).0)).collect::<Vec<_>>().join(" ")
    )
    .to_lowercase();
    let _ = write!(
        page,
        "<tr data-search=\"{}\"><td><span class=\"word w-{class}\">{}</span></td><td><a href=\"{}\">{}</a><div class=\"why\">{}</div></td><td>{chips}</td><td>{margin}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{overrides}</td></tr>",
        escape(&search),
        word.text(),
        escape(&entry.href),
        escape(&report.scenario.name),
        escape(&report.verdict.summary),
        rto(report),
        writes_lost(report),
        escape(&report.backend),
        report.seed
    );
}

/// A check's state on the index: its class and the word shown after its name.
fn chip_state(check: &CheckEntry) -> (&'static str, &'static str) {
    if caught(check) {
        ("caught", "caught")
    } else if missed(check) {
        ("missed", "missed")
    } else if failed(check) {
        ("fail", "fail")
    } else if check.status == Status::Unknown {
        ("unknown", "undecided")
    } else {
        ("pass", "pass")
    }
}

fn chip(check: &CheckEntry) -> String {
    let (class, state) = chip_state(check);
    // A caught bug is a check that failed as it should: named, not ticked or crossed.
    let mark = match state {
        "pass" => "✓",
        "fail" => "✗",
        "missed" => "✗ missed",
        "caught" => "caught",
        _ => "? undecided",
    };
    format!(
        "<span class=\"chip c-{class}\" title=\"{}: {}\">{} {mark}</span>",
        state,
        escape(&check.summary),
        escape(&check.name)
    )
}

/// The SLO threshold with the least margin: `-16% invest p99 in steady (812ms against <= 700ms)`.
fn slo_margin(report: &Report) -> String {
    let Some((entry, margin)) = worst(&report.slo) else {
        let none = if report.slo.is_empty() { "no SLO" } else { "no data" };
        return format!("<span class=\"mute\">{none}</span>");
    };
    let percent = if margin.is_finite() { format!("{:+.0}%", margin * 100.0) } else { "−∞".into() };
    let class = if entry.ok { "ok" } else { "bad" };
    format!(
        "<span class=\"{class}\">{percent}</span> {} {} in {}<div class=\"why\">{} against {}</div>",
        escape(&entry.op),
        escape(&entry.metric),
        entry.phase.name(),
        escape(&entry.observed),
        escape(&entry.threshold)
    )
}

/// The slowest recovery the `recovery` check measured against its bound, or the `restore`
/// check's slowest RTO; `—` when neither ran.
fn rto(report: &Report) -> String {
    let check = |name: &str| report.checks.iter().find(|c| c.name == name);
    if let Some(recovery) = check("recovery") {
        let faults = recovery.details["faults"].as_array().cloned().unwrap_or_default();
        let bound = recovery.details["rto_ms_bound"].as_u64().unwrap_or(0);
        let never = faults.iter().any(|f| f["recovered"] == false);
        let worst = faults.iter().filter_map(|f| f["rto_ms"].as_u64()).max();
        return match (never, worst) {
            (true, _) => format!("<span class=\"bad\">never</span> / {bound} ms"),
            (false, Some(w)) if w > bound => format!("<span class=\"bad\">{w} ms</span> / {bound} ms"),
            (false, Some(w)) => format!("{w} ms / {bound} ms"),
            (false, None) => "—".into(),
        };
    }
    if let Some(restore) = check("restore") {
        let restores = restore.details["restores"].as_array().cloned().unwrap_or_default();
        if let Some(w) = restores.iter().filter_map(|r| r["rto_ms"].as_u64()).max() {
            return format!("{w} ms (restore)");
        }
    }
    "—".into()
}

/// Acknowledged writes the final primary lost: the durability check's count, else the count the
/// run charged to its faults.
fn writes_lost(report: &Report) -> String {
    let counted = report
        .checks
        .iter()
        .find(|c| c.name == "durability")
        .and_then(|c| c.details["lost_count"].as_u64())
        .unwrap_or_else(|| report.faults.iter().map(|f| f.effect.writes_lost_count).sum());
    if counted > 0 { format!("<span class=\"bad\">{counted}</span>") } else { "0".into() }
}

fn explorations_section(page: &mut String, explorations: &[Exploration]) {
    if explorations.is_empty() {
        return;
    }
    page.push_str("<h2>Explorations</h2><table><thead><tr><th>scenario</th><th>swarm</th><th class=\"num\">seeds</th><th class=\"num\">failing</th><th class=\"num\">inconclusive</th><th>failure groups (shrunk)</th></tr></thead><tbody>");
    for exploration in explorations {
        let s = &exploration.summary;
        let runs = s["runs"].as_array().map_or(&[][..], Vec::as_slice);
        let outcome = |kind: &str| runs.iter().filter(|r| r["status"] == kind).count();
        let failing = outcome("fail");
        let groups: String = s["groups"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|g| group(g, exploration))
            .collect();
        let swarm = s["swarm"].as_str().map_or("—".to_owned(), |v| format!("<code>{}</code>", escape(v)));
        let _ = write!(
            page,
            "<tr><td><a href=\"{}\">{}</a></td><td>{swarm}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&exploration.href),
            escape(s["scenario"].as_str().unwrap_or("?")),
            runs.len(),
            if failing > 0 { format!("<span class=\"bad\">{failing}</span>") } else { "0".into() },
            outcome("inconclusive"),
            if groups.is_empty() { "<span class=\"mute\">none</span>".into() } else { groups }
        );
    }
    page.push_str("</tbody></table>");
}

/// One failure group: its signature and seeds, with links to its shrunk file and report.
fn group(group: &serde_json::Value, exploration: &Exploration) -> String {
    let seeds = group["seeds"].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "<div><span class=\"chip c-fail\">{}</span> {}",
        escape(&signature(&group["signature"])),
        plural(seeds, "seed")
    );
    if let Some(shrunk) = group.get("shrunk").filter(|s| s.is_object()) {
        // The files sit under the summary's directory: `<slug>/shrunk.yaml` and
        // `<slug>/<name>-shrunk/<seed>/`, whatever directory the exploration ran from.
        let under = |path: &serde_json::Value, depth: usize| -> Option<PathBuf> {
            let parts: Vec<_> = Path::new(path.as_str()?).components().rev().take(depth).collect();
            (parts.len() == depth)
                .then(|| parts.into_iter().rev().fold(exploration.dir.clone(), |p, c| p.join(c)))
        };
        if let Some(yaml) = under(&shrunk["yaml"], 2) {
            let _ = write!(out, " · <a href=\"{}\">shrunk.yaml</a>", escape(&yaml.display().to_string()));
        }
        if let Some(dir) = under(&shrunk["report_dir"], 3) {
            let report = dir.join("report.html").display().to_string();
            let _ = write!(out, " · <a href=\"{}\">its report</a>", escape(&report));
        }
        if shrunk["still_fails"] == false {
            out.push_str(" <span class=\"mute\">(on its own it no longer fails)</span>");
        }
    }
    out.push_str("</div>");
    out
}

/// A signature as the summary writes it, `[[check, [finding, …]], …]`, in words:
/// `durability (lost acknowledged write)`.
fn signature(value: &serde_json::Value) -> String {
    let Some(parts) = value.as_array() else { return value.to_string() };
    let words: Vec<String> = parts
        .iter()
        .map(|part| {
            let check = part[0].as_str().unwrap_or("?");
            let findings: Vec<&str> =
                part[1].as_array().map_or(Vec::new(), |f| f.iter().filter_map(|x| x.as_str()).collect());
            format!("{check} ({})", findings.join(", "))
        })
        .collect();
    words.join("; ")
}

/// Every `explore/summary.json` under `out` (at most four levels down; shard summaries are left
/// to `merge`), with links relative to `out`, in path order.
pub fn find_explorations(out: &Path) -> Vec<Exploration> {
    let mut found = Vec::new();
    walk(out, out, 0, &mut found);
    found.sort_by(|a, b| a.href.cmp(&b.href));
    found
}

fn walk(root: &Path, dir: &Path, depth: usize, found: &mut Vec<Exploration>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for path in children {
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "explore") {
            let file = path.join("summary.json");
            let summary = std::fs::read_to_string(&file).ok().and_then(|t| serde_json::from_str(&t).ok());
            if let Some(summary) = summary {
                let relative = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
                found.push(Exploration {
                    summary,
                    href: relative(&file).display().to_string(),
                    dir: relative(&path),
                });
            }
        } else if depth < 4 {
            walk(root, &path, depth + 1, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::SloEntry;
    use crate::report::model::*;
    use crate::report::timeline::Timeline;
    use crate::scenario::model::{Expectation, Phase};

    fn check(name: &str, status: Status, expected: Expectation) -> CheckEntry {
        CheckEntry {
            name: name.into(),
            status,
            expected,
            as_expected: (status == Status::Fail) == (expected == Expectation::Fail),
            summary: format!("{name} summary"),
            details: serde_json::json!({}),
        }
    }

    fn report(name: &str, status: Status, checks: Vec<CheckEntry>) -> Report {
        Report {
            schema: SCHEMA.into(),
            scenario: ScenarioInfo {
                stack: None,
                name: name.into(),
                description: String::new(),
                file: format!("scenarios/{name}.yaml"),
                sha256: "ab".repeat(32),
                overrides: vec![],
            },
            seed: 7,
            backend: "sim".into(),
            hosts: vec![],
            verdict: VerdictInfo { status, exit_code: 0, summary: format!("{name} verdict") },
            checks,
            slo: vec![],
            faults: vec![],
            phases: vec![],
            latency: vec![],
            timeline: Timeline { bucket_ms: 1000, ops: vec![] },
            generator: GeneratorFacts::default(),
            replay: String::new(),
            run: RunFacts {
                wall_ms: 1,
                simulated_ms: 1,
                speedup: 1.0,
                version: "0".into(),
                startup_ms: None,
            },
        }
    }

    fn entry(report: Report) -> IndexEntry {
        let href = format!("{}/7/report.html", report.scenario.name);
        IndexEntry { report, href }
    }

    /// Goal: the index shows, without opening a report, which runs failed and why, which
    /// planted bugs were caught or missed, the worst SLO margin, the recovery time, the writes
    /// lost and the overrides — failures first — and links the explorations. Method: five runs,
    /// one of each word, given passing first, and one exploration summary.
    #[test]
    fn the_index_is_a_review_page() {
        use Expectation::{Fail as Expect, Pass as Plain};
        let pass = report("steady-state", Status::Pass, vec![check("durability", Status::Pass, Plain)]);
        let mut caught = report("bug-ack", Status::Pass, vec![check("durability", Status::Fail, Expect)]);
        caught.checks[0].details = serde_json::json!({ "lost_count": 4 });
        let missed = report("bug-fencing", Status::Fail, vec![check("durability", Status::Pass, Expect)]);
        let mut fail = report(
            "primary-crash",
            Status::Fail,
            vec![check("slo", Status::Fail, Plain), check("recovery", Status::Pass, Plain)],
        );
        fail.scenario.overrides = vec!["stack.replication=async".into()];
        fail.slo = vec![SloEntry {
            op: "invest".into(),
            phase: Phase::Steady,
            metric: "p99".into(),
            threshold: "<= 700ms".into(),
            observed: "812ms".into(),
            ok: false,
        }];
        fail.checks[1].details = serde_json::json!({ "rto_ms_bound": 5000, "faults": [
            { "rto_ms": 2259, "recovered": true }, { "rto_ms": 0, "recovered": true } ] });
        let undecided =
            report("queries-only", Status::Unknown, vec![check("durability", Status::Unknown, Plain)]);
        let entries: Vec<IndexEntry> =
            [pass, caught, missed, fail, undecided].into_iter().map(entry).collect();
        let exploration = Exploration {
            summary: serde_json::json!({
                "scenario": "bug-wal-archive-gap", "swarm": "scenario",
                "runs": [ { "seed": 1, "status": "fail" }, { "seed": 2, "status": "pass" } ],
                "groups": [ { "signature": [["restore", ["write missing after a restore"]]], "seeds": [1],
                    "shrunk": { "yaml": "/tmp/x/bug-wal-archive-gap/explore/restore-write/shrunk.yaml",
                        "report_dir": "/tmp/x/bug-wal-archive-gap/explore/restore-write/bug-wal-archive-gap-shrunk/1",
                        "still_fails": true } } ]
            }),
            href: "bug-wal-archive-gap/explore/summary.json".into(),
            dir: "bug-wal-archive-gap/explore".into(),
        };
        let page = render_index(&entries, &[exploration]);
        let position = |text: &str| page.find(text).unwrap_or_else(|| panic!("{text} missing"));
        // Failures first: fail, missed, undecided, caught, pass.
        let order = ["primary-crash/7", "bug-fencing/7", "queries-only/7", "bug-ack/7", "steady-state/7"];
        assert!(order.windows(2).all(|w| position(w[0]) < position(w[1])), "rows out of order");
        for word in ["FAIL", "MISSED", "UNDECIDED", "CAUGHT", "PASS"] {
            assert!(page.contains(&format!(">{word}</span></td>")), "{word} row");
        }
        assert!(page.contains("durability caught") && page.contains("durability ✗ missed"), "check chips");
        assert!(
            page.contains("-16%</span> invest p99 in steady") && page.contains("812ms against &lt;= 700ms")
        );
        assert!(page.contains("2259 ms / 5000 ms"), "RTO against its bound");
        assert!(page.contains("<span class=\"bad\">4</span>"), "writes lost");
        assert!(page.contains("<code>--set stack.replication=async</code>"), "overrides");
        assert!(page.contains("id=\"filter\"") && page.contains("data-search=\"fail primary-crash"));
        assert!(page.contains("href=\"bug-wal-archive-gap/explore/summary.json\""));
        assert!(page.contains(
            "href=\"bug-wal-archive-gap/explore/restore-write/bug-wal-archive-gap-shrunk/1/report.html\""
        ));
        assert!(page.contains("restore (write missing after a restore)</span> 1 seed ·"));
        assert!(page.contains("<title>shakedown: 5 runs</title>"));
    }

    /// Goal: explorations are found under the output directory, shard summaries left to merge.
    #[test]
    fn explorations_are_found_under_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str| {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, "{\"scenario\": \"x\", \"runs\": [], \"groups\": []}").unwrap();
        };
        write("a/explore/summary.json");
        write("campaign/b/explore/summary.json");
        write("a/explore/shard-1-of-2/summary.json");
        let found: Vec<String> = find_explorations(dir.path()).into_iter().map(|e| e.href).collect();
        assert_eq!(found, ["a/explore/summary.json", "campaign/b/explore/summary.json"]);
    }
}
