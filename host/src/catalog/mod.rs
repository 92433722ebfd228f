//! The catalog in Postgres: tenants and plugins.
//!
//! Every catalog row carries a tenant. The default tenant, named
//! [`DEFAULT_TENANT`], is reached with the host's own role; every other
//! tenant has a role of its own (see `tenants`).

mod admin;
pub mod call;
mod details;
mod plugins;
mod reference;
mod stats;
mod tenants;

use std::sync::Arc;

use sqlx::PgPool;

pub use admin::{ADMIN_KEY_PREFIX, AdminKeyCheck};
pub use details::{FunctionLimits, PluginDetails};
pub(crate) use plugins::is_foreign_key_violation;
pub use plugins::{AddedPlugin, PluginEntry};
pub use reference::{InvalidReference, MIN_SHA256_PREFIX, PluginRef, VersionSelector};
pub use stats::STATS_INTERVAL;
pub use tenants::{MAX_TENANT_NAME, NewTenant, TENANT_MAX_CONNECTIONS, TenantInfo};

use crate::config::Config;
use crate::pool::{PoolStore, Pools};
use crate::sandbox::LoadError;

/// The tenant that owns everything until tenants are added.
pub const DEFAULT_TENANT: &str = "default";

/// The schema of the catalog tables and of the migrations' own bookkeeping.
pub const CATALOG_SCHEMA: &str = "sandtable";

/// A failure of a catalog operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The database failed.
    #[error("catalog query failed")]
    Db(#[from] sqlx::Error),
    /// The catalog schema could not be brought up to date.
    #[error("catalog migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No tenant has this name.
    #[error("tenant `{0}` not found; `sandtable tenant list` shows the tenants")]
    TenantNotFound(String),
    /// A tenant name is invalid or taken, or the tenant cannot be removed.
    #[error("{0}")]
    InvalidTenant(String),
    /// The host's Postgres role lacks a privilege that managing tenants
    /// needs.
    #[error(
        "Postgres refused: {0}; tenants need a host role with CREATEROLE (`ALTER ROLE ... \
         CREATEROLE`), or the embedded cluster"
    )]
    Privilege(String),
    /// No tenant has the API key.
    #[error("the API key is not valid; `sandtable tenant rotate-key NAME` makes a new one")]
    UnknownKey,
    /// The operating system gave no random bytes.
    #[error("could not read random bytes for a key: {0}")]
    Random(String),
    /// No plugin matches the reference.
    #[error("plugin `{reference}` not found{hint}")]
    PluginNotFound {
        /// The reference as given.
        reference: String,
        /// A hint on the versions that do exist, starting with `; `, or empty.
        hint: String,
    },
    /// A sha256 prefix matches more than one version.
    #[error(
        "`{reference}` matches versions {versions} of `{name}`; give more digits of the sha256"
    )]
    AmbiguousReference {
        /// The reference as given.
        reference: String,
        /// The plugin's name.
        name: String,
        /// The matching versions, comma-separated.
        versions: String,
    },
    /// A stored component no longer loads.
    #[error("stored plugin `{reference}` failed to load")]
    Load {
        /// The plugin and version.
        reference: String,
        /// Why it failed.
        #[source]
        source: LoadError,
    },
    /// A removal names one version and also requests every version.
    #[error(
        "`{reference}` names one version, but removing every version was asked for too; \
         remove `{reference}` alone, or `{name}` with every version"
    )]
    ConflictingRemoval {
        /// The reference as given.
        reference: String,
        /// The plugin's name.
        name: String,
    },
    /// A plugin version to be removed is still used.
    #[error(
        "plugin `{reference}` is in use: {uses}. Move the columns that compute with it to \
         another version (`sandtable column upgrade TABLE COLUMN`) and drop those snapshots; a \
         version in a table's history stays until the table is dropped"
    )]
    PluginInUse {
        /// The plugin, with its version when one was named.
        reference: String,
        /// The columns and snapshots that use it.
        uses: String,
    },
    /// A grant names a directory the plugin does not ask for.
    #[error("plugin `{plugin}` does not ask for directory `{guest_path}`; it asks for {declared}")]
    UndeclaredDirectory {
        /// The plugin's catalog name.
        plugin: String,
        /// The guest path of the grant.
        guest_path: String,
        /// The guest paths it does ask for, comma-separated, or `none`.
        declared: String,
    },
    /// A host grant for a plugin that asks for no outbound host, or for a
    /// host it does not ask for.
    #[error(
        "plugin `{plugin}` does not ask to reach `{pattern}`; it asks for {declared}, so the grant \
         would never be used"
    )]
    UndeclaredHost {
        /// The plugin's catalog name.
        plugin: String,
        /// The pattern of the grant.
        pattern: String,
        /// The hosts it does ask for, comma-separated, or `none`.
        declared: String,
    },
    /// A grant's host path is missing or not a directory.
    #[error("host path `{host_path}` of the grant is not a directory; give an existing directory")]
    GrantNotDirectory {
        /// The host path as given.
        host_path: String,
    },
    /// A granted directory no longer resolves to the path that was granted.
    #[error(
        "the directory granted to `{plugin}` at `{guest_path}`, `{host_path}`, is missing or now \
         resolves elsewhere (was it replaced by a symlink?); grant it again with `sandtable plugin \
         grant {plugin} --dir {guest_path}=DIR`"
    )]
    GrantMoved {
        /// The plugin's catalog name.
        plugin: String,
        /// The guest path of the grant.
        guest_path: String,
        /// The host path that was granted.
        host_path: String,
    },
    /// A grant would expose the root directory or a kernel file system.
    #[error(
        "granting `{host_path}` would expose the whole host or a kernel file system; grant a \
         directory that holds only what the plugin needs"
    )]
    UnsafeGrant {
        /// The host directory.
        host_path: String,
    },
    /// A stored component's bytes no longer match their sha256.
    #[error(
        "stored plugin `{reference}` is corrupt: its bytes hash to {actual}, not {stored}; \
         remove it and add the component again"
    )]
    CorruptComponent {
        /// The plugin and version.
        reference: String,
        /// The sha256 stored with it.
        stored: String,
        /// The sha256 of the stored bytes.
        actual: String,
    },
    /// A stored description does not parse.
    #[error("stored description of `{reference}` is unreadable: {detail}")]
    CorruptDescription {
        /// The plugin and version.
        reference: String,
        /// The decoding error.
        detail: String,
    },
}

/// A tenant: a namespace of plugins and tables with a schema of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    /// The tenant's id.
    pub id: i64,
    /// The tenant's name.
    pub name: String,
    /// The Postgres schema of the tenant's tables.
    pub schema_name: String,
}

/// The catalog, over a connection pool, with the resource pools that the
/// plugins it loads are charged to.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: PgPool,
    pools: Pools,
}

impl Catalog {
    /// Opens the catalog, creating or migrating its schema first.
    ///
    /// # Errors
    ///
    /// Fails when the database cannot be reached or a migration fails.
    pub async fn open(pool: PgPool) -> Result<Self, CatalogError> {
        // The bookkeeping table is named with its schema: left to the search
        // path, `"$user"` would resolve to this schema once it exists when
        // the role is named `sandtable`, and the migrations would run again.
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.create_schema(CATALOG_SCHEMA);
        migrator.dangerous_set_table_name(format!("{CATALOG_SCHEMA}._sqlx_migrations"));
        migrator.run(&pool).await?;
        let pools = Pools::new(Arc::default(), Some(PoolStore::new(pool.clone())));
        Ok(Catalog { pool, pools })
    }

    /// Uses `config` for the resource pools and outbound requests of the
    /// plugins loaded from now on, in place of the defaults.
    #[must_use]
    pub fn with_config(mut self, config: Arc<Config>) -> Self {
        self.pools = Pools::new(config, Some(PoolStore::new(self.pool.clone())));
        self
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Returns the resource pools of this process.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// Looks up a tenant by name.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::TenantNotFound`] when there is no such tenant.
    pub async fn tenant(&self, name: &str) -> Result<Tenant, CatalogError> {
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, name, schema_name FROM sandtable.tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        let (id, name, schema_name) =
            row.ok_or_else(|| CatalogError::TenantNotFound(name.to_owned()))?;
        Ok(Tenant {
            id,
            name,
            schema_name,
        })
    }
}
