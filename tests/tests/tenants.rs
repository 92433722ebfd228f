//! Tenants against a real Postgres: each reaches its plugins and tables as
//! its own Postgres role, and Postgres refuses that role another tenant's
//! schema and catalog rows. Also API keys and removing a tenant.

use sandtable::catalog::{Catalog, CatalogError};
use sandtable::sandbox::HostPattern;
use sandtable::table::{Metric, SelectQuery, TableError};
use sandtable_tests::search::{ints, vector_query};
use sandtable_tests::tables::{
    abort, add_plugin, columns, dump, insert_jsonl, setup, tenant_tables,
};
use serde_json::json;

/// Returns the SQLSTATE of a failed statement.
fn sql_state(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => format!("no error, {} rows", done.rows_affected()),
        Err(sqlx::Error::Database(error)) => error.code().unwrap_or_default().into_owned(),
        Err(other) => format!("{other}"),
    }
}

#[tokio::test]
async fn tenants_work_apart_as_their_own_roles() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let globex = host.catalog().create_tenant("globex").await?;
    let ours = tenant_tables(&host, &acme).await?;
    let theirs = tenant_tables(&host, &globex).await?;

    // A whole table flow as acme's role: plugins, rows, a computed column,
    // an index, a search and a snapshot.
    add_plugin(&ours, "text", "text.wasm").await?;
    add_plugin(&ours, "hash-embed", "hash_embed.wasm").await?;
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
    let stored = dump(&ours, "docs").await?;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1]["loud"], "BLUE WHALE");
    let found = ours.search("docs", &vector_query(vec![0.0; 8], 3)).await?;
    assert_eq!(ints(&found, "n").len(), 3);
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(ours.catalog().pool())
        .await?;
    assert!(role.ends_with("_acme"), "{role}");

    // globex finds none of it, and may use the same names.
    let error = theirs
        .select("docs", &SelectQuery::default())
        .await
        .expect_err("globex reads acme's table");
    assert!(matches!(error, TableError::NotFound(_)), "{error}");
    let error = theirs
        .select("first", &SelectQuery::default())
        .await
        .expect_err("globex reads acme's snapshot");
    assert!(matches!(error, TableError::NotFound(_)), "{error}");
    assert!(theirs.list_tables().await?.is_empty());
    assert!(
        theirs
            .catalog()
            .list_plugins(&globex.tenant)
            .await?
            .is_empty()
    );
    theirs
        .create_table("docs", &columns(&["body:string"]))
        .await?;
    insert_jsonl(&theirs, "docs", &[json!({"body": "theirs"})]).await?;
    assert_eq!(dump(&theirs, "docs").await?.len(), 1);
    assert_eq!(dump(&ours, "docs").await?.len(), 3);

    // Postgres itself refuses globex's role acme's schema and rows.
    let acme_table: i64 = sqlx::query_scalar(
        "SELECT id FROM sandtable.tables WHERE tenant_id = $1 AND name = 'docs'",
    )
    .bind(acme.tenant.id)
    .fetch_one(host.catalog().pool())
    .await?;
    let pool = theirs.catalog().pool();
    let denied = "42501";
    for statement in [
        format!("SELECT * FROM tenant_acme.t_{acme_table}"),
        format!("DELETE FROM tenant_acme.t_{acme_table}"),
        "CREATE TABLE tenant_acme.planted (x int)".to_owned(),
        "CREATE TABLE sandtable.planted (x int)".to_owned(),
        "SELECT role_password FROM sandtable.tenants".to_owned(),
        "SELECT key_hash FROM sandtable.tenants".to_owned(),
        format!(
            "INSERT INTO sandtable.tables (tenant_id, name) VALUES ({}, 'planted')",
            acme.tenant.id
        ),
    ] {
        let result = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(pool)
            .await;
        assert_eq!(sql_state(result), denied, "{statement}");
    }
    // Row-level security hides acme's catalog rows from globex's role, so
    // writes to them change nothing.
    for statement in [
        format!("UPDATE sandtable.tables SET name = 'taken' WHERE id = {acme_table}"),
        format!("DELETE FROM sandtable.columns WHERE table_id = {acme_table}"),
        format!("DELETE FROM sandtable.table_versions WHERE table_id = {acme_table}"),
        format!(
            "DELETE FROM sandtable.plugins WHERE tenant_id = {}",
            acme.tenant.id
        ),
        "DELETE FROM sandtable.snapshots".to_owned(),
    ] {
        let result = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(pool)
            .await;
        assert_eq!(sql_state(result), "no error, 0 rows", "{statement}");
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sandtable.tenants")
        .fetch_all(pool)
        .await?;
    assert_eq!(names, ["globex"]);
    let visible: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sandtable.plugins) + (SELECT count(*) FROM \
         sandtable.columns WHERE table_id = $1) + (SELECT count(*) FROM sandtable.indexes)",
    )
    .bind(acme_table)
    .fetch_one(pool)
    .await?;
    assert_eq!(visible, 0);
    assert_eq!(dump(&ours, "docs").await?.len(), 3, "acme's rows changed");
    assert_eq!(ours.list_indexes(Some("docs")).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn api_keys_name_their_tenant_until_rotated() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let catalog: &Catalog = host.catalog();
    let acme = catalog.create_tenant("acme").await?;
    assert!(acme.api_key.starts_with("st_"), "{}", acme.api_key);
    assert_eq!(catalog.authenticate(&acme.api_key).await?.name, "acme");
    let error = catalog
        .authenticate("st_0000")
        .await
        .expect_err("a made-up key");
    assert!(matches!(error, CatalogError::UnknownKey), "{error}");

    let rotated = catalog.rotate_key("acme").await?;
    assert_ne!(rotated, acme.api_key);
    assert_eq!(catalog.authenticate(&rotated).await?.name, "acme");
    let error = catalog
        .authenticate(&acme.api_key)
        .await
        .expect_err("the replaced key");
    assert!(matches!(error, CatalogError::UnknownKey), "{error}");
    let error = catalog
        .rotate_key("nobody")
        .await
        .expect_err("an unknown tenant");
    assert!(matches!(error, CatalogError::TenantNotFound(_)), "{error}");

    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT key_hash FROM sandtable.tenants WHERE name = 'acme'")
            .fetch_one(catalog.pool())
            .await?;
    assert_eq!(stored.len(), 32, "the key is stored as its sha256");
    Ok(())
}

#[tokio::test]
async fn removing_a_tenant_takes_all_it_owns() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let catalog = host.catalog();
    let acme = catalog.create_tenant("acme").await?;
    let globex = catalog.create_tenant("globex").await?;
    let ours = tenant_tables(&host, &acme).await?;
    let theirs = tenant_tables(&host, &globex).await?;
    for tables in [&ours, &theirs] {
        add_plugin(tables, "text", "text.wasm").await?;
        tables
            .create_table("docs", &columns(&["body:string"]))
            .await?;
        insert_jsonl(tables, "docs", &[json!({"body": "a"})]).await?;
        tables
            .add_computed_column("docs", "loud", "text.upper(body)", &abort(), &())
            .await?;
        tables.create_snapshot("first", "docs", None).await?;
    }
    let role: String =
        sqlx::query_scalar("SELECT role_name FROM sandtable.tenants WHERE name = 'acme'")
            .fetch_one(catalog.pool())
            .await?;

    catalog.remove_tenant("acme").await?;
    let left: (bool, bool, i64, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tenant_acme'), \
                EXISTS (SELECT FROM pg_roles WHERE rolname = $1), \
                (SELECT count(*) FROM sandtable.tables WHERE tenant_id = $2), \
                (SELECT count(*) FROM sandtable.plugins WHERE tenant_id = $2)",
    )
    .bind(&role)
    .bind(acme.tenant.id)
    .fetch_one(catalog.pool())
    .await?;
    assert_eq!(left, (false, false, 0, 0));
    let error = catalog
        .authenticate(&acme.api_key)
        .await
        .expect_err("a removed tenant's key");
    assert!(matches!(error, CatalogError::UnknownKey), "{error}");
    assert_eq!(dump(&theirs, "docs").await?[0]["loud"], "A");
    assert_eq!(dump(&theirs, "first").await?.len(), 1);

    // The name is free again, with a new role and schema.
    let again = catalog.create_tenant("acme").await?;
    let fresh = tenant_tables(&host, &again).await?;
    assert!(fresh.list_tables().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn bad_tenant_requests_get_clear_errors() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let catalog = host.catalog();
    for bad in ["", "Acme", "9lives", "a-b", &"a".repeat(41)] {
        let error = catalog
            .create_tenant(bad)
            .await
            .expect_err("an invalid name");
        assert!(
            matches!(error, CatalogError::InvalidTenant(_)),
            "{bad}: {error}"
        );
        assert!(error.to_string().contains("lowercase letters"), "{error}");
    }
    catalog.create_tenant("acme").await?;
    let error = catalog
        .create_tenant("acme")
        .await
        .expect_err("a taken name");
    assert!(error.to_string().contains("already exists"), "{error}");
    let error = catalog
        .create_tenant("default")
        .await
        .expect_err("the default tenant's name");
    assert!(error.to_string().contains("already exists"), "{error}");
    let error = catalog
        .rotate_key("default")
        .await
        .expect_err("a key for the default tenant");
    assert!(error.to_string().contains("no Postgres role"), "{error}");
    let error = catalog
        .remove_tenant("default")
        .await
        .expect_err("the default tenant");
    assert!(error.to_string().contains("cannot be removed"), "{error}");
    let error = catalog
        .remove_tenant("nobody")
        .await
        .expect_err("an unknown tenant");
    assert!(matches!(error, CatalogError::TenantNotFound(_)), "{error}");
    let names: Vec<String> = catalog
        .list_tenants()
        .await?
        .into_iter()
        .map(|tenant| tenant.name)
        .collect();
    assert_eq!(names, ["default", "acme"]);
    Ok(())
}

#[tokio::test]
async fn only_the_host_grants_hosts_and_directories() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let ours = tenant_tables(&host, &acme).await?;
    add_plugin(&ours, "web", "http_json.wasm").await?;
    let pattern: HostPattern = "127.0.0.1:8080".parse().map_err(anyhow::Error::msg)?;

    // The tenant's role may read its grants but not make them.
    let error = ours
        .catalog()
        .grant_host(&acme.tenant, "web", &pattern)
        .await
        .expect_err("a tenant granted itself a host");
    let message = sandtable::error_chain(&error);
    assert!(message.contains("permission denied"), "{message}");
    for statement in [
        format!(
            "INSERT INTO sandtable.plugin_hosts (tenant_id, plugin, pattern) \
             VALUES ({}, 'web', '*:*')",
            acme.tenant.id
        ),
        format!(
            "INSERT INTO sandtable.plugin_directories (tenant_id, plugin, guest_path, host_path) \
             VALUES ({}, 'web', '/etc', '/etc')",
            acme.tenant.id
        ),
    ] {
        let result = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(ours.catalog().pool())
            .await;
        assert_eq!(sql_state(result), "42501", "{statement}");
    }

    // The host's role grants for the tenant, and the tenant can read the
    // grant.
    host.catalog()
        .grant_host(&acme.tenant, "web", &pattern)
        .await?;
    let granted: Vec<String> =
        sqlx::query_scalar("SELECT pattern FROM sandtable.plugin_hosts WHERE plugin = 'web'")
            .fetch_all(ours.catalog().pool())
            .await?;
    assert_eq!(granted, ["127.0.0.1:8080"]);
    // Removing its own grants is the tenant's to do.
    let revoked = sqlx::query("DELETE FROM sandtable.plugin_hosts WHERE plugin = 'web'")
        .execute(ours.catalog().pool())
        .await?;
    assert_eq!(revoked.rows_affected(), 1);
    Ok(())
}
