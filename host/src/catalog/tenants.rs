//! Tenants beyond the default one.
//!
//! Creating a tenant creates a Postgres role for it and the tenant's schema,
//! owned by that role. The host reaches the tenant's plugins and tables on
//! connections that log in as the role, so Postgres itself keeps a tenant
//! out of another's schema. Row-level security (migration 0006) limits the
//! role to its own tenant's rows of the shared catalog tables. The role
//! belongs to a group role of the database, which has the privileges on
//! the catalog. The API key is shown once and stored as its sha256.

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, PgPool};

use super::{CATALOG_SCHEMA, Catalog, CatalogError, DEFAULT_TENANT, Tenant};
use crate::pool::{PoolStore, Pools};

/// The maximum length of a tenant name, which keeps role names within
/// Postgres's 63 bytes.
pub const MAX_TENANT_NAME: usize = 40;

/// The prefix of every API key.
const KEY_PREFIX: &str = "st_";

/// A tenant as `tenant list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantInfo {
    /// The tenant's name.
    pub name: String,
    /// The Postgres schema of its tables.
    pub schema_name: String,
    /// The Postgres role its connections log in as; none for the default
    /// tenant, which uses the host's own.
    pub role_name: Option<String>,
    /// Whether the tenant has an API key.
    pub has_key: bool,
    /// When the tenant was created, in RFC 3339.
    pub created_at: String,
}

/// A tenant just created, with its API key, which is not stored.
#[derive(Debug)]
pub struct NewTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// The API key.
    pub api_key: String,
}

impl Catalog {
    /// Creates tenant `name` with its role, its schema and an API key.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::InvalidTenant`] for a bad or taken name, and
    /// [`CatalogError::Privilege`] when the host's role may not create
    /// roles.
    pub async fn create_tenant(&self, name: &str) -> Result<NewTenant, CatalogError> {
        check_tenant_name(name)?;
        let group = self.ensure_group_role().await?;
        let database_oid = self.database_oid().await?;
        let role_name = format!("sandtable_{database_oid}_{name}");
        let schema_name = format!("tenant_{name}");
        let password = random_hex(24)?;
        let api_key = format!("{KEY_PREFIX}{}", random_hex(32)?);

        let mut tx = self.pool.begin().await?;
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM sandtable.tenants WHERE name = $1) \
                 OR EXISTS (SELECT FROM pg_namespace WHERE nspname = $2) \
                 OR EXISTS (SELECT FROM pg_roles WHERE rolname = $3)",
        )
        .bind(name)
        .bind(&schema_name)
        .bind(&role_name)
        .fetch_one(&mut *tx)
        .await?;
        if taken {
            return Err(CatalogError::InvalidTenant(format!(
                "tenant `{name}` already exists, or its schema `{schema_name}` or role \
                 `{role_name}` does; `sandtable tenant list` shows the tenants"
            )));
        }
        // The role and schema names are checked above to be lowercase
        // letters, digits and underscores, and the password is hex.
        let statements = [
            format!("CREATE ROLE \"{role_name}\" LOGIN PASSWORD '{password}' IN ROLE \"{group}\""),
            // The host's own role may then act on the tenant's objects, which
            // removing the tenant needs when it is not a superuser.
            format!("GRANT \"{role_name}\" TO CURRENT_USER"),
            format!("CREATE SCHEMA \"{schema_name}\" AUTHORIZATION \"{role_name}\""),
        ];
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(|error| taken_error(name, error))?;
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO sandtable.tenants (name, schema_name, role_name, role_password, key_hash) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(&schema_name)
        .bind(&role_name)
        .bind(&password)
        .bind(key_hash(&api_key))
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| taken_error(name, error))?;
        tx.commit().await?;
        tracing::info!(tenant = name, role = role_name, "tenant created");
        Ok(NewTenant {
            tenant: Tenant {
                id,
                name: name.to_owned(),
                schema_name,
            },
            api_key,
        })
    }

    /// Lists the tenants, the default one first.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError> {
        let rows: Vec<(String, String, Option<String>, bool, String)> = sqlx::query_as(
            "SELECT name, schema_name, role_name, key_hash IS NOT NULL, \
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
               FROM sandtable.tenants ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(name, schema_name, role_name, has_key, created_at)| TenantInfo {
                    name,
                    schema_name,
                    role_name,
                    has_key,
                    created_at,
                },
            )
            .collect())
    }

    /// Removes tenant `name` with everything it owns: its tables, plugins,
    /// snapshots, schema and role.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::TenantNotFound`] for an unknown tenant and
    /// [`CatalogError::InvalidTenant`] for the default one.
    pub async fn remove_tenant(&self, name: &str) -> Result<(), CatalogError> {
        if name == DEFAULT_TENANT {
            return Err(CatalogError::InvalidTenant(format!(
                "the tenant `{DEFAULT_TENANT}` cannot be removed; it owns what the host does \
                 without a tenant"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, schema_name, role_name FROM sandtable.tenants WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, schema_name, role_name) =
            row.ok_or_else(|| CatalogError::TenantNotFound(name.to_owned()))?;

        // The schema goes first, while this transaction has locked no
        // catalog row. A write locks its table before it writes catalog rows, so
        // dropping the tables waits for the writes in progress, and none of
        // them then waits for a catalog row this transaction has locked.
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema_name}\" CASCADE"
        )))
        .execute(&mut *tx)
        .await
        .map_err(privilege_error)?;
        // Snapshots name tables, and the tables' column specs name plugin
        // versions, so each goes before what it names.
        for statement in [
            "DELETE FROM sandtable.snapshots WHERE tenant_id = $1",
            "DELETE FROM sandtable.tables WHERE tenant_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query("DELETE FROM sandtable.tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Another removal of the tenant committed after the lookup above.
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::TenantNotFound(name.to_owned()));
        }
        if let Some(role_name) = role_name {
            for statement in [
                format!("DROP OWNED BY \"{role_name}\""),
                format!("DROP ROLE \"{role_name}\""),
            ] {
                sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(privilege_error)?;
            }
        }
        tx.commit().await?;
        tracing::info!(tenant = name, "tenant removed");
        Ok(())
    }

    /// Replaces the API key of tenant `name`, and returns the new one. The
    /// old key stops working at once.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::TenantNotFound`] for an unknown tenant.
    pub async fn rotate_key(&self, name: &str) -> Result<String, CatalogError> {
        if name == DEFAULT_TENANT {
            // Its requests would run as the host's own role, which row-level
            // security does not bind and which may be a superuser.
            return Err(CatalogError::InvalidTenant(format!(
                "the tenant `{DEFAULT_TENANT}` gets no API key, since it has no Postgres role of \
                 its own; create a tenant with `sandtable tenant create NAME` for API access"
            )));
        }
        let api_key = format!("{KEY_PREFIX}{}", random_hex(32)?);
        let updated = sqlx::query("UPDATE sandtable.tenants SET key_hash = $2 WHERE name = $1")
            .bind(name)
            .bind(key_hash(&api_key))
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(CatalogError::TenantNotFound(name.to_owned()));
        }
        tracing::info!(tenant = name, "API key replaced");
        Ok(api_key)
    }

    /// Returns the tenant whose API key is `key`. Only tenants with a role
    /// of their own have keys.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::UnknownKey`] when no tenant has the key.
    pub async fn authenticate(&self, key: &str) -> Result<Tenant, CatalogError> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT id, name, schema_name FROM sandtable.tenants \
              WHERE key_hash = $1 AND role_name IS NOT NULL",
        )
        .bind(key_hash(key))
        .fetch_optional(&self.pool)
        .await?;
        let (id, name, schema_name) = row.ok_or(CatalogError::UnknownKey)?;
        Ok(Tenant {
            id,
            name,
            schema_name,
        })
    }

    /// Returns the catalog as `tenant` reaches it: on a pool that logs in
    /// as the tenant's role. The default tenant, which has no role of its
    /// own, gets this catalog.
    ///
    /// # Errors
    ///
    /// Returns [`CatalogError::TenantNotFound`] when the tenant is gone.
    pub async fn for_tenant(&self, tenant: &Tenant) -> Result<Catalog, CatalogError> {
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT role_name, role_password FROM sandtable.tenants WHERE id = $1")
                .bind(tenant.id)
                .fetch_optional(&self.pool)
                .await?;
        let (role_name, password) =
            row.ok_or_else(|| CatalogError::TenantNotFound(tenant.name.clone()))?;
        let (Some(role_name), Some(password)) = (role_name, password) else {
            return Ok(self.clone());
        };
        let options: PgConnectOptions = self
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .username(&role_name)
            .password(&password);
        let pool = tenant_pool(options);
        Ok(Catalog {
            pools: Pools::new(
                self.pools.config().clone(),
                Some(PoolStore::new(pool.clone())),
            ),
            pool,
        })
    }

    /// Creates the database's group role of tenant roles when it is
    /// missing, grants it the catalog, and returns its name.
    ///
    /// NOTE: the grants cover the catalog tables and columns that exist
    /// when a tenant is created. A migration that adds a catalog table, or
    /// a column to a table with an identity column, must grant it to the
    /// group role itself, or tenants made earlier lack it until the next
    /// `create_tenant`.
    async fn ensure_group_role(&self) -> Result<String, CatalogError> {
        let group = format!("sandtable_{}_tenants", self.database_oid().await?);
        let mut tx = self.pool.begin().await?;
        // Two hosts may create the first tenants at once.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sandtable tenant roles'))")
            .execute(&mut *tx)
            .await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
                .bind(&group)
                .fetch_one(&mut *tx)
                .await?;
        let schema = CATALOG_SCHEMA;
        let mut statements = Vec::new();
        if !exists {
            statements.push(format!("CREATE ROLE \"{group}\" NOLOGIN"));
        }
        statements.extend([
            format!("GRANT USAGE ON SCHEMA {schema} TO \"{group}\""),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} \
                 TO \"{group}\""
            ),
            // Identity columns take their values without any privilege on
            // their sequences, so tenants need none. With `nextval`, a
            // tenant could push table ids past 2^31 - 1, where the integer
            // lock keys of `sandtable.begin_write` fail for every tenant.
            format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM \"{group}\""),
        ]);
        statements.extend(identity_grants(&mut tx, &group).await?);
        statements.extend([
            // A tenant reads its own row of `tenants`, but neither its role's
            // password nor any key hash, the admin key's among them, and none
            // of the migrations' records.
            format!(
                "REVOKE ALL ON {schema}.tenants, {schema}.admin_key, {schema}._sqlx_migrations \
                 FROM \"{group}\""
            ),
            format!(
                "GRANT SELECT (id, name, schema_name, created_at, role_name) ON {schema}.tenants \
                 TO \"{group}\""
            ),
            // Only the host grants a plugin a directory or a host, with the
            // checks of `grant_directory` and `grant_host`. A tenant may
            // read and remove its grants.
            format!(
                "REVOKE INSERT, UPDATE ON {schema}.plugin_directories, {schema}.plugin_hosts \
                 FROM \"{group}\""
            ),
        ]);
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(privilege_error)?;
        }
        tx.commit().await?;
        Ok(group)
    }

    /// Returns the oid of the catalog's database, which makes role names,
    /// which Postgres shares between databases, unique to it.
    async fn database_oid(&self) -> Result<i64, CatalogError> {
        Ok(sqlx::query_scalar(
            "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

/// Returns the statements that limit `group`'s inserts and updates of the
/// catalog tables with an identity column to their other columns.
///
/// `OVERRIDING SYSTEM VALUE` lets an insert choose an identity column's
/// value, and a tenant that inserted ids ahead of the sequence would make
/// every tenant's next insert fail on the primary key. `tenants` is left
/// out, since tenants get no write privilege on it at all.
async fn identity_grants(
    conn: &mut sqlx::PgConnection,
    group: &str,
) -> Result<Vec<String>, CatalogError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('REVOKE INSERT, UPDATE ON %I.%I FROM %I', n.nspname, c.relname, $2), \
                format('GRANT INSERT (%1$s), UPDATE (%1$s) ON %2$I.%3$I TO %4$I', \
                       string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) \
                           FILTER (WHERE a.attidentity = '' AND a.attgenerated = ''), \
                       n.nspname, c.relname, $2) \
           FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'tenants' \
          GROUP BY n.nspname, c.relname \
         HAVING bool_or(a.attidentity <> '') \
          ORDER BY c.relname",
    )
    .bind(CATALOG_SCHEMA)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .flat_map(|(revoke, grant)| [revoke, grant])
        .collect())
}

/// Creates the lazy pool of a tenant's role.
fn tenant_pool(options: PgConnectOptions) -> PgPool {
    crate::pg::pool_options()
        .max_connections(TENANT_MAX_CONNECTIONS)
        .connect_lazy_with(options)
}

/// The maximum number of connections of each tenant's pool.
pub const TENANT_MAX_CONNECTIONS: u32 = 16;

/// Checks a tenant name: 1 to [`MAX_TENANT_NAME`] lowercase ASCII letters,
/// digits and underscores, starting with a letter.
fn check_tenant_name(name: &str) -> Result<(), CatalogError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TENANT_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(CatalogError::InvalidTenant(format!(
            "invalid tenant name `{name}`; use 1 to {MAX_TENANT_NAME} lowercase letters, digits \
             and underscores, starting with a letter"
        )))
    }
}

/// Maps the failure of a statement that creates tenant `name` to
/// [`CatalogError::InvalidTenant`] when another process created the same
/// tenant first, and otherwise as [`privilege_error`] does.
fn taken_error(name: &str, error: sqlx::Error) -> CatalogError {
    // Duplicate object (a role), duplicate schema, unique violation.
    const ALREADY_EXISTS: [&str; 3] = ["42710", "42P06", "23505"];
    match &error {
        sqlx::Error::Database(db)
            if ALREADY_EXISTS.contains(&db.code().as_deref().unwrap_or_default()) =>
        {
            CatalogError::InvalidTenant(format!(
                "tenant `{name}` already exists; `sandtable tenant list` shows the tenants"
            ))
        }
        _ => privilege_error(error),
    }
}

/// Maps a refused role or schema statement to [`CatalogError::Privilege`].
fn privilege_error(error: sqlx::Error) -> CatalogError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
            CatalogError::Privilege(db.message().to_owned())
        }
        _ => CatalogError::Db(error),
    }
}

/// Returns `bytes` random bytes from the operating system, in hex.
pub(super) fn random_hex(bytes: usize) -> Result<String, CatalogError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| CatalogError::Random(error.to_string()))?;
    Ok(hex::encode(buffer))
}

/// Returns the sha256 of an API key, as stored.
pub(super) fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_checked() {
        for good in ["acme", "a", "team_2", &"a".repeat(MAX_TENANT_NAME)] {
            assert!(check_tenant_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "2team",
            "_x",
            "a-b",
            "a b",
            &"a".repeat(MAX_TENANT_NAME + 1),
        ] {
            let error = check_tenant_name(bad).unwrap_err().to_string();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let first = random_hex(32).unwrap();
        let second = random_hex(32).unwrap();
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        assert_eq!(key_hash("st_x").len(), 32);
        assert_ne!(key_hash("st_x"), key_hash("st_y"));
    }
}
