//! Plugins in the catalog: content-addressed components with catalog
//! versions per name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Catalog, CatalogError, PluginRef, Tenant, VersionSelector};
use crate::config::REQUEST_RATE_PREFIX;
use crate::sandbox::{
    CallContext, Description, DirectoryGrant, HostPattern, LoadedPlugin, Outbound, UdfEngine,
};

/// One catalog version of a plugin, without its component bytes.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PluginEntry {
    /// The catalog name.
    pub name: String,
    /// The catalog version: 1, 2, 3 ... per name.
    pub version: i32,
    /// The lowercase hex sha256 of the component.
    pub sha256: String,
    /// The component's size in bytes.
    pub size_bytes: i64,
    /// The plugin's own version string.
    pub plugin_version: String,
    /// The plugin's description, as `describe` returned it.
    #[schema(value_type = Object)]
    pub description: Description,
    /// When the version was added, in UTC.
    pub added_at: String,
}

impl PluginEntry {
    /// The reference `NAME@VERSION` of this entry.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// The result of adding a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AddedPlugin {
    /// The stored entry.
    pub entry: PluginEntry,
    /// Whether a new version was created; `false` when the same content was
    /// already stored under this name.
    pub created: bool,
}

/// The columns of a [`PluginEntry`], as a literal so that queries stay
/// `&'static str`.
macro_rules! entry_columns {
    () => {
        "name, version, sha256, size_bytes, plugin_version, description, \
         to_char(added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS added_at"
    };
}

fn entry_from_row(row: &PgRow) -> Result<PluginEntry, CatalogError> {
    let name: String = row.try_get("name")?;
    let version: i32 = row.try_get("version")?;
    let description: serde_json::Value = row.try_get("description")?;
    let description =
        serde_json::from_value(description).map_err(|error| CatalogError::CorruptDescription {
            reference: format!("{name}@{version}"),
            detail: error.to_string(),
        })?;
    Ok(PluginEntry {
        sha256: row.try_get("sha256")?,
        size_bytes: row.try_get("size_bytes")?,
        plugin_version: row.try_get("plugin_version")?,
        added_at: row.try_get("added_at")?,
        description,
        name,
        version,
    })
}

impl Catalog {
    /// Stores a loaded plugin under `name`. New content gets the next
    /// catalog version; content already stored under `name` is not stored
    /// twice.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn add_plugin(
        &self,
        tenant: &Tenant,
        name: &str,
        bytes: &[u8],
        plugin: &LoadedPlugin,
    ) -> Result<AddedPlugin, CatalogError> {
        let mut tx = self.pool.begin().await?;
        // Serializes concurrent adds of one name, so versions stay dense.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
            .bind(name)
            .bind(tenant.id)
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM sandtable.plugins \
             WHERE tenant_id = $1 AND name = $2 AND sha256 = $3"
        ))
        .bind(tenant.id)
        .bind(name)
        .bind(plugin.sha256())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(AddedPlugin {
                entry: entry_from_row(&row)?,
                created: false,
            });
        }
        let description = serde_json::to_value(plugin.description())
            .expect("a description always serializes to JSON");
        let (version,): (i32,) = sqlx::query_as(
            "INSERT INTO sandtable.plugin_names (tenant_id, name, last_version) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, name) \
             DO UPDATE SET last_version = sandtable.plugin_names.last_version + 1 \
             RETURNING last_version",
        )
        .bind(tenant.id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "INSERT INTO sandtable.plugins \
               (tenant_id, name, version, sha256, component, size_bytes, plugin_version, description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING ", entry_columns!(), ""
        ))
        .bind(tenant.id)
        .bind(name)
        .bind(version)
        .bind(plugin.sha256())
        .bind(bytes)
        .bind(bytes.len() as i64)
        .bind(&plugin.description().version)
        .bind(description)
        .fetch_one(&mut *tx)
        .await?;
        let entry = entry_from_row(&row)?;
        tx.commit().await?;
        tracing::info!(
            target: "sandtable::catalog",
            tenant = %tenant.name,
            plugin = %entry.name,
            version = entry.version,
            sha256 = %entry.sha256,
            "plugin added"
        );
        Ok(AddedPlugin {
            entry,
            created: true,
        })
    }

    /// Lists every version of every plugin of `tenant`, by name and version.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn list_plugins(&self, tenant: &Tenant) -> Result<Vec<PluginEntry>, CatalogError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM sandtable.plugins WHERE tenant_id = $1 \
             ORDER BY name, version"
        ))
        .bind(tenant.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Finds the version a reference names: the latest when it names none.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::PluginNotFound`] with the versions that do
    /// exist, or [`CatalogError::AmbiguousReference`] for a sha256 prefix
    /// that matches several.
    pub async fn find_plugin(
        &self,
        tenant: &Tenant,
        reference: &PluginRef,
    ) -> Result<PluginEntry, CatalogError> {
        let versions = self.versions_of(tenant, &reference.name).await?;
        let matching: Vec<&PluginEntry> = match &reference.selector {
            None => versions.last().into_iter().collect(),
            Some(VersionSelector::Version(version)) => {
                versions.iter().filter(|e| e.version == *version).collect()
            }
            Some(VersionSelector::Sha256Prefix(prefix)) => versions
                .iter()
                .filter(|e| e.sha256.starts_with(prefix))
                .collect(),
        };
        match matching.as_slice() {
            [entry] => Ok((*entry).clone()),
            [] => Err(CatalogError::PluginNotFound {
                reference: reference.to_string(),
                hint: if versions.is_empty() {
                    "; `sandtable plugin list` shows the stored plugins".to_owned()
                } else {
                    format!(
                        "; stored versions are {}",
                        versions
                            .iter()
                            .map(|e| e.version.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            }),
            several => Err(CatalogError::AmbiguousReference {
                reference: reference.to_string(),
                name: reference.name.clone(),
                versions: several
                    .iter()
                    .map(|e| e.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    async fn versions_of(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Vec<PluginEntry>, CatalogError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM sandtable.plugins WHERE tenant_id = $1 AND name = $2 \
             ORDER BY version"
        ))
        .bind(tenant.id)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Returns the component bytes of one version.
    ///
    /// # Errors
    ///
    /// Fails when the database does or the version is gone.
    pub async fn plugin_component(
        &self,
        tenant: &Tenant,
        entry: &PluginEntry,
    ) -> Result<Vec<u8>, CatalogError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT component FROM sandtable.plugins WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant.id)
        .bind(&entry.name)
        .bind(entry.version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(bytes,)| bytes)
            .ok_or_else(|| CatalogError::PluginNotFound {
                reference: entry.reference(),
                hint: String::new(),
            })
    }

    /// Removes the version a reference names, or with `all_versions` every
    /// version of the name. Returns what was removed. Removed version
    /// numbers are never given out again.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::PluginNotFound`] when nothing matches, and
    /// [`CatalogError::ConflictingRemoval`] for a reference with a version
    /// together with `all_versions`.
    pub async fn remove_plugin(
        &self,
        tenant: &Tenant,
        reference: &PluginRef,
        all_versions: bool,
    ) -> Result<Vec<PluginEntry>, CatalogError> {
        if all_versions && reference.selector.is_some() {
            return Err(CatalogError::ConflictingRemoval {
                reference: reference.to_string(),
                name: reference.name.clone(),
            });
        }
        let removed = if all_versions {
            let versions = self.versions_of(tenant, &reference.name).await?;
            if versions.is_empty() {
                return Err(CatalogError::PluginNotFound {
                    reference: reference.to_string(),
                    hint: "; `sandtable plugin list` shows the stored plugins".to_owned(),
                });
            }
            let numbers: Vec<i32> = versions.iter().map(|v| v.version).collect();
            self.check_unused(tenant, &reference.name, &numbers).await?;
            let mut tx = self.pool.begin().await?;
            let deleted =
                sqlx::query("DELETE FROM sandtable.plugins WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.id)
                    .bind(&reference.name)
                    .execute(&mut *tx)
                    .await;
            self.in_use_if_referenced(deleted, tenant, &reference.name, &numbers)
                .await?;
            // Grants go with the name, so that a new component added under
            // it later starts with none.
            sqlx::query(
                "DELETE FROM sandtable.plugin_directories WHERE tenant_id = $1 AND plugin = $2",
            )
            .bind(tenant.id)
            .bind(&reference.name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            versions
        } else {
            let entry = self.find_plugin(tenant, reference).await?;
            self.check_unused(tenant, &entry.name, &[entry.version])
                .await?;
            let deleted = sqlx::query(
                "DELETE FROM sandtable.plugins WHERE tenant_id = $1 AND name = $2 AND version = $3",
            )
            .bind(tenant.id)
            .bind(&entry.name)
            .bind(entry.version)
            .execute(&self.pool)
            .await;
            self.in_use_if_referenced(deleted, tenant, &entry.name, &[entry.version])
                .await?;
            vec![entry]
        };
        for entry in &removed {
            tracing::info!(
                target: "sandtable::catalog",
                tenant = %tenant.name,
                plugin = %entry.name,
                version = entry.version,
                "plugin removed"
            );
        }
        Ok(removed)
    }

    /// Fails with [`CatalogError::PluginInUse`] when a computed column, now
    /// or in an earlier version that `table revert` can restore, or a
    /// snapshot, uses any of `versions` of plugin `name`. The foreign key
    /// from `column_spec_plugins` refuses the removal too; this names the
    /// uses.
    async fn check_unused(
        &self,
        tenant: &Tenant,
        name: &str,
        versions: &[i32],
    ) -> Result<(), CatalogError> {
        let rows: Vec<(i32, String, String, bool, Vec<String>)> = sqlx::query_as(
            "SELECT p.version, t.name, c.name, s.write_to = 9223372036854775807, \
                    coalesce(array_agg(sn.name ORDER BY sn.name) \
                             FILTER (WHERE sn.name IS NOT NULL), '{}') \
             FROM sandtable.column_spec_plugins p \
             JOIN sandtable.column_specs s \
               ON s.column_id = p.column_id AND s.write_from = p.write_from \
             JOIN sandtable.columns c ON c.id = p.column_id \
             JOIN sandtable.tables t ON t.id = c.table_id \
             LEFT JOIN sandtable.snapshots sn \
               ON sn.table_id = t.id AND s.write_from <= sn.write_id AND sn.write_id < s.write_to \
             WHERE p.tenant_id = $1 AND p.plugin = $2 AND p.version = ANY($3) \
             GROUP BY p.version, t.name, c.name, s.write_to, s.write_from \
             ORDER BY p.version, t.name, c.name, s.write_from",
        )
        .bind(tenant.id)
        .bind(name)
        .bind(versions)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut uses = Vec::new();
        for (version, table, column, current, snapshots) in rows {
            let what = if current {
                format!("column `{table}.{column}` computes with {name}@{version}")
            } else {
                format!(
                    "an earlier expression of column `{table}.{column}`, which `table revert` can \
                     restore, calls {name}@{version}"
                )
            };
            if !uses.contains(&what) {
                uses.push(what);
            }
            for snapshot in snapshots {
                let use_ = format!("snapshot `{snapshot}` holds values {name}@{version} computed");
                if !uses.contains(&use_) {
                    uses.push(use_);
                }
            }
        }
        Err(CatalogError::PluginInUse {
            reference: match versions {
                [version] => format!("{name}@{version}"),
                _ => name.to_owned(),
            },
            uses: uses.join("; "),
        })
    }

    /// Turns the foreign-key violation of a removal into
    /// [`CatalogError::PluginInUse`]: a column that started to use the
    /// version after [`Catalog::check_unused`] looked commits first.
    async fn in_use_if_referenced(
        &self,
        deleted: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
        tenant: &Tenant,
        name: &str,
        versions: &[i32],
    ) -> Result<(), CatalogError> {
        match deleted {
            Ok(_) => Ok(()),
            Err(error) if is_foreign_key_violation(&error) => {
                self.check_unused(tenant, name, versions).await?;
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Grants plugin `plugin` (all its versions) the host directory
    /// `host_path`, mounted read-only at `guest_path`.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::PluginNotFound`] when no version of `plugin`
    /// is stored, [`CatalogError::UndeclaredDirectory`] when its latest
    /// version does not ask for `guest_path`, and
    /// [`CatalogError::UnsafeGrant`] for the root directory or the kernel's
    /// `/proc`, `/sys` and `/dev`.
    pub async fn grant_directory(
        &self,
        tenant: &Tenant,
        plugin: &str,
        grant: &DirectoryGrant,
    ) -> Result<(), CatalogError> {
        let reference = PluginRef {
            name: plugin.to_owned(),
            selector: None,
        };
        let latest = self.find_plugin(tenant, &reference).await?;
        let declared = &latest.description.capabilities.directories;
        if !declared.contains(&grant.guest_path) {
            return Err(CatalogError::UndeclaredDirectory {
                plugin: plugin.to_owned(),
                guest_path: grant.guest_path.clone(),
                declared: if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                },
            });
        }
        let host = &grant.host_path;
        let kernel = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|dir| host.starts_with(dir));
        if host.parent().is_none() || kernel {
            return Err(CatalogError::UnsafeGrant {
                host_path: host.display().to_string(),
            });
        }
        sqlx::query(
            "INSERT INTO sandtable.plugin_directories (tenant_id, plugin, guest_path, host_path) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, plugin, guest_path) DO UPDATE SET host_path = excluded.host_path",
        )
        .bind(tenant.id)
        .bind(plugin)
        .bind(&grant.guest_path)
        .bind(host.to_string_lossy().as_ref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes a directory grant; returns whether there was one.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn revoke_directory(
        &self,
        tenant: &Tenant,
        plugin: &str,
        guest_path: &str,
    ) -> Result<bool, CatalogError> {
        let done = sqlx::query(
            "DELETE FROM sandtable.plugin_directories WHERE tenant_id = $1 AND plugin = $2 AND guest_path = $3",
        )
        .bind(tenant.id)
        .bind(plugin)
        .bind(guest_path)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The directories granted to `plugin`.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn directories(
        &self,
        tenant: &Tenant,
        plugin: &str,
    ) -> Result<Vec<DirectoryGrant>, CatalogError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT guest_path, host_path FROM sandtable.plugin_directories \
             WHERE tenant_id = $1 AND plugin = $2 ORDER BY guest_path",
        )
        .bind(tenant.id)
        .bind(plugin)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(guest_path, host_path)| DirectoryGrant {
                guest_path,
                host_path: PathBuf::from(host_path),
            })
            .collect())
    }

    /// Allows plugin `plugin` (all its versions) to send requests to hosts
    /// that match `pattern`.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::PluginNotFound`] when no version of `plugin`
    /// is stored, and [`CatalogError::UndeclaredHost`] when its latest
    /// version asks for no outbound host, or for other hosts than
    /// `pattern` without `*`.
    pub async fn grant_host(
        &self,
        tenant: &Tenant,
        plugin: &str,
        pattern: &HostPattern,
    ) -> Result<(), CatalogError> {
        let reference = PluginRef {
            name: plugin.to_owned(),
            selector: None,
        };
        let latest = self.find_plugin(tenant, &reference).await?;
        let declared = &latest.description.capabilities.outbound_hosts;
        if !asks_for_host(declared, pattern) {
            return Err(CatalogError::UndeclaredHost {
                plugin: plugin.to_owned(),
                pattern: pattern.to_string(),
                declared: if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                },
            });
        }
        sqlx::query(
            "INSERT INTO sandtable.plugin_hosts (tenant_id, plugin, pattern) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant.id)
        .bind(plugin)
        .bind(pattern.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes a host grant; returns whether there was one.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn revoke_host(
        &self,
        tenant: &Tenant,
        plugin: &str,
        pattern: &HostPattern,
    ) -> Result<bool, CatalogError> {
        let done = sqlx::query(
            "DELETE FROM sandtable.plugin_hosts WHERE tenant_id = $1 AND plugin = $2 AND pattern = $3",
        )
        .bind(tenant.id)
        .bind(plugin)
        .bind(pattern.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Returns the host patterns granted to `plugin`.
    ///
    /// # Errors
    ///
    /// Fails when the database does, or a stored pattern no longer parses.
    pub async fn hosts(
        &self,
        tenant: &Tenant,
        plugin: &str,
    ) -> Result<Vec<HostPattern>, CatalogError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT pattern FROM sandtable.plugin_hosts WHERE tenant_id = $1 AND plugin = $2 \
             ORDER BY pattern",
        )
        .bind(tenant.id)
        .bind(plugin)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(pattern,)| {
                pattern
                    .parse()
                    .map_err(|detail| CatalogError::CorruptDescription {
                        reference: plugin.to_owned(),
                        detail,
                    })
            })
            .collect()
    }

    /// Loads the version a reference names into `engine`, with the call
    /// context that names it, its granted directories and hosts, and the
    /// pool of each function.
    ///
    /// The plugin runs under the description stored when it was added, not
    /// under what its `describe` would return now, so a component cannot
    /// change its types, strictness or limits after the operator saw them.
    ///
    /// # Errors
    ///
    /// Fails when the reference matches nothing or the stored component no
    /// longer loads.
    pub async fn load_plugin(
        &self,
        engine: &UdfEngine,
        tenant: &Tenant,
        reference: &PluginRef,
    ) -> Result<(PluginEntry, LoadedPlugin, CallContext), CatalogError> {
        let entry = self.find_plugin(tenant, reference).await?;
        let bytes = self.plugin_component(tenant, &entry).await?;
        // Only the directories this version declares are mounted. Each must
        // still resolve to the path checked when it was granted, so that a
        // directory swapped for a symlink later is not followed.
        let declared = &entry.description.capabilities.directories;
        let mut directories = Vec::new();
        for grant in self.directories(tenant, &entry.name).await? {
            if !declared.contains(&grant.guest_path) {
                continue;
            }
            let resolved = std::fs::canonicalize(&grant.host_path).ok();
            if resolved.as_deref() != Some(grant.host_path.as_path()) {
                return Err(CatalogError::GrantMoved {
                    plugin: entry.name.clone(),
                    guest_path: grant.guest_path,
                    host_path: grant.host_path.display().to_string(),
                });
            }
            directories.push(grant);
        }
        let engine = engine.clone();
        let description = entry.description.clone();
        let plugin =
            tokio::task::spawn_blocking(move || engine.load_described(&bytes, description))
                .await
                .expect("the plugin load task does not panic")
                .map_err(|source| CatalogError::Load {
                    reference: entry.reference(),
                    source,
                })?;
        if plugin.sha256() != entry.sha256 {
            return Err(CatalogError::CorruptComponent {
                reference: entry.reference(),
                stored: entry.sha256.clone(),
                actual: plugin.sha256().to_owned(),
            });
        }
        let outbound = self.outbound(tenant, &entry).await?;
        let context = CallContext {
            tenant: tenant.name.clone(),
            plugin: entry.name.clone(),
            version: entry.version,
            directories,
            outbound: Arc::new(outbound),
            quotas: self.pools.config().tenant_quotas(&tenant.name).calls,
        };
        Ok((entry, plugin, context))
    }

    /// The pool that `function` of a version is charged to, if any.
    ///
    /// A function's pool is the one the operator's configuration sets for
    /// the plugin, else the one the function declares. A plugin allowed to
    /// send requests (`sends_requests`) charges a function without a pool to
    /// `request-rate:PLUGIN`, so that no request goes unmetered.
    pub fn pool_name(
        &self,
        entry: &PluginEntry,
        function: &str,
        sends_requests: bool,
    ) -> Option<String> {
        let config = self.pools.config();
        let forced = config
            .plugins
            .get(&entry.name)
            .and_then(|settings| settings.pool.clone());
        let declared = entry
            .description
            .functions
            .iter()
            .find(|f| f.name == function)
            .and_then(|f| f.pool.clone());
        forced
            .or(declared)
            .or_else(|| sends_requests.then(|| format!("{REQUEST_RATE_PREFIX}{}", entry.name)))
    }

    /// Returns what a version may reach and the pool of each of its functions, as
    /// [`Catalog::pool_name`] picks them.
    async fn outbound(
        &self,
        tenant: &Tenant,
        entry: &PluginEntry,
    ) -> Result<Outbound, CatalogError> {
        let declared = &entry.description.capabilities.outbound_hosts;
        let hosts: Vec<HostPattern> = self
            .hosts(tenant, &entry.name)
            .await?
            .into_iter()
            .filter(|pattern| asks_for_host(declared, pattern))
            .collect();
        let config = self.pools.config();
        let mut pools = HashMap::new();
        for function in &entry.description.functions {
            if let Some(name) = self.pool_name(entry, &function.name, !hosts.is_empty()) {
                let pool = self.pools.get(tenant.id, &tenant.name, &name);
                pools.insert(function.name.clone(), pool);
            }
        }
        Ok(Outbound {
            hosts,
            settings: Arc::new(config.http.clone()),
            pools,
        })
    }
}

/// Returns whether a plugin that declares `declared` outbound hosts
/// requests `pattern`: it declares `*`, or the pattern itself.
fn asks_for_host(declared: &[String], pattern: &HostPattern) -> bool {
    declared.iter().any(|host| {
        host == "*"
            || host
                .parse::<HostPattern>()
                .is_ok_and(|asked| &asked == pattern)
    })
}

/// Returns whether a query failed on a foreign key.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23503")
}
