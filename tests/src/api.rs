//! A `sandtable serve` router on a loopback port, for tests of the HTTP API.

use std::time::Duration;

use sandtable::table::Tables;
use serde_json::Value;

/// A server on a loopback port, stopped when dropped.
pub struct ApiServer {
    /// The server's address, as `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for requests to it.
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A response: its status, headers and body text.
#[derive(Debug)]
pub struct ApiResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub text: String,
}

impl ApiResponse {
    /// Parses the body as JSON, and panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("the body is not JSON ({error}): {}", self.text))
    }
}

impl ApiServer {
    /// Starts the router over `host`'s catalog, as the host's role, and its
    /// engine.
    ///
    /// # Errors
    ///
    /// Fails when no loopback port can be bound.
    pub async fn start(host: &Tables) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = sandtable::server::router(host.catalog().clone(), host.engine().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sandtable::server::serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        Ok(ApiServer {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
        })
    }

    /// Sends a request with `key` as the bearer key and `body`, if any.
    ///
    /// # Errors
    ///
    /// Fails when the request cannot be sent or its body read.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<ApiResponse> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(ApiResponse {
            status,
            headers,
            text,
        })
    }

    /// Sends a GET with `key`.
    ///
    /// # Errors
    ///
    /// As [`ApiServer::send`].
    pub async fn get(&self, path: &str, key: Option<&str>) -> anyhow::Result<ApiResponse> {
        self.send(reqwest::Method::GET, path, key, None).await
    }

    /// Sends a POST of `body` as JSON with `key`.
    ///
    /// # Errors
    ///
    /// As [`ApiServer::send`].
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> anyhow::Result<ApiResponse> {
        self.send(
            reqwest::Method::POST,
            path,
            Some(key),
            Some(body.to_string()),
        )
        .await
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Checks that `body` is the API's error body with `code`, and returns its
/// message.
pub fn assert_error(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}
