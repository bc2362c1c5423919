//! Latency figures as the benchmark reports them.

use std::time::Duration;

use serde_json::{json, Value};

/// p50, p99 and max of durations, in milliseconds.
pub(crate) fn dist(mut v: Vec<Duration>) -> Value {
    v.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let at = |q: f64| {
        v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    json!({"n": v.len(), "p50_ms": ms(at(0.5)), "p99_ms": ms(at(0.99)), "max_ms": ms(v.last().copied().unwrap_or_default())})
}

/// The distribution of each kind of change (`(kind, latency)` pairs), for the breakdown.
pub(crate) fn by_kind(v: &[(&'static str, Duration)]) -> Value {
    let mut kinds: Vec<&str> = v.iter().map(|(k, _)| *k).collect();
    kinds.sort();
    kinds.dedup();
    let m: serde_json::Map<String, Value> = kinds
        .into_iter()
        .map(|k| (k.to_string(), dist(v.iter().filter(|(x, _)| *x == k).map(|(_, d)| *d).collect())))
        .collect();
    Value::Object(m)
}
