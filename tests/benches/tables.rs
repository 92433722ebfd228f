//! The cost of tables, printed as tables: `Tables::insert` against a raw
//! `COPY` of the same rows, and computed-column backfills with one and two
//! workers.
//!
//! Run with `cargo bench -p sandtable-tests --bench tables`; naming sections
//! (`-- insert`, `-- compute`) runs only those. `SANDTABLE_BENCH_ROWS` sets
//! the row count (default 1,000,000) and `SANDTABLE_BENCH_HEAVY_ROWS` the
//! rows of the CPU-heavy backfill (default 250,000, at most the row count).
//! Every figure is measured in the same run as the figure it is compared
//! with, since the machines are shared and noisy: a ratio is more telling
//! than a rate. The load average, and the cores that two spinning threads
//! get, are printed at the start and the end.
//! `RUST_BACKTRACE` is removed first, because with it wasmtime captures a
//! backtrace on every error.

use std::io::{BufReader, BufWriter, Cursor, Write as _};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sandtable::catalog::{Catalog, DEFAULT_TENANT};
use sandtable::sandbox::{DataType, EngineConfig, UdfEngine};
use sandtable::table::input::{InputFormat, InputSchema, read_batches};
use sandtable::table::{NewColumn, OnError, Tables, WriteOptions};
use sqlx::{AssertSqlSafe, PgPool};

const DEFAULT_ROWS: usize = 1_000_000;
const DEFAULT_HEAVY_ROWS: usize = 250_000;
/// The rounds of `arith.mix` in the CPU-heavy backfill. This bench measured
/// about 33 µs a row in the guest for them, on a shared machine of 2 cores.
const MIX_ROUNDS: i64 = 8_000;
/// The batch size of `Tables::insert`'s reader (`INSERT_BATCH_ROWS` in
/// `host/src/table/insert.rs`, which is not exported).
const INSERT_BATCH_ROWS: usize = 4096;
/// Buffer size of the file readers, in bytes.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// The benchmark's sections, run in this order.
const SECTIONS: [&str; 2] = ["insert", "compute"];

use sandtable_tests::machine::{chosen_sections, free_cores, load_average, process_cpu_time};

fn main() -> anyhow::Result<()> {
    // SAFETY: the benchmark is single-threaded at this point.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let chosen = chosen_sections(&SECTIONS)?;
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|c| c == section);
    let rows = env_count("SANDTABLE_BENCH_ROWS", DEFAULT_ROWS)?;
    let heavy_rows = env_count("SANDTABLE_BENCH_HEAVY_ROWS", DEFAULT_HEAVY_ROWS)?.min(rows);

    println!("load average at start: {}", load_average());
    println!("cores free at start: {:.2}", free_cores()?);
    println!(
        "{} cores available, {rows} rows, {heavy_rows} rows for the CPU-heavy backfill\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let bench = Bench::start(rows).await?;
        if runs("insert") {
            bench.insert().await?;
        }
        if runs("compute") {
            bench.compute(heavy_rows).await?;
        }
        anyhow::Ok(())
    })?;
    println!("load average at end: {}", load_average());
    println!("cores free at end: {:.2}", free_cores()?);
    Ok(())
}

/// Returns the count in environment variable `name`, or `default` when it
/// is unset.
fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => {
            let count: usize = text.replace('_', "").parse().map_err(|_| {
                anyhow::anyhow!("invalid `{name}={text}`: expected a row count such as 100000")
            })?;
            anyhow::ensure!(count > 0, "invalid `{name}=0`: give at least 1 row");
            Ok(count)
        }
    }
}

/// Returns the name of row `i`: 10 to 30 characters of words, some not ASCII.
fn row_name(i: usize) -> String {
    const WORDS: [&str; 8] = [
        "sandbox", "Wörter", "column", "batch", "élan", "fuel", "tenant", "table",
    ];
    let mut name = WORDS[i % WORDS.len()].to_owned();
    let mut j = i / WORDS.len();
    let length = 10 + (i * 7) % 21;
    while name.chars().count() < length {
        name.push(' ');
        name.push_str(WORDS[j % WORDS.len()]);
        j = j / 2 + 3;
    }
    name.chars()
        .take(length)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Returns the score of row `i`, with up to 17 significant digits.
fn row_score(i: usize) -> f64 {
    (i % 100_003) as f64 / 7.0
}

/// Writes `rows` rows as JSON Lines to `jsonl` and as `COPY` text to `copy`.
fn write_inputs(rows: usize, jsonl: &Path, copy: &Path) -> anyhow::Result<()> {
    let mut jsonl = BufWriter::new(std::fs::File::create(jsonl)?);
    let mut copy = BufWriter::new(std::fs::File::create(copy)?);
    for i in 0..rows {
        let name = row_name(i);
        let score = row_score(i);
        let line = serde_json::json!({ "id": i, "score": score, "name": name });
        serde_json::to_writer(&mut jsonl, &line)?;
        jsonl.write_all(b"\n")?;
        writeln!(copy, "{i}\t{score}\t{name}")?;
    }
    jsonl.flush()?;
    copy.flush()?;
    Ok(())
}

/// Returns the first `rows` lines of a JSON Lines file.
fn head_lines(path: &Path, rows: usize) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read(path)?;
    let end = text
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(rows - 1)
        .map_or(text.len(), |(i, _)| i + 1);
    Ok(text[..end].to_vec())
}

fn table_columns() -> Vec<NewColumn> {
    [
        ("id", DataType::Int),
        ("score", DataType::Float),
        ("name", DataType::String),
    ]
    .into_iter()
    .map(|(name, data_type)| NewColumn {
        name: name.into(),
        data_type,
    })
    .collect()
}

fn rate(rows: usize, time: Duration) -> f64 {
    rows as f64 / time.as_secs_f64()
}

struct Bench {
    /// Keeps the database until the end.
    _db: sandtable_tests::TestDb,
    pool: PgPool,
    engine: UdfEngine,
    tables: Tables,
    rows: usize,
    _dir: tempfile::TempDir,
    jsonl: PathBuf,
    copy: PathBuf,
}

impl Bench {
    /// Creates a database with the `text` and `arith` plugins, and the input
    /// files of `rows` rows.
    async fn start(rows: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let jsonl = dir.path().join("rows.jsonl");
        let copy = dir.path().join("rows.copy");
        write_inputs(rows, &jsonl, &copy)?;

        let db = sandtable_tests::fresh_database().await?;
        let pool = db.pool().clone();
        let catalog = Catalog::open(pool.clone()).await?;
        let tenant = catalog.tenant(DEFAULT_TENANT).await?;
        let engine = UdfEngine::new(EngineConfig::default())?;
        for name in ["text", "arith"] {
            let bytes = sandtable_tests::tables::plugin_bytes(&format!("{name}.wasm"));
            let plugin = engine.load(&bytes)?;
            catalog.add_plugin(&tenant, name, &bytes, &plugin).await?;
        }
        let tables = Tables::new(catalog, engine.clone(), tenant);
        Ok(Bench {
            _db: db,
            pool,
            engine,
            tables,
            rows,
            _dir: dir,
            jsonl,
            copy,
        })
    }

    /// Writes dirty buffers out, so that one run's checkpoint does not land
    /// in the next run's time. A server that rejects `CHECKPOINT` (it needs
    /// superuser or `pg_checkpoint`) is reported once and left as it is.
    async fn checkpoint(&self) {
        static TOLD: std::sync::Once = std::sync::Once::new();
        if let Err(error) = sqlx::query("CHECKPOINT").execute(&self.pool).await {
            TOLD.call_once(|| eprintln!("CHECKPOINT failed, runs may overlap: {error}"));
        }
    }

    async fn insert_jsonl(&self, table: &str) -> anyhow::Result<Duration> {
        let file = std::fs::File::open(&self.jsonl)?;
        let reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let started = Instant::now();
        let summary = self
            .tables
            .insert(table, reader, InputFormat::Jsonl, &WriteOptions::default())
            .await
            .with_context(|| format!("failed to insert into `{table}`"))?;
        let time = started.elapsed();
        anyhow::ensure!(
            summary.changes.rows_added == self.rows as i64,
            "`{table}` got {} rows, expected {}",
            summary.changes.rows_added,
            self.rows
        );
        Ok(time)
    }

    async fn copy_raw(&self, table: &str) -> anyhow::Result<Duration> {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE {table} (id bigint, score double precision, name text)"
        )))
        .execute(&self.pool)
        .await?;
        let mut conn = self.pool.acquire().await?;
        let file = tokio::fs::File::open(&self.copy).await?;
        let reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let started = Instant::now();
        let mut copy = conn
            .copy_in_raw(&format!("COPY {table} (id, score, name) FROM STDIN"))
            .await?;
        copy.read_from(reader).await?;
        let copied = copy.finish().await?;
        let time = started.elapsed();
        anyhow::ensure!(
            copied == self.rows as u64,
            "COPY into `{table}` took {copied} rows, expected {}",
            self.rows
        );
        Ok(time)
    }

    /// Reads and checks the JSON Lines file as `Tables::insert` does, and
    /// drops the batches.
    fn read_only(&self) -> anyhow::Result<Duration> {
        let schema = InputSchema {
            table: "read_only".into(),
            columns: table_columns()
                .into_iter()
                .map(|c| (c.name, c.data_type))
                .collect(),
            computed: Vec::new(),
        };
        let file = std::fs::File::open(&self.jsonl)?;
        let reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let started = Instant::now();
        let rows = read_batches(
            reader,
            InputFormat::Jsonl,
            &schema,
            INSERT_BATCH_ROWS,
            |batch| {
                drop(batch);
                ControlFlow::Continue(())
            },
        )?;
        let time = started.elapsed();
        anyhow::ensure!(
            rows == self.rows as u64,
            "read {rows} rows, expected {}",
            self.rows
        );
        Ok(time)
    }

    async fn insert(&self) -> anyhow::Result<()> {
        println!(
            "Insert of {} rows (id int, score float, name string) from JSON Lines",
            self.rows
        );
        println!("against a raw COPY of the same rows in text format into a plain table");
        println!("(each run twice, alternating; the best run of each counts)\n");
        let mut best_insert = Duration::MAX;
        let mut best_copy = Duration::MAX;
        let mut best_read = Duration::MAX;
        println!(
            "{:<28} {:>4} {:>9} {:>12}",
            "path", "run", "seconds", "rows/s"
        );
        for run in 1..=2 {
            let table = format!("insert_{run}");
            self.tables.create_table(&table, &table_columns()).await?;
            self.checkpoint().await;
            let time = self.insert_jsonl(&table).await?;
            best_insert = best_insert.min(time);
            self.print_run("Tables::insert", run, time);

            self.checkpoint().await;
            let time = self.copy_raw(&format!("copy_{run}")).await?;
            best_copy = best_copy.min(time);
            self.print_run("COPY (text format)", run, time);

            let time = self.read_only()?;
            best_read = best_read.min(time);
            self.print_run("read_batches, no database", run, time);
        }
        println!();
        let insert_rate = rate(self.rows, best_insert);
        let copy_rate = rate(self.rows, best_copy);
        println!(
            "best: Tables::insert {insert_rate:.0} rows/s, COPY {copy_rate:.0} rows/s, \
             insert / COPY = {:.0}% (target: at least 70%)",
            100.0 * insert_rate / copy_rate
        );
        println!(
            "reading and checking alone: {:.0} rows/s, {:.0}% of the insert's time \
             (the insert reads on a thread of its own, beside the COPY)\n",
            rate(self.rows, best_read),
            100.0 * best_read.as_secs_f64() / best_insert.as_secs_f64()
        );
        Ok(())
    }

    fn print_run(&self, path: &str, run: usize, time: Duration) {
        println!(
            "{path:<28} {run:>4} {:>9.2} {:>12.0}",
            time.as_secs_f64(),
            rate(self.rows, time)
        );
    }

    /// Creates `table` and inserts `input`, untimed.
    async fn fill(&self, table: &str, input: Vec<u8>) -> anyhow::Result<()> {
        self.tables.create_table(table, &table_columns()).await?;
        self.tables
            .insert(
                table,
                Cursor::new(input),
                InputFormat::Jsonl,
                &WriteOptions::default(),
            )
            .await
            .with_context(|| format!("failed to insert into `{table}`"))?;
        Ok(())
    }

    /// Adds a computed column to `table` with `workers` workers and
    /// measures it.
    async fn backfill(
        &self,
        table: &str,
        expression: &str,
        workers: usize,
    ) -> anyhow::Result<Backfill> {
        let options = WriteOptions {
            on_error: OnError::Abort,
            workers,
        };
        self.checkpoint().await;
        self.engine.take_stats();
        let cpu_before = process_cpu_time()?;
        let started = Instant::now();
        let added = self
            .tables
            .add_computed_column(table, "computed", expression, &options, &())
            .await
            .with_context(|| format!("failed to add `{expression}` to `{table}`"))?;
        let wall = started.elapsed();
        let cpu = process_cpu_time()?.saturating_sub(cpu_before);
        let stats = self.engine.take_stats();
        let guest_us: u64 = stats.iter().map(|(_, s)| s.guest_us).sum();
        let guest_rows: u64 = stats.iter().map(|(_, s)| s.rows).sum();
        Ok(Backfill {
            rows: added.summary.changes.rows_changed as usize,
            wall,
            cpu,
            guest: Duration::from_micros(guest_us),
            guest_rows,
        })
    }

    async fn compute(&self, heavy_rows: usize) -> anyhow::Result<()> {
        println!("Backfill of a computed column by add_computed_column, with 1 and 2 workers");
        println!("(each twice, alternating; the best run of each counts.");
        println!(" cpu = CPU time of this process, Postgres not included; cores = cpu / wall;");
        println!(" guest = time in the guest summed over calls, from the engine's stats;");
        println!(" with 2 workers, cpu and guest may exceed the wall time)");
        println!("cores free before the backfills: {:.2}\n", free_cores()?);
        let all = std::fs::read(&self.jsonl)?;
        let heavy = head_lines(&self.jsonl, heavy_rows)?;

        let cases = [
            ("text.upper(name)".to_owned(), "upper", all),
            (format!("arith.mix(id, {MIX_ROUNDS})"), "mix", heavy),
        ];
        print_backfill_header();

        let mut speedups = Vec::new();
        for (expression, label, input) in cases {
            let mut best = [Duration::MAX; 2];
            for run in 1..=2 {
                for (slot, workers) in [1, 2].into_iter().enumerate() {
                    let table = format!("{label}_{workers}_{run}");
                    self.fill(&table, input.clone()).await?;
                    let figures = self.backfill(&table, &expression, workers).await?;
                    self.tables.drop_table(&table, false).await?;
                    best[slot] = best[slot].min(figures.wall);
                    print_backfill(&expression, workers, run, &figures);
                }
            }
            speedups.push((expression, best[0].as_secs_f64() / best[1].as_secs_f64()));
        }

        println!();
        for (expression, speedup) in speedups {
            println!("{expression}: speedup from 1 to 2 workers {speedup:.2}x (best runs)");
        }
        println!("(guest% = guest s / wall s; us/row = guest time per row in microseconds;");
        println!(" target: a speedup of at least 1.6x for arith.mix)\n");
        Ok(())
    }
}

fn print_backfill_header() {
    println!(
        "{:<20} {:>7} {:>3} {:>8} {:>7} {:>9} {:>6} {:>5} {:>7} {:>6} {:>7}",
        "expression",
        "workers",
        "run",
        "rows",
        "wall s",
        "rows/s",
        "cpu s",
        "cores",
        "guest s",
        "guest%",
        "us/row"
    );
}

fn print_backfill(expression: &str, workers: usize, run: usize, figures: &Backfill) {
    let wall = figures.wall.as_secs_f64();
    let cpu = figures.cpu.as_secs_f64();
    let guest = figures.guest.as_secs_f64();
    println!(
        "{expression:<20} {workers:>7} {run:>3} {:>8} {wall:>7.2} {:>9.0} {cpu:>6.2} {:>5.2} \
         {guest:>7.2} {:>5.0}% {:>7.1}",
        figures.rows,
        rate(figures.rows, figures.wall),
        cpu / wall,
        100.0 * guest / wall,
        guest * 1e6 / figures.guest_rows.max(1) as f64,
    );
}

/// One backfill's figures.
struct Backfill {
    rows: usize,
    wall: Duration,
    /// The CPU time of this process during the backfill.
    cpu: Duration,
    /// The time in the guest, summed over calls.
    guest: Duration,
    /// The rows passed to the guest.
    guest_rows: u64,
}
