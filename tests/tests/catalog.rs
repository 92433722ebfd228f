//! The plugin catalog against a real Postgres: add, new versions, lookup by
//! version and sha256 prefix, grants, loading and removal.

use std::path::Path;

use sandtable::catalog::{Catalog, CatalogError, DEFAULT_TENANT, PluginRef, Tenant};
use sandtable::sandbox::{Column, DataType, DirectoryGrant, EngineConfig, UdfEngine};
use sandtable_tests::TestDb;
use serde_json::json;

fn plugin_bytes(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("SANDTABLE_PLUGIN_DIR")).join(file)).expect("plugins are built")
}

fn engine() -> UdfEngine {
    UdfEngine::new(EngineConfig::default()).expect("the engine starts")
}

/// Opens the catalog in a fresh database; the database lives as long as the
/// returned `TestDb`.
async fn open_catalog() -> anyhow::Result<(TestDb, Catalog, Tenant)> {
    let db = sandtable_tests::fresh_database().await?;
    let catalog = Catalog::open(db.pool().clone()).await?;
    let tenant = catalog.tenant(DEFAULT_TENANT).await?;
    Ok((db, catalog, tenant))
}

fn reference(text: &str) -> PluginRef {
    text.parse().expect("a valid reference")
}

#[tokio::test]
async fn catalog_adds_versions_and_removes_them() -> anyhow::Result<()> {
    let (_db, catalog, tenant) = open_catalog().await?;
    let engine = engine();

    let text_bytes = plugin_bytes("text.wasm");
    let text = engine.load(&text_bytes)?;
    let first = catalog
        .add_plugin(&tenant, "words", &text_bytes, &text)
        .await?;
    assert!(first.created);
    assert_eq!(first.entry.version, 1);
    assert_eq!(first.entry.sha256, text.sha256());

    let again = catalog
        .add_plugin(&tenant, "words", &text_bytes, &text)
        .await?;
    assert!(!again.created, "the same bytes are not stored twice");
    assert_eq!(again.entry.version, 1);

    // Other content under the same name becomes version 2.
    let arith_bytes = plugin_bytes("arith.wasm");
    let arith = engine.load(&arith_bytes)?;
    let second = catalog
        .add_plugin(&tenant, "words", &arith_bytes, &arith)
        .await?;
    assert!(second.created);
    assert_eq!(second.entry.version, 2);

    let latest = catalog.find_plugin(&tenant, &reference("words")).await?;
    assert_eq!(latest.version, 2);
    let by_version = catalog.find_plugin(&tenant, &reference("words@1")).await?;
    assert_eq!(by_version.sha256, text.sha256());
    let prefix = format!("words@{}", &text.sha256()[..8]);
    let by_prefix = catalog.find_plugin(&tenant, &reference(&prefix)).await?;
    assert_eq!(by_prefix.version, 1);
    assert_eq!(by_prefix.description.name, "text");

    let missing = catalog
        .find_plugin(&tenant, &reference("words@7"))
        .await
        .unwrap_err();
    assert!(matches!(missing, CatalogError::PluginNotFound { .. }));
    assert!(
        missing.to_string().contains("stored versions are 1, 2"),
        "{missing}"
    );

    let listed = catalog.list_plugins(&tenant).await?;
    assert_eq!(listed.len(), 2);

    let removed = catalog
        .remove_plugin(&tenant, &reference("words@1"), false)
        .await?;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].version, 1);
    let listed = catalog.list_plugins(&tenant).await?;
    assert_eq!(listed.iter().map(|e| e.version).collect::<Vec<_>>(), [2]);

    // A removed version is not reused: the next add is version 3.
    let third = catalog
        .add_plugin(&tenant, "words", &text_bytes, &text)
        .await?;
    assert_eq!(third.entry.version, 3);

    let removed = catalog
        .remove_plugin(&tenant, &reference("words"), true)
        .await?;
    assert_eq!(removed.len(), 2);
    assert!(catalog.list_plugins(&tenant).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn catalog_loads_plugin_with_its_grants() -> anyhow::Result<()> {
    let (_db, catalog, tenant) = open_catalog().await?;
    let engine = engine();

    let bytes = plugin_bytes("hostile.wasm");
    let plugin = engine.load(&bytes)?;
    catalog
        .add_plugin(&tenant, "hostile", &bytes, &plugin)
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("note.txt"), b"granted")?;
    let grant = DirectoryGrant {
        guest_path: "/data".into(),
        host_path: dir.path().to_owned(),
    };
    catalog.grant_directory(&tenant, "hostile", &grant).await?;

    let (entry, loaded, context) = catalog
        .load_plugin(&engine, &tenant, &reference("hostile"))
        .await?;
    assert_eq!(entry.version, 1);
    assert_eq!(context.version, 1);
    assert_eq!(context.directories, std::slice::from_ref(&grant));
    let paths = Column::from_json(&DataType::String, &[json!("/data/note.txt")]).unwrap();
    // Calls block, so they run on a thread for blocking work.
    let call_engine = engine.clone();
    let output = tokio::task::spawn_blocking(move || {
        call_engine.call(&loaded, &context, "read_file", &[paths], 1)
    })
    .await??;
    assert_eq!(output.column.json_at(0), json!("6772616e746564"));

    assert!(
        catalog
            .revoke_directory(&tenant, "hostile", "/data")
            .await?
    );
    assert!(catalog.directories(&tenant, "hostile").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn call_stats_are_written_and_summed() -> anyhow::Result<()> {
    let (_db, catalog, tenant) = open_catalog().await?;
    let engine = engine();
    let bytes = plugin_bytes("hostile.wasm");
    let plugin = engine.load(&bytes)?;
    catalog
        .add_plugin(&tenant, "hostile", &bytes, &plugin)
        .await?;
    let (_, loaded, context) = catalog
        .load_plugin(&engine, &tenant, &reference("hostile"))
        .await?;

    let run = |inputs: Vec<Option<&str>>| {
        let engine = engine.clone();
        let loaded = loaded.clone();
        let context = context.clone();
        let values: Vec<_> = inputs.iter().map(|value| json!(value)).collect();
        let column = Column::from_json(&DataType::String, &values).unwrap();
        let rows = inputs.len();
        tokio::task::spawn_blocking(move || {
            engine.call(&loaded, &context, "panic_on", &[column], rows)
        })
    };
    // Two rows and a panic: one faulted call, then one call a half.
    let output = run(vec![Some("a"), Some("boom")]).await??;
    assert_eq!(output.records.len(), 3);
    catalog.flush_stats(&engine).await?;
    // A second write adds to the same minute's row.
    run(vec![Some("b")]).await??;
    catalog.flush_stats(&engine).await?;

    let stats = catalog
        .function_stats(&tenant, std::time::Duration::from_secs(3600))
        .await?;
    assert_eq!(stats.len(), 1);
    let (key, stats) = &stats[0];
    assert_eq!(
        (key.plugin.as_str(), key.function.as_str()),
        ("hostile", "panic_on")
    );
    assert_eq!(stats.calls, 4);
    assert_eq!(stats.rows, 2 + 1 + 1 + 1);
    let trap = sandtable::sandbox::FaultClass::ALL
        .iter()
        .position(|class| *class == sandtable::sandbox::FaultClass::GuestTrap)
        .unwrap();
    assert_eq!(
        stats.faults[trap], 2,
        "the whole batch and the half with `boom`"
    );
    assert_eq!(stats.latency_buckets.iter().sum::<u64>(), 4);
    assert!(engine.take_stats().is_empty(), "flushing took everything");
    Ok(())
}

#[tokio::test]
async fn catalog_opens_twice_without_rerunning_migrations() -> anyhow::Result<()> {
    let db = sandtable_tests::fresh_database().await?;
    Catalog::open(db.pool().clone()).await?;
    let catalog = Catalog::open(db.pool().clone()).await?;
    let tenant = catalog.tenant(DEFAULT_TENANT).await?;
    assert_eq!(tenant.schema_name, "tenant_default");
    Ok(())
}
