//! Tables against a real Postgres and really built plugins: inserts, computed
//! columns and their errors, versions, snapshots, revert and names.

use std::io::Cursor;

use sandtable::catalog::{Catalog, CatalogError, DEFAULT_TENANT, PluginRef};
use sandtable::sandbox::{DirectoryGrant, EngineConfig, UdfEngine};
use sandtable::table::input::InputFormat;
use sandtable::table::{SelectQuery, TableError, Tables};
use sandtable_tests::tables::{
    abort, add_plugin, columns, dump, dump_query, ignore, insert_jsonl, setup,
};
use serde_json::{Value, json};

#[tokio::test]
async fn insert_with_invalid_row_writes_nothing() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[]).await?;
    tables
        .create_table(
            "films",
            &columns(&["title:string", "year:int", "embedding:vector(3)"]),
        )
        .await?;
    insert_jsonl(&tables, "films", &[json!({"title": "Alien", "year": 1979})]).await?;

    let rows = [
        json!({"title": "Heat", "year": 1995}),
        json!({"title": "Ran", "year": 1985}),
        json!({"title": "Brazil", "year": "nineteen"}),
        json!({"title": "Solaris", "year": 1972}),
    ];
    let error = insert_jsonl(&tables, "films", &rows).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, TableError::Input(_)), "{error:?}");
    assert!(message.contains("row 3"), "{message}");
    assert!(message.contains("year"), "{message}");
    assert!(message.contains("nineteen"), "{message}");

    let wrong_dimension = [json!({"title": "Heat", "embedding": [1.0, 2.0]})];
    let message = insert_jsonl(&tables, "films", &wrong_dimension)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("row 1") && message.contains("embedding"),
        "{message}"
    );

    let unknown = [json!({"title": "Heat", "yeer": 1995})];
    let message = insert_jsonl(&tables, "films", &unknown)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("yeer"), "{message}");

    let csv = "title,year\nHeat,1995\nRan,19x5\n";
    let error = tables
        .insert(
            "films",
            Cursor::new(csv.as_bytes().to_vec()),
            InputFormat::Csv,
            &abort(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("row 2"), "{error}");
    assert!(error.contains("19x5"), "{error}");

    let malformed = "{\"title\": \"Heat\"}\n{\"title\": \n";
    let error = tables
        .insert(
            "films",
            Cursor::new(malformed.as_bytes().to_vec()),
            InputFormat::Jsonl,
            &abort(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("row 2"), "{error}");

    // Nothing of the failed inserts was written, and no version was made.
    let stored = dump(&tables, "films").await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["title"], "Alien");
    let history = tables.history("films").await?;
    assert_eq!(history.len(), 2, "{history:?}");
    Ok(())
}

#[tokio::test]
async fn ignore_mode_fails_only_bad_rows() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hostile", "hostile.wasm")]).await?;
    tables
        .create_table("t", &columns(&["x:int", "s:string"]))
        .await?;
    let rows: Vec<Value> = (0..40)
        .map(|i: i64| {
            let x = if i % 13 == 5 { -i } else { i };
            let s = if i == 17 {
                "boom".to_owned()
            } else {
                format!("s{i}")
            };
            json!({"x": x, "s": s})
        })
        .collect();
    insert_jsonl(&tables, "t", &rows).await?;

    // Under abort, the first failed cell stops the column add, and nothing
    // of it is stored.
    let error = tables
        .add_computed_column("t", "checked", "hostile.fail_row(x)", &abort(), &())
        .await
        .unwrap_err();
    assert!(matches!(error, TableError::CellFailed(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("guest_error"), "{message}");
    assert!(message.contains("x = -"), "{message}");
    assert_eq!(tables.schema("t").await?.columns.len(), 2);
    assert_eq!(tables.history("t").await?.len(), 2);

    let added = tables
        .add_computed_column("t", "checked", "hostile.fail_row(x)", &ignore(), &())
        .await?;
    assert_eq!(added.summary.cell_errors, 3);
    tables
        .add_computed_column("t", "echoed", "hostile.panic_on(s)", &ignore(), &())
        .await?;

    let stored = dump(&tables, "t").await?;
    assert_eq!(stored.len(), 40);
    for row in &stored {
        let x = row["x"].as_i64().unwrap();
        if x < 0 {
            assert_eq!(row["checked"], Value::Null, "{row}");
            assert_eq!(row["checked.errortype"], "guest_error", "{row}");
            assert!(
                row["checked.errormsg"]
                    .as_str()
                    .unwrap()
                    .contains("hostile@1.fail_row"),
                "{row}"
            );
        } else {
            assert_eq!(row["checked"], json!(x), "{row}");
            assert_eq!(row["checked.errortype"], Value::Null, "{row}");
        }
        if row["s"] == "boom" {
            assert_eq!(row["echoed.errortype"], "guest_trap", "{row}");
            assert_eq!(row["echoed"], Value::Null, "{row}");
        } else {
            assert_eq!(row["echoed"], row["s"], "{row}");
            assert_eq!(row["echoed.errortype"], Value::Null, "{row}");
        }
    }

    // `--errors` lists exactly the failed cells.
    let failed = dump_query(
        &tables,
        "t",
        SelectQuery {
            errors: Some("checked".into()),
            ..SelectQuery::default()
        },
        false,
    )
    .await?;
    assert_eq!(failed.len(), 3);
    assert!(
        failed
            .iter()
            .all(|row| row["checked.errortype"] == "guest_error")
    );

    // An update under abort carries the stored errors of the columns it does
    // not compute again, and fails on none of them.
    tables
        .update("t", &["s = 's1'".into()], Some("s = 's1'"), &abort(), &())
        .await?;
    assert_eq!(dump(&tables, "t").await?, stored);

    // Recomputing only the failed cells leaves the others as they were.
    let summary = tables
        .recompute("t", "checked", true, &ignore(), &())
        .await?;
    assert_eq!(summary.changes.rows_changed, 3);
    assert_eq!(dump(&tables, "t").await?, stored);
    Ok(())
}

#[tokio::test]
async fn snapshot_unchanged_by_later_writes() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("casing", "text.wasm"), ("hostile", "hostile.wasm")]).await?;
    tables
        .create_table("films", &columns(&["title:string", "year:int"]))
        .await?;
    let rows: Vec<Value> = (0..30)
        .map(|i| json!({"title": format!("film {i}"), "year": 1950 + i}))
        .collect();
    insert_jsonl(&tables, "films", &rows).await?;
    tables
        .add_computed_column("films", "shout", "casing.upper(title)", &abort(), &())
        .await?;
    tables
        .add_computed_column("films", "odd", "hostile.fail_row(year)", &ignore(), &())
        .await?;
    tables.create_snapshot("before", "films", None).await?;
    let pinned = dump(&tables, "before").await?;
    assert_eq!(pinned.len(), 30);

    insert_jsonl(&tables, "films", &[json!({"title": "late", "year": 2020})]).await?;
    tables.delete("films", Some("year < 1960")).await?;
    tables
        .update(
            "films",
            &["title = 'renamed'".into()],
            Some("year >= 1970"),
            &abort(),
            &(),
        )
        .await?;
    tables
        .recompute("films", "shout", false, &abort(), &())
        .await?;
    tables
        .add_computed_column("films", "n", "casing.length(shout)", &abort(), &())
        .await?;
    let v2 = add_plugin(&tables, "casing", "text_v2.wasm").await?;
    assert_eq!(v2, 2);
    // A new plugin version changes nothing until the column is upgraded.
    let current = dump(&tables, "films").await?;
    assert!(
        current
            .iter()
            .all(|row| !row["shout"].as_str().unwrap().ends_with('!'))
    );
    tables
        .upgrade_column("films", "shout", None, &abort(), &())
        .await?;

    let current = dump(&tables, "films").await?;
    assert_eq!(current.len(), 21);
    let renamed = current.iter().find(|row| row["year"] == 1975).unwrap();
    assert_eq!(renamed["shout"], "RENAMED!");
    assert_eq!(renamed["n"], 8, "dependent columns are computed again");
    assert_eq!(dump(&tables, "before").await?, pinned);
    let details = tables.describe_table("films").await?;
    let shout = details.schema.column("shout")?;
    assert_eq!(
        shout.computed.as_ref().unwrap().expression.to_string(),
        "casing@2.upper(title)"
    );

    // The version the snapshot pins reads the same through the table.
    let snapshot = tables
        .list_snapshots()
        .await?
        .into_iter()
        .find(|s| s.name == "before")
        .unwrap();
    let by_version = dump_query(
        &tables,
        "films",
        SelectQuery {
            version: Some(snapshot.version),
            ..SelectQuery::default()
        },
        true,
    )
    .await?;
    assert_eq!(by_version, pinned);
    Ok(())
}

#[tokio::test]
async fn revert_restores_previous_version() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("casing", "text.wasm"), ("hostile", "hostile.wasm")]).await?;
    tables
        .create_table("t", &columns(&["title:string", "year:int"]))
        .await?;
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({"title": format!("t{i}"), "year": 2000 + i}))
        .collect();
    insert_jsonl(&tables, "t", &rows).await?;
    tables
        .add_computed_column("t", "shout", "casing.upper(title)", &abort(), &())
        .await?;
    add_plugin(&tables, "casing", "text_v2.wasm").await?;

    type Step = Box<dyn Fn(Tables) -> futures_like::BoxFuture>;
    let steps: Vec<(&str, Step)> = vec![
        (
            "insert",
            Box::new(|t: Tables| {
                Box::pin(async move {
                    insert_jsonl(&t, "t", &[json!({"title": "new", "year": 1})]).await?;
                    Ok(())
                })
            }),
        ),
        (
            "delete",
            Box::new(|t: Tables| {
                Box::pin(async move {
                    t.delete("t", Some("year < 2005")).await?;
                    Ok(())
                })
            }),
        ),
        (
            "update",
            Box::new(|t: Tables| {
                Box::pin(async move {
                    t.update("t", &["title = 'x'".into()], None, &abort(), &())
                        .await?;
                    Ok(())
                })
            }),
        ),
        (
            "add_column",
            Box::new(|t: Tables| {
                Box::pin(async move {
                    t.add_computed_column("t", "odd", "hostile.fail_row(year)", &ignore(), &())
                        .await?;
                    Ok(())
                })
            }),
        ),
        (
            "upgrade",
            Box::new(|t: Tables| {
                Box::pin(async move {
                    t.upgrade_column("t", "shout", None, &abort(), &()).await?;
                    Ok(())
                })
            }),
        ),
        (
            "recompute",
            Box::new(|t: Tables| {
                Box::pin(async move {
                    t.recompute("t", "shout", false, &abort(), &()).await?;
                    Ok(())
                })
            }),
        ),
    ];
    for (name, step) in steps {
        let before = dump(&tables, "t").await?;
        let schema_before = tables.schema("t").await?;
        let history_before = tables.history("t").await?;
        step(tables.clone()).await?;
        // A recompute of a deterministic function writes equal values.
        if name != "recompute" {
            assert_ne!(dump(&tables, "t").await?, before, "{name} changed nothing");
        }
        let undone = tables.revert("t").await?;
        assert_eq!(undone.operation, name);
        assert_eq!(dump(&tables, "t").await?, before, "revert of {name}");
        assert_eq!(tables.schema("t").await?, schema_before, "revert of {name}");
        assert_eq!(
            tables.history("t").await?,
            history_before,
            "revert of {name}"
        );
        // Do it again for real, so that the next step starts from it.
        step(tables.clone()).await?;
    }

    // A snapshot of the latest version keeps it from being reverted.
    tables.create_snapshot("pin", "t", None).await?;
    let error = tables.revert("t").await.unwrap_err().to_string();
    assert!(error.contains("snapshot `pin`"), "{error}");
    tables.drop_snapshot("pin").await?;
    tables.revert("t").await?;

    // Version 0 cannot be reverted.
    while tables.history("t").await?.len() > 1 {
        tables.revert("t").await?;
    }
    assert!(dump(&tables, "t").await?.is_empty());
    let error = tables.revert("t").await.unwrap_err().to_string();
    assert!(error.contains("version 0"), "{error}");
    Ok(())
}

/// A boxed future, for the table of steps above.
mod futures_like {
    pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;
}

#[tokio::test]
async fn names_with_quotes_round_trip() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("text", "text.wasm")]).await?;
    let table = "select \"x\"; DROP TABLE sandtable.plugins; --";
    tables
        .create_table(
            table,
            &columns(&["order:int", "a\"b:string", "group by:float"]),
        )
        .await?;
    insert_jsonl(
        &tables,
        table,
        &[
            json!({"order": 1, "a\"b": "it's", "group by": 1.5}),
            json!({"order": 2, "a\"b": "o'\"q", "group by": -2.0}),
        ],
    )
    .await?;
    tables
        .add_computed_column(table, "from", "text.upper(\"a\"\"b\")", &abort(), &())
        .await?;
    let rows = dump_query(
        &tables,
        table,
        SelectQuery {
            columns: Some("\"order\", \"from\", \"group by\"".into()),
            filter: Some("\"order\" > 1 and \"a\"\"b\" = 'o''\"q'".into()),
            ..SelectQuery::default()
        },
        false,
    )
    .await?;
    assert_eq!(
        rows,
        vec![json!({"order": 2, "from": "O'\"Q", "group by": -2.0})]
    );
    let listed = tables.list_tables().await?;
    assert_eq!(listed[0].name, table);
    assert_eq!(listed[0].rows, 2);
    // The catalog table the name mentions is still there.
    assert_eq!(
        tables.catalog().list_plugins(tables.tenant()).await?.len(),
        1
    );
    tables.drop_table(table, false).await?;
    assert!(tables.list_tables().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn bad_expressions_name_the_value() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("text", "text.wasm")]).await?;
    tables
        .create_table("t", &columns(&["title:string", "year:int", "doc:json"]))
        .await?;
    insert_jsonl(
        &tables,
        "t",
        &[json!({"title": "a", "year": 1, "doc": {"k": 1}})],
    )
    .await?;
    let cases = [
        ("text.upper(titel)", "titel"),
        ("text.upper(year)", "argument 1"),
        ("text.upper(title, title)", "takes 1"),
        ("text.shout(title)", "no function `shout`"),
        ("nosuch.upper(title)", "nosuch"),
        ("title", "calls no function"),
        ("text.upper(title", "expected"),
    ];
    for (expression, expected) in cases {
        let error = tables
            .add_computed_column("t", "c", expression, &abort(), &())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "`{expression}`: {error}");
    }
    let predicates = [
        ("year > 'abc'", "abc"),
        ("doc < 3", "no order"),
        ("nope = 1", "nope"),
        ("year = null", "is null"),
        ("title.errortype is null", "not computed"),
    ];
    for (predicate, expected) in predicates {
        let error = tables
            .select(
                "t",
                &SelectQuery {
                    filter: Some(predicate.into()),
                    ..SelectQuery::default()
                },
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "`{predicate}`: {error}");
    }
    assert_eq!(tables.schema("t").await?.columns.len(), 3);
    assert_eq!(tables.history("t").await?.len(), 2);
    let error = tables.create_table("t", &[]).await.unwrap_err().to_string();
    assert!(error.contains("exists already"), "{error}");
    Ok(())
}

#[tokio::test]
async fn plugin_version_in_use_not_removed() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("casing", "text.wasm")]).await?;
    tables
        .create_table("t", &columns(&["title:string"]))
        .await?;
    insert_jsonl(&tables, "t", &[json!({"title": "a"})]).await?;
    tables
        .add_computed_column("t", "shout", "casing.upper(title)", &abort(), &())
        .await?;
    tables.create_snapshot("s", "t", None).await?;
    add_plugin(&tables, "casing", "text_v2.wasm").await?;
    tables
        .upgrade_column("t", "shout", Some("2"), &abort(), &())
        .await?;
    let catalog = tables.catalog();
    let error = catalog
        .remove_plugin(tables.tenant(), &"casing@1".parse::<PluginRef>()?, false)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CatalogError::PluginInUse { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("`t.shout`"), "{message}");
    assert!(message.contains("snapshot `s`"), "{message}");
    let error = catalog
        .remove_plugin(tables.tenant(), &"casing@2".parse::<PluginRef>()?, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("column `t.shout` computes with casing@2"),
        "{error}"
    );
    assert_eq!(catalog.list_plugins(tables.tenant()).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn host_failure_aborts_in_ignore_mode() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hostile", "hostile.wasm")]).await?;
    let data = tempfile::tempdir()?;
    std::fs::write(data.path().join("f"), b"abc")?;
    tables
        .catalog()
        .grant_directory(
            tables.tenant(),
            "hostile",
            &DirectoryGrant {
                guest_path: "/data".into(),
                host_path: data.path().to_owned(),
            },
        )
        .await?;
    tables.create_table("t", &columns(&["path:string"])).await?;
    insert_jsonl(&tables, "t", &[json!({"path": "/data/f"})]).await?;
    tables
        .add_computed_column("t", "bytes", "hostile.read_file(path)", &abort(), &())
        .await?;
    assert_eq!(dump(&tables, "t").await?[0]["bytes"], "YWJj");

    // The granted directory goes away: loading the plugin fails on the
    // host's side, which no `on_error` turns into a cell error.
    let path = data.path().to_owned();
    drop(data);
    assert!(!path.exists());
    let error = tables
        .insert(
            "t",
            Cursor::new(b"{\"path\": \"/data/f\"}\n".to_vec()),
            InputFormat::Jsonl,
            &ignore(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, TableError::Catalog(_)), "{error:?}");
    assert_eq!(dump(&tables, "t").await?.len(), 1);
    assert_eq!(tables.history("t").await?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn concurrent_inserts_keep_every_row() -> anyhow::Result<()> {
    let (db, tables) = setup(&[("text", "text.wasm")]).await?;
    tables
        .create_table("t", &columns(&["n:int", "s:string"]))
        .await?;
    tables
        .add_computed_column("t", "up", "text.upper(s)", &abort(), &())
        .await?;
    const WRITERS: i64 = 4;
    const INSERTS: i64 = 5;
    const ROWS: i64 = 3000;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        // Each writer has its own pool, as a separate process would.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(db.connect_options())
            .await?;
        let catalog = Catalog::open(pool).await?;
        let tenant = catalog.tenant(DEFAULT_TENANT).await?;
        let engine = UdfEngine::new(EngineConfig::default())?;
        let mine = Tables::new(catalog, engine, tenant);
        tasks.push(tokio::spawn(async move {
            for insert in 0..INSERTS {
                let rows: Vec<Value> = (0..ROWS)
                    .map(|i| json!({"n": writer * 1_000_000 + insert * 10_000 + i, "s": format!("w{writer}")}))
                    .collect();
                insert_jsonl(&mine, "t", &rows).await?;
            }
            anyhow::Ok(())
        }));
    }
    // A snapshot taken while the writers run.
    let mut snapshot_rows = None;
    while snapshot_rows.is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if tables.history("t").await?.len() >= 4 {
            tables.create_snapshot("mid", "t", None).await?;
            snapshot_rows = Some(dump(&tables, "mid").await?);
        }
    }
    for task in tasks {
        task.await??;
    }
    let all = dump(&tables, "t").await?;
    assert_eq!(all.len() as i64, WRITERS * INSERTS * ROWS);
    assert!(
        all.iter()
            .all(|row| row["up"].as_str().unwrap() == row["s"].as_str().unwrap().to_uppercase())
    );
    let mut numbers: Vec<i64> = all.iter().map(|row| row["n"].as_i64().unwrap()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len() as i64, WRITERS * INSERTS * ROWS);
    let history = tables.history("t").await?;
    assert_eq!(history.len() as i64, 2 + WRITERS * INSERTS);
    for (i, entry) in history.iter().enumerate() {
        assert_eq!(entry.version, i as i64);
        if i >= 2 {
            assert_eq!(entry.rows_added, ROWS);
        }
    }
    let snapshot_rows = snapshot_rows.unwrap();
    assert_eq!(snapshot_rows.len() % ROWS as usize, 0);
    assert_eq!(dump(&tables, "mid").await?, snapshot_rows);
    Ok(())
}

#[tokio::test]
async fn every_type_round_trips() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[]).await?;
    tables
        .create_table(
            "all",
            &columns(&[
                "b:bool",
                "i:int",
                "f:float",
                "s:string",
                "raw:bytes",
                "doc:json",
                "at:timestamp",
                "v:vector(3)",
            ]),
        )
        .await?;
    let rows = vec![
        json!({
            "b": true, "i": i64::MIN, "f": -1.5e-300, "s": "tab\there \"q\" \\ é 日本",
            "raw": "AAEC/w==", "doc": {"k": [1, null, "x"]}, "at": "0001-01-01T00:00:00Z",
            "v": [1.0, -0.5, 3.25]
        }),
        json!({
            "b": false, "i": i64::MAX, "f": 1.7976931348623157e308, "s": "",
            "raw": "", "doc": "text", "at": "9999-12-31T23:59:59.999999Z",
            "v": [0.1, 1e-30, -3.4e38]
        }),
        json!({
            "b": null, "i": null, "f": null, "s": null, "raw": null, "doc": null,
            "at": "2024-05-01T12:00:00.000123Z", "v": null
        }),
    ];
    insert_jsonl(&tables, "all", &rows).await?;
    let stored = dump(&tables, "all").await?;
    assert_eq!(stored, rows);
    // A predicate on each type finds its row.
    for (predicate, expected) in [
        ("b = true", 1),
        ("i < 0", 1),
        ("f > 1e300", 1),
        ("s = ''", 1),
        ("raw = 'AAEC/w=='", 1),
        ("doc = '\"text\"'", 1),
        ("at >= '2024-05-01T12:00:00.000123Z'", 2),
        ("v = '[1, -0.5, 3.25]'", 1),
        ("doc is null and v is null", 1),
    ] {
        let found = dump_query(
            &tables,
            "all",
            SelectQuery {
                filter: Some(predicate.into()),
                ..SelectQuery::default()
            },
            false,
        )
        .await?;
        assert_eq!(found.len(), expected, "`{predicate}`: {found:?}");
    }
    Ok(())
}

#[tokio::test]
async fn reads_run_during_column_add() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[("hostile", "hostile.wasm")]).await?;
    tables.create_table("t", &columns(&["ms:int"])).await?;
    insert_jsonl(&tables, "t", &[json!({"ms": 700}), json!({"ms": 700})]).await?;
    let adding = {
        let tables = tables.clone();
        tokio::spawn(async move {
            tables
                .add_computed_column("t", "slept", "hostile.sleep(ms)", &abort(), &())
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The guest sleeps 1.4 s in all, so the add is still computing when
    // this read ends, and the read does not see the new column.
    let rows = dump(&tables, "t").await?;
    assert!(!adding.is_finished(), "the read waited for the column add");
    assert_eq!(rows, vec![json!({"ms": 700}), json!({"ms": 700})]);
    adding.await??;
    let rows = dump(&tables, "t").await?;
    assert_eq!(rows[0]["slept"], 700);
    Ok(())
}
