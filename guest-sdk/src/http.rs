//! A small blocking HTTP client over `wasi:http/outgoing-handler@0.2`
//! (feature `http`).
//!
//! [`Request`] builds a request and [`Request::send`] sends it, waits for the
//! response and reads its whole body. The host decides which destinations a
//! plugin may reach: a plugin lists the hosts it calls in
//! `plugin!(outbound_hosts = [...])`, and a request to any host that the
//! operator has not granted fails with the host's explanation in
//! [`HttpError`]. The host may also limit the rate of requests, retry some of
//! them and cap the size of responses.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use sandtable_guest::http::{HttpError, Request};
//!
//! fn label(text: &str) -> Result<String, HttpError> {
//!     let response = Request::post("http://127.0.0.1:8080/v1/label")
//!         .header("content-type", "text/plain")
//!         .body(text)
//!         .timeout(Duration::from_secs(10))
//!         .send()?;
//!     if response.status != 200 {
//!         return Ok(format!("HTTP {}", response.status));
//!     }
//!     Ok(response.text().unwrap_or_default().to_owned())
//! }
//! ```
//!
//! The client does not follow redirects: a 3xx response is returned like any
//! other, with its `location` header, which [`Url::join`] resolves. Neither
//! does it retry, decompress or keep cookies. A component that uses this
//! module imports `wasi:http/types` and `wasi:http/outgoing-handler`, and the
//! host links both into every plugin.
//!
//! Compiled natively, as in tests, [`Request::send`] checks the URL and the
//! method and then returns [`HttpError::Unsupported`], since there is no
//! `wasi:http` to send through.

mod error;
#[cfg(target_arch = "wasm32")]
mod transport;
mod url;

use std::str::Utf8Error;
use std::time::Duration;

pub use error::{ErrorCode, HttpError};
pub use url::Url;

/// An HTTP request, built by chained calls and sent by [`Request::send`].
///
/// ```
/// use sandtable_guest::http::Request;
///
/// let request = Request::get("https://api.example.com/v1/status").header("accept", "text/plain");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a request does nothing until `send` is called"]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl Request {
    /// Starts a request with `method`, such as `PUT`, to the absolute `url`.
    ///
    /// Neither is checked until [`Request::send`].
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// Starts a `GET` request to `url`.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    /// Starts a `POST` request to `url`.
    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }

    /// Appends a header. Calling it twice with one name sends both values.
    ///
    /// The host rejects some names, such as `host`, `connection` and
    /// `transfer-encoding`, which fails [`Request::send`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body, replacing any earlier one. The client sends its length
    /// as `content-length`, unless a header of that name is set.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON text, and the `content-type` header
    /// to `application/json` unless one is set.
    #[cfg(feature = "serde_json")]
    pub fn json(mut self, value: &serde_json::Value) -> Request {
        if self.header_value("content-type").is_none() {
            self = self.header("content-type", "application/json");
        }
        self.body(value.to_string())
    }

    /// Bounds each wait of the request by `timeout`: for the connection, for
    /// the first byte of the response, and between two bytes of the
    /// response body.
    ///
    /// These are the `connect-timeout`, `first-byte-timeout` and
    /// `between-bytes-timeout` of `wasi:http` request options, so a slow
    /// server that keeps sending can take longer in total. Without a timeout
    /// the host's defaults apply.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request, waits for the response and reads its whole body.
    ///
    /// The request can be sent again, since sending does not consume it.
    ///
    /// # Errors
    ///
    /// - [`HttpError::InvalidUrl`] or [`HttpError::UnsupportedScheme`] for a
    ///   URL that is not absolute `http` or `https`;
    /// - [`HttpError::InvalidMethod`] for a method that is not a token;
    /// - [`HttpError::InvalidHeader`] for a header that the host rejects;
    /// - [`HttpError::Request`] with the `wasi:http` error code when the host
    ///   does not allow the request or it fails on the way. The host explains
    ///   a destination that it does not grant in `internal-error`;
    /// - [`HttpError::Stream`] for a body stream that fails without a code;
    /// - [`HttpError::Unsupported`] in a native build, once the URL and the
    ///   method are valid.
    pub fn send(&self) -> Result<Response, HttpError> {
        let url = Url::parse(&self.url)?;
        if !is_token(&self.method) {
            return Err(HttpError::InvalidMethod {
                method: self.method.clone(),
            });
        }

        #[cfg(target_arch = "wasm32")]
        return transport::send(self, &url);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = url;
            Err(HttpError::Unsupported)
        }
    }

    /// Returns the value of the first header named `name`, in any case.
    // Natively, only `json` and the tests call it.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns whether the request sends a body with a `content-length`:
    /// when the body is not empty, and always for `POST`, `PUT` and `PATCH`,
    /// whose servers may require the header.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn sends_body(&self) -> bool {
        !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")
    }
}

/// An HTTP response with its whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code, such as 200.
    pub status: u16,
    /// The headers in the order received, with lowercase names as the host
    /// delivers them. A value that is not UTF-8 has its invalid bytes
    /// replaced by U+FFFD.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Returns whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Returns the value of the first header named `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the body as text.
    ///
    /// # Errors
    ///
    /// Returns the UTF-8 error of a body that is not UTF-8. The `charset` of
    /// `content-type` is not consulted.
    pub fn text(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// Parses the body as JSON.
    ///
    /// # Errors
    ///
    /// Returns the parse error of a body that is not one JSON document.
    #[cfg(feature = "serde_json")]
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Returns whether `method` is an HTTP token by RFC 9110, section 5.6.2.
fn is_token(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_collects_parts() {
        let request = Request::post("http://127.0.0.1:8080/v1")
            .header("accept", "text/plain")
            .header("accept", "text/html")
            .body("hello")
            .timeout(Duration::from_secs(3));
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "http://127.0.0.1:8080/v1");
        assert_eq!(
            request.headers,
            [
                ("accept".to_owned(), "text/plain".to_owned()),
                ("accept".to_owned(), "text/html".to_owned()),
            ]
        );
        assert_eq!(request.body, b"hello");
        assert_eq!(request.timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn sends_body_for_content_methods() {
        assert!(!Request::get("http://127.0.0.1/").sends_body());
        assert!(Request::get("http://127.0.0.1/").body("x").sends_body());
        assert!(Request::post("http://127.0.0.1/").sends_body());
        assert!(Request::new("PUT", "http://127.0.0.1/").sends_body());
    }

    #[cfg(feature = "serde_json")]
    #[test]
    fn json_sets_body_and_content_type() {
        let value = serde_json::json!({"a": [1, 2]});
        let request = Request::post("http://127.0.0.1/").json(&value);
        assert_eq!(request.body, br#"{"a":[1,2]}"#);
        assert_eq!(
            request.header_value("Content-Type"),
            Some("application/json")
        );

        let request = Request::post("http://127.0.0.1/")
            .header("Content-Type", "application/vnd.api+json")
            .json(&value);
        assert_eq!(request.headers.len(), 1);
        assert_eq!(
            request.header_value("content-type"),
            Some("application/vnd.api+json")
        );
    }

    #[test]
    fn send_checks_url_and_method_natively() {
        let error = Request::get("ftp://127.0.0.1/").send().unwrap_err();
        assert!(matches!(error, HttpError::UnsupportedScheme { .. }));

        let error = Request::new("GE T", "http://127.0.0.1/")
            .send()
            .unwrap_err();
        assert!(matches!(error, HttpError::InvalidMethod { .. }));

        let error = Request::get("http://127.0.0.1/").send().unwrap_err();
        assert!(matches!(error, HttpError::Unsupported));
    }

    #[test]
    fn response_accessors() {
        let response = Response {
            status: 302,
            headers: vec![
                ("location".to_owned(), "/next".to_owned()),
                ("set-cookie".to_owned(), "a=1".to_owned()),
                ("set-cookie".to_owned(), "b=2".to_owned()),
            ],
            body: "moved".into(),
        };
        assert!(!response.is_success());
        assert_eq!(response.header("Location"), Some("/next"));
        assert_eq!(response.header("set-cookie"), Some("a=1"));
        assert_eq!(response.header("etag"), None);
        assert_eq!(response.text(), Ok("moved"));

        let binary = Response {
            status: 200,
            headers: Vec::new(),
            body: vec![0xff, 0xfe],
        };
        assert!(binary.is_success());
        assert!(binary.text().is_err());
    }

    #[cfg(feature = "serde_json")]
    #[test]
    fn response_parses_json() {
        let response = Response {
            status: 200,
            headers: Vec::new(),
            body: br#"{"ok": true}"#.to_vec(),
        };
        assert_eq!(response.json().unwrap(), serde_json::json!({"ok": true}));
    }
}
