//! Counters shared by the workers, latency histograms, and the final report
//! as a table and as JSON.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::procs::ProcSample;

/// Longest latency the histograms hold (longer ones saturate).
const LATENCY_NS_MAX: u64 = 120_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    // 3 significant digits over 1 ns..120 s; cannot fail with these bounds.
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("constant histogram bounds are valid")
}

/// Counts one successful operation that took `took`, in `hist` (the
/// worker's own histogram) and in the shared counter.
pub fn record_op(shared: &Shared, hist: &mut Histogram<u64>, took: Duration) {
    let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
    hist.saturating_record(ns.max(1));
    shared.ops.fetch_add(1, Ordering::Relaxed);
}

/// What every worker updates while it runs.
#[derive(Default)]
pub struct Shared {
    /// Set when the run must end (duration over, budget spent, Ctrl-C).
    pub stop: AtomicBool,
    /// Requests (or iterations) handed out so far, against `--requests`.
    pub issued: AtomicU64,
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub connections: AtomicU64,
    /// Worker histograms, merged as each worker ends.
    pub latency: Mutex<Option<Histogram<u64>>>,
    /// The first few error messages, for the report.
    pub error_samples: Mutex<Vec<String>>,
    pub budget: AtomicU64,
}

/// Error messages kept for the report.
const ERROR_SAMPLES_MAX: usize = 5;

impl Shared {
    pub fn new(budget: Option<u64>) -> Shared {
        Shared {
            budget: AtomicU64::new(budget.unwrap_or(u64::MAX)),
            ..Shared::default()
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Claims one request of the `--requests` budget; false once spent or stopped.
    pub fn claim(&self) -> bool {
        if self.stopped() {
            return false;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if n >= self.budget.load(Ordering::Relaxed) {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn error(&self, message: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut samples) = self.error_samples.lock()
            && samples.len() < ERROR_SAMPLES_MAX
        {
            samples.push(message.into());
        }
    }

    /// The report of a run measured over `elapsed` with these counters:
    /// latency from the merged histogram, the error samples kept, and the
    /// server's and client's use of the machine over the window.
    pub fn report(
        &self,
        shape: RunShape,
        elapsed: Duration,
        server: Option<ProcUse>,
        client: Option<ProcUse>,
    ) -> RunReport {
        let latency = self
            .latency
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(Latency::from_histogram))
            .unwrap_or_default();
        RunReport {
            scenario: shape.scenario,
            connections: shape.connections,
            pipeline: shape.pipeline,
            value_size: shape.value_size,
            elapsed,
            ops: self.ops.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            latency,
            server,
            client,
            error_samples: self
                .error_samples
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            extra: Vec::new(),
        }
    }

    pub fn merge(&self, hist: &Histogram<u64>) {
        if let Ok(mut merged) = self.latency.lock() {
            match merged.as_mut() {
                Some(m) => {
                    let _ = m.add(hist);
                }
                None => *merged = Some(hist.clone()),
            }
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Latency {
            p50: us(h.value_at_quantile(0.50)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1_000.0,
        }
    }

    pub fn json(&self) -> Value {
        let r = |v: f64| (v * 10.0).round() / 10.0;
        json!({"p50": r(self.p50), "p99": r(self.p99), "p999": r(self.p999), "max": r(self.max), "mean": r(self.mean)})
    }
}

/// Resource use of one process over the measured window.
#[derive(Debug, Clone, Copy)]
pub struct ProcUse {
    pub pid: Option<u32>,
    pub start: ProcSample,
    pub end: ProcSample,
}

impl ProcUse {
    /// A process's use of the machine between two samples (`pid` `None`:
    /// this process, the client).
    pub fn between(pid: Option<u32>, start: ProcSample, end: ProcSample) -> ProcUse {
        ProcUse { pid, start, end }
    }

    pub fn cpu_seconds(&self) -> f64 {
        (self.end.cpu_seconds - self.start.cpu_seconds).max(0.0)
    }

    /// CPU of the children the process reaped during the window (it counts
    /// only once a child has exited and been waited for).
    pub fn reaped_children_cpu_seconds(&self) -> f64 {
        (self.end.reaped_children_cpu_seconds - self.start.reaped_children_cpu_seconds).max(0.0)
    }

    pub fn json(&self, elapsed: Duration) -> Value {
        let cpu = self.cpu_seconds();
        let secs = elapsed.as_secs_f64().max(1e-9);
        json!({
            "pid": self.pid,
            "rss_kib_start": self.start.rss_kib,
            "rss_kib_end": self.end.rss_kib,
            "rss_hwm_kib": self.end.hwm_kib,
            "threads": self.end.threads,
            "cpu_seconds": (cpu * 1000.0).round() / 1000.0,
            "cpu_percent": (cpu / secs * 1000.0).round() / 10.0,
        })
    }
}

/// CPU microseconds per operation: `cpu_seconds` spent over `ops`
/// operations; `None` without operations or without a CPU figure.
pub fn cpu_us_per_op(cpu_seconds: Option<f64>, ops: u64) -> Option<f64> {
    let cpu = cpu_seconds?;
    (ops > 0 && cpu.is_finite() && cpu >= 0.0).then(|| cpu * 1e6 / ops as f64)
}

/// `ours / theirs`; `None` when either is missing or `theirs` is not a
/// positive number (a ratio over nothing is no figure, not zero).
pub fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    let (ours, theirs) = (ours?, theirs?);
    (ours.is_finite() && theirs.is_finite() && theirs > 0.0).then(|| ours / theirs)
}

/// `value` rounded to `decimals` places, for the JSON.
pub fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// What a run was asked to do, as its report names it.
#[derive(Debug, Clone)]
pub struct RunShape {
    pub scenario: String,
    pub connections: usize,
    pub pipeline: usize,
    pub value_size: usize,
}

/// The outcome of one scenario run.
pub struct RunReport {
    pub scenario: String,
    pub connections: usize,
    pub pipeline: usize,
    pub value_size: usize,
    pub elapsed: Duration,
    pub ops: u64,
    pub errors: u64,
    pub reconnects: u64,
    pub latency: Latency,
    pub server: Option<ProcUse>,
    pub client: Option<ProcUse>,
    pub error_samples: Vec<String>,
    /// Scenario-specific figures (idle: RSS per connection, …).
    pub extra: Vec<(String, Value)>,
}

impl RunReport {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The server's CPU over the window per operation (µs); `None` when
    /// the server's process was not sampled.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        cpu_us_per_op(self.server.map(|s| s.cpu_seconds()), self.ops)
    }

    pub fn json(&self) -> Value {
        let mut v = json!({
            "scenario": self.scenario,
            "connections": self.connections,
            "pipeline": self.pipeline,
            "value_size": self.value_size,
            "elapsed_s": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "ops": self.ops,
            "ops_per_sec": self.ops_per_sec().round(),
            "errors": self.errors,
            "reconnects": self.reconnects,
            "latency_us": self.latency.json(),
            "server": self.server.map(|s| s.json(self.elapsed)),
            "client": self.client.map(|s| s.json(self.elapsed)),
            "error_samples": self.error_samples,
        });
        if let Some(map) = v.as_object_mut() {
            for (k, val) in &self.extra {
                map.insert(k.clone(), val.clone());
            }
        }
        v
    }

    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("scenario".into(), self.scenario.clone()),
            ("connections".into(), self.connections.to_string()),
            ("pipeline".into(), self.pipeline.to_string()),
            ("value size (B)".into(), self.value_size.to_string()),
            (
                "elapsed (s)".into(),
                format!("{:.2}", self.elapsed.as_secs_f64()),
            ),
            ("ops".into(), self.ops.to_string()),
            (
                "throughput (ops/s)".into(),
                format!("{:.0}", self.ops_per_sec()),
            ),
            ("errors".into(), self.errors.to_string()),
            ("reconnects".into(), self.reconnects.to_string()),
            (
                "latency p50 (µs)".into(),
                format!("{:.1}", self.latency.p50),
            ),
            (
                "latency p99 (µs)".into(),
                format!("{:.1}", self.latency.p99),
            ),
            (
                "latency p99.9 (µs)".into(),
                format!("{:.1}", self.latency.p999),
            ),
            (
                "latency max (µs)".into(),
                format!("{:.1}", self.latency.max),
            ),
        ];
        for (label, p) in [("server", self.server), ("client", self.client)] {
            if let Some(p) = p {
                let secs = self.elapsed.as_secs_f64().max(1e-9);
                rows.push((
                    format!("{label} RSS start/end (MiB)"),
                    format!(
                        "{:.1} / {:.1}",
                        p.start.rss_kib as f64 / 1024.0,
                        p.end.rss_kib as f64 / 1024.0
                    ),
                ));
                rows.push((
                    format!("{label} CPU (s, % of one core)"),
                    format!(
                        "{:.2} s, {:.0} %",
                        p.cpu_seconds(),
                        p.cpu_seconds() / secs * 100.0
                    ),
                ));
            }
        }
        for (k, v) in &self.extra {
            rows.push((k.clone(), v.to_string()));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        for e in &self.error_samples {
            out.push_str(&format!("error sample: {e}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_op_is_microseconds_over_operations() {
        assert_eq!(cpu_us_per_op(Some(1.5), 100_000), Some(15.0));
        assert_eq!(cpu_us_per_op(Some(0.0), 10), Some(0.0));
        assert_eq!(cpu_us_per_op(Some(1.0), 0), None);
        assert_eq!(cpu_us_per_op(None, 10), None);
        assert_eq!(cpu_us_per_op(Some(f64::NAN), 10), None);
    }

    #[test]
    fn ratio_is_ours_over_theirs_and_absent_over_nothing() {
        assert_eq!(ratio(Some(15.0), Some(10.0)), Some(1.5));
        assert_eq!(ratio(Some(0.0), Some(4.0)), Some(0.0));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(ratio(Some(f64::INFINITY), Some(1.0)), None);
    }

    #[test]
    fn rounding_keeps_the_given_decimals() {
        assert_eq!(rounded(1.23456, 2), 1.23);
        assert_eq!(rounded(0.9996, 3), 1.0);
        assert_eq!(rounded(76_483.4, 0), 76_483.0);
    }
}
