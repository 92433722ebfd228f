//! Prometheus metrics, through the `metrics` facade and
//! `metrics-exporter-prometheus`.
//!
//! `sandtable serve` installs the process's recorder with [`install`] and
//! renders it at `/metrics`. Every other command installs none, and then
//! each hook here returns after one atomic load, so the CLI pays for
//! neither label strings nor the facade's no-op recorder.
//!
//! The series:
//!
//! - per tenant, plugin and function, from every [`CallRecord`]: calls,
//!   faulted calls by fault class, rows, fuel used, and a histogram of
//!   latency (instantiate plus guest time);
//! - per tenant and pool: a histogram of the time calls waited for pool
//!   permits, and the calls that waited at least 1 ms;
//! - per tenant: a histogram of the time calls waited for an instance slot,
//!   and the calls waiting for one now;
//! - API requests by method, route, status and tenant, with a latency
//!   histogram by route;
//! - the resource monitor's host gauges and its alerts by kind.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use metrics::histogram;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::sandbox::{CallRecord, LATENCY_BUCKETS_US};

/// Guest calls, re-runs included.
pub const CALLS: &str = "sandtable_calls_total";
/// Guest calls that faulted, by fault class (`class`).
pub const CALL_FAULTS: &str = "sandtable_call_faults_total";
/// Rows passed to guests.
pub const CALL_ROWS: &str = "sandtable_call_rows_total";
/// Fuel used by guest calls.
pub const CALL_FUEL: &str = "sandtable_call_fuel_used_total";
/// A histogram of instantiate plus guest time of each guest call.
pub const CALL_DURATION: &str = "sandtable_call_duration_seconds";
/// A histogram of the time each call with a pool waited for permits.
pub const POOL_WAIT: &str = "sandtable_pool_wait_seconds";
/// Calls that waited at least [`POOL_WAIT_FLOOR`] for pool permits.
pub const POOL_WAITS: &str = "sandtable_pool_waits_total";
/// A histogram of the time each call waited for an instance slot.
pub const SLOT_QUEUE_WAIT: &str = "sandtable_slot_queue_wait_seconds";
/// Calls waiting for an instance slot now.
pub const SLOT_QUEUE_DEPTH: &str = "sandtable_slot_queue_depth";
/// API requests, by method, route, status and tenant.
pub const API_REQUESTS: &str = "sandtable_api_requests_total";
/// A histogram of API request latency, by route.
pub const API_REQUEST_DURATION: &str = "sandtable_api_request_duration_seconds";
/// The resource monitor's alerts, by kind (`alert`).
pub const ALERTS: &str = "sandtable_alerts_total";
/// The host's CPU time in use, from 0 to 1 of all cores.
pub const HOST_CPU: &str = "sandtable_host_cpu_usage_ratio";
/// The host's memory in use.
pub const HOST_MEMORY_USED: &str = "sandtable_host_memory_used_bytes";
/// The host's memory.
pub const HOST_MEMORY_TOTAL: &str = "sandtable_host_memory_total_bytes";
/// Bytes read from the host's disks a second.
pub const HOST_DISK_READ: &str = "sandtable_host_disk_read_bytes_per_second";
/// Bytes written to the host's disks a second.
pub const HOST_DISK_WRITTEN: &str = "sandtable_host_disk_written_bytes_per_second";
/// Bytes received by the host's network interfaces a second, loopback
/// left out.
pub const HOST_NETWORK_RECEIVED: &str = "sandtable_host_network_received_bytes_per_second";
/// Bytes sent by the host's network interfaces a second, loopback left out.
pub const HOST_NETWORK_SENT: &str = "sandtable_host_network_sent_bytes_per_second";

/// The shortest pool wait that [`POOL_WAITS`] counts, as the pools' own
/// counts of waits do.
pub const POOL_WAIT_FLOOR: Duration = Duration::from_millis(1);

/// Whether a recorder of this module is installed.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The recorder's handle, or why installing it failed.
static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Calls waiting for an instance slot now, counted while a recorder is
/// installed.
static QUEUE_DEPTH: AtomicI64 = AtomicI64::new(0);

/// Installs the process's Prometheus recorder, once, and returns its handle.
///
/// Histograms whose names end in `_seconds` get the buckets of the
/// engine's latency histogram ([`LATENCY_BUCKETS_US`]), so `/metrics` and
/// `sandtable stats` bound latencies alike.
///
/// # Errors
///
/// Fails when another recorder was installed first; every later call
/// returns the same error.
pub fn install() -> Result<&'static PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let buckets: Vec<f64> = LATENCY_BUCKETS_US
                .iter()
                .map(|&us| us as f64 / 1e6)
                .collect();
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &buckets)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
            describe();
            // A gauge appears once set, and no call may ever queue.
            gauge!(SLOT_QUEUE_DEPTH).set(0.0);
            ENABLED.store(true, Ordering::Release);
            Ok(handle)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Returns whether [`install`] installed the recorder, so that hooks have
/// somewhere to record.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Drains the recorder's histogram buffers, which grow until this runs;
/// the resource monitor calls it at every sample.
pub fn run_upkeep() {
    if let Some(Ok(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// Adds one guest call's timing record to the call series.
pub fn record_call(record: &CallRecord) {
    if !enabled() {
        return;
    }
    let labels = [
        ("tenant", record.tenant.clone()),
        ("plugin", record.plugin.clone()),
        ("function", record.function.clone()),
    ];
    counter!(CALLS, &labels).increment(1);
    counter!(CALL_ROWS, &labels).increment(record.rows);
    counter!(CALL_FUEL, &labels).increment(record.fuel_used);
    let latency_us = record.instantiate_us.saturating_add(record.guest_us);
    histogram!(CALL_DURATION, &labels).record(seconds(latency_us));
    if record.outcome != "ok" {
        let [tenant, plugin, function] = labels;
        counter!(
            CALL_FAULTS,
            &[tenant, plugin, function, ("class", record.outcome.clone())]
        )
        .increment(1);
    }
    histogram!(SLOT_QUEUE_WAIT, "tenant" => record.tenant.clone())
        .record(seconds(record.queue_wait_us));
    if let Some(pool) = &record.pool {
        let labels = [("tenant", record.tenant.clone()), ("pool", pool.clone())];
        histogram!(POOL_WAIT, &labels).record(seconds(record.pool_wait_us));
        if Duration::from_micros(record.pool_wait_us) >= POOL_WAIT_FLOOR {
            counter!(POOL_WAITS, &labels).increment(1);
        }
    }
}

/// Adds one API request: its method, the route that matched it (or
/// `unmatched`), its status, its tenant (or `-`) and its latency.
///
/// A route's path parameters are written `:name` (`/v1/tables/:table`), not
/// `{name}` as axum writes them, because some parsers of the text format
/// (prometheus-parse 0.2) end a sample's labels at the first `}`.
pub fn record_request(method: &str, route: &str, status: u16, tenant: &str, latency: Duration) {
    if !enabled() {
        return;
    }
    let route = route.replace('{', ":").replace('}', "");
    counter!(
        API_REQUESTS,
        "method" => method.to_owned(),
        "route" => route.clone(),
        "status" => status.to_string(),
        "tenant" => tenant.to_owned()
    )
    .increment(1);
    histogram!(API_REQUEST_DURATION, "route" => route).record(latency.as_secs_f64());
}

/// Counts one alert of kind `alert`.
pub fn record_alert(alert: &'static str) {
    if enabled() {
        counter!(ALERTS, "alert" => alert).increment(1);
    }
}

/// Sets a host gauge such as [`HOST_CPU`].
pub fn set_host_gauge(name: &'static str, value: f64) {
    if enabled() {
        gauge!(name).set(value);
    }
}

/// Returns the calls waiting for an instance slot now; 0 while no recorder
/// is installed.
pub fn queue_depth() -> i64 {
    QUEUE_DEPTH.load(Ordering::Relaxed)
}

/// A call waiting for an instance slot, counted in [`SLOT_QUEUE_DEPTH`]
/// until dropped.
#[must_use]
pub struct QueuedCall {
    counted: bool,
}

impl QueuedCall {
    /// Counts a call that starts to wait.
    pub fn enter() -> Self {
        let counted = enabled();
        if counted {
            let depth = QUEUE_DEPTH.fetch_add(1, Ordering::Relaxed) + 1;
            gauge!(SLOT_QUEUE_DEPTH).set(depth as f64);
        }
        QueuedCall { counted }
    }
}

impl Drop for QueuedCall {
    fn drop(&mut self) {
        if self.counted {
            let depth = QUEUE_DEPTH.fetch_sub(1, Ordering::Relaxed) - 1;
            gauge!(SLOT_QUEUE_DEPTH).set(depth as f64);
        }
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Gives every series its `# HELP` line and unit.
fn describe() {
    describe_counter!(CALLS, Unit::Count, "Guest calls, re-runs included.");
    describe_counter!(
        CALL_FAULTS,
        Unit::Count,
        "Guest calls that faulted, by fault class."
    );
    describe_counter!(CALL_ROWS, Unit::Count, "Rows passed to guests.");
    describe_counter!(CALL_FUEL, Unit::Count, "Fuel used by guest calls.");
    describe_histogram!(
        CALL_DURATION,
        Unit::Seconds,
        "Instantiate plus guest time of each guest call."
    );
    describe_histogram!(
        POOL_WAIT,
        Unit::Seconds,
        "Time each call with a pool waited for its permits."
    );
    describe_counter!(
        POOL_WAITS,
        Unit::Count,
        "Calls that waited at least 1 ms for pool permits."
    );
    describe_histogram!(
        SLOT_QUEUE_WAIT,
        Unit::Seconds,
        "Time each call waited for an instance slot."
    );
    describe_gauge!(
        SLOT_QUEUE_DEPTH,
        Unit::Count,
        "Calls waiting for an instance slot now."
    );
    describe_counter!(API_REQUESTS, Unit::Count, "API requests.");
    describe_histogram!(
        API_REQUEST_DURATION,
        Unit::Seconds,
        "API request latency, until the response's head is ready."
    );
    describe_counter!(
        ALERTS,
        Unit::Count,
        "Alerts raised by the resource monitor."
    );
    describe_gauge!(
        HOST_CPU,
        "The host's CPU time in use, from 0 to 1 of all cores."
    );
    describe_gauge!(HOST_MEMORY_USED, Unit::Bytes, "The host's memory in use.");
    describe_gauge!(HOST_MEMORY_TOTAL, Unit::Bytes, "The host's memory.");
    describe_gauge!(HOST_DISK_READ, "Bytes read from the host's disks a second.");
    describe_gauge!(
        HOST_DISK_WRITTEN,
        "Bytes written to the host's disks a second."
    );
    describe_gauge!(
        HOST_NETWORK_RECEIVED,
        "Bytes received by the host's network interfaces a second, loopback left out."
    );
    describe_gauge!(
        HOST_NETWORK_SENT,
        "Bytes sent by the host's network interfaces a second, loopback left out."
    );
}
