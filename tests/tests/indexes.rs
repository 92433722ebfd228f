//! Embedding indexes against a real Postgres with pgvector and really built
//! plugins: HNSW plans, recall against an exact scan, deleted rows,
//! snapshots, index drops and reverts, and bad vectors.

use std::collections::HashSet;

use sandtable::sandbox::Column;
use sandtable::sandbox::types::Values;
use sandtable::table::{Metric, SearchQuery, SearchResult, SelectQuery, Tables};
use sandtable_tests::search::{ints, scores, text_query, vector_query};
use sandtable_tests::tables::{abort, columns, dump, ignore, insert_jsonl, insert_text, setup};
use serde_json::{Value, json};

/// Rows in the recall table: enough that Postgres plans the HNSW index.
const ROWS: usize = 12_000;

/// Queries over which recall is averaged.
const QUERIES: usize = 40;

/// A SplitMix64 generator, so that the rows are the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Text of 6 to 12 words from a vocabulary of 3,000 made-up words.
fn sentence(rng: &mut Rng) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "dro", "fen", "gul",
        "hab", "jor",
    ];
    let words = 6 + rng.below(7);
    (0..words)
        .map(|_| {
            let word = rng.below(3000);
            format!(
                "{}{}{}",
                SYLLABLES[word % 16],
                SYLLABLES[(word / 16) % 16],
                SYLLABLES[(word / 256) % 16]
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A search by vector that returns `n`.
fn n_query(vector: Vec<f32>, k: u64) -> SearchQuery {
    SearchQuery {
        columns: Some("n".into()),
        ..vector_query(vector, k)
    }
}

/// A search by text that returns `n`.
fn n_text_query(text: &str, k: u64) -> SearchQuery {
    SearchQuery {
        columns: Some("n".into()),
        ..text_query(text, k)
    }
}

/// Returns the `n` of each row a search found, nearest first.
fn found_ns(result: &SearchResult) -> Vec<i64> {
    ints(result, "n")
}

/// Reads every live row's `n` and vector.
async fn stored_vectors(tables: &Tables, source: &str) -> anyhow::Result<Vec<(i64, Vec<f32>)>> {
    let query = SelectQuery {
        columns: Some("n, body_embed64".into()),
        ..SelectQuery::default()
    };
    let (_, columns) = tables.select(source, &query).await?;
    let ns = match &columns[0].values {
        Values::Int(values) => values.clone(),
        other => panic!("n is not an int column: {other:?}"),
    };
    let Values::Vector(vectors) = &columns[1].values else {
        panic!("body_embed64 is not a vector column");
    };
    let dimension = vectors.dimension as usize;
    Ok(ns
        .into_iter()
        .enumerate()
        .filter(|(row, _)| !columns[1].is_null(*row))
        .map(|(row, n)| {
            (
                n,
                vectors.data[row * dimension..(row + 1) * dimension].to_vec(),
            )
        })
        .collect())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Returns the `n` of the `k` rows nearest to `query`, by an exact scan.
fn exact_nearest(rows: &[(i64, Vec<f32>)], query: &[f32], k: usize) -> Vec<i64> {
    let mut scored: Vec<(f64, i64)> = rows.iter().map(|(n, v)| (cosine(v, query), *n)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, n)| n).collect()
}

/// Queries near stored rows: a stored vector with noise, normalized.
fn queries(rows: &[(i64, Vec<f32>)], rng: &mut Rng) -> Vec<Vec<f32>> {
    (0..QUERIES)
        .map(|_| {
            let (_, vector) = &rows[rng.below(rows.len())];
            let noisy: Vec<f32> = vector
                .iter()
                .map(|v| v + (rng.below(1000) as f32 / 1000.0 - 0.5) * 0.2)
                .collect();
            let norm = noisy.iter().map(|v| v * v).sum::<f32>().sqrt();
            noisy.iter().map(|v| v / norm).collect()
        })
        .collect()
}

/// Searches every query with k = 10 and returns the mean recall against an
/// exact scan of `rows`, checking that each search returns 10 rows of
/// `rows`.
async fn recall(
    tables: &Tables,
    source: &str,
    rows: &[(i64, Vec<f32>)],
    queries: &[Vec<f32>],
) -> anyhow::Result<f64> {
    let live: HashSet<i64> = rows.iter().map(|(n, _)| *n).collect();
    let mut total = 0.0;
    for query in queries {
        let result = tables.search(source, &n_query(query.clone(), 10)).await?;
        let found = found_ns(&result);
        assert_eq!(found.len(), 10, "a search returned {found:?}");
        assert!(
            found.iter().all(|n| live.contains(n)),
            "a search of {source} returned a row it does not hold: {found:?}"
        );
        let found_scores = scores(&result);
        assert!(
            found_scores.windows(2).all(|w| w[0] >= w[1]),
            "scores are not nearest first: {found_scores:?}"
        );
        let exact: HashSet<i64> = exact_nearest(rows, query, 10).into_iter().collect();
        total += found.iter().filter(|n| exact.contains(n)).count() as f64 / 10.0;
    }
    Ok(total / queries.len() as f64)
}

#[tokio::test]
async fn search_uses_hnsw_keeps_recall_and_survives_deletes() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table("docs", &columns(&["body:string", "n:int"]))
        .await?;
    let mut rng = Rng(7);
    let text: String = (0..ROWS)
        .map(|n| format!("{}\n", json!({"body": sentence(&mut rng), "n": n})))
        .collect();
    insert_text(
        &tables,
        "docs",
        text.as_bytes(),
        sandtable::table::input::InputFormat::Jsonl,
    )
    .await?;
    let added = tables
        .add_index(
            "docs",
            "body",
            "hash-embed.embed64",
            Metric::Cosine,
            None,
            &abort(),
            &(),
        )
        .await?;
    assert_eq!(added.index, "body_embed64");
    assert_eq!(added.column.summary.changes.rows_changed, ROWS as i64);
    let listed = tables.list_indexes(Some("docs")).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].expression, "hash-embed@1.embed64(body)");
    assert_eq!(listed[0].data_type, "vector(64)");

    let plan = tables
        .search(
            "docs",
            &SearchQuery {
                explain: true,
                ..n_text_query("kalomi nerusa", 10)
            },
        )
        .await?
        .plan
        .expect("an explained search returns its plan");
    assert!(
        plan.contains("Index Scan using t_") && plan.contains("_i_"),
        "the search does not use the HNSW index:\n{plan}"
    );

    let rows = stored_vectors(&tables, "docs").await?;
    assert_eq!(rows.len(), ROWS);
    let queries = queries(&rows, &mut rng);
    let before = recall(&tables, "docs", &rows, &queries).await?;
    eprintln!("recall@10 over {ROWS} rows: {before:.3}");
    assert!(before >= 0.95, "recall@10 is {before:.3}, under 0.95");

    tables.create_snapshot("full", "docs", None).await?;
    let pinned: Vec<Vec<i64>> = {
        let mut found = Vec::new();
        for query in &queries[..10] {
            found.push(found_ns(
                &tables.search("full", &n_query(query.clone(), 10)).await?,
            ));
        }
        found
    };

    // 30 % of the rows go; each search still finds 10 live rows.
    let deleted = tables
        .delete("docs", Some(&format!("n < {}", ROWS * 3 / 10)))
        .await?;
    assert_eq!(deleted.changes.rows_removed, (ROWS * 3 / 10) as i64);
    let live_rows = stored_vectors(&tables, "docs").await?;
    assert_eq!(live_rows.len(), ROWS - ROWS * 3 / 10);
    let after = recall(&tables, "docs", &live_rows, &queries).await?;
    eprintln!("recall@10 after deleting 30 %: {after:.3}");
    assert!(after >= 0.95, "recall@10 after deletes is {after:.3}");

    // New rows are indexed; the snapshot gains none of them.
    let twin = &text.lines().next().expect("a first row");
    let twin_body = serde_json::from_str::<Value>(twin)?["body"].clone();
    insert_jsonl(&tables, "docs", &[json!({"body": twin_body, "n": -1})]).await?;
    let live = tables
        .search("docs", &n_text_query(twin_body.as_str().unwrap(), 1))
        .await?;
    assert_eq!(found_ns(&live), vec![-1], "the new row is not found first");
    assert!((scores(&live)[0] - 1.0).abs() < 1e-5, "{:?}", scores(&live));
    for (query, expected) in queries[..10].iter().zip(&pinned) {
        let again = found_ns(&tables.search("full", &n_query(query.clone(), 10)).await?);
        assert_eq!(
            &again, expected,
            "a snapshot search changed after later writes"
        );
    }
    Ok(())
}

fn strings_of(column: &Column) -> Vec<Option<String>> {
    (0..column.len())
        .map(|row| sandtable::table::values::cell_text(column, row))
        .collect()
}

/// Returns the vector stored for the row whose `n` is `n`.
async fn vector_of(tables: &Tables, source: &str, n: i64) -> anyhow::Result<Vec<f32>> {
    stored_vectors(tables, source)
        .await?
        .into_iter()
        .find(|(found, _)| *found == n)
        .map(|(_, vector)| vector)
        .ok_or_else(|| anyhow::anyhow!("no live row with n = {n}"))
}

/// A host reads a search by vector at the version its last search of the
/// same source resolved, and only while the source still resolves to it,
/// so the writes of another host over the same database show at once.
#[tokio::test]
async fn searches_see_the_writes_of_another_host() -> anyhow::Result<()> {
    let (db, ours) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    let theirs = Tables::new(
        ours.catalog().clone(),
        ours.engine().clone(),
        ours.tenant().clone(),
    );
    ours.create_table("docs", &columns(&["body:string", "n:int"]))
        .await?;
    let mut rng = Rng(7);
    let rows: Vec<Value> = (0..40)
        .map(|n| json!({"body": sentence(&mut rng), "n": n}))
        .collect();
    insert_jsonl(&ours, "docs", &rows).await?;
    ours.add_index(
        "docs",
        "body",
        "hash-embed.embed64",
        Metric::Cosine,
        None,
        &abort(),
        &(),
    )
    .await?;
    let query = vector_of(&ours, "docs", 3).await?;
    let first = ours.search("docs", &n_query(query.clone(), 5)).await?;
    let again = ours.search("docs", &n_query(query.clone(), 5)).await?;
    assert_eq!(found_ns(&first)[0], 3);
    assert_eq!(found_ns(&again), found_ns(&first));
    assert_eq!(again.source.version, first.source.version);

    // A repeated search checks its guess against the versions alone, so it
    // finishes while another session locks every other catalog table.
    let mut locker = db.pool().begin().await?;
    sqlx::query(
        "LOCK TABLE sandtable.tables, sandtable.columns, sandtable.indexes, \
         sandtable.snapshots IN ACCESS EXCLUSIVE MODE",
    )
    .execute(&mut *locker)
    .await?;
    let guessed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ours.search("docs", &n_query(query.clone(), 5)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the repeated search waited on the catalog"))??;
    assert_eq!(found_ns(&guessed), found_ns(&first));
    locker.rollback().await?;

    let inserted = insert_jsonl(
        &theirs,
        "docs",
        &[json!({"body": "a sentence that no other row holds", "n": 100})],
    )
    .await?;
    let new = vector_of(&theirs, "docs", 100).await?;
    let found = ours.search("docs", &n_query(new.clone(), 5)).await?;
    assert_eq!(
        found_ns(&found)[0],
        100,
        "the other host's insert is missing"
    );
    assert_eq!(found.source.version, inserted);

    // A search pinned to the version of the insert, twice, then the other
    // host reverts it and writes again under the same version number.
    let pinned = SearchQuery {
        version: Some(inserted),
        ..n_query(new.clone(), 5)
    };
    assert_eq!(found_ns(&ours.search("docs", &pinned).await?)[0], 100);
    assert_eq!(found_ns(&ours.search("docs", &pinned).await?)[0], 100);
    theirs.revert("docs").await?;
    let again = insert_jsonl(
        &theirs,
        "docs",
        &[json!({"body": "another sentence that no other row holds", "n": 200})],
    )
    .await?;
    assert_eq!(again, inserted, "the version number is not reused");
    let replaced = vector_of(&theirs, "docs", 200).await?;
    let pinned = SearchQuery {
        version: Some(inserted),
        ..n_query(replaced.clone(), 5)
    };
    let found = found_ns(&ours.search("docs", &pinned).await?);
    assert_eq!(found[0], 200, "the reverted version was searched");
    assert!(!found.contains(&100), "{found:?}");

    theirs.delete("docs", Some("n = 200")).await?;
    let found = found_ns(&ours.search("docs", &n_query(replaced.clone(), 5)).await?);
    assert!(
        !found.contains(&200),
        "the other host's delete is missing: {found:?}"
    );
    assert_eq!(found.len(), 5);

    theirs.drop_index("docs", "body_embed64").await?;
    let error = ours
        .search("docs", &n_query(replaced, 5))
        .await
        .expect_err("the index was dropped");
    assert!(error.to_string().contains("no index"), "{error}");
    Ok(())
}

#[tokio::test]
async fn index_follows_updates_and_drops_and_reverts() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table("notes", &columns(&["body:string", "n:int"]))
        .await?;
    let bodies = [
        "the quick brown fox",
        "a lazy dog sleeps",
        "red apples and green pears",
        "the brown dog barks",
    ];
    let rows: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| json!({"body": body, "n": n}))
        .collect();
    insert_jsonl(&tables, "notes", &rows).await?;
    tables
        .add_index(
            "notes",
            "body",
            "hash-embed.embed64",
            Metric::L2,
            Some("by_body"),
            &abort(),
            &(),
        )
        .await?;
    let by_text = |text: &str| SearchQuery {
        columns: Some("n, body".into()),
        ..text_query(text, 2)
    };
    let first = tables.search("notes", &by_text("red apples")).await?;
    assert_eq!(first.source.columns[0].name, "distance");
    assert_eq!(found_ns(&first)[0], 2);
    tables.create_snapshot("before", "notes", None).await?;

    tables
        .update(
            "notes",
            &["body = 'purple plums'".to_owned()],
            Some("n = 2"),
            &abort(),
            &(),
        )
        .await?;
    let updated = tables.search("notes", &by_text("purple plums")).await?;
    assert_eq!(found_ns(&updated)[0], 2);
    assert!(scores(&updated)[0].abs() < 1e-6, "{:?}", scores(&updated));
    let old = tables.search("notes", &by_text("red apples")).await?;
    assert!(
        strings_of(&old.columns[2])
            .iter()
            .all(|body| body.as_deref() != Some("red apples and green pears")),
        "the live search found a replaced version"
    );
    let pinned = tables.search("before", &by_text("red apples")).await?;
    assert_eq!(
        strings_of(&pinned.columns[2])[0].as_deref(),
        Some("red apples and green pears")
    );

    tables.delete("notes", Some("n = 0")).await?;
    let gone = tables
        .search("notes", &by_text("the quick brown fox"))
        .await?;
    assert!(!found_ns(&gone).contains(&0), "a deleted row was found");

    let dropped = tables.drop_index("notes", "by_body").await?;
    let error = tables
        .search("notes", &by_text("dog"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no index"), "{error}");
    let schema = tables.schema("notes").await?;
    assert!(
        schema.column("by_body").is_err(),
        "the index's column stayed"
    );
    // The snapshot still searches its version, by an exact scan.
    let exact = tables.search("before", &by_text("red apples")).await?;
    assert_eq!(found_ns(&exact), found_ns(&pinned));
    let error = tables
        .drop_index("notes", "by_body")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no index `by_body`"), "{error}");

    let reverted = tables.revert("notes").await?;
    assert_eq!(reverted.version, dropped.version);
    let back = tables.search("notes", &by_text("purple plums")).await?;
    assert_eq!(found_ns(&back)[0], 2);
    assert_eq!(tables.list_indexes(None).await?.len(), 1);

    // Reverting the index's addition removes it and its column.
    while tables
        .history("notes")
        .await?
        .last()
        .map(|v| v.operation.as_str())
        != Some("add_index")
    {
        tables.drop_snapshot("before").await.ok();
        tables.revert("notes").await?;
    }
    tables.revert("notes").await?;
    assert!(tables.list_indexes(Some("notes")).await?.is_empty());
    assert!(tables.schema("notes").await?.column("by_body").is_err());
    Ok(())
}

#[tokio::test]
async fn bad_vectors_and_queries_get_clear_errors() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[
        ("hash-embed", "hash_embed.wasm"),
        ("hostile", "hostile.wasm"),
        ("text", "text.wasm"),
    ])
    .await?;
    tables
        .create_table("words", &columns(&["w:string", "n:int"]))
        .await?;
    let rows: Vec<Value> = ["one", "nan", "zero", "inf", "three"]
        .iter()
        .enumerate()
        .map(|(n, w)| json!({"w": w, "n": n}))
        .collect();
    insert_jsonl(&tables, "words", &rows).await?;
    let before = dump(&tables, "words").await?;
    let version = tables.history("words").await?.len();
    let add = |embedding: &'static str, metric: Metric, on_error| {
        let tables = &tables;
        async move {
            tables
                .add_index("words", "w", embedding, metric, Some("v"), &on_error, &())
                .await
        }
    };

    let error = add("hostile.bad_vector", Metric::L2, abort())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("NaN at element 1") && error.contains("nothing was written"),
        "{error}"
    );
    let error = add("hostile.short_vector", Metric::L2, abort())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("invalid_output") && error.contains("vector"),
        "{error}"
    );
    let error = add("text.upper", Metric::Cosine, abort())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("returns string, not a vector") && error.contains("vector(N)"),
        "{error}"
    );
    let error = add("hash-embed.embed64(w)", Metric::Cosine, abort())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("PLUGIN.FUNCTION"), "{error}");
    let error = tables
        .add_index(
            "words",
            "n",
            "hash-embed.embed64",
            Metric::Cosine,
            None,
            &abort(),
            &(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("must be string") && error.contains("int"),
        "{error}"
    );
    assert_eq!(
        dump(&tables, "words").await?,
        before,
        "a failed add changed rows"
    );
    assert_eq!(tables.history("words").await?.len(), version);
    assert!(tables.list_indexes(Some("words")).await?.is_empty());

    // Under ignore the bad cells hold their errors, and a cosine index
    // refuses the zero vector too.
    let added = add("hostile.bad_vector", Metric::Cosine, ignore()).await?;
    assert_eq!(added.column.summary.cell_errors, 3);
    let stored = dump(&tables, "words").await?;
    let errors: Vec<(&str, &str)> = stored
        .iter()
        .filter(|row| !row["v.errortype"].is_null())
        .map(|row| {
            (
                row["w"].as_str().unwrap(),
                row["v.errormsg"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|(w, m)| *w == "zero" && m.contains("zero vector"))
    );
    assert!(
        errors
            .iter()
            .any(|(w, m)| *w == "inf" && m.contains("inf at element 0"))
    );
    let found = tables
        .search(
            "words",
            &SearchQuery {
                columns: Some("w".into()),
                ..text_query("four", 5)
            },
        )
        .await?;
    let words = strings_of(&found.columns[1]);
    assert_eq!(words.len(), 2, "{words:?}");

    let error = tables
        .search("words", &text_query("  ", 5))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("query text is empty"), "{error}");
    let error = tables
        .search("words", &vector_query(vec![1.0, 2.0], 5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("has 2 numbers") && error.contains("vector(4)"),
        "{error}"
    );
    let error = tables
        .search("words", &vector_query(vec![0.0; 4], 5))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("zero"), "{error}");
    let error = tables
        .search("words", &text_query("nan", 5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("embedding the query") && error.contains("NaN"),
        "{error}"
    );
    let error = tables
        .search("words", &text_query("one", 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("1 to 1000"), "{error}");
    let error = tables
        .search(
            "words",
            &SearchQuery {
                index: Some("nope".into()),
                ..text_query("one", 5)
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no index `nope`") && error.contains("`v`"),
        "{error}"
    );
    Ok(())
}
