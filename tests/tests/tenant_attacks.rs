//! Attacks on tenants that reach the database as their own Postgres roles.
//! Another tenant's role attacks with raw SQL and through the tables and
//! catalog APIs. A careless operator tries odd names, races, busy tenants
//! and a host role that is not a superuser.
//!
//! In each attack tenant `globex` attacks tenant `acme`. The attacks run on
//! globex's own pool, which logs in as globex's role, so whatever they
//! reach is what Postgres lets that role reach.

use std::time::Duration;

use sandtable::catalog::{Catalog, CatalogError, DEFAULT_TENANT, NewTenant, PluginRef};
use sandtable::sandbox::{DirectoryGrant, EngineConfig, UdfEngine};
use sandtable::table::{Metric, SelectQuery, TableError, Tables};
use sandtable_tests::TestDb;
use sandtable_tests::search::{ints, vector_query};
use sandtable_tests::tables::{
    abort, add_plugin, columns, dump, insert_jsonl, plugin_bytes, setup, tenant_tables,
};
use serde_json::json;
use sqlx::postgres::PgQueryResult;
use sqlx::{AssertSqlSafe, Connection, PgPool};

/// The SQLSTATE of a statement that lacks a privilege or breaks a
/// row-level security policy.
const DENIED: &str = "42501";

/// The catalog ids of one tenant's objects.
struct Ids {
    tenant: i64,
    role: String,
    table: i64,
    body: i64,
    loud: i64,
    loud_write_from: i64,
}

/// Two tenants with tables, plugins and grants, and the host beside them.
///
/// acme has plugins `text`, `hash-embed` and `hostile` (granted a
/// directory and a host), table `docs` with a computed column, an HNSW
/// index and snapshot `first`, and rows in the pool and stats tables.
/// globex has plugin `text` and table `docs` with a computed column and
/// snapshot `bsnap`.
struct Tenants {
    host: Tables,
    acme: NewTenant,
    globex: NewTenant,
    /// acme's tables API, on acme's role.
    ours: Tables,
    /// globex's tables API, on globex's role.
    theirs: Tables,
    /// acme's ids.
    a: Ids,
    /// globex's ids.
    b: Ids,
    /// The id of acme's index.
    acme_index: i64,
    _grant_dir: tempfile::TempDir,
    // Dropped last: dropping the database ends its connections.
    _db: TestDb,
}

impl Tenants {
    /// Returns the pool of globex's role, on which the raw SQL attacks run.
    fn attacker(&self) -> &PgPool {
        self.theirs.catalog().pool()
    }

    /// Returns the host's own pool, which bypasses row-level security.
    fn admin(&self) -> &PgPool {
        self.host.catalog().pool()
    }
}

/// Creates the two tenants of [`Tenants`] on a fresh database.
async fn two_tenants() -> anyhow::Result<Tenants> {
    let (db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let globex = host.catalog().create_tenant("globex").await?;
    let ours = tenant_tables(&host, &acme).await?;
    let theirs = tenant_tables(&host, &globex).await?;

    add_plugin(&ours, "text", "text.wasm").await?;
    add_plugin(&ours, "hash-embed", "hash_embed.wasm").await?;
    add_plugin(&ours, "hostile", "hostile.wasm").await?;
    let grant_dir = tempfile::tempdir()?;
    let grant = DirectoryGrant {
        guest_path: "/data".into(),
        host_path: std::fs::canonicalize(grant_dir.path())?,
    };
    // Grants are the host's to make.
    host.catalog()
        .grant_directory(ours.tenant(), "hostile", &grant)
        .await?;
    ours.create_table("docs", &columns(&["body:string", "n:int"]))
        .await?;
    let rows: Vec<_> = ["red fox", "blue whale", "green frog"]
        .iter()
        .enumerate()
        .map(|(n, body)| json!({"body": body, "n": n}))
        .collect();
    insert_jsonl(&ours, "docs", &rows).await?;
    ours.add_computed_column("docs", "loud", "text.upper(body)", &abort(), &())
        .await?;
    ours.add_index(
        "docs",
        "body",
        "hash-embed.embed8",
        Metric::L2,
        None,
        &abort(),
        &(),
    )
    .await?;
    ours.create_snapshot("first", "docs", None).await?;

    add_plugin(&theirs, "text", "text.wasm").await?;
    theirs
        .create_table("docs", &columns(&["body:string"]))
        .await?;
    insert_jsonl(&theirs, "docs", &[json!({"body": "theirs"})]).await?;
    theirs
        .add_computed_column("docs", "loud", "text.upper(body)", &abort(), &())
        .await?;
    theirs.create_snapshot("bsnap", "docs", None).await?;

    let admin = host.catalog().pool();
    let a = ids(admin, &acme).await?;
    let b = ids(admin, &globex).await?;
    // Rows that only the host writes in these tests: a host grant, a pool
    // with its counts, and call stats.
    for statement in [
        "INSERT INTO sandtable.plugin_hosts (tenant_id, plugin, pattern) \
         VALUES ($1, 'hostile', '127.0.0.1:9')",
        "INSERT INTO sandtable.pools (tenant_id, name, requests_per_minute, burst, origin, \
         request_tat_us, updated_us) VALUES ($1, 'acme-pool', 60, 1, 'config', 0, 0)",
        "INSERT INTO sandtable.pool_stats (tenant_id, name, minute, requests, tokens, waits, \
         wait_us, throttled, denied) VALUES ($1, 'acme-pool', date_trunc('minute', now()), \
         1, 0, 0, 0, 0, 0)",
        "INSERT INTO sandtable.function_stats (tenant_id, plugin, version, function, minute, \
         calls, rows, guest_us, faults, latency_us_buckets) VALUES ($1, 'hostile', 1, \
         'read_file', date_trunc('minute', now()) - interval '1 hour', 1, 1, 1, '{0}', '{1}')",
    ] {
        sqlx::query(statement).bind(a.tenant).execute(admin).await?;
    }
    let acme_index: i64 =
        sqlx::query_scalar("SELECT id FROM sandtable.indexes WHERE table_id = $1")
            .bind(a.table)
            .fetch_one(admin)
            .await?;
    Ok(Tenants {
        host,
        acme,
        globex,
        ours,
        theirs,
        a,
        b,
        acme_index,
        _grant_dir: grant_dir,
        _db: db,
    })
}

/// Reads the catalog ids of `tenant`'s table `docs`.
async fn ids(admin: &PgPool, tenant: &NewTenant) -> anyhow::Result<Ids> {
    let id = tenant.tenant.id;
    let role: String = sqlx::query_scalar("SELECT role_name FROM sandtable.tenants WHERE id = $1")
        .bind(id)
        .fetch_one(admin)
        .await?;
    let table: i64 = sqlx::query_scalar(
        "SELECT id FROM sandtable.tables WHERE tenant_id = $1 AND name = 'docs'",
    )
    .bind(id)
    .fetch_one(admin)
    .await?;
    let column = |name: &'static str| {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM sandtable.columns WHERE table_id = $1 AND name = $2",
        )
        .bind(table)
        .bind(name)
        .fetch_one(admin)
    };
    let body = column("body").await?;
    let loud = column("loud").await?;
    let loud_write_from: i64 =
        sqlx::query_scalar("SELECT write_from FROM sandtable.column_specs WHERE column_id = $1")
            .bind(loud)
            .fetch_one(admin)
            .await?;
    Ok(Ids {
        tenant: id,
        role,
        table,
        body,
        loud,
        loud_write_from,
    })
}

/// Describes the outcome of a statement: its SQLSTATE when it failed, and
/// the rows it changed when it did not.
fn outcome(result: Result<PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => format!("no error, {} rows", done.rows_affected()),
        Err(sqlx::Error::Database(error)) => error.code().unwrap_or_default().into_owned(),
        Err(other) => format!("{other}"),
    }
}

/// Runs `statement` on `pool` and returns its [`outcome`].
async fn run(pool: &PgPool, statement: &str) -> String {
    outcome(
        sqlx::query(AssertSqlSafe(statement.to_owned()))
            .execute(pool)
            .await,
    )
}

/// Runs `statement` in a transaction that is then rolled back, for
/// statements such as `LOCK TABLE` that need one.
async fn run_in_transaction(pool: &PgPool, statement: &str) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query(AssertSqlSafe(statement.to_owned()))
        .execute(&mut *tx)
        .await;
    tx.rollback().await?;
    Ok(outcome(result))
}

/// Runs each `(statement, expected outcome)` and asserts that every one
/// turned out as expected, listing all that did not.
async fn expect_outcomes(pool: &PgPool, cases: &[(String, &str)]) -> anyhow::Result<()> {
    let mut unexpected = Vec::new();
    for (statement, expected) in cases {
        let got = if statement.starts_with("LOCK") {
            run_in_transaction(pool, statement).await?
        } else {
            run(pool, statement).await
        };
        if got != *expected {
            unexpected.push(format!("{statement}\n    expected {expected}, got {got}"));
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} statements did not turn out as expected:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    Ok(())
}

/// Returns whether `statement`, a `COPY` from STDIN or to STDOUT, fails. It
/// runs on a connection of its own, closed after, since a connection whose
/// COPY failed to start can be out of step with the server afterwards (seen
/// with sqlx 0.9.1).
async fn copy_fails(pool: &PgPool, statement: &str) -> anyhow::Result<bool> {
    let mut conn = pool.acquire().await?.detach();
    let failed = if statement.contains("FROM STDIN") {
        conn.copy_in_raw(statement).await.is_err()
    } else {
        conn.copy_out_raw(statement).await.is_err()
    };
    drop(conn);
    Ok(failed)
}

/// Returns a digest of everything of acme's that the host can see: its
/// catalog rows, every catalog row that names its ids whichever tenant it
/// carries, its relations, its rows and its write sequence.
async fn fingerprint(tenants: &Tenants) -> anyhow::Result<String> {
    let id = tenants.a.tenant;
    let table = tenants.a.table;
    let tables = format!("(SELECT id FROM sandtable.tables WHERE tenant_id = {id})");
    let columns = format!("(SELECT id FROM sandtable.columns WHERE table_id IN {tables})");
    let parts = [
        format!("SELECT 'tenants ' || x::text FROM sandtable.tenants x WHERE id = {id}"),
        format!(
            "SELECT 'plugins ' || concat_ws(' ', name, version, sha256, md5(component), \
             description::text) FROM sandtable.plugins WHERE tenant_id = {id}"
        ),
        format!(
            "SELECT 'plugin_names ' || x::text FROM sandtable.plugin_names x WHERE tenant_id = {id}"
        ),
        format!(
            "SELECT 'plugin_directories ' || x::text FROM sandtable.plugin_directories x \
             WHERE tenant_id = {id}"
        ),
        format!(
            "SELECT 'plugin_hosts ' || x::text FROM sandtable.plugin_hosts x WHERE tenant_id = {id}"
        ),
        format!(
            "SELECT 'function_stats ' || x::text FROM sandtable.function_stats x \
             WHERE tenant_id = {id}"
        ),
        format!("SELECT 'pools ' || x::text FROM sandtable.pools x WHERE tenant_id = {id}"),
        format!(
            "SELECT 'pool_stats ' || x::text FROM sandtable.pool_stats x WHERE tenant_id = {id}"
        ),
        format!("SELECT 'tables ' || x::text FROM sandtable.tables x WHERE tenant_id = {id}"),
        format!(
            "SELECT 'snapshots ' || x::text FROM sandtable.snapshots x \
             WHERE tenant_id = {id} OR table_id IN {tables}"
        ),
        format!(
            "SELECT 'table_versions ' || x::text FROM sandtable.table_versions x \
             WHERE table_id IN {tables}"
        ),
        format!("SELECT 'columns ' || x::text FROM sandtable.columns x WHERE table_id IN {tables}"),
        format!(
            "SELECT 'column_specs ' || x::text FROM sandtable.column_specs x \
             WHERE column_id IN {columns}"
        ),
        format!(
            "SELECT 'column_spec_plugins ' || x::text FROM sandtable.column_spec_plugins x \
             WHERE tenant_id = {id} OR column_id IN {columns}"
        ),
        format!(
            "SELECT 'indexes ' || x::text FROM sandtable.indexes x WHERE table_id IN {tables} \
             OR column_id IN {columns} OR source_column IN {columns}"
        ),
        "SELECT 'relation ' || relname || ' ' || relkind::text || ' ' || pg_get_userbyid(relowner) \
         FROM pg_class WHERE relnamespace = 'tenant_acme'::regnamespace"
            .to_owned(),
        format!(
            "SELECT 'rows ' || md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) \
             FROM tenant_acme.t_{table} x"
        ),
        format!("SELECT 'writes ' || last_value FROM tenant_acme.t_{table}_writes"),
    ];
    let query = format!(
        "SELECT string_agg(r, E'\\n' ORDER BY r) FROM ({}) s(r)",
        parts.join(" UNION ALL ")
    );
    let digest: String = sqlx::query_scalar(AssertSqlSafe(query))
        .fetch_one(tenants.admin())
        .await?;
    Ok(digest)
}

/// Asserts that acme still reads its rows and searches its index.
async fn assert_acme_intact(tenants: &Tenants) -> anyhow::Result<()> {
    let stored = dump(&tenants.ours, "docs").await?;
    assert_eq!(stored.len(), 3, "acme's rows changed: {stored:?}");
    assert_eq!(
        stored[1]["loud"], "BLUE WHALE",
        "acme's computed cells changed"
    );
    let found = tenants
        .ours
        .search("docs", &vector_query(vec![0.0; 8], 3))
        .await?;
    assert_eq!(ints(&found, "n").len(), 3, "acme's index lost rows");
    assert_eq!(dump(&tenants.ours, "first").await?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn other_tenant_schema_is_denied() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let before = fingerprint(&tenants).await?;
    let t = tenants.a.table;
    let index = format!("tenant_acme.t_{t}_i_{}", tenants.acme_index);
    let cases: Vec<(String, &str)> = vec![
        (format!("SELECT * FROM tenant_acme.t_{t}"), DENIED),
        (
            format!("SELECT _rowid FROM tenant_acme.t_{t} WHERE false"),
            DENIED,
        ),
        (
            format!("INSERT INTO tenant_acme.t_{t} (_rowid, _v_min) VALUES (99, 1)"),
            DENIED,
        ),
        (format!("UPDATE tenant_acme.t_{t} SET _v_max = 0"), DENIED),
        (format!("DELETE FROM tenant_acme.t_{t}"), DENIED),
        (format!("TRUNCATE tenant_acme.t_{t}"), DENIED),
        (format!("DROP TABLE tenant_acme.t_{t}"), DENIED),
        (
            format!("ALTER TABLE tenant_acme.t_{t} ADD COLUMN x int"),
            DENIED,
        ),
        (
            format!("ALTER TABLE tenant_acme.t_{t} DISABLE TRIGGER ALL"),
            DENIED,
        ),
        (
            format!("LOCK TABLE tenant_acme.t_{t} IN ACCESS EXCLUSIVE MODE"),
            DENIED,
        ),
        (
            format!("LOCK TABLE tenant_acme.t_{t} IN ACCESS SHARE MODE"),
            DENIED,
        ),
        (
            format!("CREATE INDEX ON tenant_acme.t_{t} (_rowid)"),
            DENIED,
        ),
        // The write sequence, through each function that reads or moves it.
        (
            format!("SELECT nextval('tenant_acme.t_{t}_writes')"),
            DENIED,
        ),
        (
            format!("SELECT setval('tenant_acme.t_{t}_writes', 1)"),
            DENIED,
        ),
        (
            format!("SELECT currval('tenant_acme.t_{t}_writes')"),
            DENIED,
        ),
        (
            format!("SELECT last_value FROM tenant_acme.t_{t}_writes"),
            DENIED,
        ),
        (
            format!("ALTER SEQUENCE tenant_acme.t_{t}_writes RESTART WITH 1"),
            DENIED,
        ),
        (
            format!("SELECT sandtable.begin_write({t}, 'tenant_acme.t_{t}_writes')"),
            DENIED,
        ),
        // The HNSW index.
        (format!("DROP INDEX {index}"), DENIED),
        (format!("REINDEX INDEX {index}"), DENIED),
        (format!("ALTER INDEX {index} RENAME TO stolen"), DENIED),
        (
            format!("ALTER INDEX {index} SET (ef_construction = 4)"),
            DENIED,
        ),
        // The schema itself.
        (
            "CREATE TABLE tenant_acme.planted (x int)".to_owned(),
            DENIED,
        ),
        (
            "CREATE FUNCTION tenant_acme.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'"
                .to_owned(),
            DENIED,
        ),
        ("DROP SCHEMA tenant_acme CASCADE".to_owned(), DENIED),
        (
            "ALTER SCHEMA tenant_acme RENAME TO stolen".to_owned(),
            DENIED,
        ),
        (
            "GRANT USAGE ON SCHEMA tenant_acme TO CURRENT_USER".to_owned(),
            DENIED,
        ),
        // The default tenant's schema, which the host's role owns.
        (
            "CREATE TABLE tenant_default.planted (x int)".to_owned(),
            DENIED,
        ),
    ];
    expect_outcomes(tenants.attacker(), &cases).await?;

    // COPY in either direction.
    let statement = format!("COPY tenant_acme.t_{t} TO STDOUT");
    assert!(
        copy_fails(tenants.attacker(), &statement).await?,
        "globex copies acme's rows out"
    );
    let statement = format!("COPY tenant_acme.t_{t} (_rowid, _v_min) FROM STDIN");
    let failed = copy_fails(tenants.attacker(), &statement).await?;
    assert!(failed, "globex copies rows into acme's table");

    assert_eq!(
        fingerprint(&tenants).await?,
        before,
        "acme's objects changed"
    );
    assert_acme_intact(&tenants).await?;
    Ok(())
}

#[tokio::test]
async fn other_tenant_catalog_rows_are_hidden() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let before = fingerprint(&tenants).await?;
    let (a, t) = (tenants.a.tenant, tenants.a.table);
    let pool = tenants.attacker();

    // Nothing of acme's is visible in any catalog table.
    let by_tenant = [
        "plugins",
        "plugin_names",
        "plugin_directories",
        "plugin_hosts",
        "function_stats",
        "pools",
        "pool_stats",
        "tables",
        "snapshots",
        "column_spec_plugins",
    ];
    for table in by_tenant {
        let query = format!("SELECT count(*) FROM sandtable.{table} WHERE tenant_id = {a}");
        let seen: i64 = sqlx::query_scalar(AssertSqlSafe(query))
            .fetch_one(pool)
            .await?;
        assert_eq!(seen, 0, "globex sees acme's rows of `{table}`");
    }
    for (table, key) in [
        ("table_versions", "table_id"),
        ("columns", "table_id"),
        ("indexes", "table_id"),
    ] {
        let query = format!("SELECT count(*) FROM sandtable.{table} WHERE {key} = {t}");
        let seen: i64 = sqlx::query_scalar(AssertSqlSafe(query))
            .fetch_one(pool)
            .await?;
        assert_eq!(seen, 0, "globex sees acme's rows of `{table}`");
    }
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sandtable.column_specs WHERE column_id = $1")
            .bind(tenants.a.loud)
            .fetch_one(pool)
            .await?;
    assert_eq!(seen, 0, "globex sees acme's column specs");
    let components: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sandtable.plugins WHERE name IN ('hostile', 'hash-embed')",
    )
    .fetch_one(pool)
    .await?;
    assert_eq!(components, 0, "globex reads acme's component bytes");

    // A function of globex's own in a query's filter receives only the rows
    // that row-level security lets through, since it is not leakproof.
    sqlx::raw_sql(
        "CREATE TABLE tenant_globex.seen (value text); \
         CREATE FUNCTION tenant_globex.leak(value text) RETURNS boolean LANGUAGE plpgsql AS \
         $$ BEGIN INSERT INTO tenant_globex.seen VALUES (value); RETURN true; END $$",
    )
    .execute(pool)
    .await?;
    for query in [
        "SELECT count(*) FROM sandtable.tenants WHERE tenant_globex.leak(name || ' ' || role_name)",
        "SELECT count(*) FROM sandtable.plugins WHERE tenant_globex.leak(name)",
        "SELECT count(*) FROM sandtable.tables WHERE tenant_globex.leak(name)",
        "SELECT count(*) FROM sandtable.snapshots WHERE tenant_globex.leak(name)",
        "SELECT count(*) FROM sandtable.plugin_directories WHERE tenant_globex.leak(host_path)",
        "SELECT count(*) FROM sandtable.pools WHERE tenant_globex.leak(name)",
    ] {
        sqlx::query(query).execute(pool).await?;
    }
    let seen: Vec<String> = sqlx::query_scalar("SELECT value FROM tenant_globex.seen ORDER BY 1")
        .fetch_all(pool)
        .await?;
    for value in &seen {
        for secret in ["acme", "default", "hostile", "hash-embed", "first", "/"] {
            assert!(
                !value.contains(secret) || value.starts_with("globex"),
                "a filter function saw `{value}`, which is not globex's: {seen:?}"
            );
        }
    }

    // Writes aimed at acme's rows change none of them.
    let cases: Vec<(String, &str)> = vec![
        (
            format!("UPDATE sandtable.tables SET name = 'taken' WHERE id = {t}"),
            "no error, 0 rows",
        ),
        (
            format!("UPDATE sandtable.plugins SET component = '\\x00' WHERE tenant_id = {a}"),
            "no error, 0 rows",
        ),
        (
            // No tenant role may write grants, its own or another's.
            format!(
                "UPDATE sandtable.plugin_directories SET host_path = '/' WHERE tenant_id = {a}"
            ),
            "42501",
        ),
        (
            format!("UPDATE sandtable.pools SET request_tat_us = 0 WHERE tenant_id = {a}"),
            "no error, 0 rows",
        ),
        (
            format!("UPDATE sandtable.column_specs SET write_to = 0 WHERE column_id = {}", tenants.a.loud),
            "no error, 0 rows",
        ),
        (
            format!("UPDATE sandtable.indexes SET dropped_write = 0 WHERE id = {}", tenants.acme_index),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.table_versions WHERE table_id = {t}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.columns WHERE table_id = {t}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.plugin_names WHERE tenant_id = {a}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.plugin_hosts WHERE tenant_id = {a}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.function_stats WHERE tenant_id = {a}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.pool_stats WHERE tenant_id = {a}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.snapshots WHERE table_id = {t}"),
            "no error, 0 rows",
        ),
        (
            format!("DELETE FROM sandtable.column_spec_plugins WHERE column_id = {}", tenants.a.loud),
            "no error, 0 rows",
        ),
        (
            format!("SELECT id FROM sandtable.tables WHERE id = {t} FOR UPDATE"),
            "no error, 0 rows",
        ),
        // The tenants table and the migrations' records take no writes.
        ("UPDATE sandtable.tenants SET name = 'taken'".to_owned(), DENIED),
        (format!("DELETE FROM sandtable.tenants WHERE id = {a}"), DENIED),
        (
            "INSERT INTO sandtable.tenants (name, schema_name) VALUES ('planted', 'tenant_planted')"
                .to_owned(),
            DENIED,
        ),
        ("SELECT * FROM sandtable._sqlx_migrations".to_owned(), DENIED),
        ("DELETE FROM sandtable._sqlx_migrations".to_owned(), DENIED),
    ];
    expect_outcomes(pool, &cases).await?;
    let mut truncates = Vec::new();
    for table in by_tenant.iter().chain(&[
        "tenants",
        "table_versions",
        "columns",
        "column_specs",
        "indexes",
    ]) {
        truncates.push((format!("TRUNCATE sandtable.{table} CASCADE"), DENIED));
    }
    expect_outcomes(pool, &truncates).await?;

    assert_eq!(
        fingerprint(&tenants).await?,
        before,
        "acme's catalog rows changed"
    );
    assert_acme_intact(&tenants).await?;
    Ok(())
}

#[tokio::test]
async fn rows_pointing_at_other_tenant_are_rejected() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let before = fingerprint(&tenants).await?;
    let (a, b) = (&tenants.a, &tenants.b);
    let (at, bt) = (a.tenant, b.tenant);
    let missing = 987_654_321_i64;
    let sha = "0".repeat(64);
    let cases: Vec<(String, &str)> = vec![
        // Rows that carry acme's tenant id.
        (
            format!(
                "INSERT INTO sandtable.plugins (tenant_id, name, version, sha256, component, \
                 size_bytes, plugin_version, description) \
                 VALUES ({at}, 'planted', 1, '{sha}', '\\x00', 1, '1', '{{}}')"
            ),
            DENIED,
        ),
        (
            format!("INSERT INTO sandtable.plugin_names VALUES ({at}, 'planted', 1)"),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.plugin_directories VALUES ({at}, 'hostile', '/etc', '/')"
            ),
            DENIED,
        ),
        (
            format!("INSERT INTO sandtable.plugin_hosts VALUES ({at}, 'hostile', '*:*')"),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.pools (tenant_id, name, requests_per_minute, burst, \
                 origin, request_tat_us, updated_us) VALUES ({at}, 'planted', 1, 1, 'x', 0, 0)"
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.pool_stats VALUES ({at}, 'acme-pool', now(), 1, 1, 1, 1, \
                 1, 1)"
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.function_stats (tenant_id, plugin, version, function, \
                 minute, calls, rows, guest_us, faults, latency_us_buckets) \
                 VALUES ({at}, 'text', 1, 'upper', now(), 1, 1, 1, '{{}}', '{{}}')"
            ),
            DENIED,
        ),
        (
            format!("INSERT INTO sandtable.tables (tenant_id, name) VALUES ({at}, 'planted')"),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.snapshots (tenant_id, name, table_id, version, write_id) \
                 VALUES ({at}, 'planted', {}, 0, 1)",
                a.table
            ),
            DENIED,
        ),
        // Rows keyed by acme's table or column.
        (
            format!(
                "INSERT INTO sandtable.table_versions (table_id, version, write_id, operation) \
                 VALUES ({}, 99, 99, 'planted')",
                a.table
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.columns (table_id, name, position, data_type, computed, \
                 added_write) VALUES ({}, 'planted', 99, 'string', false, 1)",
                a.table
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.column_specs (column_id, write_from, expression) \
                 VALUES ({}, 99, '{{}}')",
                a.loud
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.indexes (table_id, name, column_id, source_column, \
                 metric, added_write) VALUES ({}, 'planted', {}, {}, 'l2', 1)",
                a.table, a.loud, a.body
            ),
            DENIED,
        ),
        // Rows of globex's own that point at acme's table, column, column
        // spec or plugin. A snapshot of acme's table would keep acme from
        // dropping it, since snapshots are not removed with their table.
        (
            format!(
                "INSERT INTO sandtable.snapshots (tenant_id, name, table_id, version, write_id) \
                 VALUES ({bt}, 'spy', {}, 0, 1)",
                a.table
            ),
            DENIED,
        ),
        (
            format!(
                "UPDATE sandtable.snapshots SET table_id = {} WHERE name = 'bsnap'",
                a.table
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.column_spec_plugins VALUES ({}, {}, {bt}, 'text', 1)",
                a.loud, a.loud_write_from
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.column_spec_plugins VALUES ({}, {}, {at}, 'text', 1)",
                b.loud, b.loud_write_from
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.indexes (table_id, name, column_id, source_column, \
                 metric, added_write) VALUES ({}, 'spy', {}, {}, 'l2', 1)",
                b.table, a.loud, a.body
            ),
            DENIED,
        ),
        // Moving globex's own rows to acme.
        (
            format!(
                "UPDATE sandtable.tables SET tenant_id = {at} WHERE id = {}",
                b.table
            ),
            DENIED,
        ),
        (
            format!("UPDATE sandtable.plugins SET tenant_id = {at} WHERE tenant_id = {bt}"),
            DENIED,
        ),
        (
            format!(
                "UPDATE sandtable.columns SET table_id = {} WHERE id = {}",
                a.table, b.body
            ),
            DENIED,
        ),
        (
            format!("UPDATE sandtable.snapshots SET tenant_id = {at} WHERE tenant_id = {bt}"),
            DENIED,
        ),
        // Ids that name nothing get the same error as acme's, so that
        // foreign keys do not reveal which ids exist.
        (
            format!(
                "INSERT INTO sandtable.snapshots (tenant_id, name, table_id, version, write_id) \
                 VALUES ({bt}, 'ghost', {missing}, 0, 1)"
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.column_spec_plugins VALUES ({missing}, 1, {bt}, 'text', 1)"
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.indexes (table_id, name, column_id, source_column, \
                 metric, added_write) VALUES ({}, 'ghost', {missing}, {missing}, 'l2', 1)",
                b.table
            ),
            DENIED,
        ),
    ];
    expect_outcomes(tenants.attacker(), &cases).await?;
    assert_eq!(
        fingerprint(&tenants).await?,
        before,
        "acme's catalog rows changed"
    );
    assert_acme_intact(&tenants).await?;

    // No row of globex's keeps acme's objects: acme drops its table, and
    // the host removes acme.
    tenants.ours.drop_table("docs", true).await?;
    tenants.host.catalog().remove_tenant("acme").await?;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sandtable.snapshots WHERE table_id = $1) \
              + (SELECT count(*) FROM sandtable.tables WHERE tenant_id = $2) \
              + (SELECT count(*) FROM sandtable.plugins WHERE tenant_id = $2)",
    )
    .bind(a.table)
    .bind(at)
    .fetch_one(tenants.admin())
    .await?;
    assert_eq!(left, 0, "acme's rows outlive its removal");
    assert_eq!(dump(&tenants.theirs, "bsnap").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn chosen_ids_cannot_squat_the_catalog() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let b = &tenants.b;
    let next = |sequence: &'static str| {
        let query = format!("SELECT pg_sequence_last_value('sandtable.{sequence}') + 1");
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(query)).fetch_one(tenants.admin())
    };
    let next_table = next("tables_id_seq").await?;
    let next_column = next("columns_id_seq").await?;
    let next_snapshot = next("snapshots_id_seq").await?;
    let next_index = next("indexes_id_seq").await?;
    let cases: Vec<(String, &str)> = vec![
        // An id chosen ahead of the sequence would make the next table,
        // column, snapshot or index of every tenant fail on its key.
        (
            format!(
                "INSERT INTO sandtable.tables (id, tenant_id, name) OVERRIDING SYSTEM VALUE \
                 VALUES ({next_table}, {}, 'squat')",
                b.tenant
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.columns (id, table_id, name, position, data_type, \
                 computed, added_write) OVERRIDING SYSTEM VALUE \
                 VALUES ({next_column}, {}, 'squat', 99, 'string', false, 1)",
                b.table
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.snapshots (id, tenant_id, name, table_id, version, \
                 write_id) OVERRIDING SYSTEM VALUE \
                 VALUES ({next_snapshot}, {}, 'squat', {}, 0, 1)",
                b.tenant, b.table
            ),
            DENIED,
        ),
        (
            format!(
                "INSERT INTO sandtable.indexes (id, table_id, name, column_id, source_column, \
                 metric, added_write) OVERRIDING SYSTEM VALUE \
                 VALUES ({next_index}, {}, 'squat', {}, {}, 'l2', 1)",
                b.table, b.loud, b.body
            ),
            DENIED,
        ),
        (
            format!(
                "UPDATE sandtable.tables SET id = {next_table} WHERE id = {}",
                b.table
            ),
            "428C9",
        ),
        // Burning ids toward the 32-bit write locks' limit.
        (
            "SELECT nextval('sandtable.tables_id_seq')".to_owned(),
            DENIED,
        ),
        (
            "SELECT setval('sandtable.tables_id_seq', 2147483647)".to_owned(),
            DENIED,
        ),
        (
            "SELECT nextval('sandtable.columns_id_seq')".to_owned(),
            DENIED,
        ),
        (
            "ALTER SEQUENCE sandtable.tables_id_seq RESTART WITH 2147483647".to_owned(),
            DENIED,
        ),
    ];
    expect_outcomes(tenants.attacker(), &cases).await?;
    let statement = "COPY sandtable.tables (id, tenant_id, name) FROM STDIN";
    assert!(
        copy_fails(tenants.attacker(), statement).await?,
        "globex copies rows with chosen ids into the catalog"
    );

    // Both tenants still make tables, columns, snapshots and indexes.
    for tables in [&tenants.ours, &tenants.theirs] {
        tables
            .create_table("after", &columns(&["body:string"]))
            .await?;
        insert_jsonl(tables, "after", &[json!({"body": "x"})]).await?;
        tables
            .add_computed_column("after", "loud", "text.upper(body)", &abort(), &())
            .await?;
        tables.create_snapshot("after_snap", "after", None).await?;
        assert_eq!(dump(tables, "after_snap").await?[0]["loud"], "X");
    }
    let names: Vec<String> = tenants
        .ours
        .list_tables()
        .await?
        .into_iter()
        .map(|table| table.name)
        .collect();
    assert!(names.contains(&"after".to_owned()), "{names:?}");
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sandtable.tables WHERE id = $1 AND tenant_id = $2",
    )
    .bind(next_table)
    .bind(b.tenant)
    .fetch_one(tenants.admin())
    .await?;
    assert_eq!(
        owned, 0,
        "globex took table id {next_table} ahead of the sequence"
    );
    Ok(())
}

#[tokio::test]
async fn tenant_role_cannot_escalate() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let before = fingerprint(&tenants).await?;
    let (a, b) = (&tenants.a, &tenants.b);
    let group: String = sqlx::query_scalar(
        "SELECT 'sandtable_' || oid || '_tenants' FROM pg_database \
         WHERE datname = current_database()",
    )
    .fetch_one(tenants.admin())
    .await?;
    let host_role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(tenants.admin())
        .await?;
    let pool = tenants.attacker();
    sqlx::raw_sql(
        "CREATE FUNCTION tenant_globex.trigger_fn() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RETURN NEW; END $$",
    )
    .execute(pool)
    .await?;
    let (ar, hr) = (&a.role, &host_role);
    let cases: Vec<(String, &str)> =
        vec![
        (format!("SET ROLE \"{ar}\""), DENIED),
        (format!("SET ROLE \"{hr}\""), DENIED),
        (format!("SET SESSION AUTHORIZATION \"{ar}\""), DENIED),
        (format!("SET SESSION AUTHORIZATION \"{hr}\""), DENIED),
        (format!("GRANT \"{ar}\" TO CURRENT_USER"), DENIED),
        (format!("GRANT \"{group}\" TO \"{ar}\""), DENIED),
        (format!("GRANT \"{}\" TO \"{ar}\"", b.role), DENIED),
        (format!("ALTER ROLE \"{ar}\" PASSWORD 'known'"), DENIED),
        (format!("ALTER ROLE \"{ar}\" NOLOGIN"), DENIED),
        (format!("DROP ROLE \"{ar}\""), DENIED),
        ("ALTER ROLE CURRENT_USER SUPERUSER".to_owned(), DENIED),
        ("ALTER ROLE CURRENT_USER CREATEROLE".to_owned(), DENIED),
        ("ALTER ROLE CURRENT_USER BYPASSRLS".to_owned(), DENIED),
        ("CREATE ROLE planted LOGIN".to_owned(), DENIED),
        (format!("REASSIGN OWNED BY \"{ar}\" TO CURRENT_USER"), DENIED),
        (format!("DROP OWNED BY \"{ar}\""), DENIED),
        (
            format!("ALTER DEFAULT PRIVILEGES FOR ROLE \"{ar}\" GRANT SELECT ON TABLES TO PUBLIC"),
            DENIED,
        ),
        ("CREATE SCHEMA planted".to_owned(), DENIED),
        ("CREATE TABLE public.planted (x int)".to_owned(), DENIED),
        (
            "CREATE FUNCTION sandtable.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'"
                .to_owned(),
            DENIED,
        ),
        (
            "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'".to_owned(),
            DENIED,
        ),
        (
            "CREATE OR REPLACE FUNCTION sandtable.session_tenant() RETURNS bigint LANGUAGE sql \
             AS 'SELECT 1::bigint'"
                .to_owned(),
            DENIED,
        ),
        (
            "ALTER FUNCTION sandtable.session_tenant() SECURITY INVOKER".to_owned(),
            DENIED,
        ),
        (
            "CREATE OR REPLACE FUNCTION sandtable.begin_write(bigint, regclass) RETURNS bigint \
             LANGUAGE sql AS 'SELECT 1::bigint'"
                .to_owned(),
            DENIED,
        ),
        (
            "CREATE TRIGGER planted BEFORE INSERT ON sandtable.tables FOR EACH ROW \
             EXECUTE FUNCTION tenant_globex.trigger_fn()"
                .to_owned(),
            DENIED,
        ),
        (
            "CREATE RULE planted AS ON INSERT TO sandtable.tables DO ALSO NOTHING".to_owned(),
            DENIED,
        ),
        (
            "CREATE POLICY planted ON sandtable.tables USING (true)".to_owned(),
            DENIED,
        ),
        ("DROP POLICY own_tenant ON sandtable.tables".to_owned(), DENIED),
        (
            "ALTER TABLE sandtable.tables DISABLE ROW LEVEL SECURITY".to_owned(),
            DENIED,
        ),
        (
            "ALTER TABLE sandtable.snapshots DROP CONSTRAINT snapshots_table_id_fkey".to_owned(),
            DENIED,
        ),
        (
            "CREATE EVENT TRIGGER planted ON ddl_command_start \
             EXECUTE FUNCTION tenant_globex.trigger_fn()"
                .to_owned(),
            DENIED,
        ),
        ("CREATE EXTENSION IF NOT EXISTS pg_trgm".to_owned(), DENIED),
        ("SELECT pg_read_file('/etc/hostname')".to_owned(), DENIED),
        ("SELECT pg_ls_dir('.')".to_owned(), DENIED),
        ("COPY (SELECT 1) TO '/tmp/sandtable-planted'".to_owned(), DENIED),
        (
            format!("COPY tenant_globex.t_{} (_rowid) FROM PROGRAM 'true'", b.table),
            DENIED,
        ),
        ("SET session_replication_role = replica".to_owned(), DENIED),
        ("SET row_security = off".to_owned(), "no error, 0 rows"),
    ];
    expect_outcomes(pool, &cases).await?;

    // `row_security = off` makes a query that row-level security would
    // filter fail, instead of showing every row.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SET row_security = off")
        .execute(&mut conn)
        .await?;
    let all = sqlx::query("SELECT count(*) FROM sandtable.plugins")
        .execute(&mut conn)
        .await;
    assert_eq!(
        outcome(all),
        DENIED,
        "row_security = off shows every plugin"
    );
    sqlx::query("RESET row_security").execute(&mut conn).await?;
    // The group role has the catalog's grants but is no tenant: as it, the
    // session is still globex's, since policies read the login role.
    sqlx::query(AssertSqlSafe(format!("SET ROLE \"{group}\"")))
        .execute(&mut conn)
        .await?;
    let (current, tenant, plugins): (String, Option<i64>, i64) = sqlx::query_as(
        "SELECT current_user::text, sandtable.session_tenant(), \
                (SELECT count(*) FROM sandtable.plugins WHERE tenant_id <> $1)",
    )
    .bind(b.tenant)
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(current, group);
    assert_eq!(
        tenant,
        Some(b.tenant),
        "the group role changed the session's tenant"
    );
    assert_eq!(
        plugins, 0,
        "as the group role, globex sees other tenants' plugins"
    );
    conn.close().await?;

    // Signals to acme's backends are rejected.
    let mut victim = tenants.ours.catalog().pool().acquire().await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await?;
    for function in ["pg_cancel_backend", "pg_terminate_backend"] {
        let signal = run(pool, &format!("SELECT {function}({pid})")).await;
        assert_eq!(signal, DENIED, "{function} on acme's backend");
    }
    let alive: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *victim)
        .await?;
    assert_eq!(alive, 1);
    drop(victim);

    assert_eq!(
        fingerprint(&tenants).await?,
        before,
        "acme's objects changed"
    );
    assert_acme_intact(&tenants).await?;
    Ok(())
}

#[tokio::test]
async fn secrets_stay_hidden() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let pool = tenants.attacker();
    let cases: Vec<(String, &str)> = vec![
        (
            "SELECT role_password FROM sandtable.tenants".to_owned(),
            DENIED,
        ),
        ("SELECT key_hash FROM sandtable.tenants".to_owned(), DENIED),
        ("SELECT * FROM sandtable.tenants".to_owned(), DENIED),
        ("SELECT t FROM sandtable.tenants t".to_owned(), DENIED),
        (
            "SELECT row_to_json(t) FROM sandtable.tenants t".to_owned(),
            DENIED,
        ),
        (
            "SELECT name FROM sandtable.tenants ORDER BY key_hash".to_owned(),
            DENIED,
        ),
        (
            "SELECT count(*) FROM sandtable.tenants WHERE role_password LIKE 'a%'".to_owned(),
            DENIED,
        ),
        (
            "SELECT count(*) FROM sandtable.tenants WHERE key_hash IS NOT NULL".to_owned(),
            DENIED,
        ),
        (
            "UPDATE sandtable.tenants SET key_hash = NULL".to_owned(),
            DENIED,
        ),
        (
            "UPDATE sandtable.tenants SET key_hash = key_hash RETURNING key_hash".to_owned(),
            DENIED,
        ),
        ("SELECT rolpassword FROM pg_authid".to_owned(), DENIED),
        ("SELECT passwd FROM pg_shadow".to_owned(), DENIED),
        ("SELECT * FROM pg_statistic".to_owned(), DENIED),
        (
            "LOCK TABLE sandtable.tenants IN ACCESS SHARE MODE".to_owned(),
            DENIED,
        ),
    ];
    expect_outcomes(pool, &cases).await?;
    let statement = "COPY sandtable.tenants TO STDOUT";
    assert!(
        copy_fails(pool, statement).await?,
        "globex copies the tenants out"
    );

    // Statistics of the tenants and of acme's rows are hidden, even once
    // the host has gathered them.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ANALYZE sandtable.tenants; ANALYZE sandtable.plugins; ANALYZE tenant_acme.t_{}",
        tenants.a.table
    )))
    .execute(tenants.admin())
    .await?;
    let gathered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stats WHERE schemaname IN ('sandtable', 'tenant_acme')",
    )
    .fetch_one(tenants.admin())
    .await?;
    assert!(gathered > 0, "the host gathered no statistics to hide");
    let leaked: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, attname::text FROM pg_stats \
         WHERE schemaname IN ('sandtable', 'tenant_acme')",
    )
    .fetch_all(pool)
    .await?;
    assert!(leaked.is_empty(), "pg_stats shows globex {leaked:?}");
    let masked: Option<String> =
        sqlx::query_scalar("SELECT rolpassword FROM pg_roles WHERE rolname = $1")
            .bind(&tenants.a.role)
            .fetch_one(pool)
            .await?;
    assert_eq!(masked.as_deref(), Some("********"));

    // The tenant's catalog, whose connection options contain its role's
    // password, does not print it.
    let password: String =
        sqlx::query_scalar("SELECT role_password FROM sandtable.tenants WHERE id = $1")
            .bind(tenants.b.tenant)
            .fetch_one(tenants.admin())
            .await?;
    let printed = format!("{:?}", tenants.theirs.catalog());
    assert!(
        !printed.contains(&password),
        "the catalog's Debug output shows the role's password"
    );
    assert!(!printed.contains(&tenants.globex.api_key));
    let listed = serde_json::to_string(&tenants.host.catalog().list_tenants().await?)?;
    assert!(
        !listed.contains(&password),
        "the tenant list shows a password"
    );
    assert!(
        !listed.contains(&tenants.acme.api_key[3..]),
        "the tenant list shows an API key"
    );
    Ok(())
}

#[tokio::test]
async fn other_tenant_through_the_api() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let before = fingerprint(&tenants).await?;
    let acme = &tenants.acme.tenant;
    let theirs = tenants.theirs.catalog();
    // globex's catalog with acme's tenant, as a host that mixed the two up
    // would hold it.
    let confused = Tables::new(theirs.clone(), tenants.host.engine().clone(), acme.clone());

    let error = confused
        .select("docs", &SelectQuery::default())
        .await
        .expect_err("select from acme's table");
    assert!(matches!(error, TableError::NotFound(_)), "{error}");
    let error = confused
        .select("first", &SelectQuery::default())
        .await
        .expect_err("select from acme's snapshot");
    assert!(matches!(error, TableError::NotFound(_)), "{error}");
    assert!(confused.list_tables().await?.is_empty());
    assert!(confused.list_snapshots().await?.is_empty());
    assert!(confused.list_indexes(None).await?.is_empty());
    let inserted = insert_jsonl(&confused, "docs", &[json!({"body": "planted", "n": 9})]).await;
    assert!(inserted.is_err(), "insert into acme's table");
    let dropped = confused.drop_table("docs", true).await;
    assert!(dropped.is_err(), "drop acme's table");
    let dropped = confused.drop_snapshot("first").await;
    assert!(dropped.is_err(), "drop acme's snapshot");
    let created = confused
        .create_table("planted", &columns(&["body:string"]))
        .await;
    assert!(created.is_err(), "create a table as acme");
    let deleted = confused.delete("docs", None).await;
    assert!(deleted.is_err(), "delete acme's rows");

    assert!(theirs.list_plugins(acme).await?.is_empty());
    let hostile: PluginRef = "hostile".parse()?;
    let error = theirs
        .find_plugin(acme, &hostile)
        .await
        .expect_err("find acme's plugin");
    assert!(
        matches!(error, CatalogError::PluginNotFound { .. }),
        "{error}"
    );
    let loaded = theirs
        .load_plugin(tenants.host.engine(), acme, &hostile)
        .await;
    assert!(loaded.is_err(), "load acme's plugin");
    let bytes = plugin_bytes("text.wasm");
    let plugin = tenants.host.engine().load(&bytes)?;
    let added = theirs.add_plugin(acme, "planted", &bytes, &plugin).await;
    assert!(added.is_err(), "add a plugin as acme");
    let removed = theirs.remove_plugin(acme, &hostile, true).await;
    assert!(removed.is_err(), "remove acme's plugin");
    let grant = DirectoryGrant {
        guest_path: "/data".into(),
        host_path: "/tmp".into(),
    };
    let granted = theirs.grant_directory(acme, "hostile", &grant).await;
    assert!(granted.is_err(), "grant acme's plugin a directory");
    assert!(!theirs.revoke_directory(acme, "hostile", "/data").await?);
    assert!(theirs.directories(acme, "hostile").await?.is_empty());
    assert!(theirs.hosts(acme, "hostile").await?.is_empty());
    let stats = theirs
        .function_stats(acme, Duration::from_secs(86_400))
        .await?;
    assert!(stats.is_empty(), "globex reads acme's call stats");

    // Tenant management needs the host's role.
    let error = theirs.tenant("acme").await.expect_err("look up acme");
    assert!(matches!(error, CatalogError::TenantNotFound(_)), "{error}");
    assert!(
        theirs.for_tenant(acme).await.is_err(),
        "open acme's catalog"
    );
    assert!(
        theirs.for_tenant(&tenants.globex.tenant).await.is_err(),
        "read globex's own role password"
    );
    assert!(theirs.authenticate(&tenants.acme.api_key).await.is_err());
    assert!(theirs.list_tenants().await.is_err());
    assert!(theirs.rotate_key("acme").await.is_err());
    assert!(theirs.rotate_key("globex").await.is_err());
    assert!(theirs.remove_tenant("acme").await.is_err());
    assert!(theirs.create_tenant("planted").await.is_err());

    assert_eq!(
        fingerprint(&tenants).await?,
        before,
        "acme's objects changed"
    );
    assert_acme_intact(&tenants).await?;
    let host = tenants.host.catalog();
    assert_eq!(host.authenticate(&tenants.acme.api_key).await?.name, "acme");
    let names: Vec<String> = host
        .list_tenants()
        .await?
        .into_iter()
        .map(|tenant| tenant.name)
        .collect();
    assert_eq!(names, [DEFAULT_TENANT, "acme", "globex"]);
    Ok(())
}

#[tokio::test]
async fn names_show_but_contents_do_not() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let pool = tenants.attacker();
    let t = tenants.a.table;
    sqlx::query(AssertSqlSafe(format!("ANALYZE tenant_acme.t_{t}")))
        .execute(tenants.admin())
        .await?;

    // Postgres shows every role, schema and relation name, and the planner's
    // row estimates, to every role. This is by its design, so tenant and
    // table names are not secret from other tenants.
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(&tenants.a.role)
        .fetch_one(pool)
        .await?;
    assert_eq!(roles, 1, "pg_roles no longer shows acme's role");
    let relations: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = \
         (SELECT oid FROM pg_namespace WHERE nspname = 'tenant_acme') ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    assert!(
        relations.contains(&format!("t_{t}")) && relations.contains(&format!("t_{t}_writes")),
        "pg_class no longer shows acme's relations: {relations:?}"
    );
    let estimate: f32 = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE relname = $1 AND relnamespace = \
         (SELECT oid FROM pg_namespace WHERE nspname = 'tenant_acme')",
    )
    .bind(format!("t_{t}"))
    .fetch_one(pool)
    .await?;
    assert!(
        estimate >= 3.0,
        "pg_class no longer shows acme's row estimate: {estimate}"
    );

    // What the rows contain stays hidden: statistics, the expressions of
    // computed columns and the plugins' descriptions.
    let stats: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stats WHERE schemaname = 'tenant_acme'")
            .fetch_one(pool)
            .await?;
    assert_eq!(stats, 0, "pg_stats shows acme's column statistics");
    let specs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sandtable.column_specs WHERE expression::text LIKE '%upper%'",
    )
    .fetch_one(pool)
    .await?;
    assert_eq!(specs, 1, "globex sees a column spec besides its own");
    let activity: Vec<Option<String>> =
        sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE usename = $1")
            .bind(&tenants.a.role)
            .fetch_all(pool)
            .await?;
    for query in &activity {
        assert_eq!(
            query.as_deref(),
            Some("<insufficient privilege>"),
            "pg_stat_activity shows acme's statements"
        );
    }
    Ok(())
}

#[tokio::test]
async fn tenant_names_at_the_limits() -> anyhow::Result<()> {
    let (db, host) = setup(&[("text", "text.wasm")]).await?;
    let catalog = host.catalog();
    let oid: i64 = sqlx::query_scalar(
        "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(db.pool())
    .await?;

    // A name of the maximum length, and names that are SQL keywords, make
    // roles and schemas that are used whole, not cut at Postgres's 63 bytes.
    let longest = format!("z{}", "9".repeat(sandtable::catalog::MAX_TENANT_NAME - 1));
    for name in [longest.as_str(), "user", "select", "public", "pg_x", "a"] {
        let created = catalog.create_tenant(name).await?;
        let role: String =
            sqlx::query_scalar("SELECT role_name FROM sandtable.tenants WHERE name = $1")
                .bind(name)
                .fetch_one(db.pool())
                .await?;
        assert_eq!(role, format!("sandtable_{oid}_{name}"));
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) \
                AND EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)",
        )
        .bind(&role)
        .bind(format!("tenant_{name}"))
        .fetch_one(db.pool())
        .await?;
        assert!(exists, "tenant `{name}` lacks its role or schema");
        let tables = tenant_tables(&host, &created).await?;
        add_plugin(&tables, "text", "text.wasm").await?;
        tables
            .create_table("docs", &columns(&["body:string"]))
            .await?;
        insert_jsonl(&tables, "docs", &[json!({"body": name})]).await?;
        tables
            .add_computed_column("docs", "loud", "text.upper(body)", &abort(), &())
            .await?;
        let rows = dump(&tables, "docs").await?;
        assert_eq!(rows[0]["loud"], name.to_uppercase(), "tenant `{name}`");
    }
    catalog.remove_tenant(&longest).await?;

    // Names whose role or schema exists are rejected, and the existing role
    // or schema stays as it was. `tenants` would be the group role's name.
    let squatter = format!("sandtable_{oid}_squatter");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE ROLE \"{squatter}\" NOLOGIN; CREATE SCHEMA tenant_planted; \
         CREATE TABLE tenant_planted.keep (x int)"
    )))
    .execute(db.pool())
    .await?;
    for name in ["tenants", "squatter", "planted", "default", "user"] {
        let error = catalog
            .create_tenant(name)
            .await
            .expect_err("a name whose role or schema is taken");
        assert!(
            matches!(error, CatalogError::InvalidTenant(_)),
            "{name}: {error}"
        );
        assert!(error.to_string().contains("already exists"), "{error}");
    }
    let kept: (bool, bool, bool, bool, i64) = sqlx::query_as(
        "SELECT (SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = $1), \
                (SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = $2), \
                NOT pg_has_role($1, $2, 'MEMBER'), \
                EXISTS (SELECT FROM pg_tables WHERE schemaname = 'tenant_planted'), \
                (SELECT count(*) FROM sandtable.tenants \
                  WHERE name IN ('tenants', 'squatter', 'planted'))",
    )
    .bind(&squatter)
    .bind(format!("sandtable_{oid}_tenants"))
    .fetch_one(db.pool())
    .await?;
    assert_eq!(
        kept,
        (true, true, true, true, 0),
        "a refused name changed something"
    );
    let user = catalog.tenant("user").await?;
    let tables = Tables::new(
        catalog.for_tenant(&user).await?,
        host.engine().clone(),
        user,
    );
    assert_eq!(dump(&tables, "docs").await?.len(), 1);

    // Invalid names, including quotes and other scripts, are rejected before
    // any SQL, and unknown ones are not found.
    for bad in ["a'b", "a\"b", "a;b", "ａ", "a\u{0}b", "é", "a.b", "A"] {
        let error = catalog.create_tenant(bad).await.expect_err("a bad name");
        assert!(
            error.to_string().contains("lowercase letters"),
            "{bad}: {error}"
        );
    }
    for unknown in ["a'b", "x'; DROP TABLE sandtable.tenants; --", "%", "_"] {
        let error = catalog
            .remove_tenant(unknown)
            .await
            .expect_err("an unknown tenant");
        assert!(matches!(error, CatalogError::TenantNotFound(_)), "{error}");
        let error = catalog
            .rotate_key(unknown)
            .await
            .expect_err("an unknown tenant");
        assert!(matches!(error, CatalogError::TenantNotFound(_)), "{error}");
    }
    for key in ["", "st_", "%", &"0".repeat(10_000)] {
        let error = catalog.authenticate(key).await.expect_err("a made-up key");
        assert!(matches!(error, CatalogError::UnknownKey), "{error}");
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_creates_and_rotations() -> anyhow::Result<()> {
    let (db, host) = setup(&[]).await?;
    let catalog = host.catalog().clone();

    // The first tenants of a database, at once, race to make the group role.
    let firsts: Vec<_> = ["one", "two", "three", "four"]
        .into_iter()
        .map(|name| {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.create_tenant(name).await })
        })
        .collect();
    for task in firsts {
        task.await??;
    }

    // One name from four tasks: one wins, and the rest fail with `already
    // exists`.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.create_tenant("race").await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in racers {
        match task.await? {
            Ok(created) => winners.push(created),
            Err(error) => {
                assert!(
                    matches!(error, CatalogError::InvalidTenant(_)),
                    "a losing create failed otherwise: {error:?}"
                );
                assert!(error.to_string().contains("already exists"), "{error}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "creates of one name that succeeded");
    let winner = winners.pop().expect("one winner");
    let (rows, roles, schemas): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sandtable.tenants WHERE name = 'race'), \
                (SELECT count(*) FROM pg_roles WHERE rolname = 'sandtable_' || \
                    (SELECT oid FROM pg_database WHERE datname = current_database()) || '_race'), \
                (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_race')",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!((rows, roles, schemas), (1, 1, 1));
    assert_eq!(catalog.authenticate(&winner.api_key).await?.name, "race");
    let tables = tenant_tables(&host, &winner).await?;
    tables
        .create_table("docs", &columns(&["body:string"]))
        .await?;

    // Two rotations at once: both return a key, and only the one written
    // last works.
    let rotations: Vec<_> = (0..2)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.rotate_key("race").await })
        })
        .collect();
    let mut keys = Vec::new();
    for task in rotations {
        keys.push(task.await??);
    }
    let mut working = 0;
    for key in &keys {
        if catalog.authenticate(key).await.is_ok() {
            working += 1;
        }
    }
    assert_eq!(working, 1, "keys of two racing rotations that work");
    assert!(catalog.authenticate(&winner.api_key).await.is_err());

    // Removing and rotating at once ends with the tenant gone.
    let remover = {
        let catalog = catalog.clone();
        tokio::spawn(async move { catalog.remove_tenant("race").await })
    };
    let rotated = catalog.rotate_key("race").await;
    remover.await??;
    if let Ok(key) = rotated {
        assert!(
            catalog.authenticate(&key).await.is_err(),
            "a removed tenant's key works"
        );
    }
    for key in &keys {
        assert!(
            catalog.authenticate(key).await.is_err(),
            "a removed tenant's key works"
        );
    }

    // Two removals of one tenant at once: one removes it, the other finds
    // it gone.
    catalog.create_tenant("twice").await?;
    let removals: Vec<_> = (0..2)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.remove_tenant("twice").await })
        })
        .collect();
    let mut removed = 0;
    for task in removals {
        match task.await? {
            Ok(()) => removed += 1,
            Err(error) => assert!(
                matches!(error, CatalogError::TenantNotFound(_)),
                "a losing removal failed otherwise: {error:?}"
            ),
        }
    }
    assert_eq!(removed, 1, "removals of one tenant that succeeded");
    Ok(())
}

/// Waits until a statement of this database that starts with `prefix`
/// waits for a lock.
async fn wait_for_lock(admin: &PgPool, prefix: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_stat_activity \
              WHERE datname = current_database() AND wait_event_type = 'Lock' \
                AND starts_with(query, $1))",
        )
        .bind(prefix)
        .fetch_one(admin)
        .await?;
        if waiting {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no `{prefix}` statement waited for a lock within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn removing_a_busy_tenant() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let catalog = tenants.host.catalog().clone();
    let b = &tenants.b;

    // globex keeps its table locked in an open transaction while the host
    // removes it. The removal waits for it, then takes everything.
    let mut held = tenants.attacker().begin().await?;
    sqlx::query(AssertSqlSafe(format!(
        "SELECT count(*) FROM tenant_globex.t_{}",
        b.table
    )))
    .execute(&mut *held)
    .await?;
    let remover = {
        let catalog = catalog.clone();
        tokio::spawn(async move { catalog.remove_tenant("globex").await })
    };
    wait_for_lock(tenants.admin(), "DROP SCHEMA").await?;
    // An insert of globex's that starts while the removal waits.
    let inserter = {
        let theirs = Tables::new(
            tenants.theirs.catalog().clone(),
            tenants.theirs.engine().clone(),
            tenants.theirs.tenant().clone(),
        );
        tokio::spawn(async move { insert_jsonl(&theirs, "docs", &[json!({"body": "late"})]).await })
    };
    wait_for_lock(tenants.admin(), "LOCK TABLE").await?;
    held.commit().await?;
    tokio::time::timeout(Duration::from_secs(20), remover)
        .await
        .expect("the removal finishes once globex's transaction ends")??;
    let late = tokio::time::timeout(Duration::from_secs(20), inserter)
        .await
        .expect("the insert ends")?;
    assert!(late.is_err(), "an insert into a removed tenant succeeded");

    let left: (bool, bool, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tenant_globex'), \
                EXISTS (SELECT FROM pg_roles WHERE rolname = $1), \
                (SELECT count(*) FROM sandtable.tables WHERE tenant_id = $2) \
              + (SELECT count(*) FROM sandtable.plugins WHERE tenant_id = $2) \
              + (SELECT count(*) FROM sandtable.snapshots WHERE tenant_id = $2)",
    )
    .bind(&b.role)
    .bind(b.tenant)
    .fetch_one(tenants.admin())
    .await?;
    assert_eq!(left, (false, false, 0), "globex outlives its removal");

    // Connections still open in globex's pool can reach nothing now.
    for statement in [
        "SELECT count(*) FROM sandtable.tables",
        "SELECT sandtable.session_tenant()",
        "INSERT INTO sandtable.tables (tenant_id, name) VALUES (1, 'late')",
    ] {
        let result = run(tenants.attacker(), statement).await;
        assert!(
            !result.starts_with("no error"),
            "a removed tenant's connection ran `{statement}`"
        );
    }
    let listed = tenants.theirs.list_tables().await;
    assert!(listed.is_err(), "a removed tenant lists its tables");

    // A new tenant of the same name starts empty, and the old one's key
    // does not open it.
    let again = catalog.create_tenant("globex").await?;
    let fresh = tenant_tables(&tenants.host, &again).await?;
    assert!(fresh.list_tables().await?.is_empty());
    assert!(catalog.authenticate(&tenants.globex.api_key).await.is_err());
    assert_acme_intact(&tenants).await?;
    Ok(())
}

#[tokio::test]
async fn removing_a_tenant_mid_write() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let b = &tenants.b;

    // A write of globex's locks its table first and writes catalog rows of
    // the table last, as every write does. The removal must not deadlock
    // with it.
    let mut write = tenants.attacker().begin().await?;
    sqlx::query(AssertSqlSafe(format!(
        "LOCK TABLE tenant_globex.t_{} IN ROW EXCLUSIVE MODE",
        b.table
    )))
    .execute(&mut *write)
    .await?;
    let remover = {
        let catalog = tenants.host.catalog().clone();
        tokio::spawn(async move { catalog.remove_tenant("globex").await })
    };
    wait_for_lock(tenants.admin(), "DROP SCHEMA").await?;
    // Meanwhile a first lease of a pool, on a connection of its own, which
    // a write that computes cells waits for.
    let leased = sqlx::query(
        "INSERT INTO sandtable.pools (tenant_id, name, requests_per_minute, burst, origin, \
         request_tat_us, updated_us) VALUES ($1, 'late-pool', 60, 1, 'config', 0, 0)",
    )
    .bind(b.tenant)
    .execute(tenants.attacker());
    let leased = tokio::time::timeout(Duration::from_secs(5), leased).await;
    assert!(
        matches!(leased, Ok(Ok(_))),
        "a pool lease waited on the removal: {leased:?}"
    );
    let recorded = sqlx::query(
        "INSERT INTO sandtable.table_versions (table_id, version, write_id, operation) \
         VALUES ($1, 99, 99, 'late')",
    )
    .bind(b.table)
    .execute(&mut *write)
    .await;
    assert!(
        recorded.is_ok(),
        "the write's catalog row waited on the removal: {recorded:?}"
    );
    write.commit().await?;
    let removed = tokio::time::timeout(Duration::from_secs(20), remover)
        .await
        .expect("the removal finishes once the write ends")?;
    assert!(removed.is_ok(), "the removal failed: {removed:?}");

    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sandtable.tables WHERE tenant_id = $1) \
              + (SELECT count(*) FROM sandtable.table_versions WHERE table_id = $2)",
    )
    .bind(b.tenant)
    .bind(b.table)
    .fetch_one(tenants.admin())
    .await?;
    assert_eq!(left, 0, "globex's rows outlive its removal");
    assert_acme_intact(&tenants).await?;
    Ok(())
}

#[tokio::test]
async fn default_tenant_works_beside_tenants() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let host = &tenants.host;
    add_plugin(host, "text", "text.wasm").await?;
    add_plugin(host, "hash-embed", "hash_embed.wasm").await?;
    host.create_table("docs", &columns(&["body:string", "n:int"]))
        .await?;
    insert_jsonl(host, "docs", &[json!({"body": "host row", "n": 7})]).await?;
    host.add_computed_column("docs", "loud", "text.upper(body)", &abort(), &())
        .await?;
    host.add_index(
        "docs",
        "body",
        "hash-embed.embed8",
        Metric::L2,
        None,
        &abort(),
        &(),
    )
    .await?;
    host.create_snapshot("host_snap", "docs", None).await?;

    let rows = dump(host, "docs").await?;
    assert_eq!(rows.len(), 1, "the default tenant sees other tenants' rows");
    assert_eq!(rows[0]["loud"], "HOST ROW");
    let found = host.search("docs", &vector_query(vec![0.0; 8], 5)).await?;
    assert_eq!(ints(&found, "n"), [7]);
    let names: Vec<String> = host
        .list_tables()
        .await?
        .into_iter()
        .map(|table| table.name)
        .collect();
    assert_eq!(names, ["docs"]);
    let plugins: Vec<String> = host
        .catalog()
        .list_plugins(host.tenant())
        .await?
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(plugins, ["hash-embed", "text"]);
    let snapshots: Vec<String> = host
        .list_snapshots()
        .await?
        .into_iter()
        .map(|snapshot| snapshot.name)
        .collect();
    assert_eq!(snapshots, ["host_snap"]);

    // The default tenant has no role of its own: its catalog is the host's.
    let own = host.catalog().for_tenant(host.tenant()).await?;
    let (current, tenant): (String, Option<i64>) =
        sqlx::query_as("SELECT current_user::text, sandtable.session_tenant()")
            .fetch_one(own.pool())
            .await?;
    let host_user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(tenants.admin())
        .await?;
    assert_eq!(current, host_user);
    assert_eq!(tenant, None, "the host's role counts as a tenant");

    // No tenant reaches the default tenant's rows or schema.
    let table: i64 = sqlx::query_scalar(
        "SELECT id FROM sandtable.tables WHERE tenant_id = $1 AND name = 'docs'",
    )
    .bind(host.tenant().id)
    .fetch_one(tenants.admin())
    .await?;
    let cases: Vec<(String, &str)> = vec![
        (format!("SELECT * FROM tenant_default.t_{table}"), DENIED),
        (
            format!("SELECT nextval('tenant_default.t_{table}_writes')"),
            DENIED,
        ),
    ];
    expect_outcomes(tenants.attacker(), &cases).await?;
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sandtable.plugins WHERE tenant_id = $1")
            .bind(host.tenant().id)
            .fetch_one(tenants.attacker())
            .await?;
    assert_eq!(seen, 0, "globex sees the default tenant's plugins");

    // The tenants' own flows still work beside it.
    assert_acme_intact(&tenants).await?;
    assert_eq!(dump(&tenants.theirs, "docs").await?[0]["loud"], "THEIRS");
    host.drop_table("docs", true).await?;
    assert!(host.list_tables().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn group_role_grants_are_narrow() -> anyhow::Result<()> {
    let tenants = two_tenants().await?;
    let admin = tenants.admin();
    let group: String = sqlx::query_scalar(
        "SELECT 'sandtable_' || oid || '_tenants' FROM pg_database \
         WHERE datname = current_database()",
    )
    .fetch_one(admin)
    .await?;

    // Every catalog table that tenants reach has row-level security.
    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         WHERE c.relnamespace = 'sandtable'::regnamespace AND c.relkind IN ('r', 'p') \
           AND NOT c.relrowsecurity AND has_any_column_privilege($1, c.oid, 'SELECT') \
         ORDER BY 1",
    )
    .bind(&group)
    .fetch_all(admin)
    .await?;
    assert!(
        unprotected.is_empty(),
        "tenants reach tables without row-level security: {unprotected:?}"
    );

    // No catalog table takes TRUNCATE, REFERENCES or TRIGGER from tenants,
    // and none takes an id that tenants choose.
    let broad: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || ' ' || p.privilege FROM pg_class c, \
                unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER']) p(privilege) \
         WHERE c.relnamespace = 'sandtable'::regnamespace AND c.relkind = 'r' \
           AND has_table_privilege($1, c.oid, p.privilege) \
         UNION ALL \
         SELECT c.relname || '.' || a.attname || ' ' || p.privilege \
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid, \
                unnest(ARRAY['INSERT', 'UPDATE']) p(privilege) \
          WHERE c.relnamespace = 'sandtable'::regnamespace AND c.relkind = 'r' \
            AND a.attidentity <> '' AND has_column_privilege($1, c.oid, a.attnum, p.privilege) \
         UNION ALL \
         SELECT c.relname || ' USAGE' FROM pg_class c \
          WHERE c.relnamespace = 'sandtable'::regnamespace \
            AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, 'USAGE') END \
         ORDER BY 1",
    )
    .bind(&group)
    .fetch_all(admin)
    .await?;
    assert!(
        broad.is_empty(),
        "tenants have privileges they need not: {broad:?}"
    );
    let secret: Vec<String> = sqlx::query_scalar(
        "SELECT a FROM unnest(ARRAY['role_password', 'key_hash']) a \
         WHERE has_column_privilege($1, 'sandtable.tenants', a, 'SELECT')",
    )
    .bind(&group)
    .fetch_all(admin)
    .await?;
    assert!(secret.is_empty(), "tenants read {secret:?}");
    // Tenants still insert every other column of the tables with ids.
    let insertable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         WHERE c.relnamespace = 'sandtable'::regnamespace AND c.relname IN \
               ('tables', 'columns', 'snapshots', 'indexes') \
           AND has_column_privilege($1, c.oid, 'name', 'INSERT') ORDER BY 1",
    )
    .bind(&group)
    .fetch_all(admin)
    .await?;
    assert_eq!(insertable, ["columns", "indexes", "snapshots", "tables"]);

    // The tenant roles have no attribute beyond LOGIN, and no membership in
    // one another or in the host's role.
    let host_role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(admin)
        .await?;
    for (role, other) in [
        (&tenants.a.role, &tenants.b.role),
        (&tenants.b.role, &tenants.a.role),
    ] {
        let attributes: (bool, bool, bool, bool, bool, bool, bool, bool) = sqlx::query_as(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, \
                    rolbypassrls, pg_has_role($1, $2, 'USAGE'), pg_has_role($1, $3, 'USAGE') \
               FROM pg_roles WHERE rolname = $1",
        )
        .bind(role)
        .bind(other)
        .bind(&host_role)
        .fetch_one(admin)
        .await?;
        assert_eq!(
            attributes,
            (true, false, false, false, false, false, false, false),
            "role `{role}`"
        );
    }
    let group_login: bool =
        sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(&group)
            .fetch_one(admin)
            .await?;
    assert!(!group_login, "the group role can log in");
    Ok(())
}

/// Creates a role named `sandtable_<oid>_<suffix>` of the database with
/// `attributes`, which the test harness drops with the database's tenant
/// roles, and returns its name. `suffix` has an uppercase letter, so no
/// tenant's role can have the name.
async fn database_role(db: &TestDb, suffix: &str, attributes: &str) -> anyhow::Result<String> {
    let oid: i64 = sqlx::query_scalar(
        "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(db.pool())
    .await?;
    let role = format!("sandtable_{oid}_{suffix}");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE ROLE \"{role}\" LOGIN {attributes}; \
         GRANT CREATE ON DATABASE \"{}\" TO \"{role}\"",
        db.name()
    )))
    .execute(db.pool())
    .await?;
    Ok(role)
}

/// Opens the catalog on `db` as `role`, which runs the migrations and so
/// owns the catalog.
async fn catalog_as(db: &TestDb, role: &str) -> anyhow::Result<Catalog> {
    let pool = sandtable::pg::pool_options()
        .max_connections(2)
        .connect_lazy_with(db.connect_options().username(role));
    Ok(Catalog::open(pool).await?)
}

#[tokio::test]
async fn host_role_that_is_no_superuser() -> anyhow::Result<()> {
    // With CREATEROLE, a host role that is no superuser manages tenants.
    let db = sandtable_tests::fresh_database().await?;
    let engine = UdfEngine::new(EngineConfig {
        cache_dir: Some(
            sandtable_tests::workspace_root()
                .join("target")
                .join("test-cache"),
        ),
        ..EngineConfig::default()
    })?;
    let operator = database_role(&db, "Operator", "CREATEROLE").await?;
    let catalog = catalog_as(&db, &operator).await?;
    let created = catalog.create_tenant("acme").await?;
    let tenant_catalog = catalog.for_tenant(&created.tenant).await?;
    let tables = Tables::new(tenant_catalog, engine.clone(), created.tenant.clone());
    add_plugin(&tables, "text", "text.wasm").await?;
    tables
        .create_table("docs", &columns(&["body:string"]))
        .await?;
    insert_jsonl(&tables, "docs", &[json!({"body": "a"})]).await?;
    tables
        .add_computed_column("docs", "loud", "text.upper(body)", &abort(), &())
        .await?;
    tables.create_snapshot("first", "docs", None).await?;
    assert_eq!(dump(&tables, "first").await?[0]["loud"], "A");
    // The default tenant, as the operator's role, which owns the catalog.
    let default = catalog.tenant(DEFAULT_TENANT).await?;
    let host = Tables::new(catalog.clone(), engine.clone(), default);
    host.create_table("docs", &columns(&["body:string"]))
        .await?;
    insert_jsonl(&host, "docs", &[json!({"body": "host"})]).await?;
    assert_eq!(dump(&host, "docs").await?.len(), 1);
    let rotated = catalog.rotate_key("acme").await?;
    assert_eq!(catalog.authenticate(&rotated).await?.name, "acme");
    catalog.remove_tenant("acme").await?;
    let left: (bool, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tenant_acme'), \
                (SELECT count(*) FROM pg_roles WHERE rolname = 'sandtable_' || \
                    (SELECT oid FROM pg_database WHERE datname = current_database()) || '_acme')",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!(
        left,
        (false, 0),
        "acme outlives its removal by a non-superuser"
    );
    catalog.pool().close().await;

    // Without CREATEROLE, creating a tenant fails with an error that names
    // the missing attribute, and leaves nothing behind.
    let plain_db = sandtable_tests::fresh_database().await?;
    let plain = database_role(&plain_db, "Plain", "").await?;
    let catalog = catalog_as(&plain_db, &plain).await?;
    let error = catalog
        .create_tenant("acme")
        .await
        .expect_err("a host role without CREATEROLE");
    assert!(matches!(error, CatalogError::Privilege(_)), "{error:?}");
    assert!(error.to_string().contains("CREATEROLE"), "{error}");
    let left: (i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sandtable.tenants), \
                EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tenant_acme')",
    )
    .fetch_one(plain_db.pool())
    .await?;
    assert_eq!(left, (1, false), "a refused create left rows or a schema");
    catalog.pool().close().await;
    Ok(())
}

#[tokio::test]
#[ignore = "hole: advisory locks and LOCK TABLE take no privilege a tenant lacks, so one \
            tenant can stall every other's writes; see the comment in the test"]
async fn other_tenant_locks_do_not_stall_writes() -> anyhow::Result<()> {
    // TODO: Postgres checks no privilege on advisory locks, and `LOCK TABLE
    // ... IN ACCESS EXCLUSIVE MODE` needs only UPDATE or DELETE, which the
    // tenants have on the catalog. Writes key their advisory locks by table
    // id and write number, both visible in pg_class and the sequences'
    // order, so a tenant that runs SQL can hold another's locks forever.
    // Closing this needs write serialization that is not keyed by advisory
    // locks (or a `lock_timeout` with the error named), and no catalog
    // table a tenant may lock whole.
    let tenants = two_tenants().await?;
    let t = tenants.a.table;
    let mut stalled = Vec::new();
    let patience = Duration::from_secs(3);

    let mut holder = tenants.attacker().acquire().await?.detach();
    sqlx::query("SELECT pg_advisory_lock($1::integer, 0)")
        .bind(t)
        .execute(&mut holder)
        .await?;
    let late = [json!({"body": "late", "n": 9})];
    let write = insert_jsonl(&tenants.ours, "docs", &late);
    if tokio::time::timeout(patience, write).await.is_err() {
        stalled.push("globex's advisory lock (table, 0) stalls acme's insert");
    }
    holder.close().await?;

    // A write number of globex's own sequence, locked under acme's table id.
    // globex first moves its own sequence back, so that the number comes
    // before acme's next one.
    let mut holder = tenants.attacker().begin().await?;
    let sequence = format!("tenant_globex.t_{}_writes", tenants.b.table);
    sqlx::query(AssertSqlSafe(format!(
        "SELECT setval('{sequence}', 1), sandtable.begin_write({t}, '{sequence}')"
    )))
    .execute(&mut *holder)
    .await?;
    let write = insert_jsonl(&tenants.ours, "docs", &late);
    if tokio::time::timeout(patience, write).await.is_err() {
        stalled.push("globex's begin_write on acme's table id stalls acme's commit");
    }
    holder.rollback().await?;

    let mut holder = tenants.attacker().begin().await?;
    sqlx::query("LOCK TABLE sandtable.tables IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await?;
    if tokio::time::timeout(patience, tenants.ours.list_tables())
        .await
        .is_err()
    {
        stalled.push("globex's LOCK TABLE sandtable.tables stalls acme's reads");
    }
    holder.rollback().await?;

    let mut holder = tenants.attacker().acquire().await?.detach();
    sqlx::query("SELECT pg_advisory_lock(hashtext('sandtable tenant roles'))")
        .execute(&mut holder)
        .await?;
    let create = tenants.host.catalog().create_tenant("late");
    if tokio::time::timeout(patience, create).await.is_err() {
        stalled.push("globex's advisory lock stalls the host's create_tenant");
    }
    holder.close().await?;

    assert!(stalled.is_empty(), "{stalled:#?}");
    Ok(())
}

#[tokio::test]
async fn tenant_role_cannot_grant_itself_the_root() -> anyhow::Result<()> {
    // `grant_directory` refuses `/`, `/proc`, `/sys` and `/dev`, but the
    // database does not, and `load_plugin` only checks that a granted path
    // still resolves to itself. So the tenant roles may not insert grants:
    // the host writes them on its own pool.
    let tenants = two_tenants().await?;
    add_plugin(&tenants.theirs, "hostile", "hostile.wasm").await?;
    let refused = tenants
        .theirs
        .catalog()
        .grant_directory(
            tenants.theirs.tenant(),
            "hostile",
            &DirectoryGrant {
                guest_path: "/data".into(),
                host_path: "/".into(),
            },
        )
        .await;
    assert!(matches!(refused, Err(CatalogError::UnsafeGrant { .. })));

    let planted = run(
        tenants.attacker(),
        &format!(
            "INSERT INTO sandtable.plugin_directories VALUES ({}, 'hostile', '/data', '/')",
            tenants.b.tenant
        ),
    )
    .await;
    let reference: PluginRef = "hostile".parse()?;
    let loaded = tenants
        .theirs
        .catalog()
        .load_plugin(tenants.host.engine(), tenants.theirs.tenant(), &reference)
        .await;
    let mounted_root = loaded.as_ref().is_ok_and(|(_, _, context)| {
        context
            .directories
            .iter()
            .any(|grant| grant.host_path == std::path::Path::new("/"))
    });
    assert!(
        !mounted_root,
        "globex's role planted a grant of `/` ({planted}) and its plugin mounts it"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "bug: flushing a shared engine's stats through one tenant's catalog drops the \
            other tenants' stats; see the comment in the test"]
async fn stats_flush_keeps_other_tenants() -> anyhow::Result<()> {
    // TODO: `write_stats` finds each aggregate's tenant by name in
    // `sandtable.tenants`, which row-level security limits to the
    // catalog's own tenant, and skips the rest. So an engine shared by
    // tenants, flushed through one tenant's catalog, loses every other
    // tenant's aggregates. Flushing through the host's catalog, or keeping
    // skipped aggregates for a catalog that can write them, closes it.
    let tenants = two_tenants().await?;
    // The fixture computed cells of both tenants on one engine.
    tenants
        .theirs
        .catalog()
        .flush_stats(tenants.theirs.engine())
        .await?;
    let host = tenants.host.catalog();
    let window = Duration::from_secs(600);
    let theirs = host.function_stats(&tenants.globex.tenant, window).await?;
    assert!(!theirs.is_empty(), "globex's own stats were not written");
    let ours = host.function_stats(&tenants.acme.tenant, window).await?;
    assert!(
        ours.iter().any(|(key, _)| key.plugin == "text"),
        "acme's stats were dropped by globex's flush: {ours:?}"
    );
    Ok(())
}
