//! Writes to a table: one transaction each, numbered in the order they
//! start and committed in that order, each becoming the next version.
//!
//! A write first locks the Postgres table, in row-exclusive mode when it
//! changes rows, in share-row-exclusive mode when it changes what computes
//! them, and in access-exclusive mode when it changes the schema, and only
//! then takes its number (`sandtable.begin_write`). So a write that
//! changes the schema is numbered after every write that got its lock
//! before it, and before every write that waits for it: no write waits on a
//! later one while holding what that one needs.
//!
//! A write may do its work (copying rows in, running plugins) while earlier
//! writes still run. Before it commits it waits for every earlier number
//! still running to finish, by taking a shared lock on each one's advisory
//! lock, and then takes the next version number. A write that rolls back leaves a gap in
//! the write numbers and none in the versions.

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};

use crate::catalog::Tenant;

use super::error::{Result, TableError};
use super::schema::{TableSchema, load_schema};

/// The lock mode a write takes on its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Changes rows: inserts, updates, deletes, recomputes.
    Rows,
    /// Changes what computes the rows (a column add until it alters the
    /// table, an upgrade): no other write runs, and reads go on.
    Writes,
    /// Changes the schema: reverts and drops.
    Schema,
}

/// A write in progress.
pub(crate) struct Write {
    pub tx: Transaction<'static, Postgres>,
    pub write_id: i64,
    pub schema: TableSchema,
}

/// Finds a table by name.
pub(crate) async fn find_table(
    conn: &mut PgConnection,
    tenant: &Tenant,
    name: &str,
) -> Result<i64> {
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM sandtable.tables WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.id)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    match id {
        Some(id) => Ok(id),
        None => {
            let snapshot: Option<String> = sqlx::query_scalar(
                "SELECT t.name FROM sandtable.snapshots s \
                 JOIN sandtable.tables t ON t.id = s.table_id \
                 WHERE s.tenant_id = $1 AND s.name = $2",
            )
            .bind(tenant.id)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
            Err(match snapshot {
                Some(table) => TableError::Invalid(format!(
                    "`{name}` is a snapshot of table `{table}`, which only `select` reads; \
                     name the table `{table}` instead"
                )),
                None => table_not_found(name),
            })
        }
    }
}

pub(crate) fn table_not_found(name: &str) -> TableError {
    TableError::NotFound(format!(
        "no table named `{name}`; `sandtable table list` shows the tables"
    ))
}

/// Locks table `name` in access-share mode until the transaction ends, so
/// that no write that changes the schema, reverts or drops it runs
/// meanwhile, and returns its id.
pub(crate) async fn lock_for_reading(
    conn: &mut PgConnection,
    tenant: &Tenant,
    name: &str,
) -> Result<i64> {
    let table_id = find_table(conn, tenant, name).await?;
    lock_table(conn, tenant, name, table_id, "ACCESS SHARE").await?;
    Ok(table_id)
}

/// Locks table `table_id` in `mode`, and checks that `name` still names it.
async fn lock_table(
    conn: &mut PgConnection,
    tenant: &Tenant,
    name: &str,
    table_id: i64,
    mode: &str,
) -> Result<()> {
    let table = format!("\"{}\".t_{table_id}", tenant.schema_name);
    let locked = sqlx::query(AssertSqlSafe(format!("LOCK TABLE {table} IN {mode} MODE")))
        .execute(&mut *conn)
        .await;
    if let Err(error) = locked {
        // Dropped between the lookup and the lock.
        if is_undefined_table(&error) {
            return Err(table_not_found(name));
        }
        return Err(error.into());
    }
    // The table may have been dropped and its name reused while this
    // waited for the lock.
    if find_table(conn, tenant, name).await? != table_id {
        return Err(TableError::Conflict(format!(
            "table `{name}` was dropped and created again meanwhile; run the command again"
        )));
    }
    Ok(())
}

/// Starts a write to table `name`: locks it, takes a write number, and
/// loads the schema, which no other write can change until this one ends.
pub(crate) async fn begin(
    pool: &PgPool,
    tenant: &Tenant,
    name: &str,
    mode: LockMode,
) -> Result<Write> {
    let mut tx = pool.begin().await?;
    let table_id = find_table(&mut tx, tenant, name).await?;
    let lock = match mode {
        LockMode::Rows => "ROW EXCLUSIVE",
        LockMode::Writes => "SHARE ROW EXCLUSIVE",
        LockMode::Schema => "ACCESS EXCLUSIVE",
    };
    lock_table(&mut tx, tenant, name, table_id, lock).await?;
    let sequence = format!("\"{}\".t_{table_id}_writes", tenant.schema_name);
    let write_id: i64 = sqlx::query_scalar("SELECT sandtable.begin_write($1, $2::regclass)")
        .bind(table_id)
        .bind(&sequence)
        .fetch_one(&mut *tx)
        .await?;
    let schema = load_schema(&mut tx, tenant, table_id, name, super::schema::LIVE).await?;
    Ok(Write {
        tx,
        write_id,
        schema,
    })
}

pub(crate) fn is_undefined_table(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P01")
}

/// The rows a committed write changed.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Changes {
    /// Rows added.
    pub rows_added: i64,
    /// Rows given a new version.
    pub rows_changed: i64,
    /// Rows deleted.
    pub rows_removed: i64,
}

impl Write {
    /// Waits until every earlier write of the table has ended.
    ///
    /// Only the earlier writes still running hold their advisory locks, and
    /// each took its lock before this write got its number, so the locks
    /// found in `pg_locks` are all there is to wait for. Waiting on those
    /// alone keeps the number of locks this write holds to the number of
    /// writes running at once, however many earlier writes rolled back.
    pub(crate) async fn wait_turn(&mut self) -> Result<()> {
        let running: Vec<i64> = sqlx::query_scalar(
            "SELECT objid::text::bigint FROM pg_locks \
             WHERE locktype = 'advisory' AND objsubid = 2 AND mode = 'ExclusiveLock' AND granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND classid = $1::integer::text::oid \
               AND objid::text::bigint BETWEEN 1 AND $2 - 1 \
             ORDER BY 1",
        )
        .bind(self.schema.id)
        .bind(self.write_id)
        .fetch_all(&mut *self.tx)
        .await?;
        for write_id in running {
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1::integer, $2::integer)")
                .bind(self.schema.id)
                .bind(write_id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Waits for every earlier write, records this one as the table's next
    /// version, and commits. Returns the version.
    pub(crate) async fn commit(
        mut self,
        operation: &str,
        changes: &Changes,
        detail: serde_json::Value,
    ) -> Result<i64> {
        self.wait_turn().await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO sandtable.table_versions \
               (table_id, version, write_id, operation, rows_added, rows_changed, rows_removed, detail) \
             SELECT $1, coalesce(max(version) + 1, 0), $2, $3, $4, $5, $6, $7 \
             FROM sandtable.table_versions WHERE table_id = $1 \
             RETURNING version",
        )
        .bind(self.schema.id)
        .bind(self.write_id)
        .bind(operation)
        .bind(changes.rows_added)
        .bind(changes.rows_changed)
        .bind(changes.rows_removed)
        .bind(detail)
        .fetch_one(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(version)
    }
}
