//! The resource monitor of `sandtable serve`.
//!
//! Every `sample_interval_ms` of the `[monitor]` configuration, a task
//! samples the host's CPU, memory, disks and network from `/proc` and sets
//! the host gauges of [`metrics`](super::metrics). It keeps each sample
//! with the interval's calls per function and pool waits per pool, for the
//! dashboard. The monitor also sees every timing record of its engine, and
//! raises alerts (see [`alerts`]) when the host's memory, a call's memory, a
//! warm instance's memory trend or the rate of fuel faults crosses its
//! threshold.

pub mod alerts;
pub mod host;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde::Serialize;

use self::alerts::{Alert, Alerts, unix_ms};
use self::host::{HostReader, HostSample};
use super::metrics;
use crate::config::MonitorSettings;
use crate::sandbox::{CallObserver, CallRecord, FunctionKey, FunctionStats, UdfEngine};

/// The samples the monitor keeps: 15 minutes at the default interval.
pub const HISTORY_SAMPLES: usize = 180;

/// One function's calls within one sample interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionFigures {
    /// The tenant.
    pub tenant: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The plugin's catalog version.
    pub version: i32,
    /// The function.
    pub function: String,
    /// Guest calls, re-runs included.
    pub calls: u64,
    /// Rows passed to the guest.
    pub rows: u64,
    /// Calls that faulted, of any class.
    pub faults: u64,
    /// The latency (instantiate plus guest time) at the 50th percentile, in
    /// microseconds. It is the upper bound of its histogram bucket, and
    /// `None` past the last bucket.
    pub p50_us: Option<u64>,
    /// The latency at the 95th percentile, as [`FunctionFigures::p50_us`].
    pub p95_us: Option<u64>,
    /// The latency at the 99th percentile, as [`FunctionFigures::p50_us`].
    pub p99_us: Option<u64>,
}

/// One pool's waits within one sample interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolFigures {
    /// The tenant.
    pub tenant: String,
    /// The pool.
    pub pool: String,
    /// Calls charged to the pool.
    pub calls: u64,
    /// Calls that waited at least 1 ms for permits.
    pub waits: u64,
    /// Time the calls waited for permits, summed, in microseconds.
    pub wait_us: u64,
}

/// One sample of the monitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The host's resources; `None` when `/proc` could not be read, and for
    /// the first sample, which has no reading before it.
    pub host: Option<HostSample>,
    /// Calls waiting for an instance slot when the sample was taken.
    pub slot_queue_depth: i64,
    /// The calls of each function since the previous sample.
    pub functions: Vec<FunctionFigures>,
    /// The waits of each pool since the previous sample.
    pub pools: Vec<PoolFigures>,
}

/// The monitor's samples, oldest first, and its alerts.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    /// The sampling interval, in milliseconds.
    pub sample_interval_ms: u64,
    /// Up to [`HISTORY_SAMPLES`] samples, oldest first.
    pub samples: Vec<Sample>,
    /// The alerts raised most recently, oldest first.
    pub alerts: Vec<Alert>,
    /// How many alerts of each kind were raised since the monitor started.
    pub alert_counts: BTreeMap<&'static str, u64>,
}

/// The figures gathered between two samples, and what was raised.
#[derive(Debug)]
struct State {
    alerts: Alerts,
    functions: HashMap<FunctionKey, FunctionStats>,
    pools: HashMap<(String, String), PoolFigures>,
    history: VecDeque<Sample>,
}

/// The resource monitor. Its sampling task and its place among the
/// engine's observers end when the last `Arc` of it is dropped.
#[derive(Debug)]
pub struct Monitor {
    settings: MonitorSettings,
    state: Mutex<State>,
    host: Mutex<HostReader>,
    /// Whether a failed reading of `/proc` was logged, so that a host
    /// without procfs logs it once.
    host_failure_logged: std::sync::atomic::AtomicBool,
}

impl Monitor {
    /// Creates a monitor that observes `engine`'s calls, and starts its
    /// sampling task on the current tokio runtime.
    ///
    /// Outside a runtime there is no task: the monitor still raises the
    /// alerts of calls, and logs a warning that it samples nothing.
    pub fn start(settings: MonitorSettings, engine: &UdfEngine) -> Arc<Monitor> {
        let interval = settings.sample_interval;
        let monitor = Arc::new(Monitor {
            state: Mutex::new(State {
                alerts: Alerts::new(settings.clone()),
                functions: HashMap::new(),
                pools: HashMap::new(),
                history: VecDeque::new(),
            }),
            host: Mutex::default(),
            host_failure_logged: Default::default(),
            settings,
        });
        let observer: Arc<dyn CallObserver> = monitor.clone();
        engine.observe_calls(&observer);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                target: "sandtable::monitor",
                "no tokio runtime: the resource monitor samples nothing"
            );
            return monitor;
        };
        let weak: Weak<Monitor> = Arc::downgrade(&monitor);
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(monitor) = weak.upgrade() else {
                    break;
                };
                monitor.sample();
            }
        });
        monitor
    }

    /// Returns the settings in force.
    pub fn settings(&self) -> &MonitorSettings {
        &self.settings
    }

    /// Returns the samples and alerts so far.
    pub fn report(&self) -> MonitorReport {
        let state = self.lock();
        MonitorReport {
            sample_interval_ms: self.settings.sample_interval.as_millis() as u64,
            samples: state.history.iter().cloned().collect(),
            alerts: state.alerts.recent(),
            alert_counts: state.alerts.counts(),
        }
    }

    /// Takes one sample: reads the host, sets the gauges, checks the
    /// alerts, and keeps the sample with the interval's calls.
    fn sample(&self) {
        let host = self.read_host();
        if let Some(host) = &host {
            metrics::set_host_gauge(metrics::HOST_CPU, host.cpu_percent / 100.0);
            metrics::set_host_gauge(metrics::HOST_MEMORY_USED, host.memory_used_bytes as f64);
            metrics::set_host_gauge(metrics::HOST_MEMORY_TOTAL, host.memory_total_bytes as f64);
            metrics::set_host_gauge(metrics::HOST_DISK_READ, host.disk_read_bytes_per_second);
            metrics::set_host_gauge(
                metrics::HOST_DISK_WRITTEN,
                host.disk_written_bytes_per_second,
            );
            metrics::set_host_gauge(
                metrics::HOST_NETWORK_RECEIVED,
                host.network_received_bytes_per_second,
            );
            metrics::set_host_gauge(
                metrics::HOST_NETWORK_SENT,
                host.network_sent_bytes_per_second,
            );
        }
        metrics::run_upkeep();

        let mut state = self.lock();
        state.alerts.check_sample(host.as_ref(), Instant::now());
        let mut functions: Vec<FunctionFigures> = state
            .functions
            .drain()
            .map(|(key, stats)| FunctionFigures {
                p50_us: stats.latency_percentile_us(50.0),
                p95_us: stats.latency_percentile_us(95.0),
                p99_us: stats.latency_percentile_us(99.0),
                faults: stats.faults.iter().sum(),
                calls: stats.calls,
                rows: stats.rows,
                tenant: key.tenant,
                plugin: key.plugin,
                version: key.version,
                function: key.function,
            })
            .collect();
        functions.sort_by(|a, b| {
            (&a.tenant, &a.plugin, a.version, &a.function).cmp(&(
                &b.tenant,
                &b.plugin,
                b.version,
                &b.function,
            ))
        });
        let mut pools: Vec<PoolFigures> = state.pools.drain().map(|(_, pool)| pool).collect();
        pools.sort_by(|a, b| (&a.tenant, &a.pool).cmp(&(&b.tenant, &b.pool)));
        if state.history.len() == HISTORY_SAMPLES {
            state.history.pop_front();
        }
        state.history.push_back(Sample {
            at_ms: unix_ms(),
            host,
            slot_queue_depth: metrics::queue_depth(),
            functions,
            pools,
        });
    }

    /// Reads the host, logging the first failure only.
    fn read_host(&self) -> Option<HostSample> {
        let mut reader = self.host.lock().unwrap_or_else(|e| e.into_inner());
        match reader.read() {
            Ok(sample) => sample,
            Err(error) => {
                if !self
                    .host_failure_logged
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        target: "sandtable::monitor",
                        error = %error,
                        "cannot read the host's resources from /proc; the monitor samples calls \
                         only, and this is logged once"
                    );
                }
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CallObserver for Monitor {
    fn observe(&self, record: &CallRecord) {
        let mut state = self.lock();
        state.alerts.check_call(record, Instant::now());
        let key = FunctionKey {
            tenant: record.tenant.clone(),
            plugin: record.plugin.clone(),
            version: record.version,
            function: record.function.clone(),
        };
        state.functions.entry(key).or_default().observe(record);
        if let Some(pool) = &record.pool {
            let figures = state
                .pools
                .entry((record.tenant.clone(), pool.clone()))
                .or_insert_with(|| PoolFigures {
                    tenant: record.tenant.clone(),
                    pool: pool.clone(),
                    ..PoolFigures::default()
                });
            figures.calls += 1;
            figures.wait_us += record.pool_wait_us;
            if std::time::Duration::from_micros(record.pool_wait_us) >= metrics::POOL_WAIT_FLOOR {
                figures.waits += 1;
            }
        }
    }
}
