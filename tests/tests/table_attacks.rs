//! Attacks on tables: writes and snapshots that race each other, many
//! failed writes, SQL in every user string, and values that must be
//! rejected.
//!
//! The races are made deterministic by holding, from a connection of the
//! test's own, a row lock that one side needs, so that the other side runs
//! in the window between two of the first side's statements.

use std::io::Cursor;
use std::time::{Duration, Instant};

use sandtable::catalog::{CatalogError, PluginRef};
use sandtable::table::input::InputFormat;
use sandtable::table::{SelectQuery, TableError, Tables};
use sandtable_tests::TestDb;
use sandtable_tests::tables::{abort, columns, insert_jsonl, insert_text, rows_as_json, setup};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// How long a step may take to reach the state a test waits for.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Reads every row of `source` (at `version`, when given) as JSON objects,
/// in row order.
async fn dump(tables: &Tables, source: &str, version: Option<i64>) -> anyhow::Result<Vec<Value>> {
    let query = SelectQuery {
        version,
        ..SelectQuery::default()
    };
    let (names, columns) = tables
        .select(source, &query)
        .await
        .map_err(|error| anyhow::anyhow!("select from `{source}` failed: {error:?}"))?;
    Ok(rows_as_json(&names, &columns))
}

/// Opens a connection of the test's own, outside the pool the tables use.
async fn connect(db: &TestDb) -> anyhow::Result<PgConnection> {
    Ok(PgConnection::connect_with(&db.connect_options()).await?)
}

/// Counts the backends of `db` that wait for a lock.
async fn lock_waiters(db: &TestDb) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
    )
    .bind(db.name())
    .fetch_one(db.pool())
    .await?)
}

/// Waits until `count` backends of `db` wait for a lock, or `task` ends.
async fn wait_for_waiters<T>(
    db: &TestDb,
    count: i64,
    task: &tokio::task::JoinHandle<T>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while lock_waiters(db).await? < count && !task.is_finished() {
        anyhow::ensure!(
            start.elapsed() < WAIT_LIMIT,
            "no {count} backends waited for a lock within {WAIT_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Checks that every snapshot of `table` pins a version the table's
/// history lists, and reads what that version reads.
async fn check_snapshots(tables: &Tables, table: &str) -> anyhow::Result<()> {
    let versions: Vec<i64> = tables
        .history(table)
        .await?
        .iter()
        .map(|entry| entry.version)
        .collect();
    for snapshot in tables.list_snapshots().await? {
        if snapshot.table != table {
            continue;
        }
        assert!(
            versions.contains(&snapshot.version),
            "snapshot `{}` pins version {} of `{table}`, but its history has only {versions:?}",
            snapshot.name,
            snapshot.version
        );
        assert_eq!(
            dump(tables, &snapshot.name, None).await?,
            dump(tables, table, Some(snapshot.version)).await?,
            "snapshot `{}` and version {} of `{table}` differ",
            snapshot.name,
            snapshot.version
        );
    }
    Ok(())
}

#[tokio::test]
async fn snapshot_taken_during_revert_pins_a_kept_version() -> anyhow::Result<()> {
    let (db, tables) = setup(&[]).await?;
    tables.create_table("t", &columns(&["n:int"])).await?;
    insert_jsonl(&tables, "t", &[json!({"n": 1})]).await?;
    insert_jsonl(&tables, "t", &[json!({"n": 2})]).await?;
    let table_id = tables.schema("t").await?.id;

    // The row of version 2 is held, so the revert checks that no snapshot
    // pins version 2 and then waits to delete it.
    let mut blocker = connect(&db).await?;
    sqlx::query("BEGIN").execute(&mut blocker).await?;
    sqlx::query(
        "SELECT 1 FROM sandtable.table_versions WHERE table_id = $1 AND version = 2 FOR UPDATE",
    )
    .bind(table_id)
    .execute(&mut blocker)
    .await?;
    let reverting = tokio::spawn({
        let tables = tables.clone();
        async move { tables.revert("t").await }
    });
    wait_for_waiters(&db, 1, &reverting).await?;
    let snapshotting = tokio::spawn({
        let tables = tables.clone();
        async move { tables.create_snapshot("s", "t", None).await }
    });
    wait_for_waiters(&db, 2, &snapshotting).await?;
    sqlx::query("COMMIT").execute(&mut blocker).await?;
    let reverted = reverting.await?;
    let snapshot = snapshotting.await?;

    match (&reverted, &snapshot) {
        (Ok(_), Ok(snapshot)) => assert!(
            snapshot.version <= 1,
            "the snapshot pins version {}, which the revert undid",
            snapshot.version
        ),
        (Err(error), Ok(_)) => assert!(
            matches!(error, TableError::Conflict(_)),
            "the revert failed with {error:?}"
        ),
        (Ok(_), Err(error)) => assert!(
            !matches!(error, TableError::Db(_)),
            "the snapshot failed with a raw database error: {error:?}"
        ),
        (Err(revert), Err(snapshot)) => {
            panic!("both failed: revert {revert:?}, snapshot {snapshot:?}")
        }
    }
    check_snapshots(&tables, "t").await?;
    Ok(())
}

#[tokio::test]
async fn failed_writes_keep_later_locks_few() -> anyhow::Result<()> {
    // Every failed write takes a write number that no version records.
    // Before it commits, a write takes a shared advisory lock on every
    // number since the last version, and the Postgres lock table is shared
    // by all sessions. With max_connections 100 and
    // max_locks_per_transaction 64, about 15,000 failed writes (measured on
    // the embedded cluster) exhaust it. From then on every write to the
    // table fails, the drop included, and other sessions' queries fail
    // while it tries. This test keeps the gap far below that, so that it
    // leaves other tests on the cluster alone, and counts the locks.
    const FAILED_WRITES: usize = 1000;
    let (db, tables) = setup(&[]).await?;
    tables.create_table("t", &columns(&["n:int"])).await?;
    insert_jsonl(&tables, "t", &[json!({"n": 1})]).await?;
    for _ in 0..FAILED_WRITES {
        let error = insert_text(&tables, "t", b"nope\n1\n", InputFormat::Csv)
            .await
            .unwrap_err();
        assert!(matches!(error, TableError::Input(_)), "{error:?}");
    }
    let schema = tables.schema("t").await?;
    let last_write: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT last_value FROM \"{}\".t_{}_writes",
        tables.tenant().schema_name,
        schema.id
    )))
    .fetch_one(db.pool())
    .await?;

    // The last failed write's lock is held, so a write that waits for
    // every number before its own stops there with the others taken.
    let mut blocker = connect(&db).await?;
    sqlx::query("BEGIN").execute(&mut blocker).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1::integer, $2::integer)")
        .bind(schema.id)
        .bind(last_write)
        .execute(&mut blocker)
        .await?;
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await?;
    let inserting = tokio::spawn({
        let tables = tables.clone();
        async move { insert_jsonl(&tables, "t", &[json!({"n": 2})]).await }
    });
    wait_for_waiters(&db, 1, &inserting).await?;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.datname = $1 AND l.locktype = 'advisory' AND l.granted AND l.pid <> $2",
    )
    .bind(db.name())
    .bind(blocker_pid)
    .fetch_one(db.pool())
    .await?;
    sqlx::query("COMMIT").execute(&mut blocker).await?;
    let version = inserting.await??;
    assert_eq!(version, 2);

    let per_transaction: String = sqlx::query_scalar("SHOW max_locks_per_transaction")
        .fetch_one(db.pool())
        .await?;
    let per_transaction: i64 = per_transaction.parse()?;
    assert!(
        held < per_transaction,
        "after {FAILED_WRITES} failed writes, one insert held {held} advisory locks, more than \
         the {per_transaction} of max_locks_per_transaction"
    );
    Ok(())
}

#[tokio::test]
async fn table_drop_racing_snapshot_fails_clearly() -> anyhow::Result<()> {
    let (db, tables) = setup(&[]).await?;
    tables.create_table("t", &columns(&["n:int"])).await?;
    insert_jsonl(&tables, "t", &[json!({"n": 1})]).await?;
    let table_id = tables.schema("t").await?.id;

    // The table's catalog row is held in a mode that lets a snapshot refer
    // to it but keeps the drop waiting to delete it, after it has found no
    // snapshots.
    let mut blocker = connect(&db).await?;
    sqlx::query("BEGIN").execute(&mut blocker).await?;
    sqlx::query("SELECT 1 FROM sandtable.tables WHERE id = $1 FOR NO KEY UPDATE")
        .bind(table_id)
        .execute(&mut blocker)
        .await?;
    let dropping = tokio::spawn({
        let tables = tables.clone();
        async move { tables.drop_table("t", false).await }
    });
    wait_for_waiters(&db, 1, &dropping).await?;
    let snapshotting = tokio::spawn({
        let tables = tables.clone();
        async move { tables.create_snapshot("s", "t", None).await }
    });
    wait_for_waiters(&db, 2, &snapshotting).await?;
    sqlx::query("COMMIT").execute(&mut blocker).await?;
    let dropped = dropping.await?;
    let snapshot = snapshotting.await?;

    if let Err(error) = &dropped {
        assert!(
            matches!(error, TableError::Conflict(_)) && error.to_string().contains("`s`"),
            "the drop failed without naming the snapshot: {error:?}"
        );
        check_snapshots(&tables, "t").await?;
    }
    if let Err(error) = &snapshot {
        assert!(
            matches!(error, TableError::NotFound(_) | TableError::Conflict(_)),
            "the snapshot failed with {error:?}"
        );
    }
    if dropped.is_ok() {
        assert!(tables.list_snapshots().await?.is_empty());
        assert!(tables.list_tables().await?.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn plugin_remove_racing_column_add_names_the_use() -> anyhow::Result<()> {
    let (db, tables) = setup(&[("hostile", "hostile.wasm")]).await?;
    tables.create_table("t", &columns(&["ms:int"])).await?;
    insert_jsonl(&tables, "t", &[json!({"ms": 2000})]).await?;

    // `hostile.sleep` sleeps 2 s on the one row, after the column add has
    // recorded that its column uses hostile@1.
    let adding = tokio::spawn({
        let tables = tables.clone();
        async move {
            tables
                .add_computed_column("t", "slow", "hostile.sleep(ms)", &abort(), &())
                .await
        }
    });
    let start = Instant::now();
    loop {
        let fetching: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND state = 'idle in transaction' AND query LIKE 'FETCH%'",
        )
        .bind(db.name())
        .fetch_one(db.pool())
        .await?;
        if fetching > 0 || adding.is_finished() {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < WAIT_LIMIT,
            "the column add did not start computing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let removed = tables
        .catalog()
        .remove_plugin(tables.tenant(), &"hostile@1".parse::<PluginRef>()?, false)
        .await;
    let added = adding.await?;

    match (&removed, &added) {
        (Err(error), Ok(_)) => {
            assert!(
                matches!(error, CatalogError::PluginInUse { .. }),
                "the removal failed with {error:?}"
            );
            assert!(error.to_string().contains("`t.slow`"), "{error}");
        }
        (Ok(_), Err(error)) => assert!(
            !matches!(error, TableError::Db(_)),
            "the column add failed with a raw database error: {error:?}"
        ),
        (removed, added) => panic!("removal {removed:?}, column add {added:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn sql_in_values_sets_and_predicates_runs_nothing() -> anyhow::Result<()> {
    let (db, tables) = setup(&[("text", "text.wasm")]).await?;
    let table = "t'); DROP SCHEMA sandtable CASCADE; --";
    tables
        .create_table(
            table,
            &columns(&["title\"); DROP TABLE x; --:string", "n:int"]),
        )
        .await?;
    let title = "title\"); DROP TABLE x; --";
    let payload = "'); DELETE FROM sandtable.tables; --";
    insert_jsonl(&tables, table, &[json!({title: payload, "n": 1})]).await?;
    let column = format!("\"{}\"", title.replace('"', "\"\""));
    tables
        .update(
            table,
            &[format!(
                "{column} = 'x''); DROP TABLE sandtable.plugins; --'"
            )],
            Some(&format!("{column} = '{}'", payload.replace('\'', "''"))),
            &abort(),
            &(),
        )
        .await?;
    let snapshot = "s\"; DROP TABLE sandtable.snapshots; --";
    tables.create_snapshot(snapshot, table, None).await?;

    let rejected = [
        "n = 1; DROP TABLE sandtable.tables",
        "n = 1 -- comment",
        "n = 1 /* comment */",
        "n = $1",
        "n = E'\\x41'",
        "n = 1 or 1 = 1",
        "n = (SELECT 1)",
        "pg_sleep(1) is null",
        "n::text = '1'",
    ];
    for predicate in rejected {
        let result = tables
            .select(
                table,
                &SelectQuery {
                    filter: Some(predicate.into()),
                    ..SelectQuery::default()
                },
            )
            .await;
        assert!(result.is_err(), "`{predicate}` was accepted");
    }
    for list in ["n; DROP TABLE x", "n, (SELECT 1)", "*", "n::text"] {
        let result = tables
            .select(
                table,
                &SelectQuery {
                    columns: Some(list.into()),
                    ..SelectQuery::default()
                },
            )
            .await;
        assert!(result.is_err(), "--columns `{list}` was accepted");
        let result = tables
            .select(
                table,
                &SelectQuery {
                    order_by: Some(list.into()),
                    ..SelectQuery::default()
                },
            )
            .await;
        assert!(result.is_err(), "--order-by `{list}` was accepted");
    }

    let rows = dump(&tables, snapshot, None).await?;
    assert_eq!(
        rows,
        vec![json!({title: "x'); DROP TABLE sandtable.plugins; --", "n": 1})]
    );
    let catalog_tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'sandtable' \
         AND tablename IN ('tables', 'snapshots', 'plugins', 'columns', 'table_versions')",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!(catalog_tables, 5);
    assert_eq!(tables.list_tables().await?.len(), 1);
    assert_eq!(tables.list_snapshots().await?.len(), 1);
    assert_eq!(
        tables.catalog().list_plugins(tables.tenant()).await?.len(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn values_postgres_cannot_store_are_rejected() -> anyhow::Result<()> {
    let (_db, tables) = setup(&[]).await?;
    tables
        .create_table(
            "t",
            &columns(&[
                "s:string",
                "f:float",
                "ts:timestamp",
                "j:json",
                "b:bytes",
                "v:vector(3)",
            ]),
        )
        .await?;
    let jsonl: [(&[u8], &str); 9] = [
        (b"{\"s\": \"a\\u0000b\"}\n", "NUL"),
        (b"{\"j\": {\"k\\u0000\": 1}}\n", "NUL"),
        (b"{\"s\": \"\\ud800\"}\n", "invalid JSON"),
        (b"{\"ts\": \"0000-12-31T23:59:59Z\"}\n", "out of range"),
        (b"{\"ts\": \"10000-01-01T00:00:00Z\"}\n", "not a timestamp"),
        (b"{\"v\": [1, 2]}\n", "vector(3) needs 3"),
        (b"{\"v\": [1e39, 0, 0]}\n", "out of range"),
        (b"{\"s\": \"x\", \"s\": \"y\"}\n", "duplicate key"),
        (b"{\"b\": \"@@@\"}\n", "base64"),
    ];
    for (input, expected) in jsonl {
        let error = insert_text(&tables, "t", input, InputFormat::Jsonl)
            .await
            .unwrap_err()
            .to_string();
        let input_text = String::from_utf8_lossy(input);
        assert!(error.contains(expected), "{input_text}: {error}");
    }
    let csv: [(&[u8], &str); 6] = [
        (b"f\nNaN\n", "not a finite number"),
        (b"f\n-inf\n", "not a finite number"),
        (b"s\n\xff\xfe\n", "invalid UTF-8"),
        (b"s,s\na,b\n", "duplicate column"),
        (b"s\na\x00b\n", "NUL"),
        (b"s,f\na\n", "1 fields where the header has 2"),
    ];
    for (input, expected) in csv {
        let error = insert_text(&tables, "t", input, InputFormat::Csv)
            .await
            .unwrap_err()
            .to_string();
        let input_text = String::from_utf8_lossy(input);
        assert!(error.contains(expected), "{input_text:?}: {error}");
    }
    assert!(dump(&tables, "t", None).await?.is_empty());
    assert_eq!(tables.history("t").await?.len(), 1);

    // A BOM and CRLF line ends are read as CSV readers do.
    insert_text(&tables, "t", b"\xef\xbb\xbfs\r\nx\r\n", InputFormat::Csv).await?;
    assert_eq!(dump(&tables, "t", None).await?[0]["s"], "x");
    Ok(())
}

#[tokio::test]
async fn insert_cancelled_midway_writes_nothing() -> anyhow::Result<()> {
    const ROWS: usize = 300_000;
    let (db, tables) = setup(&[("text", "text.wasm")]).await?;
    tables
        .create_table("t", &columns(&["title:string", "n:int"]))
        .await?;
    tables
        .add_computed_column("t", "up", "text.upper(title)", &abort(), &())
        .await?;

    let mut text = String::from("title,n\n");
    for i in 0..ROWS {
        text.push_str(&format!("row {i},{i}\n"));
    }
    // Dropping the insert's future at a timeout ends it before its commit,
    // as a Ctrl-C ends the process.
    let options = abort();
    let insert = tables.insert(
        "t",
        Cursor::new(text.into_bytes()),
        InputFormat::Csv,
        &options,
    );
    let outcome = tokio::time::timeout(Duration::from_millis(300), insert).await;

    // NOTE: a cancel in the middle of `COPY` can leave the pooled
    // connection one ReadyForQuery ahead (sqlx's `PgCopyIn` drop sends
    // CopyFail without expecting the reply), so the next statement on it
    // fails with a protocol error. What was stored is read on a new pool.
    let tables = Tables::new(
        sandtable::catalog::Catalog::open(sqlx::PgPool::connect_lazy_with(db.connect_options()))
            .await?,
        tables.engine().clone(),
        tables.tenant().clone(),
    );
    let history = tables.history("t").await?;
    let rows = dump(&tables, "t", None).await?.len();
    match outcome {
        Ok(done) => {
            done?;
            assert_eq!(rows, ROWS);
            assert_eq!(history.len(), 3);
        }
        Err(_) => {
            assert_eq!(rows, 0);
            assert_eq!(history.len(), 2);
        }
    }
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".t_{}",
        tables.tenant().schema_name,
        tables.schema("t").await?.id
    )))
    .fetch_one(tables.catalog().pool())
    .await?;
    assert_eq!(stored as usize, rows, "row versions outside any version");

    // The table takes writes again.
    insert_jsonl(&tables, "t", &[json!({"title": "a", "n": 1})]).await?;
    Ok(())
}
