//! The timing record: one for every guest call, re-runs included.

use serde::{Deserialize, Serialize};

use super::fault::Fault;

/// The tracing target of timing records.
pub const RECORD_TARGET: &str = "sandtable::call";

/// What one guest call cost and how it ended. Durations are in microseconds,
/// since a call can take 20 us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The tenant the call ran for.
    pub tenant: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The plugin's catalog version (0 when not from the catalog).
    pub version: i32,
    /// The function called.
    pub function: String,
    /// The rows passed to the guest.
    pub rows: u64,
    /// The size of the argument columns, as [`Column::byte_len`] counts it.
    ///
    /// [`Column::byte_len`]: super::types::Column::byte_len
    pub bytes_in: u64,
    /// The size of the result column, as `bytes_in` counts it, plus the
    /// row errors' messages.
    pub bytes_out: u64,
    /// Time spent waiting for an instance slot.
    pub queue_wait_us: u64,
    /// Time spent creating the store and instance, and running `init`.
    pub instantiate_us: u64,
    /// Time spent in the guest's `call`, lifting and lowering included.
    pub guest_us: u64,
    /// Fuel consumed by the call, `init` included.
    pub fuel_used: u64,
    /// The largest linear memory the instance reached, in bytes.
    pub memory_peak_bytes: u64,
    /// The call's memory limit, in bytes; 0 in records written before the
    /// field existed.
    #[serde(default)]
    pub memory_limit_bytes: u64,
    /// Whether the plugin's compiled code came from the on-disk cache.
    pub cache_hit: bool,
    /// Whether the call reused a warm instance.
    pub warm: bool,
    /// The attempt within the batch: 1 for the first call, higher for the
    /// re-runs that isolate faulting rows.
    pub attempt: u32,
    /// The pool the call was charged to, if any.
    pub pool: Option<String>,
    /// Time spent waiting for pool permits: for the call itself, or for
    /// each of its requests.
    pub pool_wait_us: u64,
    /// The outbound requests the call sent, retries included.
    pub requests: u32,
    /// Tokens charged for the call: the larger of those the host counted
    /// from responses and those the guest reported.
    pub tokens: u64,
    /// `ok` or the fault class.
    pub outcome: String,
    /// The fault's message; `None` when the call succeeded.
    pub error: Option<String>,
}

impl CallRecord {
    /// Sets the outcome from a fault, or to `ok`.
    pub(crate) fn set_outcome(&mut self, fault: Option<&Fault>) {
        match fault {
            Some(fault) => {
                self.outcome = fault.class.as_str().to_owned();
                self.error = Some(fault.message.clone());
            }
            None => {
                self.outcome = "ok".to_owned();
                self.error = None;
            }
        }
    }

    /// Writes the record as an INFO `tracing` event on [`RECORD_TARGET`], and
    /// adds it to the Prometheus metrics when a recorder is installed.
    pub fn emit(&self) {
        tracing::info!(
            target: RECORD_TARGET,
            tenant = %self.tenant,
            plugin = %self.plugin,
            version = self.version,
            function = %self.function,
            rows = self.rows,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            queue_wait_us = self.queue_wait_us,
            instantiate_us = self.instantiate_us,
            guest_us = self.guest_us,
            fuel_used = self.fuel_used,
            memory_peak_bytes = self.memory_peak_bytes,
            memory_limit_bytes = self.memory_limit_bytes,
            cache_hit = self.cache_hit,
            warm = self.warm,
            attempt = self.attempt,
            pool = self.pool.as_deref().unwrap_or(""),
            pool_wait_us = self.pool_wait_us,
            requests = self.requests,
            tokens = self.tokens,
            outcome = %self.outcome,
            error = self.error.as_deref().unwrap_or(""),
            "udf call"
        );
        crate::telemetry::metrics::record_call(self);
    }
}
