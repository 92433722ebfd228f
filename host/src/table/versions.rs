//! Table history, reverting the latest version, and snapshots.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::catalog::Tenant;

use super::Tables;
use super::error::{Result, TableError};
use super::expr::CellPart;
use super::schema::{LIVE, check_name};
use super::select::resolve_source;
use super::tables::quoted_list;
use super::write::{self, LockMode};

/// One version of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionEntry {
    /// The version, from 0 (the table's creation).
    pub version: i64,
    /// When it was committed, in UTC.
    pub created_at: String,
    /// The operation: create, insert, add_column, update, delete,
    /// recompute or upgrade.
    pub operation: String,
    /// Rows added.
    pub rows_added: i64,
    /// Rows given new values.
    pub rows_changed: i64,
    /// Rows deleted.
    pub rows_removed: i64,
    /// The operation's arguments, such as the column and expression.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotInfo {
    /// The snapshot's name.
    pub name: String,
    /// The table.
    pub table: String,
    /// The table version it pins.
    pub version: i64,
    /// When it was taken, in UTC.
    pub created_at: String,
}

/// Serializes, until the transaction ends, the creation of tables and
/// snapshots named `name`, and fails unless the name is free, so that of two
/// concurrent creations one fails cleanly.
pub(crate) async fn claim_name(conn: &mut PgConnection, tenant: &Tenant, name: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sandtable.name:' || $1, $2))")
        .bind(name)
        .bind(tenant.id)
        .execute(&mut *conn)
        .await?;
    check_name_free(conn, tenant, name).await
}

/// Fails unless `name` names neither a table nor a snapshot of `tenant`.
async fn check_name_free(conn: &mut PgConnection, tenant: &Tenant, name: &str) -> Result<()> {
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT 'table' FROM sandtable.tables WHERE tenant_id = $1 AND name = $2 \
         UNION ALL SELECT 'snapshot' FROM sandtable.snapshots WHERE tenant_id = $1 AND name = $2",
    )
    .bind(tenant.id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    match taken {
        None => Ok(()),
        Some(kind) => Err(TableError::Conflict(format!(
            "a {kind} named `{name}` exists already; tables and snapshots share one namespace, \
             so choose another name"
        ))),
    }
}

const VERSION_COLUMNS: &str = "version, \
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    operation, rows_added, rows_changed, rows_removed, detail";

type VersionRow = (i64, String, String, i64, i64, i64, serde_json::Value);

fn version_entry(row: VersionRow) -> VersionEntry {
    let (version, created_at, operation, rows_added, rows_changed, rows_removed, detail) = row;
    VersionEntry {
        version,
        created_at,
        operation,
        rows_added,
        rows_changed,
        rows_removed,
        detail,
    }
}

impl Tables {
    /// Lists the versions of a table, oldest first.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] when there is no such table.
    pub async fn history(&self, table: &str) -> Result<Vec<VersionEntry>> {
        let mut conn = self.catalog.pool().acquire().await?;
        let id = write::find_table(&mut conn, &self.tenant, table).await?;
        let rows: Vec<VersionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM sandtable.table_versions \
             WHERE table_id = $1 ORDER BY version"
        )))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(version_entry).collect())
    }

    /// Undoes the latest version of a table, restoring exactly the one
    /// before. Returns the version undone.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Conflict`] when a snapshot pins the latest
    /// version, and [`TableError::Invalid`] when only the creation is left.
    pub async fn revert(&self, table: &str) -> Result<VersionEntry> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Schema).await?;
        write.wait_turn().await?;
        let table_id = write.schema.id;
        let latest: VersionRow = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM sandtable.table_versions \
             WHERE table_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(table_id)
        .fetch_one(&mut *write.tx)
        .await?;
        let entry = version_entry(latest);
        if entry.version == 0 {
            return Err(TableError::Invalid(format!(
                "table `{table}` is at version 0, its creation, which cannot be reverted; drop \
                 the table instead"
            )));
        }
        let pinned: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sandtable.snapshots WHERE table_id = $1 AND version = $2 ORDER BY name",
        )
        .bind(table_id)
        .bind(entry.version)
        .fetch_all(&mut *write.tx)
        .await?;
        if !pinned.is_empty() {
            return Err(TableError::Conflict(format!(
                "version {} of table `{table}` is pinned by snapshot {}; drop the snapshot first",
                entry.version,
                quoted_list(&pinned)
            )));
        }
        let undone: i64 = sqlx::query_scalar(
            "SELECT write_id FROM sandtable.table_versions WHERE table_id = $1 AND version = $2",
        )
        .bind(table_id)
        .bind(entry.version)
        .fetch_one(&mut *write.tx)
        .await?;
        let table_sql = write.schema.sql_table();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table_sql} WHERE _v_min = $1"
        )))
        .bind(undone)
        .execute(&mut *write.tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table_sql} SET _v_max = {LIVE} WHERE _v_max = $1"
        )))
        .bind(undone)
        .execute(&mut *write.tx)
        .await?;
        for column in write
            .schema
            .columns
            .iter()
            .filter(|c| c.added_write == undone)
        {
            let mut drops = vec![format!("DROP COLUMN {}", column.sql(CellPart::Value))];
            if column.is_computed() {
                drops.push(format!("DROP COLUMN {}", column.sql(CellPart::ErrorType)));
                drops.push(format!("DROP COLUMN {}", column.sql(CellPart::ErrorMsg)));
            }
            sqlx::query(AssertSqlSafe(format!(
                "ALTER TABLE {table_sql} {}",
                drops.join(", ")
            )))
            .execute(&mut *write.tx)
            .await?;
        }
        sqlx::query("DELETE FROM sandtable.columns WHERE table_id = $1 AND added_write = $2")
            .bind(table_id)
            .bind(undone)
            .execute(&mut *write.tx)
            .await?;
        sqlx::query(
            "DELETE FROM sandtable.column_specs s USING sandtable.columns c \
             WHERE s.column_id = c.id AND c.table_id = $1 AND s.write_from = $2",
        )
        .bind(table_id)
        .bind(undone)
        .execute(&mut *write.tx)
        .await?;
        sqlx::query(
            "UPDATE sandtable.column_specs s SET write_to = $3 FROM sandtable.columns c \
             WHERE s.column_id = c.id AND c.table_id = $1 AND s.write_to = $2",
        )
        .bind(table_id)
        .bind(undone)
        .bind(LIVE)
        .execute(&mut *write.tx)
        .await?;
        // Columns and indexes that the write dropped come back, and so does
        // each index's HNSW graph, which the drop removed.
        sqlx::query(
            "UPDATE sandtable.columns SET dropped_write = $3 WHERE table_id = $1 AND dropped_write = $2",
        )
        .bind(table_id)
        .bind(undone)
        .bind(LIVE)
        .execute(&mut *write.tx)
        .await?;
        let restored: Vec<(i64, i64, String)> = sqlx::query_as(
            "UPDATE sandtable.indexes SET dropped_write = $3 \
             WHERE table_id = $1 AND dropped_write = $2 RETURNING id, column_id, metric",
        )
        .bind(table_id)
        .bind(undone)
        .bind(LIVE)
        .fetch_all(&mut *write.tx)
        .await?;
        for (index_id, column_id, metric) in restored {
            super::index::build_hnsw(&mut write, table_id, index_id, column_id, metric.parse()?)
                .await?;
        }
        // Undoing a delete brings its rows back, so they count against the
        // tenant's rows quota as an insert's would.
        let restored_rows = entry.rows_removed.saturating_sub(entry.rows_added);
        if restored_rows > 0 {
            self.check_rows_quota(&mut write.tx, restored_rows as u64)
                .await?;
        }
        sqlx::query("DELETE FROM sandtable.table_versions WHERE table_id = $1 AND version = $2")
            .bind(table_id)
            .bind(entry.version)
            .execute(&mut *write.tx)
            .await?;
        write.tx.commit().await?;
        tracing::info!(
            target: "sandtable::table",
            tenant = %self.tenant.name,
            table,
            version = entry.version,
            "version reverted"
        );
        Ok(entry)
    }

    /// Takes a snapshot of a table's current version, or of `version`.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Conflict`] when a table or snapshot has the
    /// name, and [`TableError::NotFound`] for an unknown table or version.
    pub async fn create_snapshot(
        &self,
        name: &str,
        table: &str,
        version: Option<i64>,
    ) -> Result<SnapshotInfo> {
        check_name("snapshot", name)?;
        let mut tx = self.catalog.pool().begin().await?;
        claim_name(&mut tx, &self.tenant, name).await?;
        // The table must be a table, not a snapshot. Its lock waits for a
        // revert or drop in progress, and keeps one from starting until
        // the snapshot is stored, so the version pinned stays.
        write::lock_for_reading(&mut tx, &self.tenant, table).await?;
        let resolved = resolve_source(&mut tx, self, table, version).await?;
        let created_at: String = sqlx::query_scalar(
            "INSERT INTO sandtable.snapshots (tenant_id, name, table_id, version, write_id) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        )
        .bind(self.tenant.id)
        .bind(name)
        .bind(resolved.table_id)
        .bind(resolved.version)
        .bind(resolved.write_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SnapshotInfo {
            name: name.to_owned(),
            table: table.to_owned(),
            version: resolved.version,
            created_at,
        })
    }

    /// Lists the snapshots.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT s.name, t.name, s.version, \
                    to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM sandtable.snapshots s JOIN sandtable.tables t ON t.id = s.table_id \
             WHERE s.tenant_id = $1 ORDER BY s.name",
        )
        .bind(self.tenant.id)
        .fetch_all(self.catalog.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, table, version, created_at)| SnapshotInfo {
                name,
                table,
                version,
                created_at,
            })
            .collect())
    }

    /// Drops a snapshot. Its rows stay while the table's versions need them.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] when there is no such snapshot.
    pub async fn drop_snapshot(&self, name: &str) -> Result<()> {
        let dropped =
            sqlx::query("DELETE FROM sandtable.snapshots WHERE tenant_id = $1 AND name = $2")
                .bind(self.tenant.id)
                .bind(name)
                .execute(self.catalog.pool())
                .await?
                .rows_affected();
        if dropped == 0 {
            return Err(TableError::NotFound(format!(
                "no snapshot named `{name}`; `sandtable snapshot list` shows the snapshots"
            )));
        }
        Ok(())
    }
}
