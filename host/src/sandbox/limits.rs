//! Per-call limits: the host's policy, what a function requests, and the
//! store limiter that enforces memory and table sizes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::ResourceLimiter;

use super::types;

/// Fuel for each row when a function requests none.
pub const DEFAULT_FUEL_PER_ROW: u64 = 10_000_000;
/// The cap on fuel for each row.
pub const MAX_FUEL_PER_ROW: u64 = 10_000_000_000;
/// Linear memory for a call when a function requests none: 128 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 128 << 20;
/// The cap on linear memory for a call: 1 GiB.
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;
/// A Rust guest cannot instantiate with less than 17 wasm pages.
pub const MIN_MEMORY_BYTES: u64 = 17 * 65_536;
/// The deadline of a call when a function requests none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// The cap on the deadline of a call.
pub const MAX_DEADLINE: Duration = Duration::from_secs(300);
/// The output cap of a call when a function requests none: 64 MiB.
pub const DEFAULT_OUTPUT_BYTES: u64 = 64 << 20;
/// The cap on the output of a call: 512 MiB.
pub const MAX_OUTPUT_BYTES: u64 = 512 << 20;
/// The maximum number of elements one table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// The maximum number of core instances, memories and tables one component
/// instance may create. A Rust component has one main module plus a few small shims.
pub const MAX_CORE_INSTANCES: usize = 32;

/// The host's limits policy: defaults for what a function does not request,
/// and caps on what it does.
///
/// Every field is in the unit its name gives. A request above a cap is
/// lowered to the cap, not rejected, and `plugin show` prints the result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LimitPolicy {
    /// Fuel for each row when the function requests none.
    pub default_fuel_per_row: u64,
    /// The cap on fuel for each row.
    pub max_fuel_per_row: u64,
    /// Linear memory when the function requests none, in bytes.
    pub default_memory_bytes: u64,
    /// The cap on linear memory, in bytes. It is also the size of a memory
    /// slot in the pooling allocator, so it is fixed when the engine starts.
    pub max_memory_bytes: u64,
    /// The deadline when the function requests none.
    pub default_deadline: Duration,
    /// The cap on the deadline.
    pub max_deadline: Duration,
    /// The output cap when the function requests none, in bytes.
    pub default_output_bytes: u64,
    /// The cap on the output cap, in bytes.
    pub max_output_bytes: u64,
    /// The budget of `describe` and of each `init`: fuel.
    pub setup_fuel: u64,
    /// The budget of `describe` and of each `init`: wall-clock time.
    pub setup_deadline: Duration,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        LimitPolicy {
            default_fuel_per_row: DEFAULT_FUEL_PER_ROW,
            max_fuel_per_row: MAX_FUEL_PER_ROW,
            default_memory_bytes: DEFAULT_MEMORY_BYTES,
            max_memory_bytes: MAX_MEMORY_BYTES,
            default_deadline: DEFAULT_DEADLINE,
            max_deadline: MAX_DEADLINE,
            default_output_bytes: DEFAULT_OUTPUT_BYTES,
            max_output_bytes: MAX_OUTPUT_BYTES,
            setup_fuel: 20_000_000_000,
            setup_deadline: Duration::from_secs(60),
        }
    }
}

impl LimitPolicy {
    /// Resolves a function's requested limits against this policy.
    pub fn effective(&self, requested: &types::Limits) -> EffectiveLimits {
        let deadline = requested
            .deadline_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(self.default_deadline)
            .min(self.max_deadline);
        EffectiveLimits {
            fuel_per_row: requested
                .fuel_per_row
                .unwrap_or(self.default_fuel_per_row)
                .clamp(1, self.max_fuel_per_row),
            memory_bytes: requested
                .memory_bytes
                .unwrap_or(self.default_memory_bytes)
                .clamp(MIN_MEMORY_BYTES, self.max_memory_bytes),
            deadline,
            output_bytes: requested
                .output_bytes
                .unwrap_or(self.default_output_bytes)
                .min(self.max_output_bytes),
        }
    }

    /// The limits of `describe` and `init`.
    pub(crate) fn setup_limits(&self) -> EffectiveLimits {
        EffectiveLimits {
            fuel_per_row: self.setup_fuel,
            memory_bytes: self.max_memory_bytes,
            deadline: self.setup_deadline,
            output_bytes: self.max_output_bytes,
        }
    }
}

/// The limits one call of a function runs under, after the policy's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimits {
    /// Fuel for each row; a call of `n` rows gets `n` times this.
    pub fuel_per_row: u64,
    /// The maximum size of linear memory, in bytes.
    pub memory_bytes: u64,
    /// The wall-clock deadline of one call.
    pub deadline: Duration,
    /// The maximum size of the output, in bytes.
    pub output_bytes: u64,
}

impl EffectiveLimits {
    /// The fuel for a call of `rows` rows, which is at least one row's worth
    /// so that a zero-row set-up call can run.
    pub fn fuel_for(&self, rows: usize) -> u64 {
        self.fuel_per_row.saturating_mul(rows.max(1) as u64)
    }

    /// A short description for fault messages.
    pub(crate) fn summary(&self, rows: usize) -> String {
        format!(
            "fuel {} for {rows} rows, memory {} bytes, deadline {} ms",
            self.fuel_for(rows),
            self.memory_bytes,
            self.deadline.as_millis()
        )
    }
}

/// The store's limiter: caps memory and tables, and records the peak memory
/// and whether any growth was denied, for classifying a later trap.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: usize,
    pub peak_memory_bytes: usize,
    pub growth_denied: bool,
}

impl Limiter {
    pub fn new(memory_bytes: u64) -> Self {
        Limiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            peak_memory_bytes: 0,
            growth_denied: false,
        }
    }

    /// Starts a new call on a warm instance: the peak restarts from the
    /// memory the instance already has.
    pub fn reset(&mut self, memory_bytes: u64, current_bytes: usize) {
        self.memory_bytes = usize::try_from(memory_bytes).unwrap_or(usize::MAX);
        self.peak_memory_bytes = current_bytes;
        self.growth_denied = false;
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.growth_denied = true;
            return Ok(false);
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.growth_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_CORE_INSTANCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fuel: Option<u64>, memory: Option<u64>, deadline_ms: Option<u32>) -> types::Limits {
        types::Limits {
            fuel_per_row: fuel,
            memory_bytes: memory,
            deadline_ms,
            output_bytes: None,
        }
    }

    #[test]
    fn effective_uses_defaults_when_nothing_requested() {
        let policy = LimitPolicy::default();
        let limits = policy.effective(&request(None, None, None));
        assert_eq!(limits.fuel_per_row, DEFAULT_FUEL_PER_ROW);
        assert_eq!(limits.memory_bytes, DEFAULT_MEMORY_BYTES);
        assert_eq!(limits.deadline, DEFAULT_DEADLINE);
        assert_eq!(limits.output_bytes, DEFAULT_OUTPUT_BYTES);
    }

    #[test]
    fn effective_caps_requests_by_policy() {
        let policy = LimitPolicy::default();
        let limits = policy.effective(&request(Some(u64::MAX), Some(u64::MAX), Some(u32::MAX)));
        assert_eq!(limits.fuel_per_row, MAX_FUEL_PER_ROW);
        assert_eq!(limits.memory_bytes, MAX_MEMORY_BYTES);
        assert_eq!(limits.deadline, MAX_DEADLINE);
    }

    #[test]
    fn effective_raises_tiny_memory_to_minimum() {
        let limits = LimitPolicy::default().effective(&request(None, Some(1), None));
        assert_eq!(limits.memory_bytes, MIN_MEMORY_BYTES);
    }

    #[test]
    fn fuel_scales_with_rows() {
        let limits = LimitPolicy::default().effective(&request(Some(7), None, None));
        assert_eq!(limits.fuel_for(3), 21);
        assert_eq!(limits.fuel_for(0), 7);
    }

    #[test]
    fn limiter_records_denied_growth_and_peak() {
        let mut limiter = Limiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!limiter.memory_growing(1 << 19, 2 << 20, None).unwrap());
        assert_eq!(limiter.peak_memory_bytes, 1 << 19);
        assert!(limiter.growth_denied);
    }
}
