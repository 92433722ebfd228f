//! Attacks on embedding indexes and similarity search: odd names, metrics
//! and vectors, `k` at its bounds, filters over every column type, versions
//! and snapshots around index adds and drops, reverts, concurrent writes,
//! and many row versions under one HNSW graph.

use std::collections::HashSet;

use sandtable::catalog::PluginRef;
use sandtable::sandbox::Column;
use sandtable::table::{MAX_SEARCH_ROWS, Metric, SearchQuery, TableError, Tables};
use sandtable_tests::search::{column_of, ints, output_names, scores, text_query, vector_query};
use sandtable_tests::tables::{abort, add_plugin, columns, ignore, insert_jsonl, setup};
use serde_json::{Value, json};

/// Creates table `name` with `w:string, n:int`, holding `words` with `n`
/// their position.
async fn word_table(tables: &Tables, name: &str, words: &[&str]) -> anyhow::Result<()> {
    tables
        .create_table(name, &columns(&["w:string", "n:int"]))
        .await?;
    let rows: Vec<Value> = words
        .iter()
        .enumerate()
        .map(|(n, w)| json!({"w": w, "n": n}))
        .collect();
    insert_jsonl(tables, name, &rows).await?;
    Ok(())
}

async fn add(
    tables: &Tables,
    table: &str,
    source: &str,
    embedding: &str,
    metric: Metric,
    name: Option<&str>,
) -> Result<String, TableError> {
    Ok(tables
        .add_index(table, source, embedding, metric, name, &abort(), &())
        .await?
        .index)
}

#[tokio::test]
async fn metrics_score_and_order_known_vectors() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hostile", "hostile.wasm")]).await?;
    // `hostile.bad_vector` maps a word to [1, len, 0, 0].
    word_table(&tables, "t", &["a", "abc", "abcdef"]).await?;
    add(
        &tables,
        "t",
        "w",
        "hostile.bad_vector",
        Metric::L2,
        Some("l2"),
    )
    .await?;
    add(
        &tables,
        "t",
        "w",
        "hostile.bad_vector",
        Metric::Ip,
        Some("ip"),
    )
    .await?;
    add(
        &tables,
        "t",
        "w",
        "hostile.bad_vector",
        Metric::Cosine,
        Some("cos"),
    )
    .await?;
    let search = |index: &str, vector: Vec<f32>| SearchQuery {
        index: Some(index.into()),
        ..vector_query(vector, 3)
    };

    let l2 = tables
        .search("t", &search("l2", vec![1.0, 3.0, 0.0, 0.0]))
        .await?;
    assert_eq!(output_names(&l2)[0], "distance");
    assert_eq!(ints(&l2, "n"), vec![1, 0, 2]);
    let expected = [0.0, 2.0, 3.0];
    for (found, expected) in scores(&l2).iter().zip(expected) {
        assert!((found - expected).abs() < 1e-6, "{:?}", scores(&l2));
    }

    let ip = tables
        .search("t", &search("ip", vec![0.0, 1.0, 0.0, 0.0]))
        .await?;
    assert_eq!(output_names(&ip)[0], "inner_product");
    assert_eq!(ints(&ip, "n"), vec![2, 1, 0]);
    let expected = [6.0, 3.0, 1.0];
    for (found, expected) in scores(&ip).iter().zip(expected) {
        assert!((found - expected).abs() < 1e-6, "{:?}", scores(&ip));
    }
    // An inner-product index takes the zero vector: every score is 0.
    let zero = tables.search("t", &search("ip", vec![0.0; 4])).await?;
    assert_eq!(scores(&zero), vec![0.0; 3]);

    let cos = tables
        .search("t", &search("cos", vec![1.0, 0.0, 0.0, 0.0]))
        .await?;
    assert_eq!(output_names(&cos)[0], "similarity");
    assert_eq!(ints(&cos, "n"), vec![0, 1, 2]);
    assert!(
        (scores(&cos)[0] - 1.0 / 2f64.sqrt()).abs() < 1e-6,
        "{:?}",
        scores(&cos)
    );
    assert!(
        !output_names(&cos).contains(&"cos".to_owned()),
        "{:?}",
        output_names(&cos)
    );
    Ok(())
}

#[tokio::test]
async fn huge_finite_query_vectors_give_finite_scores() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hostile", "hostile.wasm")]).await?;
    word_table(&tables, "t", &["a", "abc"]).await?;
    add(
        &tables,
        "t",
        "w",
        "hostile.bad_vector",
        Metric::L2,
        Some("l2"),
    )
    .await?;
    add(
        &tables,
        "t",
        "w",
        "hostile.bad_vector",
        Metric::Ip,
        Some("ip"),
    )
    .await?;
    add(
        &tables,
        "t",
        "w",
        "hostile.bad_vector",
        Metric::Cosine,
        Some("cos"),
    )
    .await?;
    // Each element is a finite f32, but their squares are not.
    let huge = vec![3.0e38f32; 4];
    let mut bad = Vec::new();
    for index in ["l2", "ip", "cos"] {
        let query = SearchQuery {
            index: Some(index.into()),
            ..vector_query(huge.clone(), 2)
        };
        match tables.search("t", &query).await {
            Ok(result) => {
                let found = scores(&result);
                if !found.iter().all(|s| s.is_finite()) {
                    bad.push(format!("index `{index}` scored {huge:?} as {found:?}"));
                }
            }
            Err(error) => {
                let error = error.to_string();
                assert!(error.contains("query vector"), "index `{index}`: {error}");
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    Ok(())
}

#[tokio::test]
async fn k_bounds_one_max_and_over() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table("t", &columns(&["w:string", "n:int"]))
        .await?;
    let rows: Vec<Value> = (0..1100)
        .map(|n| json!({"w": format!("word{n} other{}", n % 37), "n": n}))
        .collect();
    insert_jsonl(&tables, "t", &rows).await?;
    add(&tables, "t", "w", "hash-embed.embed8", Metric::Cosine, None).await?;

    let one = tables.search("t", &text_query("word5 other5", 1)).await?;
    assert_eq!(ints(&one, "n"), vec![5]);
    let max = tables
        .search("t", &text_query("word5 other5", MAX_SEARCH_ROWS))
        .await?;
    let found = ints(&max, "n");
    assert_eq!(found.len(), MAX_SEARCH_ROWS as usize);
    assert_eq!(
        found.iter().collect::<HashSet<_>>().len(),
        found.len(),
        "a row came back twice"
    );
    let error = tables
        .search("t", &text_query("word5", MAX_SEARCH_ROWS + 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("-k 1001") && error.contains("1 to 1000"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn many_row_versions_still_return_k_rows() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table("t", &columns(&["w:string", "n:int", "touch:int"]))
        .await?;
    let rows: Vec<Value> = (0..40)
        .map(|n| json!({"w": format!("word{n}"), "n": n, "touch": 0}))
        .collect();
    insert_jsonl(&tables, "t", &rows).await?;
    add(&tables, "t", "w", "hash-embed.embed8", Metric::Cosine, None).await?;
    // Each update gives every row a new version with the same vector, which
    // the HNSW graph keeps beside the old ones.
    for touch in 1..=60 {
        tables
            .update("t", &[format!("touch = {touch}")], None, &abort(), &())
            .await?;
    }
    let query = SearchQuery {
        columns: Some("n".into()),
        ..text_query("word7", 40)
    };
    let found = tables.search("t", &query).await?;
    let mut ns = ints(&found, "n");
    ns.sort_unstable();
    assert_eq!(ns, (0..40).collect::<Vec<_>>(), "k = 40 of 40 live rows");
    Ok(())
}

#[tokio::test]
async fn index_names_are_checked() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two"]).await?;
    for name in ["n", "w"] {
        let error = add(
            &tables,
            "t",
            "w",
            "hash-embed.embed8",
            Metric::L2,
            Some(name),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, TableError::Conflict(_)),
            "--name {name}: {error:?}"
        );
    }
    let long = "x".repeat(129);
    let error = add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::L2,
        Some(&long),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("longer than 128"), "{error}");
    for name in ["ベクトル \"q\" 'x'", "select", "and", "similarity"] {
        add(
            &tables,
            "t",
            "w",
            "hash-embed.embed8",
            Metric::L2,
            Some(name),
        )
        .await?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let query = SearchQuery {
            index: Some(name.into()),
            columns: Some(format!("n, {quoted}, {quoted}.errortype")),
            filter: Some(format!("{quoted} is not null")),
            ..text_query("one", 2)
        };
        let found = tables.search("t", &query).await?;
        assert_eq!(ints(&found, "n"), vec![0, 1], "index {name:?}");
        let names = output_names(&found);
        assert_eq!(
            names.iter().collect::<HashSet<_>>().len(),
            names.len(),
            "index {name:?} gives output names {names:?}"
        );
        tables.drop_index("t", name).await?;
    }
    Ok(())
}

#[tokio::test]
async fn score_name_avoids_every_column_name() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table(
            "t",
            &columns(&["w:string", "similarity:int", "_similarity:int"]),
        )
        .await?;
    insert_jsonl(
        &tables,
        "t",
        &[json!({"w": "one", "similarity": 1, "_similarity": 2})],
    )
    .await?;
    add(&tables, "t", "w", "hash-embed.embed8", Metric::Cosine, None).await?;
    let found = tables.search("t", &text_query("one", 1)).await?;
    let names = output_names(&found);
    assert_eq!(
        names.iter().collect::<HashSet<_>>().len(),
        names.len(),
        "the output names repeat: {names:?}"
    );
    Ok(())
}

#[tokio::test]
async fn default_index_name_too_long_names_the_fix() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    let source = "s".repeat(125);
    tables
        .create_table("t", &columns(&[&format!("{source}:string")]))
        .await?;
    let error = add(&tables, "t", &source, "hash-embed.embed8", Metric::L2, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("--name"), "{error}");
    Ok(())
}

#[tokio::test]
async fn versions_and_snapshots_around_add_and_drop() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two", "three"]).await?;
    tables.create_snapshot("early", "t", None).await?;
    let before_add = tables.history("t").await?.len() as i64 - 1;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::Cosine,
        Some("v"),
    )
    .await?;
    let with_index = before_add + 1;
    tables.drop_index("t", "v").await?;

    let at = |version| SearchQuery {
        version: Some(version),
        ..text_query("two", 3)
    };
    for (source, query) in [
        ("early", text_query("two", 3)),
        ("t", at(before_add)),
        ("t", text_query("two", 3)),
    ] {
        let error = tables.search(source, &query).await.unwrap_err();
        assert!(
            matches!(&error, TableError::NotFound(m) if m.contains("no index")),
            "{source} at {:?}: {error:?}",
            query.version
        );
    }
    let found = tables.search("t", &at(with_index)).await?;
    assert_eq!(ints(&found, "n")[0], 1);
    let error = tables.search("t", &at(99)).await.unwrap_err();
    assert!(matches!(error, TableError::NotFound(_)), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn revert_chain_over_a_reused_name() -> anyhow::Result<()> {
    let (db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two", "three"]).await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::L2,
        Some("v"),
    )
    .await?;
    tables.drop_index("t", "v").await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed64",
        Metric::Cosine,
        Some("v"),
    )
    .await?;
    let listed = tables.list_indexes(Some("t")).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].data_type, "vector(64)");

    tables.revert("t").await?;
    assert!(tables.list_indexes(Some("t")).await?.is_empty());
    tables.revert("t").await?;
    let listed = tables.list_indexes(Some("t")).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].metric, Metric::L2);
    assert_eq!(listed[0].data_type, "vector(8)");
    let found = tables.search("t", &text_query("three", 1)).await?;
    assert_eq!(output_names(&found)[0], "distance");
    assert_eq!(ints(&found, "n"), vec![2]);
    let hnsw: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'")
            .fetch_one(db.pool())
            .await?;
    assert_eq!(hnsw, 1, "the restored HNSW index is missing");

    // New rows reach the restored index, and the chain reverts to the add.
    insert_jsonl(&tables, "t", &[json!({"w": "four", "n": 3})]).await?;
    let found = tables.search("t", &text_query("four", 1)).await?;
    assert_eq!(ints(&found, "n"), vec![3]);
    tables.revert("t").await?;
    tables.revert("t").await?;
    assert!(tables.list_indexes(Some("t")).await?.is_empty());
    assert!(tables.schema("t").await?.column("v").is_err());
    Ok(())
}

#[tokio::test]
async fn drop_table_takes_its_indexes() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two"]).await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::L2,
        Some("v"),
    )
    .await?;
    tables.create_snapshot("s", "t", None).await?;
    tables.drop_table("t", true).await?;
    assert!(tables.list_indexes(None).await?.is_empty());
    let error = tables.search("s", &text_query("one", 1)).await.unwrap_err();
    assert!(matches!(error, TableError::NotFound(_)), "{error:?}");

    word_table(&tables, "t", &["uno", "dos"]).await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::L2,
        Some("v"),
    )
    .await?;
    let found = tables.search("t", &text_query("dos", 1)).await?;
    assert_eq!(ints(&found, "n"), vec![1]);
    let listed = tables.list_indexes(None).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    Ok(())
}

#[tokio::test]
async fn two_indexes_need_a_choice() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two"]).await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::L2,
        Some("a"),
    )
    .await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed64",
        Metric::Ip,
        Some("b"),
    )
    .await?;
    let error = tables.search("t", &text_query("one", 1)).await.unwrap_err();
    assert!(
        matches!(&error, TableError::Invalid(m) if m.contains("`a`") && m.contains("`b`") && m.contains("--index")),
        "{error:?}"
    );
    for index in ["a", "b"] {
        let query = SearchQuery {
            index: Some(index.into()),
            ..text_query("two", 1)
        };
        assert_eq!(ints(&tables.search("t", &query).await?, "n"), vec![1]);
    }
    tables.drop_index("t", "a").await?;
    let found = tables.search("t", &text_query("two", 1)).await?;
    assert_eq!(found.index, "b");
    Ok(())
}

#[tokio::test]
async fn filters_over_every_column_type() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table(
            "t",
            &columns(&[
                "w:string",
                "n:int",
                "f:float",
                "b:bool",
                "j:json",
                "y:bytes",
                "at:timestamp",
            ]),
        )
        .await?;
    let rows: Vec<Value> = (0..6)
        .map(|n| {
            json!({
                "w": format!("word{n}"),
                "n": n,
                "f": n as f64 / 2.0,
                "b": n % 2 == 0,
                "j": {"n": n},
                "y": "aGk=",
                "at": format!("2024-01-0{}T00:00:00Z", n + 1),
            })
        })
        .collect();
    insert_jsonl(&tables, "t", &rows).await?;
    add(
        &tables,
        "t",
        "w",
        "hash-embed.embed8",
        Metric::Cosine,
        Some("v"),
    )
    .await?;
    let stored = tables
        .search(
            "t",
            &SearchQuery {
                columns: Some("n, v".into()),
                filter: Some("n = 3".into()),
                ..text_query("word3", 1)
            },
        )
        .await?;
    let vector = sandtable::table::values::cell_text(column_of(&stored, "v"), 0)
        .expect("row 3 has a vector");
    let cases = [
        ("n >= 4", vec![4, 5]),
        ("f < 1", vec![0, 1]),
        ("b = true and n > 2", vec![4]),
        ("w = 'word2'", vec![2]),
        ("at > '2024-01-05T00:00:00Z'", vec![5]),
        ("j is not null and n = 1", vec![1]),
        ("y is null", vec![]),
        ("v.errortype is null and n = 0", vec![0]),
        ("v is null", vec![]),
    ];
    let mut failures = Vec::new();
    for (filter, expected) in cases
        .into_iter()
        .chain([(format!("v = '{vector}'").leak() as &str, vec![3])])
    {
        let query = SearchQuery {
            columns: Some("n, v, v.errortype, v.errormsg, j, y, at".into()),
            filter: Some(filter.into()),
            ..text_query("word1", 6)
        };
        match tables.search("t", &query).await {
            Ok(found) => {
                let mut ns = ints(&found, "n");
                ns.sort_unstable();
                if ns != expected {
                    failures.push(format!("{filter}: found {ns:?}, expected {expected:?}"));
                }
            }
            Err(error) => failures.push(format!("{filter}: {error:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[tokio::test]
async fn search_after_deleting_every_row() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two"]).await?;
    add(&tables, "t", "w", "hash-embed.embed8", Metric::Cosine, None).await?;
    tables.delete("t", None).await?;
    let found = tables.search("t", &text_query("one", 5)).await?;
    assert!(found.columns.iter().all(Column::is_empty));
    assert_eq!(output_names(&found), vec!["similarity", "w", "n"]);
    Ok(())
}

#[tokio::test]
async fn insert_racing_an_index_add_is_embedded() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    tables
        .create_table("t", &columns(&["w:string", "n:int"]))
        .await?;
    let rows: Vec<Value> = (0..3000)
        .map(|n| json!({"w": format!("word{n}"), "n": n}))
        .collect();
    insert_jsonl(&tables, "t", &rows).await?;
    let adder = {
        let tables = tables.clone();
        tokio::spawn(async move {
            tables
                .add_index(
                    "t",
                    "w",
                    "hash-embed.embed64",
                    Metric::Cosine,
                    Some("v"),
                    &abort(),
                    &(),
                )
                .await
        })
    };
    let inserter = {
        let tables = tables.clone();
        tokio::spawn(async move {
            let mut versions = Vec::new();
            for n in 0..5 {
                let row = json!({"w": format!("late{n}"), "n": 10_000 + n});
                versions.push(insert_jsonl(&tables, "t", &[row]).await?);
            }
            Ok::<_, TableError>(versions)
        })
    };
    adder.await??;
    inserter.await??;
    let query = SearchQuery {
        columns: Some("n".into()),
        filter: Some("n >= 10000".into()),
        ..text_query("late3", 5)
    };
    let found = tables.search("t", &query).await?;
    let mut ns = ints(&found, "n");
    assert_eq!(ns.first(), Some(&10_003), "{ns:?}");
    ns.sort_unstable();
    assert_eq!(ns, (10_000..10_005).collect::<Vec<_>>());
    let unembedded = tables
        .select(
            "t",
            &sandtable::table::SelectQuery {
                columns: Some("n".into()),
                filter: Some("v is null".into()),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(
        unembedded.1.first().map_or(0, Column::len),
        0,
        "rows without a vector"
    );
    Ok(())
}

#[tokio::test]
async fn racing_adds_of_one_name_conflict_cleanly() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    word_table(&tables, "t", &["one", "two"]).await?;
    let spawn = |embedding: &'static str| {
        let tables = tables.clone();
        tokio::spawn(async move {
            tables
                .add_index("t", "w", embedding, Metric::L2, Some("v"), &abort(), &())
                .await
        })
    };
    let first = spawn("hash-embed.embed8");
    let second = spawn("hash-embed.embed64");
    let outcomes = [first.await?, second.await?];
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(ok, 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let Err(error) = outcome {
            assert!(matches!(error, TableError::Conflict(_)), "{error:?}");
        }
    }
    assert_eq!(tables.list_indexes(Some("t")).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn index_over_a_computed_column_follows_upgrades() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm"), ("text", "text.wasm")]).await?;
    word_table(&tables, "t", &["one", "two"]).await?;
    tables
        .add_computed_column("t", "up", "text.upper(w)", &abort(), &())
        .await?;
    add(
        &tables,
        "t",
        "up",
        "hash-embed.embed64",
        Metric::Cosine,
        Some("v"),
    )
    .await?;
    let before = tables.history("t").await?.len() as i64 - 1;
    let found = tables.search("t", &text_query("TWO", 1)).await?;
    assert_eq!(ints(&found, "n"), vec![1]);
    assert!(
        (scores(&found)[0] - 1.0).abs() < 1e-5,
        "{:?}",
        scores(&found)
    );

    // text@2 appends "!", so the vectors change with the source.
    add_plugin(&tables, "text", "text_v2.wasm").await?;
    tables
        .upgrade_column("t", "up", None, &abort(), &())
        .await?;
    let found = tables.search("t", &text_query("TWO!", 1)).await?;
    assert_eq!(ints(&found, "n"), vec![1]);
    assert!(
        (scores(&found)[0] - 1.0).abs() < 1e-5,
        "{:?}",
        scores(&found)
    );
    let old = tables
        .search(
            "t",
            &SearchQuery {
                version: Some(before),
                ..text_query("TWO", 1)
            },
        )
        .await?;
    assert!((scores(&old)[0] - 1.0).abs() < 1e-5, "{:?}", scores(&old));

    // The embedding's plugin stays while the index, or a revertable
    // version of it, uses it.
    let reference: PluginRef = "hash-embed@1".parse()?;
    let error = tables
        .catalog()
        .remove_plugin(tables.tenant(), &reference, false)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("in use") || error.to_string().contains("computes"),
        "{error}"
    );
    tables.drop_index("t", "v").await?;
    let error = tables
        .catalog()
        .remove_plugin(tables.tenant(), &reference, false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("revert"), "{error}");
    let old = tables
        .search(
            "t",
            &SearchQuery {
                version: Some(before),
                ..text_query("TWO", 1)
            },
        )
        .await?;
    assert_eq!(ints(&old, "n"), vec![1]);
    Ok(())
}

#[tokio::test]
async fn failed_cells_under_ignore_stay_out_of_results() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hash-embed", "hash_embed.wasm")]).await?;
    // The empty string has no words, so hash-embed gives the zero vector,
    // which a cosine index fails.
    word_table(&tables, "t", &["one", "", "two"]).await?;
    let added = tables
        .add_index(
            "t",
            "w",
            "hash-embed.embed8",
            Metric::Cosine,
            Some("v"),
            &ignore(),
            &(),
        )
        .await?;
    let found = tables.search("t", &text_query("one", 3)).await?;
    let ns = ints(&found, "n");
    assert_eq!(
        ns.len() as u64,
        3 - added.column.summary.cell_errors,
        "{ns:?}"
    );
    assert!(ns.contains(&0), "{ns:?}");
    assert!(ns.contains(&2), "{ns:?}");
    Ok(())
}
