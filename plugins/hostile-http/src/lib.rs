//! An HTTP plugin that misbehaves for the host's tests: it follows redirects
//! itself, floods an endpoint with requests, and reports fewer tokens than a
//! provider's response counts.
//!
//! Like `http-json`, it asks for every outbound host (`outbound_hosts =
//! ["*"]`) and reaches only those that the operator grants it.

use sandtable_guest::http::{Request, Response, Url};
use sandtable_guest::{udf, usage};
use serde_json::{Value, json};

/// The maximum number of redirects that `fetch` follows.
const MAX_REDIRECTS: usize = 5;

/// The model that `chat_underreport` names in its requests.
const MODEL: &str = "hostile-http";

/// GETs `url`, follows up to 5 redirects itself, and returns the final body
/// as text.
///
/// Each redirect is a new request that the host's allow-list checks again.
/// Any error is the row's error.
#[udf(pool = "request-rate:hostile-http")]
fn fetch(url: &str) -> Result<String, String> {
    let mut url = Url::parse(url).map_err(|error| error.to_string())?;
    let mut redirects = 0;
    loop {
        let response = Request::get(url.to_string())
            .send()
            .map_err(|error| error.to_string())?;
        let Some(location) = redirect_location(&response) else {
            return response
                .text()
                .map(str::to_owned)
                .map_err(|error| format!("the body from {url} is not UTF-8: {error}"));
        };
        if redirects == MAX_REDIRECTS {
            return Err(format!(
                "{url} redirects to `{location}` after {MAX_REDIRECTS} redirects; fetch follows no more"
            ));
        }
        url = url.join(location).map_err(|error| error.to_string())?;
        redirects += 1;
    }
}

/// Sends `n` GET requests to `url` one after another, as fast as it can,
/// and returns how many got a 2xx response.
#[udf(pool = "request-rate:hostile-http")]
fn flood(url: &str, n: i64) -> Result<i64, String> {
    if n < 0 {
        return Err(format!("`n` is {n}; pass a number of requests from 0 up"));
    }
    let request = Request::get(url);
    let mut successes = 0;
    for _ in 0..n {
        if request.send().is_ok_and(|response| response.is_success()) {
            successes += 1;
        }
    }
    Ok(successes)
}

/// Asks an OpenAI-style chat-completions endpoint at `url` to reply to
/// `prompt`, and reports 1 token whatever the response counts.
///
/// The request and the reply are those of `http-json.chat`, with the model
/// `hostile-http`.
#[udf(pool = "openai")]
fn chat_underreport(url: &str, prompt: &str) -> Result<String, String> {
    let request = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
    });
    let response = Request::post(url)
        .json(&request)
        .send()
        .map_err(|error| error.to_string())?;
    usage::report_tokens(1);
    if !response.is_success() {
        return Err(format!("HTTP {} from {url}", response.status));
    }
    let document = response
        .json()
        .map_err(|error| format!("the response from {url} is not JSON: {error}"))?;
    document
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the response from {url} has no `choices[0].message.content`"))
}

sandtable_guest::plugin!(
    functions = [fetch, flood, chat_underreport],
    outbound_hosts = ["*"],
);

/// Returns the `location` of a redirect: a 301, 302, 303, 307 or 308 response
/// with that header.
fn redirect_location(response: &Response) -> Option<&str> {
    if matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        response.header("location")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use sandtable_guest::testing;
    use sandtable_guest::types::Column;

    use super::*;

    #[test]
    fn describe_lists_pools() {
        let description = testing::describe_plugin::<SandtablePlugin>();
        assert_eq!(description.name, "hostile-http");
        assert_eq!(description.capabilities.outbound_hosts, ["*"]);
        let pools: Vec<_> = description
            .functions
            .iter()
            .map(|function| (function.name.as_str(), function.pool.as_deref()))
            .collect();
        assert_eq!(
            pools,
            [
                ("fetch", Some("request-rate:hostile-http")),
                ("flood", Some("request-rate:hostile-http")),
                ("chat_underreport", Some("openai")),
            ]
        );
    }

    #[test]
    fn redirect_location_needs_status_and_header() {
        let response = |status, headers: &[(&str, &str)]| Response {
            status,
            headers: headers
                .iter()
                .map(|&(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            body: Vec::new(),
        };
        let location = [("location", "/next")];
        for status in [301, 302, 303, 307, 308] {
            assert_eq!(
                redirect_location(&response(status, &location)),
                Some("/next"),
                "{status}"
            );
        }
        assert_eq!(redirect_location(&response(304, &location)), None);
        assert_eq!(redirect_location(&response(200, &location)), None);
        assert_eq!(redirect_location(&response(302, &[])), None);
    }

    #[test]
    fn flood_rejects_negative_counts() {
        let result = testing::call::<flood>(&[
            Column::strings(["http://127.0.0.1:9/", "http://127.0.0.1:9/"]),
            Column::ints([-1, 3]),
        ])
        .unwrap();
        assert_eq!(result.errors.len(), 1);
        assert_eq!(result.errors[0].row, 0);
        // Natively no request is sent, so none succeeds.
        assert_eq!(result.column.value(1), Some(sandtable_guest::Value::Int(0)));
    }

    #[test]
    fn fetch_reports_invalid_urls() {
        let result = testing::call::<fetch>(&[Column::strings(["file:///etc/passwd"])]).unwrap();
        assert_eq!(result.errors.len(), 1);
        assert!(
            result.errors[0]
                .message
                .contains("unsupported scheme `file`"),
            "{}",
            result.errors[0].message
        );
    }
}
