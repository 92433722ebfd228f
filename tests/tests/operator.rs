//! The operator side of `sandtable serve` on loopback, against a real
//! Postgres: the admin key, which routes it opens and which it does not,
//! and the tenant routes.

use sandtable::catalog::ADMIN_KEY_PREFIX;
use sandtable_tests::api::{ApiServer, assert_error};
use sandtable_tests::tables::{setup, tenant_tables};
use serde_json::json;

/// The routes that take the admin key, each with a method that it serves.
const OPERATOR_ROUTES: [(&str, &str); 4] = [
    ("GET", "/v1/tenants"),
    ("GET", "/v1/admin/metrics.json"),
    ("GET", "/metrics"),
    ("POST", "/v1/tenants/acme/rotate-key"),
];

#[tokio::test]
async fn admin_key_guards_operator_routes() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let server = ApiServer::start(&host).await?;

    // Before any admin key exists, every key is refused with the fix.
    let response = server.get("/metrics", Some("st_admin_guess")).await?;
    assert_eq!(response.status, 401, "{}", response.text);
    let message = assert_error(&response.json(), "unauthorized");
    assert!(message.contains("sandtable admin rotate-key"), "{message}");

    let admin = host.catalog().rotate_admin_key().await?;
    assert!(admin.starts_with(ADMIN_KEY_PREFIX), "{admin}");
    assert_eq!(admin.len(), ADMIN_KEY_PREFIX.len() + 64);

    for (method, path) in OPERATOR_ROUTES {
        let method: reqwest::Method = method.parse()?;
        let response = server.send(method.clone(), path, None, None).await?;
        assert_eq!(response.status, 401, "{path} without a key");
        assert_error(&response.json(), "unauthorized");

        let response = server
            .send(method.clone(), path, Some("st_admin_wrong"), None)
            .await?;
        assert_eq!(response.status, 401, "{path} with a wrong key");
        let message = assert_error(&response.json(), "unauthorized");
        assert!(message.contains("not valid"), "{message}");

        let response = server
            .send(method.clone(), path, Some(&acme.api_key), None)
            .await?;
        assert_eq!(response.status, 403, "{path} with a tenant's key");
        let message = assert_error(&response.json(), "forbidden");
        assert!(message.contains("`acme`"), "{message}");
    }

    // Another scheme than Bearer is refused as a missing key is.
    let response = server
        .client
        .get(format!("{}/metrics", server.base))
        .header("Authorization", format!("Basic {admin}"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);

    let response = server.get("/metrics", Some(&admin)).await?;
    assert_eq!(response.status, 200, "{}", response.text);
    let content_type = response.headers["content-type"].to_str()?;
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let response = server.get("/v1/admin/metrics.json", Some(&admin)).await?;
    assert_eq!(response.status, 200, "{}", response.text);
    assert!(response.json()["samples"].is_array(), "{}", response.text);

    // The admin key is no tenant's key.
    let response = server.get("/v1/tables", Some(&admin)).await?;
    assert_eq!(response.status, 403, "{}", response.text);
    let message = assert_error(&response.json(), "forbidden");
    assert!(message.contains("tenant's API key"), "{message}");

    // A new admin key replaces the old one at once.
    let rotated = host.catalog().rotate_admin_key().await?;
    assert_ne!(rotated, admin);
    let response = server.get("/metrics", Some(&admin)).await?;
    assert_eq!(response.status, 401, "the replaced key");
    let response = server.get("/metrics", Some(&rotated)).await?;
    assert_eq!(response.status, 200, "the new key");
    Ok(())
}

#[tokio::test]
async fn tenant_routes_create_rotate_and_remove() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let admin = host.catalog().rotate_admin_key().await?;
    let server = ApiServer::start(&host).await?;

    let response = server
        .post("/v1/tenants", &admin, &json!({"name": "acme"}))
        .await?;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.headers["cache-control"], "no-store");
    let created = response.json();
    assert_eq!(created["name"], "acme");
    assert_eq!(created["schema_name"], "tenant_acme");
    let key = created["api_key"].as_str().unwrap().to_owned();
    let response = server.get("/v1/tables", Some(&key)).await?;
    assert_eq!(
        (response.status, response.json()),
        (200, json!([])),
        "the printed key opens the tenant's routes"
    );

    let response = server.get("/v1/tenants", Some(&admin)).await?;
    assert_eq!(response.status, 200, "{}", response.text);
    let names: Vec<String> = response
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|tenant| tenant["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "acme"]);
    assert!(!response.text.contains(&key), "a listing never shows a key");

    for (body, expected) in [
        (json!({"name": "acme"}), "already exists"),
        (json!({"name": "Bad Name"}), "invalid tenant name"),
        (json!({"name": "ok", "role": "x"}), "unknown field"),
        (json!({}), "missing field"),
    ] {
        let response = server.post("/v1/tenants", &admin, &body).await?;
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        let message = assert_error(&response.json(), "invalid");
        assert!(message.contains(expected), "{body}: {message}");
    }

    let response = server
        .post("/v1/tenants/acme/rotate-key", &admin, &json!({}))
        .await?;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.headers["cache-control"], "no-store");
    let rotated = response.json()["api_key"].as_str().unwrap().to_owned();
    assert_eq!(server.get("/v1/tables", Some(&key)).await?.status, 401);
    assert_eq!(server.get("/v1/tables", Some(&rotated)).await?.status, 200);
    let response = server
        .post("/v1/tenants/nobody/rotate-key", &admin, &json!({}))
        .await?;
    assert_eq!(response.status, 404, "{}", response.text);
    assert_error(&response.json(), "not_found");

    let response = server
        .send(
            reqwest::Method::DELETE,
            "/v1/tenants/acme",
            Some(&admin),
            None,
        )
        .await?;
    assert_eq!(
        (response.status, response.json()),
        (200, json!({"removed": "acme"}))
    );
    assert_eq!(
        server.get("/v1/tables", Some(&rotated)).await?.status,
        401,
        "a removed tenant's key opens nothing"
    );
    let response = server
        .send(
            reqwest::Method::DELETE,
            "/v1/tenants/acme",
            Some(&admin),
            None,
        )
        .await?;
    assert_eq!(response.status, 404, "{}", response.text);
    assert_error(&response.json(), "not_found");
    let response = server
        .send(
            reqwest::Method::DELETE,
            "/v1/tenants/default",
            Some(&admin),
            None,
        )
        .await?;
    assert_eq!(response.status, 400, "{}", response.text);
    assert_error(&response.json(), "invalid");

    // The name is free again.
    let response = server
        .post("/v1/tenants", &admin, &json!({"name": "acme"}))
        .await?;
    assert_eq!(response.status, 201, "{}", response.text);
    Ok(())
}

#[tokio::test]
async fn tenant_roles_cannot_reach_admin_key() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    host.catalog().rotate_admin_key().await?;
    // Creating a tenant grants the group role the catalog again, so a
    // tenant made after the key exists is checked too.
    let globex = host.catalog().create_tenant("globex").await?;
    let denied = "42501";
    for created in [&acme, &globex] {
        let tables = tenant_tables(&host, created).await?;
        let pool = tables.catalog().pool();
        for statement in [
            "SELECT key_hash FROM sandtable.admin_key",
            "INSERT INTO sandtable.admin_key (id, key_hash) VALUES (false, '\\x00')",
            "UPDATE sandtable.admin_key SET key_hash = '\\x00'",
            "DELETE FROM sandtable.admin_key",
        ] {
            let result = sqlx::query(statement).execute(pool).await;
            let state = match result {
                Ok(done) => format!("no error, {} rows", done.rows_affected()),
                Err(sqlx::Error::Database(error)) => error.code().unwrap_or_default().into_owned(),
                Err(other) => other.to_string(),
            };
            assert_eq!(state, denied, "{} ran {statement}", created.tenant.name);
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sandtable.admin_key")
        .fetch_one(host.catalog().pool())
        .await?;
    assert_eq!(rows, 1, "the host's role still reads its key");
    Ok(())
}
