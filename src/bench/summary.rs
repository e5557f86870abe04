//! Recording and reporting: each client fills its own [`Recorder`]
//! (latency histograms in microseconds, misses, errors by code); the
//! recorders are merged at the end into a [`Summary`], printed as a table
//! or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant figures kept by the latency histograms.
const SIGFIGS: u8 = 3;

/// One client's measurements (and, after merging, everyone's).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Successful GETs (hits and misses), latency in µs.
    reads: Histogram<u64>,
    /// Successful SETs, latency in µs.
    writes: Histogram<u64>,
    /// GETs that found no value (also counted in `reads`).
    misses: u64,
    /// Failed operations by error code, with the first message seen.
    errors: BTreeMap<String, ErrorCount>,
}

/// How often one error code occurred, and one example.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorCount {
    count: u64,
    example: String,
}

impl Recorder {
    /// An empty recorder.
    ///
    /// # Errors
    ///
    /// If the histograms cannot be created (not for valid constants).
    pub fn new() -> anyhow::Result<Recorder> {
        let hist = || Histogram::<u64>::new(SIGFIGS).context("cannot create a latency histogram");
        Ok(Recorder {
            reads: hist()?,
            writes: hist()?,
            misses: 0,
            errors: BTreeMap::new(),
        })
    }

    /// A successful read that took `latency`.
    pub fn read(&mut self, latency: Duration, hit: bool) {
        record(&mut self.reads, latency);
        if !hit {
            self.misses += 1;
        }
    }

    /// A successful write that took `latency`.
    pub fn write(&mut self, latency: Duration) {
        record(&mut self.writes, latency);
    }

    /// `n` failed operations with error `code`; `example` is kept if it is
    /// the first of its code.
    pub fn errors(&mut self, code: &str, n: u64, example: impl FnOnce() -> String) {
        match self.errors.get_mut(code) {
            Some(e) => e.count += n,
            None => {
                self.errors.insert(
                    code.to_string(),
                    ErrorCount {
                        count: n,
                        example: example(),
                    },
                );
            }
        }
    }

    /// Adds `other`'s measurements to these.
    ///
    /// # Errors
    ///
    /// If the histograms cannot be added (they auto-resize, so only on
    /// allocation limits).
    pub fn merge(&mut self, other: &Recorder) -> anyhow::Result<()> {
        self.reads
            .add(&other.reads)
            .context("cannot merge read latencies")?;
        self.writes
            .add(&other.writes)
            .context("cannot merge write latencies")?;
        self.misses += other.misses;
        for (code, e) in &other.errors {
            self.errors(code, e.count, || e.example.clone());
        }
        Ok(())
    }
}

/// Records `latency` in microseconds. The histograms start small and
/// grow as needed; should growing fail, the value is clamped to the
/// largest trackable one rather than lost.
fn record(hist: &mut Histogram<u64>, latency: Duration) {
    let us = micros(latency);
    if hist.record(us).is_err() {
        hist.saturating_record(us);
    }
}

/// Microseconds, saturating (a latency of 584 000 years is not expected).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// How the run was set up, echoed in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Target kind (`resp` or `etcd`).
    pub target: &'static str,
    /// Addresses the clients were spread over.
    pub addrs: Vec<String>,
    /// Keyspace selected with `USE`, if any.
    pub keyspace: Option<String>,
    /// Concurrent connections.
    pub clients: usize,
    /// Operations per round trip.
    pub pipeline: usize,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Unmeasured warm-up before the window, seconds.
    pub warmup_s: f64,
    /// Keyspace size (`key:0` … `key:<keys-1>`).
    pub keys: u64,
    /// Bytes per SET value.
    pub value_size: usize,
    /// Fraction of operations that are GETs.
    pub read_ratio: f64,
    /// Seed of the key and operation choices.
    pub seed: u64,
}

/// Count, rate and latency percentiles of one operation class. Latencies
/// are in microseconds and `null` when there were no operations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Successful operations in the measured window.
    pub ops: u64,
    /// `ops` per second of the window.
    pub ops_per_sec: f64,
    pub mean_us: Option<f64>,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub max_us: Option<u64>,
}

impl Latency {
    fn of(hist: &Histogram<u64>, window: Duration) -> Latency {
        let ops = hist.len();
        let some = |v: u64| (ops > 0).then_some(v);
        Latency {
            ops,
            ops_per_sec: rate(ops, window),
            mean_us: (ops > 0).then(|| hist.mean()),
            p50_us: some(hist.value_at_quantile(0.50)),
            p90_us: some(hist.value_at_quantile(0.90)),
            p99_us: some(hist.value_at_quantile(0.99)),
            p999_us: some(hist.value_at_quantile(0.999)),
            max_us: some(hist.max()),
        }
    }
}

/// `ops` per second over `window` (0 for an empty window).
pub fn rate(ops: u64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 {
        ops as f64 / secs
    } else {
        0.0
    }
}

/// Failed operations: never part of `ops` or of the latencies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Errors {
    /// All failed operations.
    pub total: u64,
    /// Count per code: the error reply's first word (`ERR`, `NOTSTRONG`),
    /// or `client:<kind>` for connection failures and unexpected replies.
    pub by_code: BTreeMap<String, u64>,
    /// The first message seen per code.
    pub examples: BTreeMap<String, String>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub run: RunInfo,
    /// Successful operations in the measured window (reads + writes).
    pub ops: u64,
    /// `ops` per second.
    pub ops_per_sec: f64,
    pub reads: Latency,
    pub writes: Latency,
    pub all: Latency,
    /// GETs that found no value (successful, included in `reads`).
    pub get_misses: u64,
    pub errors: Errors,
}

impl Summary {
    /// Summarizes the merged recorder of a run whose measured window
    /// lasted `window`.
    ///
    /// # Errors
    ///
    /// If the read and write histograms cannot be combined.
    pub fn new(run: RunInfo, rec: &Recorder, window: Duration) -> anyhow::Result<Summary> {
        let mut all = rec.reads.clone();
        all.add(&rec.writes).context("cannot combine latencies")?;
        let reads = Latency::of(&rec.reads, window);
        let writes = Latency::of(&rec.writes, window);
        let all = Latency::of(&all, window);
        Ok(Summary {
            run,
            ops: all.ops,
            ops_per_sec: all.ops_per_sec,
            reads,
            writes,
            all,
            get_misses: rec.misses,
            errors: Errors {
                total: rec.errors.values().map(|e| e.count).sum(),
                by_code: rec
                    .errors
                    .iter()
                    .map(|(k, e)| (k.clone(), e.count))
                    .collect(),
                examples: rec
                    .errors
                    .iter()
                    .map(|(k, e)| (k.clone(), e.example.clone()))
                    .collect(),
            },
        })
    }

    /// The summary as one line of JSON.
    ///
    /// # Errors
    ///
    /// Never in practice (all fields serialize).
    pub fn to_json(&self) -> anyhow::Result<String> {
        serde_json::to_string(self).context("cannot serialize the summary")
    }

    /// The summary as a table for people: rates, then latencies in
    /// milliseconds, then errors.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ops in {:.1}s: {:.1} ops/s ({} errors)",
            self.ops, self.run.duration_s, self.ops_per_sec, self.errors.total
        );
        let _ = writeln!(
            out,
            "{:<7}{:>11}{:>12}{:>9}{:>9}{:>9}{:>9}{:>9}  (latency ms)",
            "", "ops", "ops/s", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, l) in [
            ("reads", &self.reads),
            ("writes", &self.writes),
            ("all", &self.all),
        ] {
            let _ = writeln!(
                out,
                "{:<7}{:>11}{:>12.1}{:>9}{:>9}{:>9}{:>9}{:>9}",
                name,
                l.ops,
                l.ops_per_sec,
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            );
        }
        if self.reads.ops > 0 {
            let _ = writeln!(
                out,
                "GET misses: {} ({:.1}% of reads; keys never written read as missing)",
                self.get_misses,
                100.0 * self.get_misses as f64 / self.reads.ops as f64
            );
        }
        if self.errors.total == 0 {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(out, "errors: {}", self.errors.total);
            for (code, n) in &self.errors.by_code {
                let example = self.errors.examples.get(code).map_or("", String::as_str);
                let _ = writeln!(out, "  {code}: {n} (first: {example})");
            }
        }
        out
    }
}

/// Microseconds as milliseconds with three decimals, `-` for none.
fn ms(us: Option<u64>) -> String {
    match us {
        Some(us) => format!("{:.3}", us as f64 / 1000.0),
        None => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_info() -> RunInfo {
        RunInfo {
            target: "resp",
            addrs: vec!["127.0.0.1:7379".into()],
            keyspace: None,
            clients: 2,
            pipeline: 1,
            duration_s: 10.0,
            warmup_s: 1.0,
            keys: 100,
            value_size: 3,
            read_ratio: 0.5,
            seed: 42,
        }
    }

    /// Two clients: reads of 1..=1000 µs split between them, writes of
    /// 2000 µs, one miss, errors of two codes.
    fn merged() -> Recorder {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        for us in 1..=1000u64 {
            let rec = if us % 2 == 0 { &mut a } else { &mut b };
            rec.read(Duration::from_micros(us), true);
        }
        a.read(Duration::from_micros(500), false);
        for _ in 0..99 {
            b.write(Duration::from_millis(2));
        }
        a.errors("ERR", 2, || "ERR first".into());
        b.errors("ERR", 1, || "ERR second".into());
        b.errors("client:closed", 5, || "closed".into());
        a.merge(&b).unwrap();
        a
    }

    #[test]
    fn merges_and_computes_percentiles_and_rates() {
        let s = Summary::new(run_info(), &merged(), Duration::from_secs(10)).unwrap();
        assert_eq!(s.reads.ops, 1001);
        assert_eq!(s.writes.ops, 99);
        assert_eq!(s.ops, 1100);
        assert_eq!(s.all.ops, 1100);
        assert!((s.ops_per_sec - 110.0).abs() < 1e-9);
        assert!((s.reads.ops_per_sec - 100.1).abs() < 1e-9);
        // 3 significant figures: values are exact up to 1/1000 relative.
        let p50 = s.reads.p50_us.unwrap();
        assert!((499..=501).contains(&p50), "p50 {p50}");
        let p99 = s.reads.p99_us.unwrap();
        assert!((989..=991).contains(&p99), "p99 {p99}");
        assert_eq!(s.reads.max_us, Some(1000));
        assert_eq!(s.writes.p50_us, Some(2000));
        assert_eq!(s.all.max_us, Some(2000));
        // 1001 of 1100 ops are at most 1 ms, so p90 is a read, p99 a write.
        assert!(s.all.p90_us.unwrap() <= 1000);
        assert_eq!(s.all.p99_us, Some(2000));
        assert_eq!(s.get_misses, 1);
        assert_eq!(s.errors.total, 8);
        assert_eq!(s.errors.by_code["ERR"], 3);
        assert_eq!(s.errors.by_code["client:closed"], 5);
        assert_eq!(s.errors.examples["ERR"], "ERR first");
    }

    #[test]
    fn empty_classes_have_null_latencies_and_zero_rates() {
        let s = Summary::new(run_info(), &Recorder::new().unwrap(), Duration::ZERO).unwrap();
        assert_eq!(s.ops, 0);
        assert_eq!(s.ops_per_sec, 0.0);
        assert_eq!(s.reads.p50_us, None);
        assert_eq!(s.all.mean_us, None);
        let v: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
        assert!(v["reads"]["p99_us"].is_null());
        assert!(s.to_text().contains("errors: none"));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let s = Summary::new(run_info(), &merged(), Duration::from_secs(10)).unwrap();
        let json = s.to_json().unwrap();
        assert!(!json.contains('\n'), "one line");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "target",
            "addrs",
            "keyspace",
            "clients",
            "pipeline",
            "duration_s",
            "warmup_s",
            "keys",
            "value_size",
            "read_ratio",
            "seed",
            "ops",
            "ops_per_sec",
            "get_misses",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for class in ["reads", "writes", "all"] {
            for key in [
                "ops",
                "ops_per_sec",
                "mean_us",
                "p50_us",
                "p90_us",
                "p99_us",
                "p999_us",
                "max_us",
            ] {
                assert!(v[class].get(key).is_some(), "missing {class}.{key}");
            }
        }
        assert_eq!(v["ops"], 1100);
        assert_eq!(v["errors"]["total"], 8);
        assert_eq!(v["errors"]["by_code"]["client:closed"], 5);
        assert_eq!(v["reads"]["max_us"], 1000);
    }

    #[test]
    fn text_lists_classes_and_errors() {
        let s = Summary::new(run_info(), &merged(), Duration::from_secs(10)).unwrap();
        let text = s.to_text();
        assert!(text.starts_with("1100 ops in 10.0s: 110.0 ops/s (8 errors)"));
        for needle in [
            "reads",
            "writes",
            "all",
            "p99.9",
            "ERR: 3",
            "client:closed: 5",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
        assert!(text.contains("2.000"), "write latency in ms:\n{text}");
    }

    #[test]
    fn long_latencies_are_kept_not_clamped() {
        let mut r = Recorder::new().unwrap();
        r.write(Duration::from_secs(30));
        let max = r.writes.max();
        assert!(
            (29_970_000..=30_030_000).contains(&max),
            "30 s recorded as {max} µs"
        );
        r.write(Duration::MAX);
        assert_eq!(r.writes.len(), 2);
    }
}
