//! Host-side bindings for the `sandtable:udf@0.1.0` WIT package.
//!
//! This is the one place that runs `bindgen!` over `wit/`; the rest of the
//! host uses the types re-exported from [`crate::sandbox`].

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub use generated::sandtable::udf::{log, types, usage};
pub use generated::{Plugin, PluginPre};

/// The name of the interface a plugin exports its functions through.
pub const UDF_INTERFACE: &str = "sandtable:udf/udf@0.1.0";

/// The name of the optional interface with a plugin's `init` export.
pub const LIFECYCLE_INTERFACE: &str = "sandtable:udf/lifecycle@0.1.0";

/// The name of the interface of shared types, which plugins import for its
/// types alone.
pub const TYPES_INTERFACE: &str = "sandtable:udf/types@0.1.0";

/// The name of the host's log interface.
pub const LOG_INTERFACE: &str = "sandtable:udf/log@0.1.0";

/// The name of the interface through which a guest reports tokens.
pub const USAGE_INTERFACE: &str = "sandtable:udf/usage@0.1.0";
