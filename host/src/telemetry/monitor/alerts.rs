//! The resource monitor's alerts: when each is raised, and how often.
//!
//! An alert is raised when its condition becomes true for a subject (the
//! host, a function, a plugin), not on every sample or call while it stays
//! true, and at most once per [`ALERT_REPEAT_INTERVAL`] for one subject.
//! Raising it writes a WARN record on target `sandtable::monitor` and counts
//! it in [`ALERTS`](crate::telemetry::metrics::ALERTS).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::host::HostSample;
use crate::config::MonitorSettings;
use crate::sandbox::{CallRecord, FaultClass};

/// The minimum time between two raises of one alert for one subject.
pub const ALERT_REPEAT_INTERVAL: Duration = Duration::from_secs(60);

/// The window over which `fuel_exhaustion_rate` counts faults.
const FUEL_WINDOW: Duration = Duration::from_secs(60);

/// The raised alerts that the monitor keeps for its report.
const RECENT_ALERTS: usize = 50;

/// A kind of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// The host's memory in use reached its threshold.
    HostMemory,
    /// A call's peak memory came near its memory limit.
    CallMemoryNearLimit,
    /// A warm instance's memory grew on many calls in a row.
    WarmMemoryGrowth,
    /// A plugin's `fuel_exhausted` faults in a minute reached the threshold.
    FuelExhaustionRate,
}

impl AlertKind {
    /// Every kind, in the order of reports.
    pub const ALL: [AlertKind; 4] = [
        AlertKind::HostMemory,
        AlertKind::CallMemoryNearLimit,
        AlertKind::WarmMemoryGrowth,
        AlertKind::FuelExhaustionRate,
    ];

    /// Returns the name in logs, metrics labels and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::HostMemory => "host_memory",
            AlertKind::CallMemoryNearLimit => "call_memory_near_limit",
            AlertKind::WarmMemoryGrowth => "warm_memory_growth",
            AlertKind::FuelExhaustionRate => "fuel_exhaustion_rate",
        }
    }
}

/// An alert as raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// When it was raised, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Its kind, as [`AlertKind::as_str`] names it.
    pub alert: &'static str,
    /// The subject: `host`, `TENANT/PLUGIN@VERSION.FUNCTION`,
    /// `TENANT/PLUGIN@VERSION` or `TENANT/PLUGIN`.
    pub subject: String,
    /// The figure that crossed the threshold, and the threshold.
    pub message: String,
}

/// Whether one alert's condition holds for one subject, and when it was
/// last raised.
#[derive(Debug, Default)]
struct Gate {
    holds: bool,
    last_raised: Option<Instant>,
}

/// The memory trend of the warm instances of one plugin version.
#[derive(Debug, Default)]
struct WarmTrend {
    last_peak_bytes: u64,
    growing_calls: u32,
}

/// The alerts' state: thresholds, gates, trends and what was raised.
#[derive(Debug)]
pub(super) struct Alerts {
    settings: MonitorSettings,
    gates: HashMap<(AlertKind, String), Gate>,
    warm: HashMap<String, WarmTrend>,
    fuel_faults: HashMap<String, VecDeque<Instant>>,
    recent: VecDeque<Alert>,
    counts: BTreeMap<AlertKind, u64>,
}

impl Alerts {
    pub fn new(settings: MonitorSettings) -> Self {
        Alerts {
            settings,
            gates: HashMap::new(),
            warm: HashMap::new(),
            fuel_faults: HashMap::new(),
            recent: VecDeque::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Checks one guest call's peak memory against its limit, the memory
    /// trend of a warm plugin, and the rate of fuel faults.
    pub fn check_call(&mut self, record: &CallRecord, now: Instant) {
        let version = format!("{}/{}@{}", record.tenant, record.plugin, record.version);

        if record.memory_limit_bytes > 0 {
            let peak = record.memory_peak_bytes;
            let limit = record.memory_limit_bytes;
            let percent = u128::from(self.settings.call_memory_percent);
            let near = u128::from(peak) * 100 >= u128::from(limit) * percent;
            let subject = format!("{version}.{}", record.function);
            self.update(AlertKind::CallMemoryNearLimit, &subject, near, now, || {
                format!(
                    "a call of `{subject}` peaked at {} of linear memory, {:.0} % of its {} \
                     limit (threshold {percent} %)",
                    mebibytes(peak),
                    peak as f64 * 100.0 / limit as f64,
                    mebibytes(limit)
                )
            });
        }

        // A warm instance's linear memory never shrinks, so its peak grows
        // whenever the guest allocates past what it held before. A call on a
        // fresh instance starts the trend again.
        // NOTE: the trend is kept per plugin version, because a record does
        // not name its instance. Two warm instances of one version that take
        // turns break each other's count, so their leak is reported late or
        // not at all.
        let trend = self.warm.entry(version.clone()).or_default();
        if record.warm && record.memory_peak_bytes > trend.last_peak_bytes {
            trend.growing_calls += 1;
        } else {
            trend.growing_calls = 0;
        }
        trend.last_peak_bytes = record.memory_peak_bytes;
        let growing_calls = trend.growing_calls;
        let calls = self.settings.warm_growth_calls;
        self.update(
            AlertKind::WarmMemoryGrowth,
            &version,
            growing_calls >= calls,
            now,
            || {
                format!(
                    "the warm instance of `{version}` grew its memory on {growing_calls} calls in \
                     a row, to {} (threshold {calls} calls); a leak ends in `memory_limit` faults",
                    mebibytes(record.memory_peak_bytes)
                )
            },
        );

        if record.outcome == FaultClass::FuelExhausted.as_str() {
            let plugin = format!("{}/{}", record.tenant, record.plugin);
            self.fuel_faults
                .entry(plugin.clone())
                .or_default()
                .push_back(now);
            self.check_fuel(&plugin, now);
        }
    }

    /// Checks a host sample's memory, and lets fuel fault rates that fell
    /// below their threshold clear.
    pub fn check_sample(&mut self, host: Option<&HostSample>, now: Instant) {
        if let Some(host) = host {
            let percent = self.settings.host_memory_percent;
            let used = host.memory_percent();
            self.update(
                AlertKind::HostMemory,
                "host",
                used >= f64::from(percent),
                now,
                || {
                    format!(
                        "the host's memory is {used:.1} % in use ({} of {}), at or above the \
                         threshold of {percent} %",
                        mebibytes(host.memory_used_bytes),
                        mebibytes(host.memory_total_bytes)
                    )
                },
            );
        }
        let plugins: Vec<String> = self.fuel_faults.keys().cloned().collect();
        for plugin in plugins {
            self.check_fuel(&plugin, now);
        }
        self.fuel_faults.retain(|_, faults| !faults.is_empty());
    }

    /// Returns the alerts raised most recently, oldest first.
    pub fn recent(&self) -> Vec<Alert> {
        self.recent.iter().cloned().collect()
    }

    /// Returns how many alerts of each kind were raised, every kind listed.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        AlertKind::ALL
            .iter()
            .map(|kind| (kind.as_str(), self.counts.get(kind).copied().unwrap_or(0)))
            .collect()
    }

    /// Drops the fuel faults of `plugin` older than a minute, and checks the
    /// count left against the threshold.
    fn check_fuel(&mut self, plugin: &str, now: Instant) {
        let Some(faults) = self.fuel_faults.get_mut(plugin) else {
            return;
        };
        while faults
            .front()
            .is_some_and(|&at| now.duration_since(at) >= FUEL_WINDOW)
        {
            faults.pop_front();
        }
        let count = faults.len();
        let threshold = self.settings.fuel_exhausted_per_minute;
        self.update(
            AlertKind::FuelExhaustionRate,
            plugin,
            count >= threshold as usize,
            now,
            || {
                format!(
                    "`{plugin}` exhausted its fuel {count} times in the last minute (threshold \
                     {threshold})"
                )
            },
        );
    }

    /// Records whether `kind` holds for `subject` now, and raises it when
    /// it has just come to hold and was not raised in the last
    /// [`ALERT_REPEAT_INTERVAL`].
    fn update(
        &mut self,
        kind: AlertKind,
        subject: &str,
        holds: bool,
        now: Instant,
        message: impl FnOnce() -> String,
    ) {
        if !holds && !self.gates.contains_key(&(kind, subject.to_owned())) {
            return;
        }
        let gate = self.gates.entry((kind, subject.to_owned())).or_default();
        let began = holds && !gate.holds;
        gate.holds = holds;
        let quiet = gate
            .last_raised
            .is_none_or(|at| now.duration_since(at) >= ALERT_REPEAT_INTERVAL);
        if !(began && quiet) {
            return;
        }
        gate.last_raised = Some(now);
        let message = message();
        tracing::warn!(
            target: "sandtable::monitor",
            alert = kind.as_str(),
            subject,
            "{message}"
        );
        crate::telemetry::metrics::record_alert(kind.as_str());
        *self.counts.entry(kind).or_default() += 1;
        if self.recent.len() == RECENT_ALERTS {
            self.recent.pop_front();
        }
        self.recent.push_back(Alert {
            at_ms: unix_ms(),
            alert: kind.as_str(),
            subject: subject.to_owned(),
            message,
        });
    }
}

/// Returns the time now in milliseconds since the Unix epoch.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MonitorSettings {
        MonitorSettings {
            warm_growth_calls: 3,
            fuel_exhausted_per_minute: 2,
            ..MonitorSettings::default()
        }
    }

    fn record(peak: u64, warm: bool, outcome: &str) -> CallRecord {
        CallRecord {
            tenant: "acme".into(),
            plugin: "p".into(),
            version: 1,
            function: "f".into(),
            rows: 1,
            bytes_in: 0,
            bytes_out: 0,
            queue_wait_us: 0,
            instantiate_us: 0,
            guest_us: 0,
            fuel_used: 0,
            memory_peak_bytes: peak,
            memory_limit_bytes: 100,
            cache_hit: false,
            warm,
            attempt: 1,
            pool: None,
            pool_wait_us: 0,
            requests: 0,
            tokens: 0,
            outcome: outcome.into(),
            error: None,
        }
    }

    fn count(alerts: &Alerts, kind: AlertKind) -> u64 {
        alerts.counts()[kind.as_str()]
    }

    #[test]
    fn memory_near_limit_is_raised_on_crossing_only() {
        let mut alerts = Alerts::new(settings());
        let now = Instant::now();
        alerts.check_call(&record(50, false, "ok"), now);
        assert_eq!(count(&alerts, AlertKind::CallMemoryNearLimit), 0);
        alerts.check_call(&record(95, false, "ok"), now);
        alerts.check_call(&record(99, false, "ok"), now);
        assert_eq!(
            count(&alerts, AlertKind::CallMemoryNearLimit),
            1,
            "a condition that goes on holding raises once"
        );
        alerts.check_call(&record(10, false, "ok"), now);
        alerts.check_call(&record(95, false, "ok"), now + Duration::from_secs(1));
        assert_eq!(
            count(&alerts, AlertKind::CallMemoryNearLimit),
            1,
            "a second crossing within the repeat interval is not raised"
        );
        alerts.check_call(&record(10, false, "ok"), now);
        alerts.check_call(&record(95, false, "ok"), now + ALERT_REPEAT_INTERVAL);
        assert_eq!(count(&alerts, AlertKind::CallMemoryNearLimit), 2);
        let recent = alerts.recent();
        assert_eq!(recent[0].subject, "acme/p@1.f");
        assert!(recent[0].message.contains("95 %"), "{}", recent[0].message);
    }

    #[test]
    fn warm_growth_needs_growth_on_consecutive_warm_calls() {
        let mut alerts = Alerts::new(settings());
        let now = Instant::now();
        alerts.check_call(&record(10, false, "ok"), now);
        alerts.check_call(&record(20, true, "ok"), now);
        alerts.check_call(&record(30, true, "ok"), now);
        alerts.check_call(&record(30, true, "ok"), now);
        alerts.check_call(&record(40, true, "ok"), now);
        alerts.check_call(&record(50, true, "ok"), now);
        assert_eq!(
            count(&alerts, AlertKind::WarmMemoryGrowth),
            0,
            "a call without growth starts the count again"
        );
        alerts.check_call(&record(60, true, "ok"), now);
        assert_eq!(count(&alerts, AlertKind::WarmMemoryGrowth), 1);
        assert_eq!(alerts.recent()[0].subject, "acme/p@1");
    }

    #[test]
    fn fuel_faults_within_a_minute_raise_and_clear() {
        let mut alerts = Alerts::new(settings());
        let start = Instant::now();
        alerts.check_call(&record(0, false, "fuel_exhausted"), start);
        alerts.check_call(
            &record(0, false, "fuel_exhausted"),
            start + Duration::from_secs(61),
        );
        assert_eq!(
            count(&alerts, AlertKind::FuelExhaustionRate),
            0,
            "faults a minute apart stay under 2 a minute"
        );
        alerts.check_call(
            &record(0, false, "fuel_exhausted"),
            start + Duration::from_secs(62),
        );
        assert_eq!(count(&alerts, AlertKind::FuelExhaustionRate), 1);
        alerts.check_sample(None, start + Duration::from_secs(200));
        assert!(
            alerts.fuel_faults.is_empty(),
            "old faults are dropped at each sample"
        );
    }

    #[test]
    fn host_memory_compares_with_the_threshold() {
        let mut alerts = Alerts::new(MonitorSettings {
            host_memory_percent: 50,
            ..settings()
        });
        let host = |used| HostSample {
            cpu_percent: 0.0,
            memory_used_bytes: used,
            memory_total_bytes: 100,
            disk_read_bytes_per_second: 0.0,
            disk_written_bytes_per_second: 0.0,
            network_received_bytes_per_second: 0.0,
            network_sent_bytes_per_second: 0.0,
        };
        let now = Instant::now();
        alerts.check_sample(Some(&host(49)), now);
        assert_eq!(count(&alerts, AlertKind::HostMemory), 0);
        alerts.check_sample(Some(&host(50)), now);
        alerts.check_sample(Some(&host(70)), now);
        assert_eq!(count(&alerts, AlertKind::HostMemory), 1);
    }
}
