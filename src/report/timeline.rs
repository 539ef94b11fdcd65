//! The per-second (per-bucket) timeline of a run: throughput, errors and latency percentiles per
//! op, aggregated from the history so a report never embeds the raw operations.
//!
//! Each completed op lands in the bucket of its *intended* start, so a stall shows up where the
//! affected requests were meant to run, not where they finally completed.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::{EntryOp, EntryType, History};

/// Aggregates for one op in one time bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, ms since the start of the run.
    pub start_ms: u64,
    /// Ops that succeeded.
    pub ok_count: u64,
    /// Ops that definitely failed.
    pub fail_count: u64,
    /// Ops whose outcome is unknown (timed out).
    pub info_count: u64,
    /// Median latency of ok ops (ms), if any.
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile latency of ok ops (ms), if any.
    pub latency_ms_p99: Option<f64>,
}

/// One op's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpTimeline {
    /// The op.
    pub op: EntryOp,
    /// Buckets in time order, one per bucket width, without gaps.
    pub buckets: Vec<Bucket>,
}

/// The timeline of every op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Width of a bucket, ms.
    pub bucket_ms: u64,
    /// One entry per op that appears in the history, in `Op::ALL` order.
    pub ops: Vec<OpTimeline>,
}

/// One op's buckets while aggregating, each with the histogram of its ok latencies.
type Slots = Vec<(Bucket, Option<Histogram<u64>>)>;

/// Latencies above this are clamped when histogrammed (a timed-out op never waits longer).
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;

/// Aggregate a history into buckets of `bucket_ms` covering `0..duration_ms`.
pub fn build(history: &History, duration_ms: u64, bucket_ms: u64) -> Timeline {
    assert!(bucket_ms > 0, "bucket width must be positive");
    let bucket_count = duration_ms.div_ceil(bucket_ms).max(1) as usize;
    let mut per_op: BTreeMap<EntryOp, Slots> = BTreeMap::new();
    for (invoke, completion) in history.ops() {
        let (op, Some(done)) = (invoke.op, completion) else { continue };
        if !op.is_client_op() {
            continue;
        }
        let slot = ((invoke.time_ns / 1_000_000 / bucket_ms) as usize).min(bucket_count - 1);
        let buckets = per_op.entry(op).or_insert_with(|| {
            (0..bucket_count)
                .map(|i| (Bucket { start_ms: i as u64 * bucket_ms, ..Bucket::default() }, None))
                .collect()
        });
        let (bucket, histogram) = &mut buckets[slot];
        match done.kind {
            EntryType::Ok => {
                bucket.ok_count += 1;
                let latency_ns = done.time_ns.saturating_sub(invoke.time_ns).clamp(1, LATENCY_NS_MAX);
                let histogram = histogram.get_or_insert_with(|| {
                    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 2).expect("valid bounds")
                });
                histogram.record(latency_ns).expect("clamped into bounds");
            }
            EntryType::Fail => bucket.fail_count += 1,
            EntryType::Info | EntryType::Invoke => bucket.info_count += 1,
        }
    }
    let ops = per_op
        .into_iter()
        .map(|(op, buckets)| OpTimeline {
            op,
            buckets: buckets
                .into_iter()
                .map(|(mut bucket, histogram)| {
                    if let Some(h) = histogram {
                        bucket.latency_ms_p50 = Some(h.value_at_quantile(0.5) as f64 / 1e6);
                        bucket.latency_ms_p99 = Some(h.value_at_quantile(0.99) as f64 / 1e6);
                    }
                    bucket
                })
                .collect(),
        })
        .collect();
    Timeline { bucket_ms, ops }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Process, Value};

    #[test]
    fn ops_land_in_the_bucket_of_their_intended_start() {
        let mut history = History::new();
        let ms = 1_000_000;
        // Intended at 900 ms, completes at 2.5 s: counts in bucket 0 with a 1.6 s latency.
        history.push(
            900 * ms,
            EntryType::Invoke,
            Process::Client(1),
            EntryOp::Invest,
            Value::default(),
            None,
        );
        history.push(2500 * ms, EntryType::Ok, Process::Client(1), EntryOp::Invest, Value::default(), None);
        history.push(
            1100 * ms,
            EntryType::Invoke,
            Process::Client(2),
            EntryOp::Invest,
            Value::default(),
            None,
        );
        history.push(1200 * ms, EntryType::Fail, Process::Client(2), EntryOp::Invest, Value::default(), None);
        let timeline = build(&history, 3000, 1000);
        let buckets = &timeline.ops[0].buckets;
        assert_eq!(buckets.len(), 3);
        assert_eq!((buckets[0].ok_count, buckets[1].fail_count), (1, 1));
        let p50 = buckets[0].latency_ms_p50.unwrap();
        assert!((p50 - 1600.0).abs() < 20.0, "{p50}");
        assert_eq!(buckets[2], Bucket { start_ms: 2000, ..Bucket::default() });
    }
}
