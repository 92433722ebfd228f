//! Creating, listing, showing and dropping tables.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::sandbox::DataType;

use super::error::{Result, TableError};
use super::schema::{ColumnInfo, LIVE, TableSchema, check_name, load_schema, pg_type};
use super::write::{self, LockMode};
use super::{Tables, versions};

/// A column of a new table.
#[derive(Debug, Clone, PartialEq)]
pub struct NewColumn {
    /// The name.
    pub name: String,
    /// The type.
    pub data_type: DataType,
}

impl NewColumn {
    /// Parses `NAME:TYPE`, such as `title:string` or `embedding:vector(384)`.
    /// The name is everything before the last `:`.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Invalid`] for a missing `:`, a bad name or an
    /// unknown type.
    pub fn parse(text: &str) -> Result<Self> {
        let (name, data_type) = text.rsplit_once(':').ok_or_else(|| {
            TableError::Invalid(format!(
                "column `{text}` has no type; write NAME:TYPE, such as `title:string`"
            ))
        })?;
        check_name("column", name)?;
        Ok(NewColumn {
            name: name.to_owned(),
            data_type: super::schema::parse_data_type(data_type)?,
        })
    }
}

/// A line of `table list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableSummary {
    /// The table's name.
    pub name: String,
    /// The number of columns.
    pub columns: i64,
    /// The number of live rows.
    pub rows: i64,
    /// The current version.
    pub version: i64,
    /// When the table was created, in UTC.
    pub created_at: String,
}

/// The details `table show` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableDetails {
    /// The schema, with each computed column's expression.
    #[serde(flatten)]
    pub schema: TableSchema,
    /// The number of live rows.
    pub rows: i64,
    /// The current version.
    pub version: i64,
    /// The snapshots of this table.
    pub snapshots: Vec<String>,
}

impl Tables {
    /// Creates an empty table, version 0.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Conflict`] when a table or snapshot has the
    /// name, and [`TableError::Invalid`] for a bad or repeated column name.
    pub async fn create_table(&self, name: &str, columns: &[NewColumn]) -> Result<TableSchema> {
        check_name("table", name)?;
        for (i, column) in columns.iter().enumerate() {
            check_name("column", &column.name)?;
            if columns[..i].iter().any(|c| c.name == column.name) {
                return Err(TableError::Invalid(format!(
                    "column `{}` is given twice; give each column once",
                    column.name
                )));
            }
        }
        let mut tx = self.catalog.pool().begin().await?;
        versions::claim_name(&mut tx, &self.tenant, name).await?;
        if columns
            .iter()
            .any(|c| matches!(c.data_type, DataType::Vector(_)))
        {
            ensure_vector_extension(&mut tx).await?;
        }
        let table_id: i64 = sqlx::query_scalar(
            "INSERT INTO sandtable.tables (tenant_id, name) VALUES ($1, $2) RETURNING id",
        )
        .bind(self.tenant.id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let schema_name = &self.tenant.schema_name;
        let sequence = format!("\"{schema_name}\".t_{table_id}_writes");
        sqlx::query(AssertSqlSafe(format!("CREATE SEQUENCE {sequence}")))
            .execute(&mut *tx)
            .await?;
        let write_id: i64 = sqlx::query_scalar("SELECT nextval($1::regclass)")
            .bind(&sequence)
            .fetch_one(&mut *tx)
            .await?;
        let mut definitions = vec![
            "_rowid bigint NOT NULL".to_owned(),
            "_v_min bigint NOT NULL".to_owned(),
            format!("_v_max bigint NOT NULL DEFAULT {LIVE}"),
        ];
        for (position, column) in columns.iter().enumerate() {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO sandtable.columns \
                   (table_id, name, position, data_type, computed, added_write) \
                 VALUES ($1, $2, $3, $4, false, $5) RETURNING id",
            )
            .bind(table_id)
            .bind(&column.name)
            .bind(position as i32)
            .bind(column.data_type.to_string())
            .bind(write_id)
            .fetch_one(&mut *tx)
            .await?;
            definitions.push(format!("c_{id} {}", pg_type(&column.data_type)));
        }
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE \"{schema_name}\".t_{table_id} ({})",
            definitions.join(", ")
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "ALTER SEQUENCE {sequence} OWNED BY \"{schema_name}\".t_{table_id}._rowid"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sandtable.table_versions (table_id, version, write_id, operation) \
             VALUES ($1, 0, $2, 'create')",
        )
        .bind(table_id)
        .bind(write_id)
        .execute(&mut *tx)
        .await?;
        let schema = load_schema(&mut tx, &self.tenant, table_id, name, LIVE).await?;
        tx.commit().await?;
        tracing::info!(target: "sandtable::table", tenant = %self.tenant.name, table = name, "table created");
        Ok(schema)
    }

    /// Lists the tables with their sizes and versions.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn list_tables(&self) -> Result<Vec<TableSummary>> {
        let mut conn = self.catalog.pool().acquire().await?;
        let rows: Vec<(i64, String, i64, i64, String)> = sqlx::query_as(
            "SELECT t.id, t.name, \
                    (SELECT count(*) FROM sandtable.columns c \
                     WHERE c.table_id = t.id AND c.dropped_write = 9223372036854775807), \
                    (SELECT max(version) FROM sandtable.table_versions v WHERE v.table_id = t.id), \
                    to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM sandtable.tables t WHERE t.tenant_id = $1 ORDER BY t.name",
        )
        .bind(self.tenant.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut tables = Vec::with_capacity(rows.len());
        for (id, name, columns, version, created_at) in rows {
            let rows = self.count_live(&mut conn, id).await?;
            tables.push(TableSummary {
                name,
                columns,
                rows,
                version,
                created_at,
            });
        }
        Ok(tables)
    }

    async fn count_live(&self, conn: &mut sqlx::PgConnection, table_id: i64) -> Result<i64> {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{}\".t_{table_id} WHERE _v_max = {LIVE}",
            self.tenant.schema_name
        )))
        .fetch_one(&mut *conn)
        .await?;
        Ok(count)
    }

    /// Returns the current schema of a table.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] when there is no such table.
    pub async fn schema(&self, name: &str) -> Result<TableSchema> {
        let mut conn = self.catalog.pool().acquire().await?;
        let id = write::find_table(&mut conn, &self.tenant, name).await?;
        load_schema(&mut conn, &self.tenant, id, name, LIVE).await
    }

    /// The schema, row count, version and snapshots of a table.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] when there is no such table.
    pub async fn describe_table(&self, name: &str) -> Result<TableDetails> {
        let mut tx = self.catalog.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let id = write::find_table(&mut tx, &self.tenant, name).await?;
        let schema = load_schema(&mut tx, &self.tenant, id, name, LIVE).await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT max(version) FROM sandtable.table_versions WHERE table_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let snapshots: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sandtable.snapshots WHERE table_id = $1 ORDER BY name",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let rows = self.count_live(&mut tx, id).await?;
        tx.commit().await?;
        Ok(TableDetails {
            schema,
            rows,
            version,
            snapshots,
        })
    }

    /// Drops a table. While snapshots of it exist, this is refused unless
    /// `with_snapshots`, which drops them too. Returns the snapshots dropped.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] when there is no such table and
    /// [`TableError::Conflict`] when snapshots depend on it.
    pub async fn drop_table(&self, name: &str, with_snapshots: bool) -> Result<Vec<String>> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, name, LockMode::Schema).await?;
        write.wait_turn().await?;
        let table_id = write.schema.id;
        let snapshots: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sandtable.snapshots WHERE table_id = $1 ORDER BY name",
        )
        .bind(table_id)
        .fetch_all(&mut *write.tx)
        .await?;
        if !snapshots.is_empty() && !with_snapshots {
            return Err(TableError::Conflict(format!(
                "table `{name}` has snapshots {}; drop them first, or drop the table with \
                 --with-snapshots",
                quoted_list(&snapshots)
            )));
        }
        sqlx::query("DELETE FROM sandtable.snapshots WHERE table_id = $1")
            .bind(table_id)
            .execute(&mut *write.tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP TABLE {}",
            write.schema.sql_table()
        )))
        .execute(&mut *write.tx)
        .await?;
        sqlx::query("DELETE FROM sandtable.tables WHERE id = $1")
            .bind(table_id)
            .execute(&mut *write.tx)
            .await?;
        write.tx.commit().await?;
        tracing::info!(target: "sandtable::table", tenant = %self.tenant.name, table = name, "table dropped");
        Ok(snapshots)
    }
}

/// `a`, `b` and `c`, each in backquotes and comma-separated.
pub(crate) fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates the `vector` extension if it is missing.
pub(crate) async fn ensure_vector_extension(conn: &mut sqlx::PgConnection) -> Result<()> {
    let available: Option<String> = sqlx::query_scalar(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if available.is_none() {
        return Err(TableError::Invalid(
            "vector columns need the pgvector extension, which this Postgres server lacks; \
             run `scripts/setup` to build and install it, or install pgvector on the server"
                .into(),
        ));
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Returns the columns of `schema` that take input, in table order.
pub(crate) fn input_columns(schema: &TableSchema) -> Vec<&ColumnInfo> {
    schema.columns.iter().filter(|c| !c.is_computed()).collect()
}
