//! The operator's admin key, which opens the operator routes of `sandtable
//! serve`: tenants, `/metrics` and the dashboard's figures.
//!
//! Like a tenant's API key, the key is printed once and stored only as its
//! sha256, in a table that tenant roles cannot read or write (migration
//! 0007).

use super::tenants::{key_hash, random_hex};
use super::{Catalog, CatalogError};

/// The prefix of the admin key, which distinguishes it from the tenants'
/// `st_` keys at a glance, in a log or a leaked file.
pub const ADMIN_KEY_PREFIX: &str = "st_admin_";

/// The result of comparing a key with the stored admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminKeyCheck {
    /// The key is the admin key.
    Valid,
    /// An admin key is set, and this is not it.
    Invalid,
    /// No admin key is set yet.
    Unset,
}

impl Catalog {
    /// Replaces the admin key, or sets the first one, and returns the new
    /// key. The old key stops working at once.
    ///
    /// # Errors
    ///
    /// Fails when the operating system gives no random bytes or the
    /// database fails.
    pub async fn rotate_admin_key(&self) -> Result<String, CatalogError> {
        let key = format!("{ADMIN_KEY_PREFIX}{}", random_hex(32)?);
        sqlx::query(
            "INSERT INTO sandtable.admin_key (key_hash) VALUES ($1) \
             ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash, rotated_at = now()",
        )
        .bind(key_hash(&key))
        .execute(&self.pool)
        .await?;
        tracing::info!("admin key replaced");
        Ok(key)
    }

    /// Compares `key` with the stored admin key.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn check_admin_key(&self, key: &str) -> Result<AdminKeyCheck, CatalogError> {
        let matches: Option<bool> =
            sqlx::query_scalar("SELECT key_hash = $1 FROM sandtable.admin_key")
                .bind(key_hash(key))
                .fetch_optional(&self.pool)
                .await?;
        Ok(match matches {
            Some(true) => AdminKeyCheck::Valid,
            Some(false) => AdminKeyCheck::Invalid,
            None => AdminKeyCheck::Unset,
        })
    }
}
