//! Inserting rows: the input is read and checked on a thread of its own,
//! computed columns run through plugins on up to `workers` threads, and the
//! rows stream into Postgres with `COPY`, all in one transaction that
//! becomes one version.

use std::collections::VecDeque;
use std::io::BufRead;
use std::ops::ControlFlow;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::sandbox::UdfEngine;

use super::binary_copy::BinaryCopyEncoder;
use super::cells::{Cells, describe_value};
use super::compute::{Batch, Plan, PluginSet, bind, evaluate, finish_pending};
use super::error::{Result, TableError};
use super::expr::CellPart;
use super::input::{InputFormat, InputSchema, RowBatch, read_batches};
use super::schema::TableSchema;
use super::tables::input_columns;
use super::write::{self, Changes, LockMode};
use super::{OnError, Tables, WriteOptions, WriteSummary};

/// Input rows are read, computed and copied in batches of this many.
pub const INSERT_BATCH_ROWS: usize = 4096;

/// Buffered `COPY` data is sent once it reaches this many bytes.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The computed columns of a table, bound for one write: for each, its
/// position in the schema and its plan.
pub(crate) type ComputedPlans = Arc<Vec<(usize, Plan)>>;

impl Tables {
    /// Inserts the rows of `reader`, in `format`, as one new version.
    ///
    /// Every input value is checked against the schema, and any bad row
    /// rejects the whole insert. Computed columns are computed for the new
    /// rows; `options.on_error` sets what a failed cell does.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Input`] for input that does not fit,
    /// [`TableError::CellFailed`] for a failed cell under
    /// [`OnError::Abort`], and the host's failures; in every case nothing is
    /// written.
    pub async fn insert<R: BufRead + Send + 'static>(
        &self,
        table: &str,
        reader: R,
        format: InputFormat,
        options: &WriteOptions,
    ) -> Result<WriteSummary> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Rows).await?;
        let plans = self.bind_computed(&write.schema).await?;
        let schema = Arc::new(write.schema.clone());
        let input_schema = InputSchema {
            table: table.to_owned(),
            columns: input_columns(&schema)
                .iter()
                .map(|c| (c.name.clone(), c.data_type))
                .collect(),
            computed: schema
                .columns
                .iter()
                .filter(|c| c.is_computed())
                .map(|c| c.name.clone())
                .collect(),
        };

        let (sender, mut receiver) = tokio::sync::mpsc::channel::<RowBatch>(2 + options.workers);
        let reading = tokio::task::spawn_blocking(move || {
            read_batches(reader, format, &input_schema, INSERT_BATCH_ROWS, |batch| {
                if sender.blocking_send(batch).is_ok() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })
        });

        let statement = copy_statement(&schema);
        let mut copy = write.tx.copy_in_raw(&statement).await?;
        let mut pending: VecDeque<JoinHandle<Result<(u64, Batch)>>> = VecDeque::new();
        let mut encoder = BinaryCopyEncoder::new();
        let mut rows: u64 = 0;
        let mut cell_errors: u64 = 0;
        let mut failure: Option<TableError> = None;
        let write_id = write.write_id;
        loop {
            let next = if pending.len() >= options.workers.max(1) {
                None
            } else {
                receiver.recv().await
            };
            match next {
                Some(batch) => {
                    let engine = self.engine.clone();
                    let plans = plans.clone();
                    let schema = schema.clone();
                    pending.push_back(tokio::task::spawn_blocking(move || {
                        compute_batch(&engine, &schema, &plans, batch)
                    }));
                }
                None => {
                    let Some(handle) = pending.pop_front() else {
                        break;
                    };
                    let computed = handle.await.expect("the compute task does not panic");
                    let (first_row, batch) = match computed {
                        Ok(computed) => computed,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    };
                    if let Some(error) =
                        first_failure(&schema, &batch, &plans, options.on_error, |row| {
                            format!("row {} of the input", first_row + row as u64)
                        })
                    {
                        failure = Some(error);
                        break;
                    }
                    cell_errors += count_failures(&batch, &plans);
                    let base = (write_id << 32) + (first_row as i64 - 1);
                    encode_rows(&mut encoder, &schema, &batch, write_id, |row| {
                        base + row as i64
                    });
                    rows += batch.rows as u64;
                    if encoder.len() >= COPY_CHUNK_BYTES {
                        copy.send(encoder.take()).await?;
                    }
                }
            }
        }
        drop(receiver);
        finish_pending(&mut pending).await;
        let read = reading.await.expect("the input reader does not panic");
        if let Some(error) = failure {
            copy.abort("insert aborted").await.ok();
            return Err(error);
        }
        if let Err(error) = read {
            copy.abort("invalid input").await.ok();
            return Err(error.into());
        }
        if rows >= 1 << 32 {
            copy.abort("too many rows").await.ok();
            return Err(TableError::Invalid(format!(
                "one insert takes at most {} rows; split the input",
                u32::MAX
            )));
        }
        copy.send(encoder.finish()).await?;
        copy.finish().await?;
        self.check_rows_quota(&mut write.tx, rows).await?;
        let changes = Changes {
            rows_added: rows as i64,
            ..Changes::default()
        };
        let version = write
            .commit("insert", &changes, serde_json::json!({}))
            .await?;
        tracing::info!(
            target: "sandtable::table",
            tenant = %self.tenant.name,
            table,
            version,
            rows,
            cell_errors,
            "rows inserted"
        );
        Ok(WriteSummary {
            table: table.to_owned(),
            version,
            changes,
            cell_errors,
        })
    }

    /// Checks that the tenant's tables, with `adding` more rows, hold no
    /// more live rows than its `max_rows` quota.
    ///
    /// NOTE: inserts that commit at the same time each count the rows
    /// committed before them, so together they may pass the quota by the
    /// rows of all but one of them.
    pub(super) async fn check_rows_quota(
        &self,
        tx: &mut sqlx::PgConnection,
        adding: u64,
    ) -> Result<()> {
        let quotas = self
            .catalog
            .pools()
            .config()
            .tenant_quotas(&self.tenant.name);
        let Some(max_rows) = quotas.max_rows else {
            return Ok(());
        };
        let stored: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(v.rows_added - v.rows_removed), 0)::bigint \
             FROM sandtable.table_versions v \
             JOIN sandtable.tables t ON t.id = v.table_id \
             WHERE t.tenant_id = $1",
        )
        .bind(self.tenant.id)
        .fetch_one(&mut *tx)
        .await?;
        let stored = u64::try_from(stored).unwrap_or(0);
        if stored.saturating_add(adding) > max_rows {
            return Err(TableError::RowsQuota {
                tenant: self.tenant.name.clone(),
                max_rows,
                stored,
                adding,
            });
        }
        Ok(())
    }

    /// Loads the plugins of every computed column of `schema` and binds
    /// their expressions.
    pub(crate) async fn bind_computed(&self, schema: &TableSchema) -> Result<ComputedPlans> {
        let mut plugins = PluginSet::default();
        let mut plans = Vec::new();
        for (position, column) in schema.columns.iter().enumerate() {
            let Some(spec) = &column.computed else {
                continue;
            };
            plugins
                .load_for(&self.catalog, &self.engine, &self.tenant, &spec.expression)
                .await?;
            let (plan, _, _) = bind(&spec.expression, schema, &plugins)?;
            plans.push((position, plan.for_column(column)));
        }
        Ok(Arc::new(plans))
    }
}

/// Returns the `COPY` statement that takes every column of `schema` after the row
/// id and the write.
pub(crate) fn copy_statement(schema: &TableSchema) -> String {
    let mut columns = vec!["_rowid".to_owned(), "_v_min".to_owned()];
    for column in &schema.columns {
        columns.push(column.sql(CellPart::Value));
        if column.is_computed() {
            columns.push(column.sql(CellPart::ErrorType));
            columns.push(column.sql(CellPart::ErrorMsg));
        }
    }
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        schema.sql_table(),
        columns.join(", ")
    )
}

/// Turns an input batch into a batch of every column and computes the
/// computed ones, in table order. Returns the batch and the number of its
/// first input row.
fn compute_batch(
    engine: &UdfEngine,
    schema: &TableSchema,
    plans: &[(usize, Plan)],
    input: RowBatch,
) -> Result<(u64, Batch)> {
    let mut inputs = input.columns.into_iter();
    let cells = schema
        .columns
        .iter()
        .map(|column| {
            if column.is_computed() {
                None
            } else {
                inputs.next().map(Cells::plain)
            }
        })
        .collect();
    let mut batch = Batch {
        rows: input.rows,
        cells,
    };
    compute_into(engine, plans, &mut batch)?;
    Ok((input.first_row, batch))
}

/// Computes each planned column into `batch`, in order, so that a column
/// may read the ones before it.
pub(crate) fn compute_into(
    engine: &UdfEngine,
    plans: &[(usize, Plan)],
    batch: &mut Batch,
) -> Result<()> {
    for (position, plan) in plans {
        let cells = evaluate(engine, plan, batch)?;
        batch.cells[*position] = Some(cells);
    }
    Ok(())
}

/// Under [`OnError::Abort`], the error for the first cell that `plans`
/// computed and that failed, with `locate` naming its row. Cells a write
/// carries over unchanged keep their stored errors without failing it.
pub(crate) fn first_failure(
    schema: &TableSchema,
    batch: &Batch,
    plans: &[(usize, Plan)],
    on_error: OnError,
    locate: impl Fn(usize) -> String,
) -> Option<TableError> {
    if on_error == OnError::Ignore {
        return None;
    }
    for row in 0..batch.rows {
        for (position, column) in schema.columns.iter().enumerate() {
            if !plans.iter().any(|(planned, _)| *planned == position) {
                continue;
            }
            let Some(cells) = &batch.cells[position] else {
                continue;
            };
            if let Some(failure) = cells.error(row) {
                let inputs = describe_inputs(schema, batch, row);
                return Some(TableError::CellFailed(format!(
                    "column `{}` failed on {}{inputs}: {}: {}; nothing was written. Fix the \
                     plugin or the row, or run with --on-error ignore to store the error in the \
                     cell",
                    column.name,
                    locate(row),
                    failure.error_type,
                    failure.message
                )));
            }
        }
    }
    None
}

/// ` (title = "x", year = 1999)`: the row's input values, for a message.
fn describe_inputs(schema: &TableSchema, batch: &Batch, row: usize) -> String {
    let mut parts = Vec::new();
    for (position, column) in schema.columns.iter().enumerate() {
        if column.is_computed() {
            continue;
        }
        if let Some(cells) = &batch.cells[position] {
            parts.push(format!(
                "{} = {}",
                column.name,
                describe_value(&cells.values, row)
            ));
        }
        if parts.len() == 4 {
            break;
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Counts the cells of `batch` that `plans` computed and that failed.
pub(crate) fn count_failures(batch: &Batch, plans: &[(usize, Plan)]) -> u64 {
    let mut count = 0;
    for (position, _) in plans {
        if let Some(cells) = &batch.cells[*position] {
            count += cells.errors.iter().filter(|e| e.is_some()).count() as u64;
        }
    }
    count
}

/// Appends every row of `batch` as a new row version of write `write_id`,
/// with the row ids `rowid` gives, in the column order of
/// [`copy_statement`].
pub(crate) fn encode_rows(
    encoder: &mut BinaryCopyEncoder,
    schema: &TableSchema,
    batch: &Batch,
    write_id: i64,
    rowid: impl Fn(usize) -> i64,
) {
    for row in 0..batch.rows {
        encoder.push_i64(rowid(row));
        encoder.push_i64(write_id);
        for (position, column) in schema.columns.iter().enumerate() {
            let cells = batch.cells[position]
                .as_ref()
                .expect("every column of a batch to write is filled");
            cells.encode(encoder, row, column.is_computed());
        }
        encoder.end_row();
    }
}
