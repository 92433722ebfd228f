//! Per-tenant quotas on calls: caps on memory and fuel per row, a budget of
//! fuel a minute, and a number of concurrent calls.
//!
//! The caps lower what a function requests, after the host's own policy.
//! The fuel budget is a generic cell rate algorithm over fuel: each call is
//! charged the fuel it used when it returns, and a call starts only while
//! the tenant's charges run at most one minute's budget ahead of the clock.
//! A call may therefore overdraw the budget by its own fuel, and the calls
//! after it wait for nothing but fail until the budget has refilled. The
//! state is kept per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::limits::EffectiveLimits;

/// A tenant's quotas on its calls; `None` sets no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallQuotas {
    /// The cap on a call's linear memory, in bytes.
    pub max_memory_bytes: Option<u64>,
    /// The cap on a call's fuel for each row.
    pub max_fuel_per_row: Option<u64>,
    /// The fuel that the tenant's calls may use in a minute.
    pub fuel_per_minute: Option<u64>,
    /// The tenant's calls that may run at once.
    pub max_concurrent_calls: Option<u32>,
}

impl CallQuotas {
    /// Lowers `limits` to the quota's caps on memory and fuel per row.
    pub fn cap(&self, limits: EffectiveLimits) -> EffectiveLimits {
        EffectiveLimits {
            fuel_per_row: self
                .max_fuel_per_row
                .map_or(limits.fuel_per_row, |max| limits.fuel_per_row.min(max)),
            memory_bytes: self
                .max_memory_bytes
                .map_or(limits.memory_bytes, |max| limits.memory_bytes.min(max)),
            ..limits
        }
    }
}

/// Each tenant's fuel budget in this process, by tenant name.
#[derive(Default)]
pub(crate) struct FuelBudgets {
    /// The theoretical arrival time of each tenant's next unit of fuel:
    /// the time at which the tenant's charges so far would be paid off.
    paid_until: Mutex<HashMap<String, Instant>>,
}

impl FuelBudgets {
    /// Checks that `tenant` may start a call.
    ///
    /// # Errors
    ///
    /// Returns how long until it may, when its charges run more than a
    /// minute's budget ahead of now.
    pub(crate) fn check(&self, tenant: &str) -> Result<(), Duration> {
        let paid_until = self.paid_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&until) = paid_until.get(tenant) else {
            return Ok(());
        };
        let allowed = Instant::now() + Duration::from_secs(60);
        if until > allowed {
            Err(until - allowed)
        } else {
            Ok(())
        }
    }

    /// Charges `tenant` for `fuel` used under a budget of `fuel_per_minute`.
    pub(crate) fn charge(&self, tenant: &str, fuel: u64, fuel_per_minute: u64) {
        let cost = Duration::from_secs_f64(60.0 * fuel as f64 / fuel_per_minute.max(1) as f64);
        let now = Instant::now();
        let mut paid_until = self.paid_until.lock().unwrap_or_else(|e| e.into_inner());
        let until = paid_until.entry(tenant.to_owned()).or_insert(now);
        *until = (*until).max(now) + cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_lowers_only_what_quota_sets() {
        let limits = EffectiveLimits {
            fuel_per_row: 1_000,
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(10),
            output_bytes: 1 << 20,
        };
        let capped = CallQuotas {
            max_memory_bytes: Some(32 << 20),
            ..CallQuotas::default()
        }
        .cap(limits);
        assert_eq!(capped.memory_bytes, 32 << 20);
        assert_eq!(capped.fuel_per_row, 1_000);
        let capped = CallQuotas {
            max_fuel_per_row: Some(10),
            max_memory_bytes: Some(1 << 30),
            ..CallQuotas::default()
        }
        .cap(limits);
        assert_eq!(capped.fuel_per_row, 10);
        assert_eq!(capped.memory_bytes, 64 << 20);
    }

    #[test]
    fn budget_refuses_past_a_minute_ahead() {
        let budgets = FuelBudgets::default();
        assert!(budgets.check("a").is_ok());
        // A minute's budget and a half, in one call.
        budgets.charge("a", 1_500, 1_000);
        let wait = budgets.check("a").unwrap_err();
        assert!(wait > Duration::from_secs(29), "{wait:?}");
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
        assert!(budgets.check("b").is_ok());
    }

    #[test]
    fn budget_allows_a_minute_of_charges() {
        let budgets = FuelBudgets::default();
        budgets.charge("a", 999, 1_000);
        assert!(budgets.check("a").is_ok());
    }
}
