//! What `plugin show` and `GET /v1/plugins/{plugin}` report about one
//! catalog version: its entry, the limits its functions run under, its
//! grants and the pool each function is charged to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, PluginEntry, PluginRef, Tenant};
use crate::sandbox::{
    CallQuotas, Description, DirectoryGrant, EffectiveLimits, HostPattern, LimitPolicy,
};

/// The limits one call of a function runs under, after the host's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunctionLimits {
    /// Fuel for each row; a call of `n` rows gets `n` times this.
    pub fuel_per_row: u64,
    /// The maximum size of linear memory, in bytes.
    pub memory_bytes: u64,
    /// The wall-clock deadline of one call, in milliseconds.
    pub deadline_ms: u64,
    /// The maximum size of the output, in bytes.
    pub output_bytes: u64,
}

impl From<&EffectiveLimits> for FunctionLimits {
    fn from(limits: &EffectiveLimits) -> Self {
        FunctionLimits {
            fuel_per_row: limits.fuel_per_row,
            memory_bytes: limits.memory_bytes,
            deadline_ms: limits.deadline.as_millis() as u64,
            output_bytes: limits.output_bytes,
        }
    }
}

impl FunctionLimits {
    /// Returns the limits of each function of `description` under
    /// `policy` and a tenant's `quotas`, by function name.
    pub fn of_functions(
        description: &Description,
        policy: &LimitPolicy,
        quotas: &CallQuotas,
    ) -> BTreeMap<String, FunctionLimits> {
        description
            .functions
            .iter()
            .map(|function| {
                let limits = quotas.cap(policy.effective(&function.limits));
                (function.name.clone(), FunctionLimits::from(&limits))
            })
            .collect()
    }
}

/// One catalog version of a plugin, with what it runs under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginDetails {
    /// The catalog entry, with the plugin's description.
    pub entry: PluginEntry,
    /// The limits of each function, by function name.
    pub effective_limits: BTreeMap<String, FunctionLimits>,
    /// The directories granted to the plugin's name, mounted read-only
    /// where this version declares them.
    #[schema(value_type = Vec<Object>)]
    pub directories: Vec<DirectoryGrant>,
    /// The hosts the plugin's name may send requests to, as granted.
    #[schema(value_type = Vec<String>)]
    pub hosts: Vec<HostPattern>,
    /// The pool each function is charged to, with its limits and where
    /// they come from, for the functions charged to one.
    pub pools: BTreeMap<String, String>,
}

impl Catalog {
    /// Returns the version that `reference` names with its grants, its
    /// functions' pools, and the limits its functions get under `policy`
    /// and the tenant's quotas.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::PluginNotFound`] when the reference matches
    /// no version of the tenant's, and fails when the database does.
    pub async fn plugin_details(
        &self,
        tenant: &Tenant,
        reference: &PluginRef,
        policy: &LimitPolicy,
    ) -> Result<PluginDetails, CatalogError> {
        let entry = self.find_plugin(tenant, reference).await?;
        let directories = self.directories(tenant, &entry.name).await?;
        let hosts = self.hosts(tenant, &entry.name).await?;
        let pools = self.function_pools(&entry, !hosts.is_empty());
        let quotas = self.pools().config().tenant_quotas(&tenant.name).calls;
        Ok(PluginDetails {
            effective_limits: FunctionLimits::of_functions(&entry.description, policy, &quotas),
            entry,
            directories,
            hosts,
            pools,
        })
    }

    /// Returns the pool each function of `entry` is charged to, with its
    /// limits, as [`Catalog::load_plugin`] resolves them.
    fn function_pools(
        &self,
        entry: &PluginEntry,
        sends_requests: bool,
    ) -> BTreeMap<String, String> {
        let config = self.pools().config();
        let mut pools = BTreeMap::new();
        for function in &entry.description.functions {
            if let Some(name) = self.pool_name(entry, &function.name, sends_requests) {
                let spec = config.pool(&name);
                pools.insert(
                    function.name.clone(),
                    format!("{name} ({spec}, from {})", spec.origin),
                );
            }
        }
        pools
    }
}
