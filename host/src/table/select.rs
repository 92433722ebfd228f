//! Reading rows of a table version or a snapshot, with predicates bound as
//! parameters.

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::sandbox::{Column, ColumnBuilder, DataType};

use super::Tables;
use super::cells::{decode_value, value_select};
use super::error::{Result, TableError};
use super::expr::{CellPart, ColumnRef, parse_column_list, parse_predicate};
use super::filter::{Bind, FilterBuilder, bind_all};
use super::schema::{TableSchema, load_schema};

/// Rows are handed to the caller in batches of this many.
pub const SELECT_BATCH_ROWS: usize = 1024;

/// The rows and columns `select` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectQuery {
    /// A comma-separated list of columns, `COLUMN.errortype` and
    /// `COLUMN.errormsg` among them; every column's value by default.
    pub columns: Option<String>,
    /// A predicate over the columns.
    pub filter: Option<String>,
    /// The column to order by; rows come in insertion order otherwise.
    pub order_by: Option<String>,
    /// Order from the largest value down.
    pub descending: bool,
    /// At most this many rows.
    pub limit: Option<u64>,
    /// Read this version of a table instead of the current one.
    pub version: Option<i64>,
    /// List the failed cells of this computed column: only the rows where
    /// it failed, with its error type and message.
    pub errors: Option<String>,
}

/// The table or snapshot a select read, and its columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SelectSource {
    /// The table.
    pub table: String,
    /// The snapshot, when a snapshot was named.
    pub snapshot: Option<String>,
    /// The table version read.
    pub version: i64,
    /// The columns of the result, also when it has no rows.
    pub columns: Vec<OutputColumn>,
}

/// A column of a select's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputColumn {
    /// The column's name, followed by `.errortype` or `.errormsg` for those
    /// parts, such as `title` or `shout.errortype`.
    pub name: String,
    /// The type, such as `vector(3)`.
    #[serde(
        serialize_with = "super::schema::serialize_type",
        deserialize_with = "super::schema::deserialize_type"
    )]
    #[schema(value_type = String)]
    pub data_type: DataType,
}

/// A table, or a snapshot of one, resolved to a table and a write.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub table_id: i64,
    pub table: String,
    pub snapshot: Option<String>,
    pub version: i64,
    pub write_id: i64,
}

/// A table or snapshot found by name: the table's id and name, the
/// snapshot's name, and the version and its write number, if there is one.
type SourceRow = (i64, String, Option<String>, Option<i64>, Option<i64>);

/// Resolves `name`, a table or a snapshot, and for a table the version to
/// read (the latest by default).
pub(crate) async fn resolve_source(
    conn: &mut PgConnection,
    tables: &Tables,
    name: &str,
    version: Option<i64>,
) -> Result<Resolved> {
    let tenant = tables.tenant();
    // Tables and snapshots share one namespace, so at most one row comes
    // back: a table with the version asked for (or its latest), or a
    // snapshot.
    let found: Option<SourceRow> = sqlx::query_as(
        "SELECT t.id, t.name, NULL::text, v.version, v.write_id \
           FROM sandtable.tables t \
           LEFT JOIN LATERAL (SELECT version, write_id FROM sandtable.table_versions \
                               WHERE table_id = t.id AND ($3::bigint IS NULL OR version = $3) \
                               ORDER BY version DESC LIMIT 1) v ON true \
          WHERE t.tenant_id = $1 AND t.name = $2 \
         UNION ALL \
         SELECT s.table_id, t.name, s.name, s.version, s.write_id \
           FROM sandtable.snapshots s JOIN sandtable.tables t ON t.id = s.table_id \
          WHERE s.tenant_id = $1 AND s.name = $2",
    )
    .bind(tenant.id)
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((table_id, table, snapshot, found_version, write_id)) = found else {
        return Err(TableError::NotFound(format!(
            "no table or snapshot named `{name}`; `sandtable table list` and `sandtable \
             snapshot list` show them"
        )));
    };
    let (Some(found_version), Some(write_id)) = (found_version, write_id) else {
        return Err(TableError::NotFound(format!(
            "table `{name}` has no version {}; `sandtable table history {name}` lists them",
            version.unwrap_or_default()
        )));
    };
    if let (Some(_), Some(version)) = (&snapshot, version)
        && version != found_version
    {
        return Err(TableError::Invalid(format!(
            "`{name}` is a snapshot of version {found_version} of table `{table}`; leave out \
             --version {version}, or select from the table"
        )));
    }
    Ok(Resolved {
        table_id,
        table,
        snapshot,
        version: found_version,
        write_id,
    })
}

impl Tables {
    /// Reads rows of a table or snapshot, and hands them to `sink` in
    /// batches of columns, one for each output column. Returns where the
    /// rows came from and how many there were.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] for an unknown table, snapshot,
    /// version or column, and [`TableError::Parse`] or
    /// [`TableError::Invalid`] for a bad list or predicate; and whatever
    /// `sink` returns.
    pub async fn select_each(
        &self,
        source: &str,
        query: &SelectQuery,
        mut sink: impl FnMut(&[OutputColumn], &[Column]) -> Result<()>,
    ) -> Result<(SelectSource, u64)> {
        let columns = query
            .columns
            .as_deref()
            .map(parse_column_list)
            .transpose()?;
        let predicate = query.filter.as_deref().map(parse_predicate).transpose()?;
        let order = query
            .order_by
            .as_deref()
            .map(parse_column_list)
            .transpose()?;
        let mut tx = self.catalog.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let resolved = resolve_source(&mut tx, self, source, query.version).await?;
        let schema = load_schema(
            &mut tx,
            &self.tenant,
            resolved.table_id,
            &resolved.table,
            resolved.write_id,
        )
        .await?;

        let mut references = columns.unwrap_or_else(|| every_column(&schema));
        let mut conditions = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(name) = &query.errors {
            let column = schema.column(name)?;
            if !column.is_computed() {
                return Err(TableError::Invalid(format!(
                    "column `{name}` is not computed, so its cells have no errors"
                )));
            }
            conditions.push(format!("{} IS NOT NULL", column.sql(CellPart::ErrorType)));
            if query.columns.is_none() {
                for part in [CellPart::ErrorType, CellPart::ErrorMsg] {
                    references.push(ColumnRef {
                        name: name.clone(),
                        part,
                    });
                }
            }
        }
        if let Some(predicate) = &predicate {
            let mut builder = FilterBuilder::new(&schema, binds);
            conditions.push(builder.sql(predicate)?);
            binds = builder.binds;
        }
        binds.push(Bind::Int(resolved.write_id));
        let w = binds.len();
        conditions.push(format!("_v_min <= ${w} AND _v_max > ${w}"));

        if query.descending && order.is_none() {
            return Err(TableError::Invalid(
                "--desc reverses the order of --order-by COLUMN; give the column to order by"
                    .into(),
            ));
        }
        let (output, mut select) = select_list(&schema, &references)?;
        if select.is_empty() {
            select.push("NULL".into());
        }
        let direction = if query.descending { " DESC" } else { "" };
        let order_sql = match order.as_deref() {
            None => "_rowid".to_owned(),
            Some([reference]) => {
                let column = schema.resolve(reference)?;
                if matches!(column.data_type, DataType::Json | DataType::Vector(_))
                    && reference.part == CellPart::Value
                {
                    return Err(TableError::Invalid(format!(
                        "column `{}` is {}, which has no order; order by another column",
                        column.name, column.data_type
                    )));
                }
                format!(
                    "{}{direction} NULLS LAST, _rowid",
                    column.sql(reference.part)
                )
            }
            Some(_) => {
                return Err(TableError::Invalid("--order-by takes one column".into()));
            }
        };
        let limit = match query.limit {
            Some(limit) => {
                binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
                format!(" LIMIT ${}", binds.len())
            }
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {order_sql}{limit}",
            select.join(", "),
            schema.sql_table(),
            conditions.join(" AND ")
        );
        let mut rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds).fetch(&mut *tx);
        let mut count: u64 = 0;
        let mut builders = new_builders(&output);
        while let Some(row) = rows.try_next().await? {
            for (field, builder) in builders.iter_mut().enumerate() {
                decode_value(builder, &output[field].data_type, &row, field)?;
            }
            count += 1;
            if builders
                .first()
                .is_some_and(|b| b.len() >= SELECT_BATCH_ROWS)
            {
                let batch = std::mem::replace(&mut builders, new_builders(&output));
                flush(&output, batch, &mut sink)?;
            }
        }
        drop(rows);
        if builders.first().is_some_and(|b| !b.is_empty()) {
            flush(&output, builders, &mut sink)?;
        }
        tx.commit().await?;
        Ok((
            SelectSource {
                table: resolved.table,
                snapshot: resolved.snapshot,
                version: resolved.version,
                columns: output,
            },
            count,
        ))
    }

    /// Reads rows of a table or snapshot into memory; see
    /// [`Tables::select_each`].
    ///
    /// # Errors
    ///
    /// As [`Tables::select_each`].
    pub async fn select(
        &self,
        source: &str,
        query: &SelectQuery,
    ) -> Result<(Vec<OutputColumn>, Vec<Column>)> {
        let mut output = Vec::new();
        let mut columns: Vec<ColumnBuilder> = Vec::new();
        self.select_each(source, query, |names, batch| {
            if output.is_empty() {
                output = names.to_vec();
                columns = new_builders(names);
            }
            for (builder, column) in columns.iter_mut().zip(batch) {
                for row in 0..column.len() {
                    builder.push_from(column, row);
                }
            }
            Ok(())
        })
        .await?;
        Ok((
            output,
            columns.into_iter().map(ColumnBuilder::finish).collect(),
        ))
    }

    /// The schema of a table or snapshot as of the version it reads.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] for an unknown name or version.
    pub async fn source_schema(&self, source: &str, version: Option<i64>) -> Result<TableSchema> {
        let mut conn = self.catalog.pool().acquire().await?;
        let resolved = resolve_source(&mut conn, self, source, version).await?;
        load_schema(
            &mut conn,
            &self.tenant,
            resolved.table_id,
            &resolved.table,
            resolved.write_id,
        )
        .await
    }
}

/// References to the value of every column of `schema`, in table order.
pub(crate) fn every_column(schema: &TableSchema) -> Vec<ColumnRef> {
    schema
        .columns
        .iter()
        .map(|c| ColumnRef {
            name: c.name.clone(),
            part: CellPart::Value,
        })
        .collect()
}

/// Returns the output columns of `references` and the SQL that reads each,
/// in the form [`decode_value`] decodes.
///
/// # Errors
///
/// Returns [`TableError::NotFound`] for an unknown column and
/// [`TableError::Invalid`] for a reference listed twice or an error part of
/// a column that is not computed.
pub(crate) fn select_list(
    schema: &TableSchema,
    references: &[ColumnRef],
) -> Result<(Vec<OutputColumn>, Vec<String>)> {
    let mut output = Vec::with_capacity(references.len());
    let mut select = Vec::with_capacity(references.len());
    for (i, reference) in references.iter().enumerate() {
        if references[..i].contains(reference) {
            return Err(TableError::Invalid(format!(
                "`{reference}` is listed twice in --columns; list each column once"
            )));
        }
        let column = schema.resolve(reference)?;
        let (sql, data_type) = match reference.part {
            CellPart::Value => (value_select(column, None), column.data_type),
            part => (column.sql(part), DataType::String),
        };
        select.push(sql);
        // Output names are the names as stored, without the quotes an
        // expression would need.
        let name = match reference.part {
            CellPart::Value => reference.name.clone(),
            CellPart::ErrorType => format!("{}.errortype", reference.name),
            CellPart::ErrorMsg => format!("{}.errormsg", reference.name),
        };
        output.push(OutputColumn { name, data_type });
    }
    Ok((output, select))
}

pub(crate) fn new_builders(output: &[OutputColumn]) -> Vec<ColumnBuilder> {
    output
        .iter()
        .map(|c| ColumnBuilder::new(&c.data_type, SELECT_BATCH_ROWS))
        .collect()
}

fn flush(
    output: &[OutputColumn],
    builders: Vec<ColumnBuilder>,
    sink: &mut impl FnMut(&[OutputColumn], &[Column]) -> Result<()>,
) -> Result<()> {
    let columns: Vec<Column> = builders.into_iter().map(ColumnBuilder::finish).collect();
    sink(output, &columns)
}
