//! The sandbox boundary: one engine a process, components loaded and
//! compiled once, and a fresh store for each batch call.
//!
//! # Store lifecycle
//!
//! [`UdfEngine::load`] checks a component's header, imports and exports,
//! compiles it (or loads it from the on-disk cache), links it into an
//! `InstancePre`, and runs its `describe` export once in a throwaway store.
//!
//! [`UdfEngine::call`] then runs each batch in a store of its own: the store
//! gets the call's fuel (fuel per row times rows), an epoch deadline driven
//! by a ticker thread, a limiter for memory and tables, and a WASI context
//! with no environment, no network and only the granted directories. The
//! instance comes from the pooling allocator, so creating it costs
//! microseconds, and dropping the store returns the slot. A trap therefore
//! never leaves state behind for the next rows or the next tenant.
//!
//! A plugin that declares `warm-instance` keeps its store between calls, one
//! per tenant and plugin version, so that `init` (loading weights, say) runs
//! once. Fuel, deadline and limits are reset before each call, and the store
//! is dropped after any fault, since wasmtime refuses to enter a store whose
//! instance trapped.

mod bindings;
mod cache;
mod call;
mod column;
mod describe;
mod engine;
mod error;
mod fault;
mod limits;
mod outbound;
mod quota;
mod record;
mod slots;
mod state;
mod stats;
mod warm;

pub use bindings::{
    LIFECYCLE_INTERFACE, LOG_INTERFACE, TYPES_INTERFACE, UDF_INTERFACE, USAGE_INTERFACE, types,
};
pub use call::{
    BatchOutput, CallContext, CellError, MAX_ISOLATED_ROWS, MAX_VECTOR_NORM, oversized_norm,
};
pub use column::ColumnBuilder;
pub(crate) use column::string_at;
pub(crate) use describe::is_unsafe_char;
pub use describe::{MAX_BATCH_SIZE, MAX_PARAMETERS, MAX_VECTOR_DIMENSION, check_name};
pub use engine::{EngineConfig, LoadedPlugin, UdfEngine};
pub use error::{CallError, LoadError, retry_after_secs};
pub use fault::{Fault, FaultClass};
pub use limits::{EffectiveLimits, LimitPolicy, MIN_MEMORY_BYTES};
pub use outbound::{HostPattern, Outbound, REQUEST_RECORD_TARGET, RequestRecord};
pub use quota::CallQuotas;
pub use record::{CallRecord, RECORD_TARGET};
pub use state::{
    DirectoryGrant, LOG_RECORDS_PER_SECOND, MAX_CAPTURED_OUTPUT_BYTES, MAX_LOG_FIELD_CHARS,
    MAX_LOG_FIELDS, MAX_LOG_MESSAGE_CHARS, MAX_LOG_RECORDS_PER_CALL,
    sanitize as escape_for_display,
};
pub use stats::{
    CallObserver, FunctionKey, FunctionStats, LATENCY_BUCKET_COUNT, LATENCY_BUCKETS_US,
};
pub use types::{Column, DataType, Description, Function};
