//! The `[monitor]` section: how often `sandtable serve` samples the host's
//! resources, and the thresholds of the resource monitor's alerts.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The resource monitor's sampling interval and alert thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSettings {
    /// How often the monitor samples the host's CPU, memory, disk and
    /// network.
    pub sample_interval: Duration,
    /// The host's memory in use, in percent of its total, at or above which
    /// the `host_memory` alert is raised.
    pub host_memory_percent: u32,
    /// A call's peak linear memory, in percent of its memory limit, at or
    /// above which the `call_memory_near_limit` alert is raised.
    pub call_memory_percent: u32,
    /// The number of calls in a row on which a warm instance's memory grew
    /// that raises the `warm_memory_growth` alert.
    pub warm_growth_calls: u32,
    /// The `fuel_exhausted` faults of one plugin within a minute that raise
    /// the `fuel_exhaustion_rate` alert.
    pub fuel_exhausted_per_minute: u32,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            sample_interval: Duration::from_secs(5),
            host_memory_percent: 90,
            call_memory_percent: 90,
            warm_growth_calls: 5,
            fuel_exhausted_per_minute: 10,
        }
    }
}

/// The minimum sampling interval, since reading `/proc` more often costs
/// more than the figures are worth.
const MIN_SAMPLE_INTERVAL_MS: u64 = 100;

/// The maximum sampling interval, an hour.
const MAX_SAMPLE_INTERVAL_MS: u64 = 3_600_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorSection {
    sample_interval_ms: Option<u64>,
    host_memory_percent: Option<u32>,
    call_memory_percent: Option<u32>,
    warm_growth_calls: Option<u32>,
    fuel_exhausted_per_minute: Option<u32>,
}

/// Reads the `[monitor]` section `value` of the file `origin`.
pub(super) fn monitor_settings(
    value: toml::Value,
    origin: &str,
) -> Result<MonitorSettings, ConfigError> {
    let section: MonitorSection = super::section(value, origin, "[monitor]")?;
    let bad = |key: &str, reason: String| ConfigError::BadValue {
        origin: origin.to_owned(),
        section: "[monitor]".to_owned(),
        key: key.to_owned(),
        reason,
    };
    let percent = |key: &str, value: Option<u32>, default: u32| match value {
        None => Ok(default),
        Some(percent @ 1..=100) => Ok(percent),
        Some(percent) => Err(bad(
            key,
            format!("{percent} is not a percentage; give 1 to 100"),
        )),
    };
    let at_least_one = |key: &str, value: Option<u32>, default: u32| match value {
        None => Ok(default),
        Some(0) => Err(bad(
            key,
            "0 would raise the alert on every call; give at least 1".to_owned(),
        )),
        Some(count) => Ok(count),
    };
    let defaults = MonitorSettings::default();
    let sample_interval = match section.sample_interval_ms {
        None => defaults.sample_interval,
        Some(ms @ MIN_SAMPLE_INTERVAL_MS..=MAX_SAMPLE_INTERVAL_MS) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(bad(
                "sample_interval_ms",
                format!(
                    "{ms} is out of range; give {MIN_SAMPLE_INTERVAL_MS} to \
                     {MAX_SAMPLE_INTERVAL_MS} (milliseconds)"
                ),
            ));
        }
    };
    Ok(MonitorSettings {
        sample_interval,
        host_memory_percent: percent(
            "host_memory_percent",
            section.host_memory_percent,
            defaults.host_memory_percent,
        )?,
        call_memory_percent: percent(
            "call_memory_percent",
            section.call_memory_percent,
            defaults.call_memory_percent,
        )?,
        warm_growth_calls: at_least_one(
            "warm_growth_calls",
            section.warm_growth_calls,
            defaults.warm_growth_calls,
        )?,
        fuel_exhausted_per_minute: at_least_one(
            "fuel_exhausted_per_minute",
            section.fuel_exhausted_per_minute,
            defaults.fuel_exhausted_per_minute,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn monitor_section_sets_every_key() {
        let config = Config::parse(
            "[monitor]\nsample_interval_ms = 250\nhost_memory_percent = 80\n\
             call_memory_percent = 75\nwarm_growth_calls = 3\nfuel_exhausted_per_minute = 2\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(
            config.monitor,
            MonitorSettings {
                sample_interval: Duration::from_millis(250),
                host_memory_percent: 80,
                call_memory_percent: 75,
                warm_growth_calls: 3,
                fuel_exhausted_per_minute: 2,
            }
        );
        let config = Config::parse("", "c.toml").unwrap();
        assert_eq!(config.monitor, MonitorSettings::default());
    }

    #[test]
    fn bad_monitor_values_name_key_and_file() {
        for (text, key) in [
            (
                "[monitor]\nsample_interval_ms = 5\n",
                "`sample_interval_ms`",
            ),
            (
                "[monitor]\nhost_memory_percent = 0\n",
                "`host_memory_percent`",
            ),
            (
                "[monitor]\ncall_memory_percent = 101\n",
                "`call_memory_percent`",
            ),
            ("[monitor]\nwarm_growth_calls = 0\n", "`warm_growth_calls`"),
            (
                "[monitor]\nfuel_exhausted_per_minute = \"ten\"\n",
                "`fuel_exhausted_per_minute`",
            ),
            ("[monitor]\nhost_memory = 90\n", "`host_memory`"),
            ("monitor = 3\n", "monitor"),
        ] {
            let error = Config::parse(text, "c.toml").unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
            assert!(error.contains("c.toml"), "{text}: {error}");
        }
        let error = Config::parse("[monitor]\nhost_memory = 90\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("host_memory_percent"), "{error}");
    }
}
