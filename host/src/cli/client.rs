//! The HTTP client behind `--server URL`: each request carries the tenant's
//! API key from `SANDTABLE_API_KEY`, and each failure becomes one line that
//! names the server or the value, and what to do next.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::server::ErrorBody;

/// The environment variable that contains the tenant's API key.
pub(crate) const API_KEY_VARIABLE: &str = "SANDTABLE_API_KEY";

/// How long opening a connection to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's body.
pub(crate) enum Payload {
    /// No body.
    Empty,
    /// A JSON document.
    Json(serde_json::Value),
    /// Bytes sent as they are, with their content type.
    Bytes(Vec<u8>, &'static str),
    /// A body streamed from a reader, with its content type.
    Stream(reqwest::Body, &'static str),
}

/// A client of one `sandtable serve`, for one tenant's API key.
pub(crate) struct Client {
    base: Url,
    key: String,
    http: reqwest::Client,
}

impl Client {
    /// Creates a client of the server at `server` with `key`, the value of
    /// `SANDTABLE_API_KEY`.
    ///
    /// # Errors
    ///
    /// Fails for a URL that is not `http` or `https` with a host, and for
    /// a missing or empty key.
    pub(crate) fn new(server: &str, key: Option<String>) -> anyhow::Result<Self> {
        let base = Url::parse(server).map_err(|error| {
            anyhow!(
                "--server `{server}` is not a valid URL ({error}); give one such as \
                 http://127.0.0.1:8080"
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            bail!(
                "--server `{server}` is not an http or https URL with a host; give one such as \
                 http://127.0.0.1:8080"
            );
        }
        let key = key.map(|key| key.trim().to_owned()).unwrap_or_default();
        if key.is_empty() {
            bail!(
                "{API_KEY_VARIABLE} is not set, and --server {base} needs a tenant's API key; \
                 set {API_KEY_VARIABLE} to the key that `sandtable tenant create NAME` printed \
                 on the host"
            );
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sandtable/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot start the HTTP client")?;
        Ok(Client { base, key, http })
    }

    /// Returns the URL of the path made of `segments`, each percent-encoded,
    /// under the server's base URL.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a request and decodes its JSON body as `T`.
    ///
    /// # Errors
    ///
    /// Fails with one line naming the server when it cannot be reached or
    /// answers an error, and with the server's own message for a request
    /// it rejects.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        payload: Payload,
    ) -> anyhow::Result<T> {
        let url = self.url(segments);
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(&self.key);
        if !query.is_empty() {
            request = request.query(query);
        }
        request = match payload {
            Payload::Empty => request,
            Payload::Json(value) => request.json(&value),
            Payload::Bytes(bytes, content_type) => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes),
            Payload::Stream(body, content_type) => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        };
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| self.unreachable(&error))?;
        if !status.is_success() {
            return Err(self.rejected(&method, &url, status, &text));
        }
        serde_json::from_str(&text).map_err(|error| {
            anyhow!(
                "the server at {} answered {method} {} with a body that is not what this \
                 sandtable expects ({error}); check that --server names a `sandtable serve` of \
                 version {}",
                self.base,
                url.path(),
                env!("CARGO_PKG_VERSION")
            )
        })
    }

    /// Describes a request that got no response.
    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        // The innermost cause is the one that says why, such as
        // `Connection refused (os error 111)`.
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        if error.is_connect() || error.is_timeout() {
            anyhow!(
                "cannot connect to the server at {}: {cause}; start it on the host with \
                 `sandtable serve`, or fix --server (SANDTABLE_SERVER)",
                self.base
            )
        } else {
            anyhow!(
                "the request to the server at {} failed: {cause}; check that --server names a \
                 running `sandtable serve`",
                self.base
            )
        }
    }

    /// Describes an error response.
    fn rejected(
        &self,
        method: &Method,
        url: &Url,
        status: StatusCode,
        body: &str,
    ) -> anyhow::Error {
        let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(body) else {
            return anyhow!(
                "the server at {} answered {method} {} with {status} and a body that is not \
                 Sandtable's error body; check that --server names a `sandtable serve`",
                self.base,
                url.path()
            );
        };
        match (status, error.code.as_str()) {
            (StatusCode::UNAUTHORIZED, _) => anyhow!(
                "the server at {} does not accept the API key in {API_KEY_VARIABLE}; set \
                 {API_KEY_VARIABLE} to the key that `sandtable tenant create NAME` or `sandtable \
                 tenant rotate-key NAME` printed on the host",
                self.base
            ),
            (StatusCode::NOT_FOUND, _) if error.message.starts_with("no route for") => anyhow!(
                "the server at {} has no route for {method} {}; check that --server names a \
                 `sandtable serve` of version {}",
                self.base,
                url.path(),
                env!("CARGO_PKG_VERSION")
            ),
            (StatusCode::METHOD_NOT_ALLOWED, _) => anyhow!(
                "the server at {} does not take {method} {}; check that --server names a \
                 `sandtable serve` of version {}",
                self.base,
                url.path(),
                env!("CARGO_PKG_VERSION")
            ),
            (StatusCode::INTERNAL_SERVER_ERROR, _) => anyhow!(
                "the server at {} failed on {method} {}; the server's log has the details",
                self.base,
                url.path()
            ),
            // Every other error is about the request, and the server's
            // message names the value and the fix, as the command run on
            // the host would.
            _ => anyhow!("{}", error.message),
        }
    }
}
