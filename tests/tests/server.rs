//! The HTTP API of `sandtable serve` on loopback, against a real Postgres:
//! API keys, one tenant's tables, the same requests from another tenant,
//! the error body, and a streamed insert.

use sandtable::config::Config;
use sandtable::table::{Metric, Tables};
use sandtable_tests::tables::{
    abort, add_plugin, dump, insert_jsonl, plugin_bytes, setup, setup_with, tenant_tables,
};
use serde_json::{Value, json};
use std::time::Duration;

/// A server on a loopback port, stopped when dropped.
struct Server {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(host: &Tables) -> anyhow::Result<Self> {
        Server::start_with_grace(host, Duration::from_secs(30)).await
    }

    async fn start_with_grace(host: &Tables, grace: Duration) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = sandtable::server::router(host.catalog().clone(), host.engine().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(sandtable::server::serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            grace,
        ));
        Ok(Server {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            serving,
        })
    }

    /// Sends a request with `key` as the bearer key, and returns the status
    /// code and the JSON body.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<reqwest::Body>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text)
            .map_err(|error| anyhow::anyhow!("the body is not JSON ({error}): {text}"))?;
        Ok((status, body))
    }

    async fn get(&self, path: &str, key: Option<&str>) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::GET, path, key, None).await
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.send(
            reqwest::Method::POST,
            path,
            Some(key),
            Some(body.to_string().into()),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Checks that `body` is the API's error body with `code`.
fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["details"].is_object(), "{body}");
}

#[tokio::test]
async fn keys_pick_the_tenant_and_hide_the_others() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let globex = host.catalog().create_tenant("globex").await?;
    let ours = tenant_tables(&host, &acme).await?;
    add_plugin(&ours, "hash-embed", "hash_embed.wasm").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();
    let b = globex.api_key.as_str();

    let (status, body) = server.get("/v1/health", None).await?;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    for key in [None, Some("st_wrong")] {
        let (status, body) = server.get("/v1/tables", key).await?;
        assert_eq!(status, 401, "{key:?}: {body}");
        assert_error(&body, "unauthorized");
    }
    let response = server
        .client
        .get(format!("{}/v1/tables", server.base))
        .header("Authorization", format!("Basic {a}"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);

    let (status, body) = server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["body:string", "n:int"]}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let rows = "{\"body\": \"red fox\", \"n\": 0}\n{\"body\": \"blue whale\", \"n\": 1}\n\
                {\"body\": \"green frog\", \"n\": 2}\n";
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows",
            Some(a),
            Some(rows.into()),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rows_added"], 3, "{body}");
    let (status, body) = server
        .get("/v1/tables/docs/rows?where=n%20%3E%200&order_by=n", Some(a))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["body"], "blue whale", "{body}");
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(2), "{body}");
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
    let (status, body) = server
        .post(
            "/v1/tables/docs/search",
            a,
            json!({"text": "blue whale", "k": 2, "columns": "n"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["n"], 1, "{body}");
    assert_eq!(body["rows"][0]["distance"], 0.0, "{body}");

    // globex gets, for acme's table, exactly what a missing table gives.
    let requests: [(reqwest::Method, &str, Option<&str>); 5] = [
        (reqwest::Method::GET, "/v1/tables/{}", None),
        (reqwest::Method::GET, "/v1/tables/{}/rows", None),
        (
            reqwest::Method::POST,
            "/v1/tables/{}/rows",
            Some("{\"body\": \"planted\", \"n\": 9}\n"),
        ),
        (
            reqwest::Method::POST,
            "/v1/tables/{}/search",
            Some("{\"vector\": [0, 0, 0, 0, 0, 0, 0, 0]}"),
        ),
        (reqwest::Method::DELETE, "/v1/tables/{}", None),
    ];
    for (method, path, body) in requests {
        let mut answers = Vec::new();
        for table in ["docs", "nothere"] {
            let (status, answer) = server
                .send(
                    method.clone(),
                    &path.replace("{}", table),
                    Some(b),
                    body.map(|b| b.to_owned().into()),
                )
                .await?;
            assert_eq!(status, 404, "{method} {path}: {answer}");
            assert_error(&answer, "not_found");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            answers.push(message.replace(table, "NAME"));
        }
        assert_eq!(answers[0], answers[1], "{method} {path}");
    }
    let (_, body) = server.get("/v1/tables", Some(b)).await?;
    assert_eq!(body, json!([]));
    let (_, body) = server.get("/v1/plugins", Some(b)).await?;
    assert_eq!(body, json!([]));
    let (_, body) = server.get("/v1/tables/docs/rows", Some(a)).await?;
    assert_eq!(
        body["rows"].as_array().map(Vec::len),
        Some(3),
        "acme's rows changed"
    );
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_the_error_body() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();

    let (status, body) = server
        .post("/v1/tables", a, json!({"nme": "docs", "columns": []}))
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nme"),
        "{body}"
    );
    let (status, body) = server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["body:text"]}),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid");
    server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["n:int"]}),
        )
        .await?;
    let (status, body) = server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["n:int"]}),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_error(&body, "conflict");

    let rows = "{\"n\": 1}\n{\"n\": \"two\"}\n";
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows",
            Some(a),
            Some(rows.into()),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid");
    assert_eq!(body["error"]["details"]["row"], 2, "{body}");
    let (_, body) = server.get("/v1/tables/docs/rows", Some(a)).await?;
    assert_eq!(body["rows"], json!([]), "a rejected insert stored rows");

    let (status, body) = server
        .get("/v1/tables/docs/rows?where=n%20%3E", Some(a))
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid");
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows?format=xml",
            Some(a),
            Some("".into()),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("xml"),
        "{body}"
    );
    let (status, body) = server
        .post("/v1/tables/docs/search", a, json!({"k": 3}))
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid");
    let (status, body) = server.get("/v2/anything", Some(a)).await?;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");

    // Query strings and methods that the routes do not take get the same
    // error body.
    for path in [
        "/v1/tables/docs/rows?limit=ten",
        "/v1/tables/docs/rows?desc=maybe",
        "/v1/tables/docs/rows?bogus=1",
    ] {
        let (status, body) = server.get(path, Some(a)).await?;
        assert_eq!(status, 400, "{path}: {body}");
        assert_error(&body, "invalid");
    }
    let (status, body) = server
        .send(reqwest::Method::PUT, "/v1/tables", Some(a), None)
        .await?;
    assert_eq!(status, 405, "{body}");
    assert_error(&body, "method_not_allowed");

    // The scheme's name is case-insensitive.
    let response = server
        .client
        .get(format!("{}/v1/tables", server.base))
        .header("Authorization", format!("bearer {a}"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn insert_streamed_arrives_whole() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();
    server
        .post(
            "/v1/tables",
            a,
            json!({"name": "nums", "columns": ["n:int", "s:string"]}),
        )
        .await?;

    // 50,000 rows sent in chunks of 1,000 lines, so the body is never whole
    // in one buffer.
    const ROWS: usize = 50_000;
    let chunks = (0..ROWS / 1000).map(|chunk| {
        let text: String = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| format!("{{\"n\": {n}, \"s\": \"row {n}\"}}\n"))
            .collect();
        Ok::<_, std::io::Error>(text)
    });
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, summary) = server
        .send(
            reqwest::Method::POST,
            "/v1/tables/nums/rows",
            Some(a),
            Some(body),
        )
        .await?;
    assert_eq!(status, 201, "{summary}");
    assert_eq!(summary["rows_added"], ROWS, "{summary}");
    let (_, body) = server
        .get("/v1/tables/nums/rows?order_by=n&desc=true&limit=1", Some(a))
        .await?;
    assert_eq!(body["rows"][0]["n"], ROWS - 1, "{body}");
    Ok(())
}

#[tokio::test]
async fn plugins_columns_indexes_and_snapshots() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();
    let upload = |path: &'static str, bytes: Vec<u8>| {
        server.send(reqwest::Method::POST, path, Some(a), Some(bytes.into()))
    };

    let (status, body) = upload("/v1/plugins", plugin_bytes("text.wasm")).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entry"]["name"], "text", "{body}");
    let (status, body) = upload("/v1/plugins", plugin_bytes("text.wasm")).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], false, "{body}");
    let (status, body) = upload("/v1/plugins", b"not a component".to_vec()).await?;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid");
    let (status, body) = upload("/v1/plugins?name=Bad%20Name", plugin_bytes("text.wasm")).await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = upload("/v1/plugins?name=embed", plugin_bytes("hash_embed.wasm")).await?;
    assert_eq!(status, 201, "{body}");

    server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["body:string"]}),
        )
        .await?;
    let rows = "{\"body\": \"red fox\"}\n{\"body\": \"blue whale\"}\n";
    server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows",
            Some(a),
            Some(rows.into()),
        )
        .await?;
    let (status, body) = server
        .post(
            "/v1/tables/docs/columns",
            a,
            json!({"name": "loud", "expression": "text.upper(body)"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .post(
            "/v1/tables/docs/indexes",
            a,
            json!({"column": "body", "embedding": "embed.embed8", "metric": "l2"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["index"], "body_embed8", "{body}");
    let (status, body) = server
        .post(
            "/v1/tables/docs/search",
            a,
            json!({"text": "red fox", "k": 1}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["loud"], "RED FOX", "{body}");

    let (status, body) = server
        .post(
            "/v1/snapshots",
            a,
            json!({"name": "first", "table": "docs"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows",
            Some(a),
            Some("{\"body\": \"green frog\"}\n".into()),
        )
        .await?;
    let (_, body) = server.get("/v1/tables/first/rows", Some(a)).await?;
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(2), "{body}");
    let (_, body) = server.get("/v1/tables/docs/rows", Some(a)).await?;
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(3), "{body}");
    let (_, body) = server.get("/v1/tables/docs/history", Some(a)).await?;
    assert_eq!(body.as_array().map(Vec::len), Some(5), "{body}");
    let (_, body) = server.get("/v1/snapshots", Some(a)).await?;
    assert_eq!(body[0]["name"], "first", "{body}");

    let (status, body) = server
        .send(reqwest::Method::DELETE, "/v1/plugins/text", Some(a), None)
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_error(&body, "conflict");
    let (status, body) = server
        .send(
            reqwest::Method::DELETE,
            "/v1/snapshots/first",
            Some(a),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .send(
            reqwest::Method::DELETE,
            "/v1/snapshots/first",
            Some(a),
            None,
        )
        .await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}

#[tokio::test]
async fn request_quota_gives_429_with_retry_after() -> anyhow::Result<()> {
    let config = Config::parse("[quotas.acme]\nrequests_per_minute = 3\n", "test config")?;
    let (_db, host) = setup_with(config, &[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let globex = host.catalog().create_tenant("globex").await?;
    let server = Server::start(&host).await?;

    for _ in 0..3 {
        let (status, body) = server.get("/v1/tables", Some(&acme.api_key)).await?;
        assert_eq!(status, 200, "{body}");
    }
    let response = server
        .client
        .get(format!("{}/v1/tables", server.base))
        .bearer_auth(&acme.api_key)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Retry-After in {:?}", response.headers()))?;
    assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().await?;
    assert_error(&body, "quota");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("quota of 3"),
        "{body}"
    );

    // Another tenant has the default quota, untouched by acme's requests.
    for _ in 0..5 {
        let (status, body) = server.get("/v1/tables", Some(&globex.api_key)).await?;
        assert_eq!(status, 200, "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn many_requests_of_one_tenant_wait_their_turn() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let ours = tenant_tables(&host, &acme).await?;
    add_plugin(&ours, "text", "text.wasm").await?;
    add_plugin(&ours, "hash-embed", "hash_embed.wasm").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();
    server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["body:string"]}),
        )
        .await?;
    server
        .post(
            "/v1/tables/docs/columns",
            a,
            json!({"name": "loud", "expression": "text.upper(body)"}),
        )
        .await?;
    server
        .post(
            "/v1/tables/docs/indexes",
            a,
            json!({"column": "body", "embedding": "hash-embed.embed8"}),
        )
        .await?;

    // Each of these keeps a connection while it takes another: a text
    // search embeds, and an insert loads the plugin of its computed column.
    // Four times the pool's share at once must all succeed.
    let requests = (0..16).map(|n| {
        let server = &server;
        async move {
            if n % 2 == 0 {
                server
                    .post(
                        "/v1/tables/docs/search",
                        a,
                        json!({"text": format!("word {n}")}),
                    )
                    .await
            } else {
                server
                    .send(
                        reqwest::Method::POST,
                        "/v1/tables/docs/rows",
                        Some(a),
                        Some(format!("{{\"body\": \"row {n}\"}}\n").into()),
                    )
                    .await
            }
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    for answer in answers {
        let (status, body) = answer?;
        assert!(status == 200 || status == 201, "{status}: {body}");
    }
    let (_, body) = server.get("/v1/tables/docs/rows", Some(a)).await?;
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(8), "{body}");
    Ok(())
}

#[tokio::test]
async fn shutdown_past_its_grace_rolls_back_inserts() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let mut server = Server::start_with_grace(&host, Duration::from_millis(500)).await?;
    let a = acme.api_key.clone();
    server
        .post(
            "/v1/tables",
            &a,
            json!({"name": "nums", "columns": ["n:int"]}),
        )
        .await?;

    // A body that sends 100 rows and then never ends.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(1);
    let first: String = (0..100).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    sender.send(Ok(first)).await?;
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ));
    let insert = server
        .client
        .post(format!("{}/v1/tables/nums/rows", server.base))
        .bearer_auth(&a)
        .body(body)
        .send();
    let insert = tokio::spawn(insert);
    tokio::time::sleep(Duration::from_millis(300)).await;

    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let stopped = tokio::time::timeout(Duration::from_secs(60), &mut server.serving).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop after its grace: {stopped:?}"
    );
    drop(sender);
    insert.abort();

    // The cut-off insert stored nothing, and its turn passes to the next
    // write once its transaction rolls back.
    let ours = tenant_tables(&host, &acme).await?;
    let row = [json!({"n": 1000})];
    let next = insert_jsonl(&ours, "nums", &row);
    let version = tokio::time::timeout(Duration::from_secs(60), next)
        .await
        .map_err(|_| anyhow::anyhow!("the cut-off insert kept its turn"))??;
    assert_eq!(version, 1, "the cut-off insert made a version");
    let rows = dump(&ours, "nums").await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["n"], 1000, "{rows:?}");
    Ok(())
}

/// Every route that needs a tenant's key: its method, its path with
/// `{table}`, `{column}`, `{index}`, `{snapshot}` and `{plugin}` for the
/// names it takes, a query string, and a body in which `{table}` is
/// replaced too.
const TENANT_ROUTES: [(&str, &str, &str, Option<&str>); 26] = [
    ("GET", "/v1/tables", "", None),
    (
        "POST",
        "/v1/tables",
        "",
        Some(r#"{"name": "made", "columns": ["n:int"]}"#),
    ),
    ("GET", "/v1/tables/{table}", "", None),
    ("DELETE", "/v1/tables/{table}", "?with_snapshots=true", None),
    ("GET", "/v1/tables/{table}/history", "", None),
    ("POST", "/v1/tables/{table}/revert", "", None),
    ("GET", "/v1/tables/{table}/rows", "", None),
    (
        "POST",
        "/v1/tables/{table}/rows",
        "",
        Some("{\"body\": \"planted\"}\n"),
    ),
    (
        "PATCH",
        "/v1/tables/{table}/rows",
        "",
        Some(r#"{"set": ["body='changed'"]}"#),
    ),
    ("DELETE", "/v1/tables/{table}/rows", "?all=true", None),
    (
        "POST",
        "/v1/tables/{table}/search",
        "",
        Some(r#"{"vector": [0, 0, 0, 0, 0, 0, 0, 1]}"#),
    ),
    (
        "POST",
        "/v1/tables/{table}/columns",
        "",
        Some(r#"{"name": "other", "expression": "{plugin}.upper(body)"}"#),
    ),
    (
        "POST",
        "/v1/tables/{table}/columns/{column}/recompute",
        "",
        None,
    ),
    (
        "POST",
        "/v1/tables/{table}/columns/{column}/upgrade",
        "",
        None,
    ),
    ("GET", "/v1/indexes", "", None),
    ("GET", "/v1/tables/{table}/indexes", "", None),
    (
        "POST",
        "/v1/tables/{table}/indexes",
        "",
        Some(r#"{"column": "loud", "embedding": "hash-embed.embed8"}"#),
    ),
    ("DELETE", "/v1/tables/{table}/indexes/{index}", "", None),
    ("GET", "/v1/snapshots", "", None),
    (
        "POST",
        "/v1/snapshots",
        "",
        Some(r#"{"name": "taken", "table": "{table}"}"#),
    ),
    ("DELETE", "/v1/snapshots/{snapshot}", "", None),
    ("GET", "/v1/plugins", "", None),
    ("POST", "/v1/plugins", "", Some("not a component")),
    ("GET", "/v1/plugins/{plugin}", "", None),
    ("DELETE", "/v1/plugins/{plugin}", "?all_versions=true", None),
    (
        "POST",
        "/v1/plugins/{plugin}/call",
        "",
        Some(r#"{"function": "upper", "rows": [["a"]]}"#),
    ),
];

/// The names of one tenant's objects that the routes take.
struct Names<'a> {
    table: &'a str,
    column: &'a str,
    index: &'a str,
    snapshot: &'a str,
    plugin: &'a str,
}

impl Names<'_> {
    fn fill(&self, text: &str) -> String {
        text.replace("{table}", self.table)
            .replace("{column}", self.column)
            .replace("{index}", self.index)
            .replace("{snapshot}", self.snapshot)
            .replace("{plugin}", self.plugin)
    }
}

const ACME: Names = Names {
    table: "docs",
    column: "loud",
    index: "body_embed8",
    snapshot: "first",
    plugin: "text",
};

const MISSING: Names = Names {
    table: "nothere",
    column: "nocolumn",
    index: "noindex",
    snapshot: "nosnapshot",
    plugin: "noplugin",
};

/// Everything of acme's that a route could change.
async fn acme_state(server: &Server, key: &str) -> anyhow::Result<Value> {
    let mut state = serde_json::Map::new();
    for path in [
        "/v1/tables",
        "/v1/tables/docs",
        "/v1/tables/docs/history",
        "/v1/tables/docs/rows",
        "/v1/tables/docs/indexes",
        "/v1/snapshots",
        "/v1/plugins",
    ] {
        let (status, body) = server.get(path, Some(key)).await?;
        assert_eq!(status, 200, "{path}: {body}");
        state.insert(path.to_owned(), body);
    }
    Ok(Value::Object(state))
}

#[tokio::test]
async fn tenant_routes_isolate_and_need_keys() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let globex = host.catalog().create_tenant("globex").await?;
    let ours = tenant_tables(&host, &acme).await?;
    add_plugin(&ours, "text", "text.wasm").await?;
    add_plugin(&ours, "hash-embed", "hash_embed.wasm").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();
    let b = globex.api_key.as_str();
    server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["body:string"]}),
        )
        .await?;
    server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows",
            Some(a),
            Some("{\"body\": \"red fox\"}\n{\"body\": \"blue whale\"}\n".into()),
        )
        .await?;
    for (path, body) in [
        (
            "/v1/tables/docs/columns",
            json!({"name": "loud", "expression": "text.upper(body)"}),
        ),
        (
            "/v1/tables/docs/indexes",
            json!({"column": "body", "embedding": "hash-embed.embed8"}),
        ),
        ("/v1/snapshots", json!({"name": "first", "table": "docs"})),
    ] {
        let (status, answer) = server.post(path, a, body).await?;
        assert_eq!(status, 201, "{path}: {answer}");
    }
    let before = acme_state(&server, a).await?;

    // globex gets, for each of acme's names, exactly what a missing name
    // gives, and changes nothing of acme's.
    for (method, path, query, body) in TENANT_ROUTES {
        if !path.contains('{') && !body.is_some_and(|body| body.contains("{table}")) {
            continue;
        }
        let method: reqwest::Method = method.parse()?;
        let mut answers = Vec::new();
        for names in [&ACME, &MISSING] {
            let (status, answer) = server
                .send(
                    method.clone(),
                    &names.fill(&format!("{path}{query}")),
                    Some(b),
                    body.map(|body| names.fill(body).into()),
                )
                .await?;
            assert_eq!(status, 404, "{method} {path} as globex: {answer}");
            assert_error(&answer, "not_found");
            let mut message = answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for (name, placeholder) in [
                (names.table, "TABLE"),
                (names.column, "COLUMN"),
                (names.index, "INDEX"),
                (names.snapshot, "SNAPSHOT"),
                (names.plugin, "PLUGIN"),
            ] {
                message = message.replace(&format!("`{name}`"), placeholder);
            }
            answers.push(message);
        }
        assert_eq!(answers[0], answers[1], "{method} {path}");
    }
    for path in ["/v1/tables", "/v1/indexes", "/v1/snapshots", "/v1/plugins"] {
        let (status, body) = server.get(path, Some(b)).await?;
        assert_eq!((status, &body), (200, &json!([])), "{path} as globex");
    }
    assert_eq!(
        acme_state(&server, a).await?,
        before,
        "globex changed acme's objects"
    );

    // Without a key, or with a wrong one, no route runs.
    for (method, path, query, body) in TENANT_ROUTES {
        let method: reqwest::Method = method.parse()?;
        for key in [None, Some("st_wrong")] {
            let (status, answer) = server
                .send(
                    method.clone(),
                    &ACME.fill(&format!("{path}{query}")),
                    key,
                    body.map(|body| ACME.fill(body).into()),
                )
                .await?;
            assert_eq!(status, 401, "{method} {path} with key {key:?}: {answer}");
            assert_error(&answer, "unauthorized");
        }
    }
    assert_eq!(
        acme_state(&server, a).await?,
        before,
        "a request without a key ran"
    );
    Ok(())
}

#[tokio::test]
async fn routes_write_show_and_call_for_their_tenant() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let ours = tenant_tables(&host, &acme).await?;
    add_plugin(&ours, "text", "text.wasm").await?;
    let server = Server::start(&host).await?;
    let a = acme.api_key.as_str();
    server
        .post(
            "/v1/tables",
            a,
            json!({"name": "docs", "columns": ["body:string", "n:int"]}),
        )
        .await?;
    let rows = "{\"body\": \"red fox\", \"n\": 1}\n{\"body\": \"blue whale\", \"n\": 2}\n";
    server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/rows",
            Some(a),
            Some(rows.into()),
        )
        .await?;
    let (status, body) = server
        .post(
            "/v1/tables/docs/columns",
            a,
            json!({"name": "loud", "expression": "text.upper(body)"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");

    let (status, shown) = server.get("/v1/plugins/text", Some(a)).await?;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["entry"]["version"], 1, "{shown}");
    assert!(
        shown["effective_limits"]["upper"]["fuel_per_row"].is_u64(),
        "{shown}"
    );
    let (status, called) = server
        .post(
            "/v1/plugins/text/call",
            a,
            json!({"function": "upper", "rows": [["hi"], {"s": "there"}, "you"]}),
        )
        .await?;
    assert_eq!(status, 200, "{called}");
    assert_eq!(called["plugin"], "text@1", "{called}");
    let values: Vec<&Value> = called["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["value"])
        .collect();
    assert_eq!(values, [&json!("HI"), &json!("THERE"), &json!("YOU")]);
    assert_eq!(called["records"][0]["rows"], 3, "{called}");
    let (status, body) = server
        .post(
            "/v1/plugins/text/call",
            a,
            json!({"function": "nope", "rows": [["hi"]]}),
        )
        .await?;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");
    let (status, body) = server
        .post(
            "/v1/plugins/text/call",
            a,
            json!({"function": "upper", "rows": [[1, 2]]}),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("row 0 has 2 arguments"),
        "{body}"
    );

    let (status, body) = server
        .send(
            reqwest::Method::PATCH,
            "/v1/tables/docs/rows",
            Some(a),
            Some(
                json!({"set": ["body='green frog'"], "where": "n = 2"})
                    .to_string()
                    .into(),
            ),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows_changed"], 1, "{body}");
    let (_, body) = server
        .get("/v1/tables/docs/rows?where=n%20%3D%202", Some(a))
        .await?;
    assert_eq!(body["rows"][0]["loud"], "GREEN FROG", "{body}");
    assert_eq!(
        body["columns"][2],
        json!({"name": "loud", "data_type": "string"})
    );
    assert_eq!(body["truncated"], false, "{body}");

    let (status, body) = server
        .post("/v1/tables/docs/columns/loud/recompute", a, json!({}))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows_changed"], 2, "{body}");
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/columns/loud/upgrade",
            Some(a),
            None,
        )
        .await?;
    assert_eq!(status, 400, "nothing to upgrade to: {body}");
    assert_error(&body, "invalid");

    let (status, body) = server
        .send(
            reqwest::Method::DELETE,
            "/v1/tables/docs/rows",
            Some(a),
            None,
        )
        .await?;
    assert_eq!(status, 400, "a delete without where or all: {body}");
    let (status, body) = server
        .send(
            reqwest::Method::DELETE,
            "/v1/tables/docs/rows?where=n%20%3D%201",
            Some(a),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows_removed"], 1, "{body}");
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/tables/docs/revert",
            Some(a),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operation"], "delete", "{body}");
    let (_, body) = server.get("/v1/tables/docs/rows", Some(a)).await?;
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(2), "{body}");
    Ok(())
}

#[tokio::test]
async fn openapi_document_lists_every_route() -> anyhow::Result<()> {
    let (_db, host) = setup(&[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let server = Server::start(&host).await?;

    let response = server
        .client
        .get(format!("{}/v1/openapi.json", server.base))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200, "no key is needed");
    let document: Value = serde_json::from_str(&response.text().await?)?;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.contains_key("500"), "{method} {path}");
            for name in path
                .split('{')
                .skip(1)
                .filter_map(|part| part.split('}').next())
            {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|parameters| {
                        parameters
                            .iter()
                            .any(|p| p["name"] == name && p["in"] == "path")
                    });
                assert!(declared, "{method} {path} does not declare `{name}`");
            }
        }
    }

    let mut served = std::collections::BTreeSet::new();
    served.insert(("GET".to_owned(), "/v1/health".to_owned()));
    served.insert(("GET".to_owned(), "/v1/openapi.json".to_owned()));
    for (method, path, _, body) in TENANT_ROUTES {
        served.insert((method.to_owned(), path.to_owned()));
        let operation = &document["paths"][path][method.to_lowercase()];
        for status in ["401", "429"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
        assert_eq!(
            operation["security"][0]["api_key"],
            json!([]),
            "{method} {path}"
        );
        if body.is_some() && method != "DELETE" {
            assert!(
                operation["requestBody"].is_object(),
                "{method} {path} has no request body"
            );
        }
    }
    assert_eq!(documented, served);

    // Each documented route is served: no path returns `no route` or 405.
    for (method, path) in &documented {
        let (status, body) = server
            .send(
                method.parse()?,
                &MISSING.fill(path),
                Some(&acme.api_key),
                None,
            )
            .await?;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            status != 405 && !message.starts_with("no route"),
            "{method} {path}: {status} {body}"
        );
    }
    Ok(())
}
