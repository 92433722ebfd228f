//! The table commands: `table`, `insert`, `column`, `recompute`, `update`,
//! `delete`, `select` and `snapshot`.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use reqwest::Method;

use super::Env;
use super::backend::{Backend, value_name};
use super::client::{Client, Payload};
use crate::sandbox::{Column, escape_for_display};
use crate::server::{DEFAULT_SELECT_LIMIT, RowsPage};
use crate::table::input::InputFormat;
use crate::table::values::{cell_json, cell_text};
use crate::table::{
    OnError, OutputColumn, Progress, SelectQuery, Tables, WriteOptions, WriteSummary,
};

#[derive(Debug, Subcommand)]
pub(crate) enum TableCommand {
    /// Create an empty table.
    Create {
        /// The table's name.
        name: String,
        /// A column as `NAME:TYPE`; types are bool, int, float, string, bytes, json,
        /// timestamp and vector(N). Repeat for each column.
        #[arg(long = "column", value_name = "NAME:TYPE")]
        columns: Vec<String>,
    },
    /// List the tables.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a table's columns, computed expressions, row count and version.
    Show {
        /// The table's name.
        name: String,
        /// Print the details as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop a table.
    Drop {
        /// The table's name.
        name: String,
        /// Drop the table's snapshots too.
        #[arg(long)]
        with_snapshots: bool,
    },
    /// List a table's versions.
    History {
        /// The table's name.
        name: String,
        /// Print the versions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Undo the latest version of a table.
    Revert {
        /// The table's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ColumnCommand {
    /// Add a computed column and compute it for the stored rows.
    Add {
        /// The table.
        table: String,
        /// The new column's name.
        name: String,
        /// The expression, such as `text.upper(title)`.
        expression: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Move a computed column to a newer plugin version and compute it again.
    Upgrade {
        /// The table.
        table: String,
        /// The computed column.
        column: String,
        /// The plugin version to move to, as a catalog version or a sha256 prefix;
        /// the latest by default.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Take a snapshot of a table version.
    Create {
        /// The snapshot's name.
        name: String,
        /// The table.
        #[arg(long)]
        table: String,
        /// The version; the current one by default.
        #[arg(long)]
        version: Option<i64>,
    },
    /// List the snapshots.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop a snapshot.
    Drop {
        /// The snapshot's name.
        name: String,
    },
}

/// Options of commands that compute cells.
#[derive(Debug, Clone, Args)]
pub(crate) struct WriteArgs {
    /// What a failed computed cell does: `abort` writes nothing, `ignore` stores
    /// the error in the cell.
    #[arg(long, value_enum, default_value = "abort")]
    pub(super) on_error: OnError,
    /// How many batches run through plugins at once; the number of CPUs by default.
    #[arg(long)]
    pub(super) workers: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

impl WriteArgs {
    pub(super) fn options(&self) -> anyhow::Result<WriteOptions> {
        let mut options = WriteOptions {
            on_error: self.on_error,
            ..WriteOptions::default()
        };
        if let Some(workers) = self.workers {
            if workers == 0 {
                bail!("--workers 0 would compute nothing; give 1 or more");
            }
            options.workers = workers;
        }
        Ok(options)
    }
}

/// Output formats of `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SelectFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON object a row (JSON Lines), as `insert` reads.
    Json,
    /// CSV with a header row, as `insert` reads.
    Csv,
}

/// The arguments of `sandtable insert`.
#[derive(Debug, Args)]
pub(crate) struct InsertArgs {
    /// The table.
    table: String,
    /// The file of rows: JSON Lines, a JSON array or CSV; `-` for standard input.
    file: PathBuf,
    /// The format; by default from the file's extension, or from its first byte.
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    #[command(flatten)]
    write: WriteArgs,
}

/// The arguments of `sandtable select`.
#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// The table or snapshot.
    source: String,
    /// Comma-separated columns, `COLUMN.errortype` and `COLUMN.errormsg` among them.
    #[arg(long)]
    columns: Option<String>,
    /// A predicate, such as `year > 1990 and title is not null`.
    #[arg(long = "where", value_name = "PREDICATE")]
    filter: Option<String>,
    /// The column to order by; insertion order by default.
    #[arg(long)]
    order_by: Option<String>,
    /// Order from the largest value down.
    #[arg(long)]
    desc: bool,
    /// At most this many rows.
    #[arg(long)]
    limit: Option<u64>,
    /// Read this version of the table.
    #[arg(long)]
    version: Option<i64>,
    /// List only the failed cells of this computed column, with their errors.
    #[arg(long, value_name = "COLUMN")]
    errors: Option<String>,
    /// The output format.
    #[arg(long, value_enum, default_value = "table")]
    format: SelectFormat,
}

/// The arguments of `sandtable update`.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The table.
    table: String,
    /// An assignment `COLUMN=VALUE`, such as `year=1999` or `title='Alien'`. Repeat
    /// for each column.
    #[arg(long = "set", value_name = "COLUMN=VALUE", required = true)]
    sets: Vec<String>,
    /// Update only the rows that match; every row by default.
    #[arg(long = "where", value_name = "PREDICATE")]
    filter: Option<String>,
    #[command(flatten)]
    write: WriteArgs,
}

/// The arguments of `sandtable delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The table.
    table: String,
    /// Delete the rows that match.
    #[arg(
        long = "where",
        value_name = "PREDICATE",
        required_unless_present = "all"
    )]
    filter: Option<String>,
    /// Delete every row.
    #[arg(long, conflicts_with = "filter")]
    all: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The arguments of `sandtable recompute`.
#[derive(Debug, Args)]
pub(crate) struct RecomputeArgs {
    /// The table.
    table: String,
    /// The computed column.
    column: String,
    /// Compute again only the cells that failed.
    #[arg(long)]
    errors_only: bool,
    #[command(flatten)]
    write: WriteArgs,
}

pub(super) async fn open(env: &Env) -> anyhow::Result<Tables> {
    let engine = env.engine()?;
    let (catalog, tenant) = env.catalog().await?;
    Ok(Tables::new(catalog, engine, tenant))
}

/// Flushes the call statistics of the engine the tables used.
pub(super) async fn flush(tables: &Tables) -> anyhow::Result<()> {
    tables.catalog().flush_stats(tables.engine()).await?;
    Ok(())
}

pub(crate) async fn run_table(command: TableCommand, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    match command {
        TableCommand::Create { name, columns } => {
            let schema = backend.create_table(&name, &columns).await?;
            println!(
                "created table `{}` with {} columns",
                schema.name,
                schema.columns.len()
            );
        }
        TableCommand::List { json } => {
            let list = backend.list_tables().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!(
                    "no tables; create one with `sandtable table create NAME --column NAME:TYPE`"
                );
            } else {
                let mut out = super::table(["NAME", "COLUMNS", "ROWS", "VERSION", "CREATED"]);
                for t in list {
                    out.add_row([
                        t.name,
                        t.columns.to_string(),
                        t.rows.to_string(),
                        t.version.to_string(),
                        t.created_at,
                    ]);
                }
                println!("{out}");
            }
        }
        TableCommand::Show { name, json } => {
            let details = backend.describe_table(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&details)?);
            } else {
                println!(
                    "table `{}`: {} rows, version {}",
                    details.schema.name, details.rows, details.version
                );
                let mut out = super::table(["COLUMN", "TYPE", "COMPUTED AS"]);
                for column in &details.schema.columns {
                    out.add_row([
                        column.name.clone(),
                        column.data_type.to_string(),
                        column
                            .computed
                            .as_ref()
                            .map(|spec| spec.expression.to_string())
                            .unwrap_or_default(),
                    ]);
                }
                println!("{out}");
                if !details.snapshots.is_empty() {
                    println!("snapshots: {}", details.snapshots.join(", "));
                }
            }
        }
        TableCommand::Drop {
            name,
            with_snapshots,
        } => {
            let snapshots = backend.drop_table(&name, with_snapshots).await?;
            if snapshots.is_empty() {
                println!("dropped table `{name}`");
            } else {
                println!(
                    "dropped table `{name}` and its snapshots {}",
                    snapshots.join(", ")
                );
            }
        }
        TableCommand::History { name, json } => {
            let history = backend.history(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                let mut out = super::table([
                    "VERSION",
                    "TIME",
                    "OPERATION",
                    "ADDED",
                    "CHANGED",
                    "REMOVED",
                    "DETAIL",
                ]);
                for entry in history {
                    let detail = match &entry.detail {
                        Value::Object(map) if map.is_empty() => String::new(),
                        other => other.to_string(),
                    };
                    out.add_row([
                        entry.version.to_string(),
                        entry.created_at,
                        entry.operation,
                        entry.rows_added.to_string(),
                        entry.rows_changed.to_string(),
                        entry.rows_removed.to_string(),
                        detail,
                    ]);
                }
                println!("{out}");
            }
        }
        TableCommand::Revert { name } => {
            let entry = backend.revert(&name).await?;
            println!(
                "reverted version {} ({}) of table `{name}`; it is at version {} again",
                entry.version,
                entry.operation,
                entry.version - 1
            );
        }
    }
    Ok(())
}

pub(crate) async fn run_insert(args: InsertArgs, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    let options = backend.write_options(&args.write)?;
    let summary = match backend {
        Backend::Local(env) => insert_local(&args, env, &options).await?,
        Backend::Remote(client) => insert_remote(&args, client, &options).await?,
    };
    print_summary(
        &summary,
        args.write.json,
        &format!(
            "inserted {}",
            count(summary.changes.rows_added as u64, "row", "rows")
        ),
    );
    Ok(())
}

/// Inserts the rows of `args.file` into the database.
async fn insert_local(
    args: &InsertArgs,
    env: &Env,
    options: &WriteOptions,
) -> anyhow::Result<WriteSummary> {
    let tables = open(env).await?;
    let (reader, length, name): (Box<dyn Read + Send>, Option<u64>, String) =
        if args.file.as_os_str() == "-" {
            (Box::new(std::io::stdin()), None, "standard input".into())
        } else {
            let file = File::open(&args.file)
                .with_context(|| format!("cannot open input file `{}`", args.file.display()))?;
            let length = file.metadata().ok().map(|m| m.len());
            (Box::new(file), length, format!("`{}`", args.file.display()))
        };
    let bar = progress_bar(length);
    let mut reader = BufReader::with_capacity(1 << 16, bar.wrap_read(reader));
    let format = match args.format.or_else(|| InputFormat::from_path(&args.file)) {
        Some(format) => format,
        None => {
            let head = reader.fill_buf().context("cannot read the input")?;
            InputFormat::sniff(head).with_context(|| {
                format!("cannot tell the format of {name}; give --format jsonl, json or csv")
            })?
        }
    };
    let result = tables.insert(&args.table, reader, format, options).await;
    bar.finish_and_clear();
    let summary = result?;
    flush(&tables).await?;
    Ok(summary)
}

/// Streams the rows of `args.file` to the server as the body of one
/// request.
async fn insert_remote(
    args: &InsertArgs,
    client: &Client,
    options: &WriteOptions,
) -> anyhow::Result<WriteSummary> {
    use futures_util::TryStreamExt as _;
    use tokio::io::AsyncBufReadExt as _;

    let (reader, length, name): (
        Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        Option<u64>,
        String,
    ) = if args.file.as_os_str() == "-" {
        (Box::new(tokio::io::stdin()), None, "standard input".into())
    } else {
        let file = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("cannot open input file `{}`", args.file.display()))?;
        let length = file.metadata().await.ok().map(|m| m.len());
        (Box::new(file), length, format!("`{}`", args.file.display()))
    };
    let mut reader = tokio::io::BufReader::with_capacity(1 << 16, reader);
    let format = match args.format.or_else(|| InputFormat::from_path(&args.file)) {
        Some(format) => format,
        None => {
            let head = reader.fill_buf().await.context("cannot read the input")?;
            InputFormat::sniff(head).with_context(|| {
                format!("cannot tell the format of {name}; give --format jsonl, json or csv")
            })?
        }
    };
    let content_type = match format {
        InputFormat::Jsonl => "application/x-ndjson",
        InputFormat::Json => "application/json",
        InputFormat::Csv => "text/csv",
    };
    let bar = progress_bar(length);
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 16)
        .inspect_ok(move |chunk| counted.inc(chunk.len() as u64));
    let query = [
        ("format", value_name(&format)),
        ("on_error", value_name(&options.on_error)),
    ];
    let path = ["v1", "tables", args.table.as_str(), "rows"];
    let payload = Payload::Stream(reqwest::Body::wrap_stream(stream), content_type);
    let result = client.send(Method::POST, &path, &query, payload).await;
    bar.finish_and_clear();
    result
}

pub(crate) async fn run_column(command: ColumnCommand, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    match command {
        ColumnCommand::Add {
            table,
            name,
            expression,
            write,
        } => {
            let options = backend.write_options(&write)?;
            let added = backend
                .add_column(&table, &name, &expression, &options)
                .await?;
            if write.json {
                println!("{}", serde_json::to_string_pretty(&added)?);
            } else {
                println!(
                    "added column `{name}` {} = {} to `{table}`: computed {}{}; version {}",
                    added.data_type,
                    added.expression,
                    count(added.summary.changes.rows_changed as u64, "row", "rows"),
                    failed_cells(added.summary.cell_errors),
                    added.summary.version
                );
            }
        }
        ColumnCommand::Upgrade {
            table,
            column,
            to,
            write,
        } => {
            let options = backend.write_options(&write)?;
            let summary = backend
                .upgrade_column(&table, &column, to.as_deref(), &options)
                .await?;
            // The version's detail names the expressions before and after.
            let moved = backend
                .history(&table)
                .await
                .ok()
                .and_then(|history| history.last().map(|entry| entry.detail.clone()))
                .and_then(|detail| {
                    Some(format!(
                        " from {} to {}",
                        detail["from"].as_str()?,
                        detail["to"].as_str()?
                    ))
                })
                .unwrap_or_default();
            let what = format!(
                "upgraded column `{column}`{moved}: computed {}",
                count(summary.changes.rows_changed as u64, "row", "rows")
            );
            print_summary(&summary, write.json, &what);
        }
    }
    Ok(())
}

pub(crate) async fn run_recompute(args: RecomputeArgs, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    let options = backend.write_options(&args.write)?;
    let summary = backend
        .recompute(&args.table, &args.column, args.errors_only, &options)
        .await?;
    let what = format!(
        "recomputed {}",
        count(summary.changes.rows_changed as u64, "row", "rows")
    );
    print_summary(&summary, args.write.json, &what);
    Ok(())
}

pub(crate) async fn run_update(args: UpdateArgs, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    let options = backend.write_options(&args.write)?;
    let summary = backend
        .update(&args.table, &args.sets, args.filter.as_deref(), &options)
        .await?;
    let what = format!(
        "updated {}",
        count(summary.changes.rows_changed as u64, "row", "rows")
    );
    print_summary(&summary, args.write.json, &what);
    Ok(())
}

pub(crate) async fn run_delete(args: DeleteArgs, env: &Env) -> anyhow::Result<()> {
    let summary = env
        .backend()
        .delete(&args.table, args.filter.as_deref())
        .await?;
    print_summary(
        &summary,
        args.json,
        &format!(
            "deleted {}",
            count(summary.changes.rows_removed as u64, "row", "rows")
        ),
    );
    Ok(())
}

pub(crate) async fn run_snapshot(command: SnapshotCommand, env: &Env) -> anyhow::Result<()> {
    let backend = env.backend();
    match command {
        SnapshotCommand::Create {
            name,
            table,
            version,
        } => {
            let snapshot = backend.create_snapshot(&name, &table, version).await?;
            println!(
                "snapshot `{}` pins version {} of table `{}`",
                snapshot.name, snapshot.version, snapshot.table
            );
        }
        SnapshotCommand::List { json } => {
            let list = backend.list_snapshots().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!(
                    "no snapshots; take one with `sandtable snapshot create NAME --table TABLE`"
                );
            } else {
                let mut out = super::table(["NAME", "TABLE", "VERSION", "CREATED"]);
                for s in list {
                    out.add_row([s.name, s.table, s.version.to_string(), s.created_at]);
                }
                println!("{out}");
            }
        }
        SnapshotCommand::Drop { name } => {
            backend.drop_snapshot(&name).await?;
            println!("dropped snapshot `{name}`");
        }
    }
    Ok(())
}

pub(crate) async fn run_select(args: SelectArgs, env: &Env) -> anyhow::Result<()> {
    let query = SelectQuery {
        columns: args.columns,
        filter: args.filter,
        order_by: args.order_by,
        descending: args.desc,
        limit: args.limit,
        version: args.version,
        errors: args.errors,
    };
    let stdout = std::io::stdout();
    let mut printer = SelectPrinter::new(args.format, stdout.lock());
    match env.backend() {
        Backend::Local(env) => {
            let tables = open(env).await?;
            let mut failed = None;
            let (source, count) = tables
                .select_each(&args.source, &query, |names, columns| {
                    if failed.is_none()
                        && let Err(error) = printer.batch(names, columns)
                    {
                        failed = Some(error);
                    }
                    Ok(())
                })
                .await?;
            if let Some(error) = failed {
                return Err(error);
            }
            printer.finish(&source.columns, count)
        }
        Backend::Remote(client) => {
            let page = select_remote(client, &args.source, &query).await?;
            let columns = super::backend::columns_of(&page.columns, &page.rows)?;
            printer.batch(&page.columns, &columns)?;
            // TODO: stream a select's rows from the server (as JSON Lines),
            // so that one without --limit prints every row, as on the host.
            if page.truncated {
                eprintln!(
                    "note: the server returned its first {DEFAULT_SELECT_LIMIT} rows, its limit \
                     for a select without one; pass --limit N for more"
                );
            }
            printer.finish(&page.columns, page.rows.len() as u64)
        }
    }
}

/// Sends a select to the server.
async fn select_remote(
    client: &Client,
    source: &str,
    query: &SelectQuery,
) -> anyhow::Result<RowsPage> {
    let mut params: Vec<(&str, String)> = Vec::new();
    let texts = [
        ("columns", &query.columns),
        ("where", &query.filter),
        ("order_by", &query.order_by),
        ("errors", &query.errors),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            params.push((key, value.clone()));
        }
    }
    if query.descending {
        params.push(("desc", "true".into()));
    }
    if let Some(limit) = query.limit {
        params.push(("limit", limit.to_string()));
    }
    if let Some(version) = query.version {
        params.push(("version", version.to_string()));
    }
    let path = ["v1", "tables", source, "rows"];
    client
        .send(Method::GET, &path, &params, Payload::Empty)
        .await
}

/// Prints the rows of a select as they arrive, in one of the formats.
enum SelectPrinter<W: Write> {
    /// Rows collected for one aligned table, since column widths depend on
    /// every row.
    Table { out: W, rows: Vec<Vec<String>> },
    /// JSON Lines, written batch by batch.
    Json { out: std::io::BufWriter<W> },
    /// CSV with a header row, written batch by batch.
    Csv {
        writer: Box<csv::Writer<W>>,
        wrote_header: bool,
    },
}

impl<W: Write> SelectPrinter<W> {
    fn new(format: SelectFormat, out: W) -> Self {
        match format {
            SelectFormat::Table => SelectPrinter::Table {
                out,
                rows: Vec::new(),
            },
            SelectFormat::Json => SelectPrinter::Json {
                out: std::io::BufWriter::new(out),
            },
            SelectFormat::Csv => SelectPrinter::Csv {
                writer: Box::new(csv::Writer::from_writer(out)),
                wrote_header: false,
            },
        }
    }

    /// Prints or keeps a batch of rows, one column for each of `names`.
    fn batch(&mut self, names: &[OutputColumn], columns: &[Column]) -> anyhow::Result<()> {
        match self {
            SelectPrinter::Table { rows, .. } => push_display_rows(rows, columns),
            SelectPrinter::Json { out } => write_json_rows(out, names, columns)?,
            SelectPrinter::Csv {
                writer,
                wrote_header,
            } => {
                if !*wrote_header {
                    *wrote_header = true;
                    writer.write_record(names.iter().map(|c| &c.name))?;
                }
                for row in 0..columns.first().map_or(0, Column::len) {
                    let record: Vec<String> = columns
                        .iter()
                        .map(|c| cell_text(c, row).unwrap_or_default())
                        .collect();
                    writer.write_record(&record)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the output of `count` rows of `columns`.
    fn finish(self, columns: &[OutputColumn], count: u64) -> anyhow::Result<()> {
        match self {
            SelectPrinter::Table { mut out, rows } => {
                let mut text = format!("{}\n", display_table(columns, rows));
                text.push_str(&format!(
                    "({count} {})\n",
                    if count == 1 { "row" } else { "rows" }
                ));
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            SelectPrinter::Json { mut out } => out.flush()?,
            SelectPrinter::Csv {
                mut writer,
                wrote_header,
            } => {
                if !wrote_header {
                    writer.write_record(columns.iter().map(|c| &c.name))?;
                }
                writer.flush()?;
            }
        }
        Ok(())
    }
}

/// Appends the rows of `columns` as cell texts for a terminal, which would
/// act on control characters in a value, so they are shown escaped.
pub(super) fn push_display_rows(rows: &mut Vec<Vec<String>>, columns: &[Column]) {
    for row in 0..columns.first().map_or(0, Column::len) {
        rows.push(
            columns
                .iter()
                .map(|c| match cell_text(c, row) {
                    Some(text) => escape_for_display(&text, usize::MAX),
                    None => "null".into(),
                })
                .collect(),
        );
    }
}

/// Lays out rows under the names of `columns`, aligned.
pub(super) fn display_table(
    columns: &[OutputColumn],
    rows: Vec<Vec<String>>,
) -> comfy_table::Table {
    let header: Vec<String> = columns
        .iter()
        .map(|c| escape_for_display(&c.name, usize::MAX))
        .collect();
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table
}

pub(super) fn write_json_rows(
    out: &mut impl Write,
    names: &[OutputColumn],
    columns: &[Column],
) -> std::io::Result<()> {
    for row in 0..columns.first().map_or(0, Column::len) {
        let mut object = serde_json::Map::new();
        for (name, column) in names.iter().zip(columns) {
            object.insert(name.name.clone(), cell_json(column, row));
        }
        serde_json::to_writer(&mut *out, &Value::Object(object))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn print_summary(summary: &WriteSummary, as_json: bool, what: &str) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!(summary)).unwrap_or_default()
        );
    } else {
        println!(
            "{what}{} in `{}`; version {}",
            failed_cells(summary.cell_errors),
            summary.table,
            summary.version
        );
    }
}

/// `1 row`, `2 rows`.
pub(super) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(super) fn failed_cells(count: u64) -> String {
    match count {
        0 => String::new(),
        1 => " (1 cell failed and holds its error)".into(),
        n => format!(" ({n} cells failed and hold their errors)"),
    }
}

/// Creates a progress bar over the bytes of the input, shown on a terminal only.
fn progress_bar(length: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match length {
        Some(length) => ProgressBar::new(length).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}

/// A progress bar over rows, shown on a terminal only.
pub(super) struct RowProgress(pub(super) ProgressBar);

impl RowProgress {
    pub(super) fn new() -> Self {
        if std::io::stderr().is_terminal() {
            RowProgress(
                ProgressBar::new(0).with_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
            )
        } else {
            RowProgress(ProgressBar::hidden())
        }
    }
}

impl Progress for RowProgress {
    fn start(&self, total_rows: u64) {
        self.0.set_length(total_rows);
    }

    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }
}
