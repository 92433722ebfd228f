//! The embedding index commands: `index add|list|drop` and `search`.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Env;
use super::table::{
    SelectFormat, WriteArgs, count, display_table, failed_cells, push_display_rows, write_json_rows,
};
use crate::table::values::cell_text;
use crate::table::{MAX_SEARCH_ROWS, Metric, SearchInput, SearchQuery};

#[derive(Debug, Subcommand)]
pub(crate) enum IndexCommand {
    /// Add an embedding index: a vector column computed from COLUMN, and an
    /// HNSW index over it.
    Add {
        /// The table.
        table: String,
        /// The column to embed.
        column: String,
        /// The function that embeds it, as PLUGIN.FUNCTION or PLUGIN@VERSION.FUNCTION.
        #[arg(long, value_name = "PLUGIN.FUNCTION")]
        embedding: String,
        /// The distance to order by.
        #[arg(long, value_enum, default_value = "cosine")]
        metric: Metric,
        /// The index's name, which its vector column takes too; COLUMN_FUNCTION by default.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// List the indexes of a table, or of every table.
    List {
        /// The table; every table by default.
        table: Option<String>,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop an index and its vector column, as a new version.
    Drop {
        /// The table.
        table: String,
        /// The index.
        name: String,
    },
}

/// The arguments of `search`.
#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// The table or snapshot.
    source: String,
    /// The text to search for, embedded by the index's function.
    #[arg(conflicts_with = "vector")]
    query: Option<String>,
    /// Search by this vector, a JSON array of numbers, instead of text.
    #[arg(long, value_name = "JSON")]
    vector: Option<String>,
    /// The index; the table's only index by default.
    #[arg(long)]
    index: Option<String>,
    /// How many rows to return.
    #[arg(short, long, default_value_t = 10)]
    k: u64,
    /// A predicate the rows must match, as in `select`.
    #[arg(long = "where", value_name = "PREDICATE")]
    filter: Option<String>,
    /// The columns to print, comma-separated; every column but the vector
    /// columns by default.
    #[arg(long)]
    columns: Option<String>,
    /// Search this version of a table.
    #[arg(long)]
    version: Option<i64>,
    /// The output format.
    #[arg(long, value_enum, default_value = "table")]
    format: SelectFormat,
    /// Print the query plan, with the time each step took, instead of rows.
    #[arg(long)]
    explain: bool,
}

pub(crate) async fn run_index(command: IndexCommand, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    match command {
        IndexCommand::Add {
            table,
            column,
            embedding,
            metric,
            name,
            write,
        } => {
            let options = backend.write_options(&write)?;
            let added = backend
                .add_index(
                    &table,
                    &column,
                    &embedding,
                    metric,
                    name.as_deref(),
                    &options,
                )
                .await?;
            if write.json {
                println!("{}", serde_json::to_string_pretty(&added)?);
            } else {
                println!(
                    "added index `{}` ({metric}) on `{table}`: column `{}` {} = {}, computed {}{}, \
                     graph built in {:.1} s; version {}",
                    added.index,
                    added.index,
                    added.column.data_type,
                    added.column.expression,
                    count(
                        added.column.summary.changes.rows_changed as u64,
                        "row",
                        "rows"
                    ),
                    failed_cells(added.column.summary.cell_errors),
                    added.column.index_build_ms.unwrap_or_default() as f64 / 1000.0,
                    added.column.summary.version
                );
            }
        }
        IndexCommand::List { table, json } => {
            let indexes = backend.list_indexes(table.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&indexes)?);
            } else {
                let mut out = super::table(["TABLE", "INDEX", "METRIC", "TYPE", "EXPRESSION"]);
                for index in &indexes {
                    out.add_row([
                        index.table.clone(),
                        index.name.clone(),
                        index.metric.to_string(),
                        index.data_type.clone(),
                        index.expression.clone(),
                    ]);
                }
                println!("{out}");
            }
        }
        IndexCommand::Drop { table, name } => {
            let summary = backend.drop_index(&table, &name).await?;
            println!(
                "dropped index `{name}` and its column from `{table}`; version {}",
                summary.version
            );
        }
    }
    Ok(())
}

pub(crate) async fn run_search(args: SearchArgs, env: &Env) -> anyhow::Result<()> {
    let input = match (args.query, args.vector) {
        (_, Some(text)) => SearchInput::Vector(parse_vector(&text)?),
        (Some(query), None) => SearchInput::Text(query),
        (None, None) => anyhow::bail!(
            "give the text to search for, such as `sandtable search {} \"some text\"`, or a \
             vector with --vector JSON",
            args.source
        ),
    };
    if args.k == 0 || args.k > MAX_SEARCH_ROWS {
        anyhow::bail!(
            "-k {} is out of range; give 1 to {MAX_SEARCH_ROWS} rows",
            args.k
        );
    }
    let query = SearchQuery {
        index: args.index,
        input,
        k: args.k,
        filter: args.filter,
        columns: args.columns,
        version: args.version,
        explain: args.explain,
    };
    let result = env.backend().search(&args.source, &query).await?;
    if let Some(plan) = &result.plan {
        println!("{plan}");
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        SelectFormat::Table => {
            let mut rows = Vec::new();
            push_display_rows(&mut rows, &result.columns);
            // Scores to four places are enough to read an order.
            if let Some(crate::sandbox::types::Values::Float(scores)) =
                result.columns.first().map(|c| &c.values)
            {
                for (row, score) in rows.iter_mut().zip(scores) {
                    row[0] = format!("{score:.4}");
                }
            }
            writeln!(out, "{}", display_table(&result.source.columns, rows))?;
            let embedded = result
                .embed_us
                .map(|us| format!(", query embedded in {:.1} ms", us as f64 / 1000.0))
                .unwrap_or_default();
            let source = match &result.source.snapshot {
                Some(snapshot) => format!(
                    "snapshot `{snapshot}` (version {} of `{}`)",
                    result.source.version, result.source.table
                ),
                None => format!(
                    "`{}` version {}",
                    result.source.table, result.source.version
                ),
            };
            let found = result.columns.first().map_or(0, |c| c.len()) as u64;
            writeln!(
                out,
                "({} from index `{}` of {source}{embedded})",
                count(found, "row", "rows"),
                result.index
            )?;
        }
        SelectFormat::Json => write_json_rows(&mut out, &result.source.columns, &result.columns)?,
        SelectFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(result.source.columns.iter().map(|c| &c.name))?;
            for row in 0..result.columns.first().map_or(0, |c| c.len()) {
                let record: Vec<String> = result
                    .columns
                    .iter()
                    .map(|c| cell_text(c, row).unwrap_or_default())
                    .collect();
                writer.write_record(&record)?;
            }
            writer.flush()?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Parses `--vector`, a JSON array of numbers.
fn parse_vector(text: &str) -> anyhow::Result<Vec<f32>> {
    let values: Vec<f64> = serde_json::from_str(text).with_context(|| {
        let shown: String = text.chars().take(60).collect();
        let more = if shown.len() < text.len() { "..." } else { "" };
        format!("--vector `{shown}{more}` is not a JSON array of numbers, such as [0.1, 0.2]")
    })?;
    Ok(values.into_iter().map(|v| v as f32).collect())
}
