//! `slo`: latency, error-rate and availability per op (and `any`) per phase, from HdrHistograms of
//! each operation's latency measured from its *intended* start, and the scenario's SLO rows
//! evaluated against them. Ok ops feed the latency histograms; failed and unknown ops count as
//! errors (they are shown, not hidden).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use super::{CheckResult, Status, plural};
use crate::faults::Plan;
use crate::history::{EntryType, History};
use crate::scenario::model::{OpSelector, Phase, SloRow};
use crate::scenario::units::{Percent, Span};

/// Latencies above an hour are clamped (no op waits longer than its timeout anyway).
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;

/// Latency and outcome figures for one op (or `any`) in one phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyRow {
    /// `invest`, `history`, `order`, `query` or `any`.
    pub op: String,
    /// The phase.
    pub phase: Phase,
    /// Ops invoked in the phase (by intended start).
    pub ops_count: u64,
    /// Ops that succeeded.
    pub ok_count: u64,
    /// Ops that definitely failed.
    pub fail_count: u64,
    /// Ops whose outcome is unknown (timeouts).
    pub info_count: u64,
    /// Latency quantiles of ok ops, ms (`None` without ok ops).
    pub latency_ms_p50: Option<f64>,
    /// 90th percentile, ms.
    pub latency_ms_p90: Option<f64>,
    /// 95th percentile, ms.
    pub latency_ms_p95: Option<f64>,
    /// 99th percentile, ms.
    pub latency_ms_p99: Option<f64>,
    /// 99.9th percentile, ms.
    pub latency_ms_p999: Option<f64>,
    /// Slowest ok op, ms.
    pub latency_ms_max: Option<f64>,
    /// (fail + info) / ops, 0..=1.
    pub error_rate: f64,
    /// ok / ops, 0..=1.
    pub availability: f64,
    /// The HdrHistogram of ok latencies in ns, V2-serialised and base64-encoded, so reports can be
    /// merged.
    pub histogram_v2_base64: String,
}

/// One evaluated SLO threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloEntry {
    /// `invest`, …, or `any`.
    pub op: String,
    /// The phase.
    pub phase: Phase,
    /// `p95`, `p99`, `error_rate`, `availability`, …
    pub metric: String,
    /// The threshold as written (`350ms`, `99%`).
    pub threshold: String,
    /// The observed value in the threshold's unit (`412.5ms`, `97.2%`), or `no data`.
    pub observed: String,
    /// Whether it held.
    pub ok: bool,
}

/// Counts and a latency histogram for one op (or `any`) in one phase.
struct Cell {
    ok: u64,
    fail: u64,
    info: u64,
    latencies_ns: Histogram<u64>,
}

impl Cell {
    fn new() -> Cell {
        let latencies_ns = Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds");
        Cell { ok: 0, fail: 0, info: 0, latencies_ns }
    }

    fn row(&self, op: &str, phase: Phase) -> LatencyRow {
        let ops = self.ok + self.fail + self.info;
        let h = &self.latencies_ns;
        let q = |quantile: f64| (self.ok > 0).then(|| h.value_at_quantile(quantile) as f64 / 1e6);
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(h, &mut bytes).expect("serialising to memory cannot fail");
        LatencyRow {
            op: op.to_owned(),
            phase,
            ops_count: ops,
            ok_count: self.ok,
            fail_count: self.fail,
            info_count: self.info,
            latency_ms_p50: q(0.5),
            latency_ms_p90: q(0.9),
            latency_ms_p95: q(0.95),
            latency_ms_p99: q(0.99),
            latency_ms_p999: q(0.999),
            latency_ms_max: (self.ok > 0).then(|| h.max() as f64 / 1e6),
            error_rate: if ops == 0 { 0.0 } else { (self.fail + self.info) as f64 / ops as f64 },
            availability: if ops == 0 { 0.0 } else { self.ok as f64 / ops as f64 },
            histogram_v2_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

/// Per op (and `any`) per phase (and `all`) figures, in op then phase order. Only ops that
/// appear in the history are listed; every phase of the plan is listed for them.
pub fn latency_table(history: &History, plan: &Plan) -> Vec<LatencyRow> {
    let mut cells: BTreeMap<(&'static str, Phase), Cell> = BTreeMap::new();
    let phases_present: Vec<Phase> = plan.phases.iter().map(|w| w.phase).collect();
    for (invoke, done) in history.ops() {
        let op = invoke.op;
        if !op.is_client_op() {
            continue;
        }
        let phase = plan.phase_at(Duration::from_nanos(invoke.time_ns));
        let kind = done.map_or(EntryType::Info, |d| d.kind);
        let latency_ns =
            done.map_or(0, |d| d.time_ns.saturating_sub(invoke.time_ns)).clamp(1, LATENCY_NS_MAX);
        for name in [op.name(), "any"] {
            for p in [phase, Phase::All] {
                let cell = cells.entry((name, p)).or_insert_with(Cell::new);
                match kind {
                    EntryType::Ok => {
                        cell.ok += 1;
                        cell.latencies_ns.record(latency_ns).expect("clamped into bounds");
                    }
                    EntryType::Fail => cell.fail += 1,
                    _ => cell.info += 1,
                }
            }
        }
    }
    let ops: Vec<&str> = {
        let mut names: Vec<&str> = cells.keys().map(|(op, _)| *op).collect();
        names.dedup();
        names.sort_by_key(|n| (*n == "any", op_order(n)));
        names
    };
    let mut rows = Vec::new();
    for op in &ops {
        for phase in Phase::ALL {
            if phase != Phase::All && !phases_present.contains(&phase) {
                continue;
            }
            let row = match cells.get(&(*op, phase)) {
                Some(cell) => cell.row(op, phase),
                None => Cell::new().row(op, phase),
            };
            rows.push(row);
        }
    }
    rows
}

fn op_order(name: &str) -> usize {
    ["invest", "history", "order", "query"].iter().position(|n| *n == name).unwrap_or(4)
}

fn selector_name(op: OpSelector) -> &'static str {
    op.name()
}

/// Evaluate every threshold of every SLO row against the table.
pub fn evaluate(rows: &[SloRow], table: &[LatencyRow]) -> Vec<SloEntry> {
    let mut entries = Vec::new();
    for row in rows {
        let op = selector_name(row.op);
        let cell = table.iter().find(|r| r.op == op && r.phase == row.phase && r.ops_count > 0);
        let latencies = [
            ("p50", row.p50, cell.and_then(|c| c.latency_ms_p50)),
            ("p90", row.p90, cell.and_then(|c| c.latency_ms_p90)),
            ("p95", row.p95, cell.and_then(|c| c.latency_ms_p95)),
            ("p99", row.p99, cell.and_then(|c| c.latency_ms_p99)),
            ("p99.9", row.p999, cell.and_then(|c| c.latency_ms_p999)),
            ("max", row.max, cell.and_then(|c| c.latency_ms_max)),
        ];
        let entry = |metric: &str, threshold: String, observed: Option<String>, ok: bool| SloEntry {
            op: op.to_owned(),
            phase: row.phase,
            metric: metric.to_owned(),
            threshold,
            observed: observed.unwrap_or_else(|| "no data".into()),
            ok,
        };
        for (metric, bound, observed_ms) in latencies {
            let Some(bound) = bound else { continue };
            let ok = observed_ms.is_some_and(|ms| ms <= bound.get().as_secs_f64() * 1e3);
            entries.push(entry(metric, format!("<= {bound}"), observed_ms.map(format_ms), ok));
        }
        let rates = [
            ("error_rate", row.error_rate, cell.map(|c| c.error_rate), true),
            ("availability", row.availability, cell.map(|c| c.availability), false),
        ];
        for (metric, bound, observed, upper) in rates {
            let Some(bound) = bound else { continue };
            let ok =
                observed.is_some_and(|f| if upper { f <= bound.fraction() } else { f >= bound.fraction() });
            let relation = if upper { "<=" } else { ">=" };
            entries.push(entry(
                metric,
                format!("{relation} {bound}"),
                observed.map(|f| Percent(round3(f * 100.0)).to_string()),
                ok,
            ));
        }
    }
    entries
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn format_ms(ms: f64) -> String {
    let nanos = (ms * 1e6).round() as u64;
    // Round to a readable precision: whole microseconds below 1 s, whole milliseconds above.
    let nanos = if nanos >= 1_000_000_000 { nanos / 1_000_000 * 1_000_000 } else { nanos / 1_000 * 1_000 };
    Span(Duration::from_nanos(nanos)).to_string()
}

/// How much of a threshold's allowance an observation left unused, as a fraction: 1 is perfect
/// (no latency, no errors), 0 is exactly at the limit, below 0 is broken (-0.16: 16% over).
/// Latency and error rate compare with the limit (`1 - observed / limit`); availability compares
/// the unavailability with the allowed one (`99%` allows 1%: 99.5% observed leaves 0.5). `None`
/// without data. A limit of zero leaves a margin of 0 when met and minus infinity when broken.
pub fn margin(entry: &SloEntry) -> Option<f64> {
    let threshold = entry.threshold.trim_start_matches(['<', '>', '=', ' ']);
    let (observed, limit) = if entry.metric == "error_rate" || entry.metric == "availability" {
        let observed = entry.observed.parse::<Percent>().ok()?.0;
        let limit = threshold.parse::<Percent>().ok()?.0;
        if entry.metric == "availability" { (100.0 - observed, 100.0 - limit) } else { (observed, limit) }
    } else {
        let observed = entry.observed.parse::<Span>().ok()?.get().as_secs_f64();
        (observed, threshold.parse::<Span>().ok()?.get().as_secs_f64())
    };
    Some(match (limit > 0.0, observed > limit) {
        (true, _) => 1.0 - observed / limit,
        (false, false) => 0.0,
        (false, true) => f64::NEG_INFINITY,
    })
}

/// The entry with the least margin (the worst miss when any is broken), `None` without data.
pub fn worst<'a>(entries: impl IntoIterator<Item = &'a SloEntry>) -> Option<(&'a SloEntry, f64)> {
    entries
        .into_iter()
        .filter_map(|e| margin(e).map(|m| (e, m)))
        .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
}

/// One entry in words: `invest p99 in steady: 812ms against <= 700ms`.
pub fn describe(entry: &SloEntry) -> String {
    format!(
        "{} {} in {}: {} against {}",
        entry.op,
        entry.metric,
        entry.phase.name(),
        entry.observed,
        entry.threshold
    )
}

/// The `slo` check: fail if any threshold is broken, unknown if a row had no data.
pub fn check(entries: &[SloEntry]) -> CheckResult {
    let broken: Vec<&SloEntry> = entries.iter().filter(|e| !e.ok && e.observed != "no data").collect();
    let missing = entries.iter().filter(|e| e.observed == "no data").count();
    let worst_miss = worst(broken.iter().copied()).map(|(e, _)| e).or(broken.first().copied()).map(describe);
    let details = serde_json::json!({
        "worst": worst_miss,
        "thresholds_count": entries.len(),
        "broken_count": broken.len(),
        "no_data_count": missing,
        "broken": broken.iter().map(|e| serde_json::json!({
            "op": e.op, "phase": e.phase.name(), "metric": e.metric, "threshold": e.threshold, "observed": e.observed,
        })).collect::<Vec<_>>(),
    });
    let (status, summary) = if let Some(worst) = &worst_miss {
        let summary =
            format!("{} of {} broken; worst: {worst}", broken.len(), plural(entries.len(), "threshold"));
        (Status::Fail, summary)
    } else if missing > 0 {
        let total = plural(entries.len(), "threshold");
        (Status::Unknown, format!("{missing} of {total} had no data in their phase"))
    } else if entries.len() == 1 {
        (Status::Pass, "the threshold was met".to_owned())
    } else {
        (Status::Pass, format!("all {} thresholds met", entries.len()))
    };
    CheckResult { name: "slo".into(), status, summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{invest, plan_with_crash};

    #[test]
    fn percentiles_errors_and_thresholds() {
        let mut history = History::new();
        // 100 ok invests taking 1..=100 ms, all in steady (before the crash at 20 s), 1 failure.
        for i in 1..=100u64 {
            invest(&mut history, 1, &format!("k{i}"), EntryType::Ok, i);
        }
        invest(&mut history, 1, "bad", EntryType::Fail, 5);
        let table = latency_table(&history, &plan_with_crash());
        let steady = table.iter().find(|r| r.op == "invest" && r.phase == Phase::Steady).unwrap();
        assert_eq!((steady.ok_count, steady.fail_count), (100, 1));
        let p95 = steady.latency_ms_p95.unwrap();
        assert!((94.0..=96.0).contains(&p95), "{p95}");
        assert!(table.iter().any(|r| r.op == "any" && r.phase == Phase::All && r.ops_count == 101));
        assert!(!steady.histogram_v2_base64.is_empty());

        let rows: Vec<SloRow> = serde_json::from_value(serde_json::json!([
            { "op": "invest", "phase": "steady", "p95": "100ms", "availability": "99%" },
            { "op": "invest", "phase": "steady", "p99": "50ms" },
            { "op": "invest", "phase": "fault", "p99": "50ms" },
        ]))
        .unwrap();
        let entries = evaluate(&rows, &table);
        assert_eq!(entries.len(), 4);
        assert!(entries[0].ok, "{:?}", entries[0]);
        assert!(entries[1].ok, "availability 100/101 = 99.01%: {:?}", entries[1]);
        assert!(!entries[2].ok && entries[2].metric == "p99");
        assert_eq!(entries[3].observed, "no data");
        assert_eq!(check(&entries).status, Status::Fail);
        assert_eq!(check(&entries[..2]).status, Status::Pass);
        assert_eq!(check(&entries[3..]).status, Status::Unknown);
    }

    fn entry(metric: &str, threshold: &str, observed: &str) -> SloEntry {
        SloEntry {
            op: "invest".into(),
            phase: Phase::Steady,
            metric: metric.into(),
            threshold: threshold.into(),
            observed: observed.into(),
            ok: false,
        }
    }

    /// Goal: a failed SLO names its worst miss — op, phase, metric, observed against the limit —
    /// judged by how far past its limit each threshold went, not by list order. Method: three
    /// broken thresholds, the worst (availability 90% against 99%: ten times the allowed
    /// unavailability) listed last.
    #[test]
    fn the_worst_miss_is_named_with_its_limit() {
        let entries = [
            entry("p99", "<= 700ms", "812ms"),
            entry("error_rate", "<= 10%", "12%"),
            SloEntry { phase: Phase::Post, ..entry("availability", ">= 99%", "90%") },
        ];
        assert!((margin(&entries[0]).unwrap() + 0.16).abs() < 1e-9);
        assert!((margin(&entries[1]).unwrap() + 0.2).abs() < 1e-9);
        assert!((margin(&entries[2]).unwrap() + 9.0).abs() < 1e-9);
        assert!((margin(&entry("availability", ">= 99%", "99.5%")).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(margin(&entry("p99", "<= 700ms", "no data")), None);
        let result = check(&entries);
        assert_eq!(result.status, Status::Fail);
        assert_eq!(
            result.summary,
            "3 of 3 thresholds broken; worst: invest availability in post: 90% against >= 99%"
        );
        assert_eq!(
            check(&entries[..1]).summary,
            "1 of 1 threshold broken; worst: invest p99 in steady: 812ms against <= 700ms"
        );
    }
}
