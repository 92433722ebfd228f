//! Per-function aggregates of timing records, kept in memory until the
//! caller takes them and writes them to Postgres, and the observers that
//! see every record as the engine produces it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::Serialize;

use super::engine::UdfEngine;
use super::fault::FaultClass;
use super::record::CallRecord;

/// An observer of every timing record of an engine's guest calls. It runs
/// on the thread that made the call, so it must return quickly.
pub trait CallObserver: Send + Sync {
    /// Takes one timing record.
    fn observe(&self, record: &CallRecord);
}

impl UdfEngine {
    /// Hands every later timing record of this engine to `observer` too,
    /// for as long as something else keeps the observer alive.
    pub fn observe_calls(&self, observer: &Arc<dyn CallObserver>) {
        let mut observers = self
            .inner
            .stats
            .observers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        observers.retain(|observer| observer.strong_count() > 0);
        observers.push(Arc::downgrade(observer));
    }
}

/// Upper bounds, in microseconds, of the latency histogram's buckets; one
/// more bucket counts everything slower than the last bound. Latency is
/// `instantiate_us + guest_us` of one guest call.
pub const LATENCY_BUCKETS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The number of histogram buckets, the overflow bucket included.
pub const LATENCY_BUCKET_COUNT: usize = LATENCY_BUCKETS_US.len() + 1;

/// The key of one function's aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FunctionKey {
    /// The tenant.
    pub tenant: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The plugin's catalog version.
    pub version: i32,
    /// The function.
    pub function: String,
}

/// Aggregates of the guest calls of one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionStats {
    /// Guest calls, re-runs included.
    pub calls: u64,
    /// Rows passed to the guest.
    pub rows: u64,
    /// Faulted calls by class, in the order of [`FaultClass::ALL`].
    pub faults: [u64; FaultClass::ALL.len()],
    /// Time spent in the guest, summed, in microseconds.
    pub guest_us: u64,
    /// Fuel used, summed.
    pub fuel: u64,
    /// Calls by latency, in the buckets of [`LATENCY_BUCKETS_US`].
    pub latency_buckets: [u64; LATENCY_BUCKET_COUNT],
}

impl Default for FunctionStats {
    fn default() -> Self {
        FunctionStats {
            calls: 0,
            rows: 0,
            faults: [0; FaultClass::ALL.len()],
            guest_us: 0,
            fuel: 0,
            latency_buckets: [0; LATENCY_BUCKET_COUNT],
        }
    }
}

impl FunctionStats {
    /// Adds one guest call.
    pub fn observe(&mut self, record: &CallRecord) {
        self.calls += 1;
        self.rows += record.rows;
        self.guest_us += record.guest_us;
        self.fuel = self.fuel.saturating_add(record.fuel_used);
        if let Some(index) = FaultClass::ALL
            .iter()
            .position(|class| class.as_str() == record.outcome)
        {
            self.faults[index] += 1;
        }
        self.latency_buckets[bucket_of(record.instantiate_us + record.guest_us)] += 1;
    }

    /// Adds another aggregate into this one.
    pub fn merge(&mut self, other: &FunctionStats) {
        self.calls += other.calls;
        self.rows += other.rows;
        self.guest_us += other.guest_us;
        self.fuel = self.fuel.saturating_add(other.fuel);
        for (mine, theirs) in self.faults.iter_mut().zip(other.faults) {
            *mine += theirs;
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(other.latency_buckets) {
            *mine += theirs;
        }
    }

    /// Estimates the latency at percentile `p` (0 to 100) as the upper bound
    /// of the bucket it falls in; `None` for no calls or for the overflow
    /// bucket.
    pub fn latency_percentile_us(&self, p: f64) -> Option<u64> {
        if self.calls == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.calls as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return LATENCY_BUCKETS_US.get(index).copied();
            }
        }
        None
    }
}

fn bucket_of(latency_us: u64) -> usize {
    LATENCY_BUCKETS_US
        .iter()
        .position(|&bound| latency_us <= bound)
        .unwrap_or(LATENCY_BUCKETS_US.len())
}

/// The aggregates not yet taken, and the engine's call observers.
#[derive(Default)]
pub(crate) struct StatsCollector {
    pending: Mutex<HashMap<FunctionKey, FunctionStats>>,
    observers: RwLock<Vec<Weak<dyn CallObserver>>>,
}

impl StatsCollector {
    pub fn observe(&self, record: &CallRecord) {
        for observer in self
            .observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(observer) = observer.upgrade() {
                observer.observe(record);
            }
        }
        let key = FunctionKey {
            tenant: record.tenant.clone(),
            plugin: record.plugin.clone(),
            version: record.version,
            function: record.function.clone(),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.entry(key).or_default().observe(record);
    }

    pub fn take(&self) -> Vec<(FunctionKey, FunctionStats)> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.drain().collect()
    }

    /// Puts aggregates back after a failed write, so they are not lost.
    pub fn restore(&self, stats: Vec<(FunctionKey, FunctionStats)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (key, stats) in stats {
            pending.entry(key).or_default().merge(&stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: &str, guest_us: u64) -> CallRecord {
        CallRecord {
            tenant: "t".into(),
            plugin: "p".into(),
            version: 1,
            function: "f".into(),
            rows: 10,
            bytes_in: 0,
            bytes_out: 0,
            queue_wait_us: 0,
            instantiate_us: 5,
            guest_us,
            fuel_used: 0,
            memory_peak_bytes: 0,
            memory_limit_bytes: 0,
            cache_hit: false,
            warm: false,
            attempt: 1,
            pool: None,
            pool_wait_us: 0,
            requests: 0,
            tokens: 0,
            outcome: outcome.into(),
            error: None,
        }
    }

    #[test]
    fn observe_counts_rows_faults_and_buckets() {
        let mut stats = FunctionStats::default();
        stats.observe(&record("ok", 5));
        stats.observe(&record("fuel_exhausted", 95));
        assert_eq!(stats.calls, 2);
        assert_eq!(stats.rows, 20);
        assert_eq!(stats.faults[0], 1, "fuel_exhausted is the first class");
        assert_eq!(
            stats.latency_buckets[0], 1,
            "10 us falls in the first bucket"
        );
        assert_eq!(
            stats.latency_buckets[3], 1,
            "100 us falls in the fourth bucket"
        );
    }

    #[test]
    fn percentile_reads_bucket_bounds() {
        let mut stats = FunctionStats::default();
        for _ in 0..98 {
            stats.observe(&record("ok", 1));
        }
        stats.observe(&record("ok", 400));
        stats.observe(&record("ok", 20_000_000));
        assert_eq!(stats.latency_percentile_us(50.0), Some(10));
        assert_eq!(stats.latency_percentile_us(99.0), Some(500));
        assert_eq!(
            stats.latency_percentile_us(100.0),
            None,
            "the overflow bucket has no bound"
        );
    }

    #[test]
    fn restore_merges_back() {
        let collector = StatsCollector::default();
        collector.observe(&record("ok", 1));
        let taken = collector.take();
        collector.observe(&record("ok", 1));
        collector.restore(taken);
        let again = collector.take();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1.calls, 2);
    }
}
