//! Computed columns: binding an expression to a table's columns and to
//! loaded plugins, type-checking it, and evaluating it over a batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::catalog::{Catalog, PluginRef, Tenant};
use crate::sandbox::{
    CallContext, CallError, Column, ColumnBuilder, DataType, LoadedPlugin, UdfEngine,
};

use super::cells::{CellFailure, Cells, repeat};
use super::error::{Result, TableError};
use super::expr::{Call, CellPart, ColumnRef, Expr, Literal};
use super::schema::{ColumnInfo, TableSchema};
use super::values::push_literal;

/// The deepest nesting of calls an expression may have.
pub const MAX_CALL_DEPTH: usize = 32;

/// A plugin version loaded for a table operation.
pub(crate) struct PluginHandle {
    /// `NAME@VERSION`.
    pub reference: String,
    pub plugin: LoadedPlugin,
    pub context: CallContext,
}

/// The plugins an operation has loaded, by the reference text that named
/// them.
#[derive(Default)]
pub(crate) struct PluginSet {
    loaded: HashMap<String, Arc<PluginHandle>>,
}

impl PluginSet {
    /// Loads every plugin that `expr` names and that is not loaded yet.
    pub(crate) async fn load_for(
        &mut self,
        catalog: &Catalog,
        engine: &UdfEngine,
        tenant: &Tenant,
        expr: &Expr,
    ) -> Result<()> {
        let mut references = BTreeSet::new();
        collect_plugins(expr, &mut references);
        for text in references {
            if self.loaded.contains_key(&text) {
                continue;
            }
            let reference: PluginRef = text.parse().map_err(|_| {
                TableError::Invalid(format!(
                    "`{text}` is not a plugin reference; write NAME, NAME@VERSION or \
                     NAME@SHA256-PREFIX"
                ))
            })?;
            let (entry, plugin, context) = catalog.load_plugin(engine, tenant, &reference).await?;
            let handle = Arc::new(PluginHandle {
                reference: entry.reference(),
                plugin,
                context,
            });
            // The pinned form names the same plugin, so that a pinned
            // expression binds without loading it again.
            self.loaded.insert(entry.reference(), handle.clone());
            self.loaded.insert(text, handle);
        }
        Ok(())
    }

    fn get(&self, text: &str) -> &Arc<PluginHandle> {
        &self.loaded[text]
    }
}

fn collect_plugins(expr: &Expr, out: &mut BTreeSet<String>) {
    if let Expr::Call(call) = expr {
        out.insert(call.plugin.clone());
        for arg in &call.args {
            collect_plugins(arg, out);
        }
    }
}

/// Collects the names of the columns an expression reads.
/// Waits for every batch still computing, so that none outlives the write
/// that started it: a call that is waiting on a response must finish while
/// the runtime that serves the response is still running.
pub(crate) async fn finish_pending<T>(
    pending: &mut std::collections::VecDeque<tokio::task::JoinHandle<T>>,
) {
    while let Some(handle) = pending.pop_front() {
        let _ = handle.await;
    }
}

pub(crate) fn referenced_columns(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Column(reference) => {
            out.insert(reference.name.clone());
        }
        Expr::Literal(_) => {}
        Expr::Call(call) => {
            for arg in &call.args {
                referenced_columns(arg, out);
            }
        }
    }
}

/// Returns the `NAME@VERSION` references of the plugins an expression calls.
pub(crate) fn pinned_plugins(expr: &Expr) -> Vec<(String, i32)> {
    let mut references = BTreeSet::new();
    collect_plugins(expr, &mut references);
    references
        .into_iter()
        .filter_map(|text| {
            let (name, version) = text.split_once('@')?;
            Some((name.to_owned(), version.parse().ok()?))
        })
        .collect()
}

/// An expression bound to a table's columns and to loaded plugins.
#[derive(Clone)]
pub(crate) enum Plan {
    /// A part of the cells of the column at this index of the batch.
    Input { index: usize, part: CellPart },
    /// A literal, as a column of one row.
    Literal(Column),
    /// A call.
    Call(Arc<BoundCall>),
    /// A plan whose zero vectors are failed cells, for a column that a
    /// cosine index covers: a zero vector has no direction to compare.
    NonZero(Box<Plan>),
}

impl Plan {
    /// Returns the plan that computes `column`: this one, or for a column that
    /// needs a direction, this one with zero vectors failed.
    pub(crate) fn for_column(self, column: &ColumnInfo) -> Plan {
        if column.direction_required {
            Plan::NonZero(Box::new(self))
        } else {
            self
        }
    }

    /// Returns the call at the plan's root, if it is one.
    pub(crate) fn root_call(&self) -> Option<&BoundCall> {
        match self {
            Plan::Call(call) => Some(call),
            Plan::NonZero(inner) => inner.root_call(),
            Plan::Input { .. } | Plan::Literal(_) => None,
        }
    }
}

pub(crate) struct BoundCall {
    plugin: Arc<PluginHandle>,
    function: String,
    batch_size: usize,
    args: Vec<Plan>,
}

impl BoundCall {
    /// The batch size the function declares.
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }
}

/// Binds `expr`, whose plugins `plugins` has loaded, to the columns of
/// `schema`, checking every call's argument types. Returns the plan, the
/// type of the result, and the expression with every plugin pinned as
/// `NAME@VERSION`.
pub(crate) fn bind(
    expr: &Expr,
    schema: &TableSchema,
    plugins: &PluginSet,
) -> Result<(Plan, DataType, Expr)> {
    let Expr::Call(_) = expr else {
        return Err(TableError::Invalid(format!(
            "the expression `{expr}` calls no function; a computed column is a call such as \
             `text.upper(title)`"
        )));
    };
    bind_node(expr, schema, plugins, None, 0)
}

fn bind_node(
    expr: &Expr,
    schema: &TableSchema,
    plugins: &PluginSet,
    expected: Option<&DataType>,
    depth: usize,
) -> Result<(Plan, DataType, Expr)> {
    if depth > MAX_CALL_DEPTH {
        return Err(TableError::Invalid(format!(
            "the expression nests calls deeper than {MAX_CALL_DEPTH} levels; compute the inner \
             calls in computed columns of their own and call those"
        )));
    }
    match expr {
        Expr::Column(reference) => {
            let (index, column) = column_index(schema, reference)?;
            let data_type = match reference.part {
                CellPart::Value => column.data_type,
                _ => DataType::String,
            };
            Ok((
                Plan::Input {
                    index,
                    part: reference.part,
                },
                data_type,
                expr.clone(),
            ))
        }
        Expr::Literal(literal) => {
            let data_type = expected.cloned().unwrap_or_else(|| literal_type(literal));
            let mut builder = ColumnBuilder::new(&data_type, 1);
            push_literal(&mut builder, &data_type, literal).map_err(|error| {
                TableError::Invalid(format!(
                    "literal {}: {error}",
                    Expr::Literal(literal.clone())
                ))
            })?;
            Ok((Plan::Literal(builder.finish()), data_type, expr.clone()))
        }
        Expr::Call(call) => {
            let handle = plugins.get(&call.plugin);
            let name = format!("{}.{}", call.plugin, call.function);
            let function = handle.plugin.function(&call.function).ok_or_else(|| {
                let available: Vec<_> = handle
                    .plugin
                    .description()
                    .functions
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect();
                TableError::Invalid(format!(
                    "plugin `{}` has no function `{}`; it has {}",
                    handle.reference,
                    call.function,
                    available.join(", ")
                ))
            })?;
            if function.params.len() != call.args.len() {
                return Err(TableError::Invalid(format!(
                    "`{name}` takes {} argument{}, but `{expr}` gives {}",
                    function.params.len(),
                    if function.params.len() == 1 { "" } else { "s" },
                    call.args.len()
                )));
            }
            let mut args = Vec::with_capacity(call.args.len());
            let mut pinned_args = Vec::with_capacity(call.args.len());
            for (position, (arg, param)) in call.args.iter().zip(&function.params).enumerate() {
                let (plan, data_type, pinned) =
                    bind_node(arg, schema, plugins, Some(&param.type_), depth + 1)?;
                if data_type != param.type_ {
                    return Err(TableError::Invalid(format!(
                        "argument {} (`{}`) of `{name}` must be {}, but `{arg}` is {data_type}",
                        position + 1,
                        param.name,
                        param.type_
                    )));
                }
                args.push(plan);
                pinned_args.push(pinned);
            }
            let returns = function.returns;
            let pinned = Expr::Call(Call {
                plugin: handle.reference.clone(),
                function: call.function.clone(),
                args: pinned_args,
            });
            let bound = BoundCall {
                plugin: handle.clone(),
                function: call.function.clone(),
                batch_size: function.batch_size.max(1) as usize,
                args,
            };
            Ok((Plan::Call(Arc::new(bound)), returns, pinned))
        }
    }
}

fn literal_type(literal: &Literal) -> DataType {
    match literal {
        Literal::Bool(_) => DataType::Bool,
        Literal::Int(_) => DataType::Int,
        Literal::Float(_) => DataType::Float,
        Literal::String(_) | Literal::Null => DataType::String,
    }
}

fn column_index<'a>(
    schema: &'a TableSchema,
    reference: &ColumnRef,
) -> Result<(usize, &'a ColumnInfo)> {
    let column = schema.resolve(reference)?;
    let index = schema
        .columns
        .iter()
        .position(|c| c.id == column.id)
        .expect("a resolved column is in its schema");
    Ok((index, column))
}

/// A batch of rows being computed: the cells of every column of the
/// table, by position; `None` for a column not read.
pub(crate) struct Batch {
    pub rows: usize,
    pub cells: Vec<Option<Cells>>,
}

/// Evaluates `plan` over `batch`. A guest fault fails only the cells it
/// affects. An error is returned only when the sandbox cannot make a call.
pub(crate) fn evaluate(engine: &UdfEngine, plan: &Plan, batch: &Batch) -> Result<Cells, CallError> {
    match plan {
        Plan::Input { index, part } => {
            let cells = batch.cells[*index]
                .as_ref()
                .expect("every column a plan reads is in the batch");
            Ok(match part {
                CellPart::Value => cells.clone(),
                part => Cells::plain(cells.error_part(*part)),
            })
        }
        Plan::Literal(single) => Ok(Cells::plain(repeat(single, batch.rows))),
        Plan::Call(call) => evaluate_call(engine, call, batch),
        Plan::NonZero(inner) => {
            let mut cells = evaluate(engine, inner, batch)?;
            fail_zero_vectors(&mut cells, inner);
            Ok(cells)
        }
    }
}

/// Makes every zero vector of `cells` a failed cell.
fn fail_zero_vectors(cells: &mut Cells, plan: &Plan) {
    let crate::sandbox::types::Values::Vector(vectors) = &cells.values.values else {
        return;
    };
    let dimension = vectors.dimension as usize;
    if dimension == 0 {
        return;
    }
    let zero: Vec<usize> = vectors
        .data
        .chunks_exact(dimension)
        .enumerate()
        .filter(|(row, vector)| !cells.values.is_null(*row) && vector.iter().all(|v| *v == 0.0))
        .map(|(row, _)| row)
        .collect();
    if zero.is_empty() {
        return;
    }
    let call = plan.root_call().map_or_else(
        || "the expression".to_owned(),
        |call| format!("{}.{}", call.plugin.reference, call.function),
    );
    if cells.errors.is_empty() {
        cells.errors = vec![None; cells.len()];
    }
    for row in zero {
        cells.values.set_null(row);
        cells.errors[row] = Some(CellFailure {
            error_type: crate::sandbox::FaultClass::InvalidOutput
                .as_str()
                .to_owned(),
            message: format!(
                "{call}: returned a zero vector, which has no direction, so a cosine index \
                 cannot compare it; return a non-zero vector, or index with --metric l2 or ip"
            ),
        });
    }
}

fn evaluate_call(engine: &UdfEngine, call: &BoundCall, batch: &Batch) -> Result<Cells, CallError> {
    let rows = batch.rows;
    let mut args = Vec::with_capacity(call.args.len());
    // A cell whose argument failed fails the same way, without a call.
    let mut errors: Vec<Option<CellFailure>> = vec![None; rows];
    for plan in &call.args {
        let cells = evaluate(engine, plan, batch)?;
        let mut values = cells.values;
        for (row, failure) in cells.errors.into_iter().enumerate() {
            if let Some(failure) = failure {
                values.set_null(row);
                if errors[row].is_none() {
                    errors[row] = Some(failure);
                }
            }
        }
        args.push(values);
    }
    let handle = &call.plugin;
    let record_errors = |errors: &mut Vec<Option<CellFailure>>, start: usize, found| {
        for error in found {
            let error: crate::sandbox::CellError = error;
            let row = start + error.row;
            if errors[row].is_none() {
                errors[row] = Some(CellFailure {
                    error_type: error.class.as_str().to_owned(),
                    message: format!("{}.{}: {}", handle.reference, call.function, error.message),
                });
            }
        }
    };
    let mut values = if rows <= call.batch_size {
        // One call takes the whole batch: its arguments and result are used
        // as they are, without copies.
        let output = engine.call(&handle.plugin, &handle.context, &call.function, &args, rows)?;
        record_errors(&mut errors, 0, output.errors);
        output.column
    } else {
        let returns = handle
            .plugin
            .function(&call.function)
            .expect("a bound function exists")
            .returns;
        let mut builder = ColumnBuilder::new(&returns, rows);
        let mut start = 0;
        while start < rows {
            let end = (start + call.batch_size).min(rows);
            let chunk: Vec<Column> = args.iter().map(|arg| arg.slice(start, end)).collect();
            let output = engine.call(
                &handle.plugin,
                &handle.context,
                &call.function,
                &chunk,
                end - start,
            )?;
            for row in 0..end - start {
                builder.push_from(&output.column, row);
            }
            record_errors(&mut errors, start, output.errors);
            start = end;
        }
        builder.finish()
    };
    for (row, failure) in errors.iter().enumerate() {
        if failure.is_some() {
            values.set_null(row);
        }
    }
    if errors.iter().all(Option::is_none) {
        errors.clear();
    }
    Ok(Cells { values, errors })
}
