//! Writes over stored rows: adding a computed column and backfilling it,
//! recomputing, upgrading a column's plugins, updating and deleting.
//!
//! A column add fills the new column of the live row versions in place,
//! since no older version has the column. Every other write over stored
//! rows writes new row versions and closes the old ones, so the snapshots
//! that pin the old versions keep their values.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};
use tokio::task::JoinHandle;

use crate::catalog::{PluginRef, VersionSelector};
use crate::sandbox::{Column, ColumnBuilder, DataType};

use super::binary_copy::BinaryCopyEncoder;
use super::cells::{CellReader, Cells, cells_select};
use super::compute::{
    Batch, Plan, PluginSet, bind, finish_pending, pinned_plugins, referenced_columns,
};
use super::error::{Result, TableError};
use super::expr::{Call, CellPart, Expr, parse_assignment, parse_expr, parse_predicate};
use super::filter::{Bind, FilterBuilder, bind_all};
use super::index::NewIndex;
use super::insert::{
    ComputedPlans, compute_into, copy_statement, count_failures, encode_rows, first_failure,
};
use super::schema::{LIVE, TableSchema, check_name, load_schema, pg_type};
use super::tables::ensure_vector_extension;
use super::values::push_literal;
use super::write::{self, Changes, LockMode, Write};
use super::{Progress, Tables, WriteOptions, WriteSummary};

/// The largest batch a backfill reads at once.
const MAX_SCAN_ROWS: usize = 8192;

/// The result of adding a computed column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColumnAdded {
    /// The write's summary.
    #[serde(flatten)]
    pub summary: WriteSummary,
    /// The column's type, from the function that computes it.
    pub data_type: String,
    /// The expression, with its plugins pinned.
    pub expression: String,
    /// For an embedding index, the milliseconds its HNSW build took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_build_ms: Option<u64>,
}

/// The row ids of a batch read from the table, and the batch computed.
type ScannedBatch = (Vec<i64>, Batch);

/// The destination of the cells a pass over stored rows computes.
enum Output {
    /// Into the live versions' cells of the column at this position, which
    /// `alter` adds to the Postgres table once the cells are computed.
    InPlace { position: usize, alter: String },
    /// As new versions of the rows.
    NewVersions,
}

/// One pass over the live rows that match a filter.
struct Pass {
    schema: Arc<TableSchema>,
    /// The positions of the columns to read.
    read: Vec<usize>,
    /// An SQL condition over the table, `true` for every row.
    filter: String,
    binds: Vec<Bind>,
    /// The columns to compute, in order.
    plans: ComputedPlans,
    /// Columns to set to a value, given as a column of one row.
    sets: Arc<Vec<(usize, Column)>>,
    output: Output,
    batch_rows: usize,
}

impl Tables {
    /// Adds a computed column, `NAME = EXPRESSION`, and computes it for the
    /// live rows, as one new version. Later inserts compute it too.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Parse`] or [`TableError::Invalid`] for an
    /// expression that does not parse or does not type-check,
    /// [`TableError::Conflict`] for a name in use, and
    /// [`TableError::CellFailed`] for a failed cell under abort.
    pub async fn add_computed_column(
        &self,
        table: &str,
        name: &str,
        expression: &str,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<ColumnAdded> {
        check_name("column", name)?;
        let expr = parse_expr(expression)?;
        self.add_column_with(table, name, &expr, None, options, progress)
            .await
    }

    /// Adds computed column `name = expr` as [`Tables::add_computed_column`]
    /// does, and with `index`, an HNSW index over it, built once the column
    /// is filled, in the same write.
    pub(super) async fn add_column_with(
        &self,
        table: &str,
        name: &str,
        expr: &Expr,
        index: Option<&NewIndex>,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<ColumnAdded> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Writes).await?;
        write.wait_turn().await?;
        let mut plugins = PluginSet::default();
        plugins
            .load_for(&self.catalog, &self.engine, &self.tenant, expr)
            .await?;
        let (_, data_type, pinned) = bind(expr, &write.schema, &plugins)?;
        if let Some(index) = index {
            index.check(&pinned, &data_type)?;
        }
        if write.schema.column(name).is_ok() {
            let fix = if index.is_some() {
                "give the index another name with --name"
            } else {
                "choose another name"
            };
            return Err(TableError::Conflict(format!(
                "table `{table}` already has a column `{name}`; {fix}"
            )));
        }
        if matches!(data_type, DataType::Vector(_)) {
            ensure_vector_extension(&mut write.tx).await?;
        }
        let position = write.schema.columns.len() as i32;
        let column_id: i64 = sqlx::query_scalar(
            "INSERT INTO sandtable.columns \
               (table_id, name, position, data_type, computed, added_write) \
             VALUES ($1, $2, (SELECT coalesce(max(position) + 1, 0) FROM sandtable.columns \
                              WHERE table_id = $1), $3, true, $4) RETURNING id",
        )
        .bind(write.schema.id)
        .bind(name)
        .bind(data_type.to_string())
        .bind(write.write_id)
        .fetch_one(&mut *write.tx)
        .await?;
        let _ = position;
        insert_spec(&mut write, column_id, &pinned).await?;
        let index_id = match index {
            Some(index) => Some(index.record(&mut write, column_id).await?),
            None => None,
        };
        // Reads of the table go on while the cells are computed; the column
        // is added to the Postgres table only to store them.
        let alter = format!(
            "ALTER TABLE {} ADD COLUMN c_{column_id} {}, ADD COLUMN c_{column_id}_et text, \
             ADD COLUMN c_{column_id}_em text",
            write.schema.sql_table(),
            pg_type(&data_type)
        );
        let schema = load_schema(&mut write.tx, &self.tenant, write.schema.id, table, LIVE).await?;
        write.schema = schema.clone();
        let position = schema
            .columns
            .iter()
            .position(|c| c.id == column_id)
            .expect("the new column is in the schema");
        let (plan, _, _) = bind(&pinned, &schema, &plugins)?;
        let plan = plan.for_column(&schema.columns[position]);
        let mut read = BTreeSet::new();
        referenced_columns(&pinned, &mut read);
        let read = positions(&schema, &read);
        let batch_rows = batch_rows_of(&plan);
        let pass = Pass {
            schema: Arc::new(schema),
            read,
            filter: "true".into(),
            binds: Vec::new(),
            plans: Arc::new(vec![(position, plan)]),
            sets: Arc::new(Vec::new()),
            output: Output::InPlace { position, alter },
            batch_rows,
        };
        let (rows, cell_errors) = self.run_pass(&mut write, pass, options, progress).await?;
        let changes = Changes {
            rows_changed: rows as i64,
            ..Changes::default()
        };
        let mut index_build_ms = None;
        let (operation, detail) = match (index, index_id) {
            (Some(index), Some(index_id)) => {
                let started = std::time::Instant::now();
                index.build(&mut write, index_id, column_id).await?;
                index_build_ms = Some(started.elapsed().as_millis() as u64);
                (
                    "add_index",
                    serde_json::json!({
                        "index": index.name,
                        "column": name,
                        "expression": pinned.to_string(),
                        "metric": index.metric.as_str(),
                    }),
                )
            }
            _ => (
                "add_column",
                serde_json::json!({ "column": name, "expression": pinned.to_string() }),
            ),
        };
        let version = write.commit(operation, &changes, detail).await?;
        tracing::info!(
            target: "sandtable::table",
            tenant = %self.tenant.name,
            table,
            column = name,
            index = index.map(|index| index.name.as_str()),
            version,
            rows,
            cell_errors,
            "computed column added"
        );
        Ok(ColumnAdded {
            summary: WriteSummary {
                table: table.to_owned(),
                version,
                changes,
                cell_errors,
            },
            data_type: data_type.to_string(),
            expression: pinned.to_string(),
            index_build_ms,
        })
    }

    /// Computes a column again for the live rows, or only for the rows whose
    /// cell failed, together with the columns computed from it, as new row
    /// versions.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Invalid`] for a column that is not computed,
    /// and [`TableError::CellFailed`] for a failed cell under abort.
    pub async fn recompute(
        &self,
        table: &str,
        column: &str,
        errors_only: bool,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<WriteSummary> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Rows).await?;
        write.wait_turn().await?;
        let target = computed_column(&write.schema, column)?;
        let filter = if errors_only {
            format!(
                "{} IS NOT NULL",
                write.schema.columns[target].sql(CellPart::ErrorType)
            )
        } else {
            "true".into()
        };
        let changed = BTreeSet::from([write.schema.columns[target].name.clone()]);
        let summary = self
            .rewrite(
                &mut write,
                &changed,
                true,
                filter,
                Vec::new(),
                Vec::new(),
                options,
                progress,
            )
            .await?;
        let detail = serde_json::json!({ "column": column, "errors_only": errors_only });
        self.finish(write, "recompute", summary, detail).await
    }

    /// Pins a computed column's plugins to new versions and computes the
    /// column again, with the columns computed from it, as one new version.
    /// Without `to`, each plugin moves to its latest version; `to` names the
    /// version of the column's one plugin.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Invalid`] when the column is not computed,
    /// `to` is given for an expression of several plugins, the new version
    /// changes the result type, or nothing would change.
    pub async fn upgrade_column(
        &self,
        table: &str,
        column: &str,
        to: Option<&str>,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<WriteSummary> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Writes).await?;
        write.wait_turn().await?;
        let target = computed_column(&write.schema, column)?;
        let info = write.schema.columns[target].clone();
        let spec = info.computed.clone().expect("the column is computed");
        let plugins_used = pinned_plugins(&spec.expression);
        let names: BTreeSet<&str> = plugins_used.iter().map(|(n, _)| n.as_str()).collect();
        let selector = match to {
            None => None,
            Some(text) => {
                if names.len() != 1 {
                    return Err(TableError::Invalid(format!(
                        "column `{column}` calls plugins {}; --to names the version of a column's \
                         only plugin, so leave it out to move each to its latest version",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let name = names.iter().next().expect("one name");
                let reference: PluginRef = format!("{name}@{text}").parse().map_err(|_| {
                    TableError::Invalid(format!(
                        "`{text}` is not a version; give a catalog version such as `3` or a \
                         sha256 prefix"
                    ))
                })?;
                reference.selector
            }
        };
        let upgraded = repin(&spec.expression, selector.as_ref());
        let mut plugins = PluginSet::default();
        plugins
            .load_for(&self.catalog, &self.engine, &self.tenant, &upgraded)
            .await?;
        let (_, data_type, pinned) = bind(&upgraded, &write.schema, &plugins)?;
        if data_type != info.data_type {
            return Err(TableError::Invalid(format!(
                "`{pinned}` returns {data_type}, but column `{column}` is {}; add a new column \
                 for the new version instead",
                info.data_type
            )));
        }
        if pinned == spec.expression {
            return Err(TableError::Invalid(format!(
                "column `{column}` already computes `{pinned}`; nothing to upgrade"
            )));
        }
        sqlx::query(
            "UPDATE sandtable.column_specs SET write_to = $3 \
             WHERE column_id = $1 AND write_from = $2",
        )
        .bind(info.id)
        .bind(spec.write_from)
        .bind(write.write_id)
        .execute(&mut *write.tx)
        .await?;
        insert_spec(&mut write, info.id, &pinned).await?;
        write.schema =
            load_schema(&mut write.tx, &self.tenant, write.schema.id, table, LIVE).await?;
        let changed = BTreeSet::from([info.name.clone()]);
        let summary = self
            .rewrite(
                &mut write,
                &changed,
                true,
                "true".into(),
                Vec::new(),
                Vec::new(),
                options,
                progress,
            )
            .await?;
        let detail = serde_json::json!({
            "column": column,
            "from": spec.expression.to_string(),
            "to": pinned.to_string(),
        });
        self.finish(write, "upgrade", summary, detail).await
    }

    /// Sets columns to values in the live rows that match `predicate` (all
    /// rows without one), as new row versions, and computes again the
    /// columns computed from them. Each assignment is `COLUMN = LITERAL`.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Invalid`] for a computed or unknown column, a
    /// value that does not fit, or a bad predicate.
    pub async fn update(
        &self,
        table: &str,
        assignments: &[String],
        predicate: Option<&str>,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<WriteSummary> {
        if assignments.is_empty() {
            return Err(TableError::Invalid(
                "an update needs at least one `COLUMN = VALUE`; give --set".into(),
            ));
        }
        let assignments = assignments
            .iter()
            .map(|text| parse_assignment(text))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let predicate = predicate.map(parse_predicate).transpose()?;
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Rows).await?;
        write.wait_turn().await?;
        let mut sets = Vec::new();
        let mut changed = BTreeSet::new();
        for assignment in &assignments {
            let column = write.schema.column(&assignment.column)?;
            if column.is_computed() {
                return Err(TableError::Invalid(format!(
                    "column `{}` is computed; update the columns it is computed from, or \
                     recompute it",
                    column.name
                )));
            }
            let mut builder = ColumnBuilder::new(&column.data_type, 1);
            push_literal(&mut builder, &column.data_type, &assignment.value).map_err(|error| {
                TableError::Invalid(format!("in `--set {assignment}`: {error}"))
            })?;
            let position = write
                .schema
                .columns
                .iter()
                .position(|c| c.id == column.id)
                .expect("a found column is in its schema");
            if !changed.insert(column.name.clone()) {
                return Err(TableError::Invalid(format!(
                    "column `{}` is set twice; set it once",
                    column.name
                )));
            }
            sets.push((position, builder.finish()));
        }
        let (filter, binds) = match &predicate {
            None => ("true".to_owned(), Vec::new()),
            Some(predicate) => {
                let mut builder = FilterBuilder::new(&write.schema, Vec::new());
                let sql = builder.sql(predicate)?;
                (sql, builder.binds)
            }
        };
        let summary = self
            .rewrite(
                &mut write, &changed, false, filter, binds, sets, options, progress,
            )
            .await?;
        let detail = serde_json::json!({
            "set": assignments.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "where": predicate.as_ref().map(ToString::to_string),
        });
        self.finish(write, "update", summary, detail).await
    }

    /// Deletes the live rows that match `predicate`, or every live row
    /// without one, as one new version. Snapshots keep the rows.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Parse`] or [`TableError::Invalid`] for a bad
    /// predicate.
    pub async fn delete(&self, table: &str, predicate: Option<&str>) -> Result<WriteSummary> {
        let predicate = predicate.map(parse_predicate).transpose()?;
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Rows).await?;
        write.wait_turn().await?;
        let (filter, mut binds) = match &predicate {
            None => ("true".to_owned(), Vec::new()),
            Some(predicate) => {
                let mut builder = FilterBuilder::new(&write.schema, Vec::new());
                let sql = builder.sql(predicate)?;
                (sql, builder.binds)
            }
        };
        binds.push(Bind::Int(write.write_id));
        let n = binds.len();
        let sql = format!(
            "UPDATE {} SET _v_max = ${n} WHERE _v_max = {LIVE} AND _v_min < ${n} AND {filter}",
            write.schema.sql_table()
        );
        let removed = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .execute(&mut *write.tx)
            .await?
            .rows_affected();
        let summary = WriteSummary {
            table: table.to_owned(),
            version: 0,
            changes: Changes {
                rows_removed: removed as i64,
                ..Changes::default()
            },
            cell_errors: 0,
        };
        let detail = serde_json::json!({ "where": predicate.as_ref().map(ToString::to_string) });
        self.finish(write, "delete", summary, detail).await
    }

    async fn finish(
        &self,
        write: Write,
        operation: &str,
        mut summary: WriteSummary,
        detail: serde_json::Value,
    ) -> Result<WriteSummary> {
        summary.version = write.commit(operation, &summary.changes, detail).await?;
        tracing::info!(
            target: "sandtable::table",
            tenant = %self.tenant.name,
            table = %summary.table,
            operation,
            version = summary.version,
            rows_changed = summary.changes.rows_changed,
            rows_removed = summary.changes.rows_removed,
            cell_errors = summary.cell_errors,
            "table written"
        );
        Ok(summary)
    }

    /// Writes new versions of the live rows that match `filter`, with
    /// `sets` applied and the computed columns that depend on `changed`
    /// (and, with `include_changed`, those columns themselves) computed
    /// again.
    #[allow(clippy::too_many_arguments)]
    async fn rewrite(
        &self,
        write: &mut Write,
        changed: &BTreeSet<String>,
        include_changed: bool,
        filter: String,
        binds: Vec<Bind>,
        sets: Vec<(usize, Column)>,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<WriteSummary> {
        let schema = write.schema.clone();
        let targets = dependents(&schema, changed, include_changed);
        let all_plans = self.bind_computed(&schema).await?;
        let plans: Vec<(usize, Plan)> = all_plans
            .iter()
            .filter(|(position, _)| targets.contains(position))
            .cloned()
            .collect();
        let batch_rows = plans
            .first()
            .map_or(super::insert::INSERT_BATCH_ROWS, |(_, plan)| {
                batch_rows_of(plan)
            });
        let pass = Pass {
            read: (0..schema.columns.len()).collect(),
            schema: Arc::new(schema),
            filter,
            binds,
            plans: Arc::new(plans),
            sets: Arc::new(sets),
            output: Output::NewVersions,
            batch_rows,
        };
        let table_sql = pass.schema.sql_table();
        let (rows, cell_errors) = self.run_pass(write, pass, options, progress).await?;
        // Close the versions that were replaced.
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table_sql} o SET _v_max = $1 FROM {table_sql} n \
             WHERE n._v_min = $1 AND o._rowid = n._rowid AND o._v_max = {LIVE} AND o._v_min < $1"
        )))
        .bind(write.write_id)
        .execute(&mut *write.tx)
        .await?;
        Ok(WriteSummary {
            table: write.schema.name.clone(),
            version: 0,
            changes: Changes {
                rows_changed: rows as i64,
                ..Changes::default()
            },
            cell_errors,
        })
    }

    /// Reads the live rows that match the pass's filter in batches, computes
    /// on up to `workers` threads, and writes the results. Returns the rows
    /// written and the failed cells stored.
    async fn run_pass(
        &self,
        write: &mut Write,
        pass: Pass,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<(u64, u64)> {
        let schema = pass.schema.clone();
        let table_sql = schema.sql_table();
        let write_id = write.write_id;
        let mut binds = pass.binds.clone();
        binds.push(Bind::Int(write_id));
        let w = binds.len();
        let condition = format!("_v_max = {LIVE} AND _v_min < ${w} AND {}", pass.filter);
        let total: i64 = {
            let sql = format!("SELECT count(*) FROM {table_sql} WHERE {condition}");
            let row = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
                .fetch_one(&mut *write.tx)
                .await?;
            row.try_get(0)?
        };
        progress.start(total as u64);
        let read_columns: Vec<_> = pass.read.iter().map(|&p| &schema.columns[p]).collect();
        let mut select = vec!["_rowid".to_owned()];
        select.extend(cells_select(&read_columns));
        let declare = format!(
            "DECLARE _sandtable_scan NO SCROLL CURSOR FOR SELECT {} FROM {table_sql} WHERE {condition}",
            select.join(", ")
        );
        bind_all(sqlx::query(AssertSqlSafe(declare)), &binds)
            .execute(&mut *write.tx)
            .await?;
        let copy = match &pass.output {
            Output::InPlace { position, .. } => {
                let column = &schema.columns[*position];
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE TEMP TABLE _sandtable_backfill \
                     (rowid bigint, v {}, et text, em text) ON COMMIT DROP",
                    pg_type(&column.data_type)
                )))
                .execute(&mut *write.tx)
                .await?;
                "COPY _sandtable_backfill (rowid, v, et, em) FROM STDIN (FORMAT binary)".to_owned()
            }
            Output::NewVersions => copy_statement(&schema),
        };
        let fetch = format!(
            "FETCH FORWARD {} FROM _sandtable_scan",
            pass.batch_rows.clamp(1, MAX_SCAN_ROWS)
        );
        let mut pending: VecDeque<JoinHandle<Result<ScannedBatch>>> = VecDeque::new();
        let mut exhausted = false;
        let mut rows_done: u64 = 0;
        let mut cell_errors: u64 = 0;
        loop {
            if !exhausted && pending.len() < options.workers.max(1) {
                // The text of a FETCH is the same for every cursor, so its result
                // description must not come from the statement cache.
                let rows = sqlx::query(AssertSqlSafe(fetch.clone()))
                    .persistent(false)
                    .fetch_all(&mut *write.tx)
                    .await?;
                if rows.is_empty() {
                    exhausted = true;
                    continue;
                }
                let mut reader = CellReader::new(&read_columns, rows.len());
                let mut rowids = Vec::with_capacity(rows.len());
                for row in &rows {
                    rowids.push(row.try_get::<i64, _>(0)?);
                    reader.push(row, 1)?;
                }
                let mut cells: Vec<Option<Cells>> = vec![None; schema.columns.len()];
                for (&position, read) in pass.read.iter().zip(reader.finish()) {
                    cells[position] = Some(read);
                }
                let mut batch = Batch {
                    rows: rows.len(),
                    cells,
                };
                let engine = self.engine.clone();
                let plans = pass.plans.clone();
                let sets = pass.sets.clone();
                pending.push_back(tokio::task::spawn_blocking(move || {
                    for (position, single) in sets.iter() {
                        batch.cells[*position] =
                            Some(Cells::plain(super::cells::repeat(single, batch.rows)));
                    }
                    compute_into(&engine, &plans, &mut batch)?;
                    Ok((rowids, batch))
                }));
                continue;
            }
            let Some(handle) = pending.pop_front() else {
                break;
            };
            let computed = handle.await.expect("the compute task does not panic");
            let failure = match &computed {
                Ok((_, batch)) => {
                    first_failure(&schema, batch, &pass.plans, options.on_error, |_| {
                        "a stored row".to_owned()
                    })
                }
                Err(_) => None,
            };
            if computed.is_err() || failure.is_some() {
                finish_pending(&mut pending).await;
            }
            let (rowids, batch) = computed?;
            if let Some(error) = failure {
                return Err(error);
            }
            cell_errors += count_failures(&batch, &pass.plans);
            let mut encoder = BinaryCopyEncoder::new();
            match &pass.output {
                Output::InPlace { position, .. } => {
                    let cells = batch.cells[*position]
                        .as_ref()
                        .expect("the computed column is filled");
                    for (row, rowid) in rowids.iter().enumerate() {
                        encoder.push_i64(*rowid);
                        cells.encode(&mut encoder, row, true);
                        encoder.end_row();
                    }
                }
                Output::NewVersions => {
                    encode_rows(&mut encoder, &schema, &batch, write_id, |row| rowids[row]);
                }
            }
            let mut sink = write.tx.copy_in_raw(&copy).await?;
            sink.send(encoder.finish()).await?;
            sink.finish().await?;
            rows_done += batch.rows as u64;
            progress.advance(batch.rows as u64);
        }
        sqlx::query("CLOSE _sandtable_scan")
            .execute(&mut *write.tx)
            .await?;
        if let Output::InPlace { position, alter } = &pass.output {
            // Altering the table waits for its readers, and new readers wait
            // until the write commits.
            // NOTE: that wait covers the `UPDATE` below, several seconds for a
            // million rows, and no lock timeout bounds it.
            sqlx::query(AssertSqlSafe(format!(
                "LOCK TABLE {table_sql} IN ACCESS EXCLUSIVE MODE"
            )))
            .execute(&mut *write.tx)
            .await?;
            sqlx::query(AssertSqlSafe(alter.clone()))
                .execute(&mut *write.tx)
                .await?;
            let column = &schema.columns[*position];
            let (value, error_type, message) = (
                column.sql(CellPart::Value),
                column.sql(CellPart::ErrorType),
                column.sql(CellPart::ErrorMsg),
            );
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table_sql} t SET {value} = b.v, {error_type} = b.et, {message} = b.em \
                 FROM _sandtable_backfill b \
                 WHERE t._rowid = b.rowid AND t._v_max = {LIVE} AND t._v_min < $1"
            )))
            .bind(write_id)
            .execute(&mut *write.tx)
            .await?;
            sqlx::query("DROP TABLE _sandtable_backfill")
                .execute(&mut *write.tx)
                .await?;
        }
        Ok((rows_done, cell_errors))
    }
}

/// Records `pinned` as the expression of column `column_id` from this
/// write on, with the plugin versions it calls.
async fn insert_spec(write: &mut Write, column_id: i64, pinned: &Expr) -> Result<()> {
    let expression = serde_json::to_value(pinned).expect("an expression serializes");
    sqlx::query(
        "INSERT INTO sandtable.column_specs (column_id, write_from, expression) VALUES ($1, $2, $3)",
    )
    .bind(column_id)
    .bind(write.write_id)
    .bind(expression)
    .execute(&mut *write.tx)
    .await?;
    for (plugin, version) in pinned_plugins(pinned) {
        let inserted = sqlx::query(
            "INSERT INTO sandtable.column_spec_plugins \
               (column_id, write_from, tenant_id, plugin, version) \
             SELECT $1, $2, tenant_id, $3, $4 FROM sandtable.tables WHERE id = $5",
        )
        .bind(column_id)
        .bind(write.write_id)
        .bind(&plugin)
        .bind(version)
        .bind(write.schema.id)
        .execute(&mut *write.tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if crate::catalog::is_foreign_key_violation(&error) => {
                return Err(TableError::Conflict(format!(
                    "plugin `{plugin}@{version}` was removed while the column was being set up; \
                     add the plugin again, or name another version"
                )));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Returns the position of computed column `name`.
fn computed_column(schema: &TableSchema, name: &str) -> Result<usize> {
    let column = schema.column(name)?;
    if !column.is_computed() {
        return Err(TableError::Invalid(format!(
            "column `{name}` of table `{}` is not computed; only computed columns are computed \
             again",
            schema.name
        )));
    }
    Ok(schema
        .columns
        .iter()
        .position(|c| c.id == column.id)
        .expect("a found column is in its schema"))
}

/// Returns the positions of the computed columns that read any column of
/// `changed`, directly or through other computed columns. With
/// `include_changed`, the computed columns of `changed` are included too.
fn dependents(
    schema: &TableSchema,
    changed: &BTreeSet<String>,
    include_changed: bool,
) -> BTreeSet<usize> {
    let mut dirty = changed.clone();
    let mut targets = BTreeSet::new();
    for (position, column) in schema.columns.iter().enumerate() {
        let Some(spec) = &column.computed else {
            continue;
        };
        let mut reads = BTreeSet::new();
        referenced_columns(&spec.expression, &mut reads);
        let is_changed = changed.contains(&column.name);
        if (include_changed && is_changed) || reads.iter().any(|name| dirty.contains(name)) {
            targets.insert(position);
            dirty.insert(column.name.clone());
        }
    }
    targets
}

/// Returns the positions of the named columns.
fn positions(schema: &TableSchema, names: &BTreeSet<String>) -> Vec<usize> {
    schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| names.contains(&c.name))
        .map(|(position, _)| position)
        .collect()
}

/// The batch size of the function a plan calls first.
fn batch_rows_of(plan: &Plan) -> usize {
    plan.root_call()
        .map_or(super::insert::INSERT_BATCH_ROWS, |call| call.batch_size())
}

/// `expr` with every plugin unpinned (to its latest version), or, given a
/// selector, pinned to it.
fn repin(expr: &Expr, selector: Option<&VersionSelector>) -> Expr {
    match expr {
        Expr::Call(call) => {
            let name = call.plugin.split('@').next().unwrap_or(&call.plugin);
            let plugin = match selector {
                None => name.to_owned(),
                Some(selector) => PluginRef {
                    name: name.to_owned(),
                    selector: Some(selector.clone()),
                }
                .to_string(),
            };
            Expr::Call(Call {
                plugin,
                function: call.function.clone(),
                args: call.args.iter().map(|arg| repin(arg, selector)).collect(),
            })
        }
        other => other.clone(),
    }
}
