//! Embedding indexes, printed as tables: the HNSW build of `index add` over
//! the fortunes corpus against a raw `CREATE INDEX` on the same vectors, and
//! the latency of `Tables::search` by vector against the same SQL run
//! directly, with the query embedding timed on its own.
//!
//! Run with `cargo bench -p sandtable-tests --bench indexes`; naming
//! sections (`-- build`, `-- search`) runs only those. The vectors come from
//! `hash-embed.embed384`, 384 dimensions as MiniLM's, since embedding the
//! whole corpus with MiniLM takes half an hour on 2 cores; the MiniLM query
//! embedding is timed when `target/models/all-minilm-l6-v2` exists.

use std::io::Cursor;
use std::time::{Duration, Instant};

use sandtable::fortunes::{DEFAULT_DIR, jsonl, read_corpus};
use sandtable::sandbox::types::Values;
use sandtable::sandbox::{Column, DataType, DirectoryGrant};
use sandtable::table::input::InputFormat;
use sandtable::table::{
    Metric, NewColumn, OnError, SearchInput, SearchQuery, SelectQuery, Tables, WriteOptions,
};
use sandtable_tests::machine::{Figures, chosen_sections, free_cores, load_average};
use sandtable_tests::tables::{add_plugin, load_plugin, setup};
use sandtable_tests::workspace_root;
use sqlx::Row;

/// The benchmark's sections, run in this order.
const SECTIONS: [&str; 2] = ["build", "search"];

/// Searches timed in each round of the search section.
const SEARCHES: usize = 300;

/// Rounds of each comparison, alternating which side goes first.
const ROUNDS: usize = 2;

fn main() -> anyhow::Result<()> {
    // SAFETY: the benchmark is single-threaded at this point.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let chosen = chosen_sections(&SECTIONS)?;
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|c| c == section);
    println!("load average at start: {}", load_average());
    println!("cores free at start: {:.2}\n", free_cores()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
        let fortunes = read_corpus(std::path::Path::new(DEFAULT_DIR))?;
        let columns = ["text:string", "source:string", "length:int"]
            .iter()
            .map(|spec| NewColumn::parse(spec))
            .collect::<Result<Vec<_>, _>>()?;
        tables.create_table("fortunes", &columns).await?;
        let options = WriteOptions {
            on_error: OnError::Abort,
            workers: 2,
        };
        tables
            .insert(
                "fortunes",
                Cursor::new(jsonl(&fortunes)),
                InputFormat::Jsonl,
                &options,
            )
            .await?;
        let started = Instant::now();
        let added = tables
            .add_index(
                "fortunes",
                "text",
                "hash-embed.embed384",
                Metric::Cosine,
                Some("v"),
                &options,
                &(),
            )
            .await?;
        println!(
            "index add over {} fortunes: {:.2} s in all, {:.2} s of it the HNSW build\n",
            fortunes.len(),
            started.elapsed().as_secs_f64(),
            added.column.index_build_ms.unwrap_or_default() as f64 / 1000.0
        );
        if runs("build") {
            build(&tables).await?;
        }
        if runs("search") {
            search(&tables).await?;
            query_embedding(&tables).await?;
        }
        anyhow::Ok(())
    })?;
    println!("load average at end: {}", load_average());
    println!("cores free at end: {:.2}", free_cores()?);
    Ok(())
}

/// Looks up the Postgres names of the table and of the index's vector column.
async fn sql_names(tables: &Tables) -> anyhow::Result<(String, String)> {
    let schema = tables.schema("fortunes").await?;
    let column = schema.column("v")?;
    let table: String = sqlx::query_scalar(
        "SELECT format('%I.t_%s', t.schema_name, $2::bigint) FROM sandtable.tenants t \
         WHERE t.name = $1",
    )
    .bind(&tables.tenant().name)
    .bind(schema.id)
    .fetch_one(tables.catalog().pool())
    .await?;
    Ok((table, format!("c_{}", column.id)))
}

/// Times the HNSW build of `index add` (a drop and a revert rebuild it with
/// the same settings) against a raw `CREATE INDEX` over a plain copy of the
/// vectors, at Postgres's default `maintenance_work_mem` and at 1 GB.
async fn build(tables: &Tables) -> anyhow::Result<()> {
    let (table, column) = sql_names(tables).await?;
    let pool = tables.catalog().pool();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE bench_raw AS SELECT {column} AS v FROM {table} WHERE {column} IS NOT NULL"
    )))
    .execute(pool)
    .await?;
    let raw = |memory: Option<&'static str>| async move {
        let mut tx = pool.begin().await?;
        if let Some(memory) = memory {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SET LOCAL maintenance_work_mem = '{memory}'"
            )))
            .execute(&mut *tx)
            .await?;
        }
        let started = Instant::now();
        sqlx::query("CREATE INDEX bench_raw_v ON bench_raw USING hnsw (v vector_cosine_ops)")
            .execute(&mut *tx)
            .await?;
        let elapsed = started.elapsed();
        tx.rollback().await?;
        anyhow::Ok(elapsed)
    };
    let sandtable = || async {
        // A revert of the drop builds the graph again, as `index add` does.
        tables.drop_index("fortunes", "v").await?;
        let started = Instant::now();
        tables.revert("fortunes").await?;
        anyhow::Ok(started.elapsed())
    };
    println!(
        "HNSW build over the same {} vectors of 384 dimensions:",
        count(pool).await?
    );
    println!("{:<44} {:>10}", "build", "seconds");
    for round in 0..ROUNDS {
        let mut results: Vec<(&str, Duration)> = Vec::new();
        if round % 2 == 0 {
            results.push(("sandtable (revert of a drop, 1 GB)", sandtable().await?));
            results.push(("raw CREATE INDEX, 1 GB", raw(Some("1GB")).await?));
            results.push(("raw CREATE INDEX, default memory", raw(None).await?));
        } else {
            results.push(("raw CREATE INDEX, default memory", raw(None).await?));
            results.push(("raw CREATE INDEX, 1 GB", raw(Some("1GB")).await?));
            results.push(("sandtable (revert of a drop, 1 GB)", sandtable().await?));
        }
        for (name, elapsed) in results {
            println!("{:<44} {:>10.2}", name, elapsed.as_secs_f64());
        }
    }
    let default_memory: String = sqlx::query_scalar("SHOW maintenance_work_mem")
        .fetch_one(pool)
        .await?;
    println!("(the server's default maintenance_work_mem is {default_memory})\n");
    Ok(())
}

async fn count(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM bench_raw")
        .fetch_one(pool)
        .await?)
}

/// Query vectors: stored vectors with a little noise, normalized.
async fn query_vectors(tables: &Tables) -> anyhow::Result<Vec<Vec<f32>>> {
    let query = SelectQuery {
        columns: Some("v".into()),
        limit: Some(SEARCHES as u64),
        ..SelectQuery::default()
    };
    let (_, columns) = tables.select("fortunes", &query).await?;
    let Values::Vector(vectors) = &columns[0].values else {
        anyhow::bail!("v is not a vector column");
    };
    let dimension = vectors.dimension as usize;
    Ok(vectors
        .data
        .chunks_exact(dimension)
        .enumerate()
        .map(|(i, vector)| {
            let noisy: Vec<f32> = vector
                .iter()
                .enumerate()
                .map(|(j, v)| v + if (i + j) % 7 == 0 { 0.05 } else { 0.0 })
                .collect();
            let norm = noisy.iter().map(|v| v * v).sum::<f32>().sqrt();
            noisy.iter().map(|v| v / norm).collect()
        })
        .collect())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}

/// Times `Tables::search` by vector, k = 10, against the statement it runs
/// less its check of the version, sent directly through the host's pool and
/// on a connection taken from it, which have the same HNSW settings.
async fn search(tables: &Tables) -> anyhow::Result<()> {
    let (table, column) = sql_names(tables).await?;
    let vectors = query_vectors(tables).await?;
    let pool = tables.catalog().pool();
    let version: i64 = tables.describe_table("fortunes").await?.version;
    let write_id: i64 = sqlx::query_scalar(
        "SELECT v.write_id FROM sandtable.table_versions v JOIN sandtable.tables t \
         ON t.id = v.table_id WHERE t.name = 'fortunes' AND v.version = $1",
    )
    .bind(version)
    .fetch_one(pool)
    .await?;
    let schema = tables.schema("fortunes").await?;
    let select: Vec<String> = schema
        .columns
        .iter()
        .filter(|c| c.name != "v")
        .enumerate()
        .map(|(i, c)| format!("c_{} AS _o{i}", c.id))
        .collect();
    let outer: Vec<String> = (0..select.len()).map(|i| format!("_o{i}")).collect();
    let sql = format!(
        "WITH nearest AS MATERIALIZED (SELECT {column} <=> $3 AS _distance, {} FROM {table} \
         WHERE _v_min <= $1 AND _v_max > $1 AND {column} IS NOT NULL \
         ORDER BY {column} <=> $3 LIMIT $2) \
         SELECT (1 - _distance)::float8, {} FROM nearest ORDER BY _distance",
        select.join(", "),
        outer.join(", ")
    );
    // Each query runs through `Tables::search`, then as the statement
    // through the pool, which tests each connection it hands out with a
    // round trip, and on a held connection, in turns, so that the three
    // paths share the machine's load.
    let mut connection = pool.acquire().await?;
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..=ROUNDS {
        for (turn, vector) in vectors.iter().enumerate() {
            for step in 0..3 {
                let path = (turn + step) % 3;
                let started = Instant::now();
                let rows = match path {
                    0 => {
                        let query = SearchQuery {
                            index: None,
                            input: SearchInput::Vector(vector.clone()),
                            k: 10,
                            filter: None,
                            columns: None,
                            version: None,
                            explain: false,
                        };
                        tables.search("fortunes", &query).await?.columns[0].len()
                    }
                    _ => {
                        let query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                            .bind(write_id)
                            .bind(10i64)
                            .bind(pgvector::Vector::from(vector.clone()));
                        let rows = if path == 1 {
                            query.fetch_all(pool).await?
                        } else {
                            query.fetch_all(&mut *connection).await?
                        };
                        let _: f64 = rows[0].try_get(0)?;
                        rows.len()
                    }
                };
                // The first round warms the caches of every path.
                if round > 0 {
                    times[path].push(started.elapsed());
                }
                assert_eq!(rows, 10);
            }
        }
    }
    println!(
        "search by vector, k = 10, {} queries on each path, in turns:",
        times[0].len()
    );
    let mut table = Figures::new(["path", "p50 ms", "p95 ms"]);
    for (path, name) in [
        "Tables::search",
        "the SQL through the pool",
        "the SQL on a held connection",
    ]
    .into_iter()
    .enumerate()
    {
        times[path].sort();
        table.add_row([
            name.to_owned(),
            format!("{:.3}", percentile(&times[path], 50.0)),
            format!("{:.3}", percentile(&times[path], 95.0)),
        ]);
    }
    println!("{table}");
    let ours = percentile(&times[0], 50.0);
    println!(
        "p50 ratio, search / the SQL through the pool: {:.2}; / on a held connection: {:.2}\n",
        ours / percentile(&times[1], 50.0),
        ours / percentile(&times[2], 50.0)
    );
    Ok(())
}

/// Times the embedding of a one-row query by MiniLM through the sandbox,
/// on a warm instance, when the model is present.
async fn query_embedding(tables: &Tables) -> anyhow::Result<()> {
    let model = workspace_root().join("target/models/all-minilm-l6-v2");
    if !model.join("model.safetensors").exists() {
        println!("query embedding: skipped, {} has no model", model.display());
        return Ok(());
    }
    add_plugin(tables, "minilm", "embed_minilm.wasm").await?;
    tables
        .catalog()
        .grant_directory(
            tables.tenant(),
            "minilm",
            &DirectoryGrant {
                guest_path: "/model".into(),
                host_path: model,
            },
        )
        .await?;
    let (plugin, context) = load_plugin(tables, "minilm").await?;
    let engine = tables.engine().clone();
    let times = tokio::task::spawn_blocking(move || {
        let query = Column::from_json(
            &DataType::String,
            &[serde_json::json!("a computer program full of bugs")],
        )
        .expect("a string fits");
        let mut times = Vec::new();
        for _ in 0..40 {
            let started = Instant::now();
            let output =
                engine.call(&plugin, &context, "embed", std::slice::from_ref(&query), 1)?;
            times.push(started.elapsed());
            assert!(output.errors.is_empty(), "{:?}", output.errors);
        }
        anyhow::Ok(times)
    })
    .await??;
    let mut warm = times[1..].to_vec();
    warm.sort();
    println!(
        "MiniLM query embedding, one row: first call {:.1} ms (loads the model), then p50 \
         {:.1} ms, p95 {:.1} ms",
        times[0].as_secs_f64() * 1e3,
        percentile(&warm, 50.0),
        percentile(&warm, 95.0)
    );
    Ok(())
}
