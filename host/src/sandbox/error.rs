//! Errors of loading and calling plugins.
//!
//! A guest's misbehaviour during a call is not an error here: it is a
//! [`Fault`](super::Fault) on the rows it affects. These errors are the
//! host's own refusals, and they always abort the operation.

use std::time::Duration;

use super::types::DataType;

/// A component that cannot be loaded, with what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not WebAssembly.
    #[error("not a WebAssembly component: the file does not start with the `\\0asm` header")]
    NotWasm,
    /// The bytes are a core module.
    #[error(
        "a core WebAssembly module, not a component: build the plugin for `wasm32-wasip2`, \
         or wrap the module with `wasm-tools component new`"
    )]
    CoreModule,
    /// The component is larger than the host accepts.
    #[error("the component is {bytes} bytes, over the host's maximum of {max} bytes")]
    TooLarge {
        /// The component's size.
        bytes: usize,
        /// The maximum.
        max: usize,
    },
    /// wasmtime could not parse or validate the component.
    #[error("the component is invalid: {0}")]
    Invalid(String),
    /// Compiling took longer than the host allows.
    #[error("compiling the component took longer than the maximum of {} s", max.as_secs())]
    CompileTimeout {
        /// The compile-time cap.
        max: Duration,
    },
    /// The component imports something the host does not grant.
    #[error(
        "the component imports `{import}`, which the host does not grant: a plugin may import \
         `sandtable:udf/log`, `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli` standard streams, \
         environment and exit, and `wasi:filesystem`, never `wasi:sockets`"
    )]
    ImportNotGranted {
        /// The import's name, such as `wasi:sockets/tcp@0.2.3`.
        import: String,
    },
    /// The component does not target the `sandtable:udf` plugin world.
    #[error(
        "not a Sandtable plugin: {detail}; a plugin exports `sandtable:udf/udf@0.1.0`, \
         as the guest SDK's `plugin!` macro does"
    )]
    WrongWorld {
        /// What the component has instead.
        detail: String,
    },
    /// Linking the component's imports failed.
    #[error("the component's imports cannot be linked: {0}")]
    Link(String),
    /// The component's initial memory is larger than any call may have.
    #[error(
        "the component declares {bytes} bytes of initial memory, over the host's maximum of \
         {max} bytes; lower its `--initial-memory` link setting"
    )]
    InitialMemoryTooLarge {
        /// The declared initial memory.
        bytes: u64,
        /// The host's memory cap.
        max: u64,
    },
    /// `describe` trapped or ran out of its budget.
    #[error("the plugin's `describe` failed: {0}")]
    DescribeFailed(String),
    /// The description broke a rule.
    #[error("the plugin's description is invalid: {0}")]
    InvalidDescription(String),
    /// The engine itself could not be set up.
    #[error("the sandbox engine could not be set up: {0}")]
    Engine(String),
}

impl LoadError {
    pub(crate) fn engine(error: wasmtime::Error) -> Self {
        LoadError::Engine(format!("{error:#}"))
    }
}

/// A call the host refuses to make, or could not make for reasons of its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin has no function of this name.
    #[error("plugin `{plugin}` has no function `{function}`; it has {available}")]
    UnknownFunction {
        /// The plugin.
        plugin: String,
        /// The requested function.
        function: String,
        /// The functions it does have, comma-separated.
        available: String,
    },
    /// The number of arguments does not match the function.
    #[error(
        "`{function}` takes {expected} argument{}, but {given} {} given",
        if *expected == 1 { "" } else { "s" },
        if *given == 1 { "was" } else { "were" }
    )]
    ArgumentCount {
        /// The function.
        function: String,
        /// Its parameter count.
        expected: usize,
        /// The number of arguments given.
        given: usize,
    },
    /// An argument has the wrong type.
    #[error(
        "argument `{param}` of `{function}` must be {expected}, but a {given} column was given"
    )]
    ArgumentType {
        /// The function.
        function: String,
        /// The parameter.
        param: String,
        /// The declared type.
        expected: DataType,
        /// The given type.
        given: DataType,
    },
    /// An argument column is malformed or of the wrong length.
    #[error("argument `{param}` of `{function}` is invalid: {reason}")]
    ArgumentInvalid {
        /// The function.
        function: String,
        /// The parameter.
        param: String,
        /// What is wrong.
        reason: String,
    },
    /// The tenant's calls used their fuel budget of the last minute.
    #[error(
        "tenant `{tenant}` used its quota of {fuel_per_minute} fuel a minute; retry after {} s, \
         or raise `fuel_per_minute` in `[quotas.{tenant}]` of the configuration",
        retry_after_secs(retry_after)
    )]
    FuelQuota {
        /// The tenant.
        tenant: String,
        /// Its quota.
        fuel_per_minute: u64,
        /// How long until the budget allows a call again.
        retry_after: std::time::Duration,
    },
    /// The host could not set up the store or instance.
    #[error("the host could not prepare a sandbox for `{function}`: {reason}")]
    Host {
        /// The function.
        function: String,
        /// What failed.
        reason: String,
    },
}

/// Rounds a wait up to whole seconds, at least one, as `Retry-After` gives
/// it.
pub fn retry_after_secs(wait: &std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
