//! Sends rows as JSON to an HTTP endpoint and returns a member of each
//! response.
//!
//! The endpoint's URL is the first argument of every function, so that an
//! expression passes it as a string literal:
//!
//! ```text
//! http-json.post('https://labels.example.com/v1', doc, '/result/label')
//! ```
//!
//! The plugin asks for every outbound host (`outbound_hosts = ["*"]`) but
//! reaches only those that the operator grants it: a request to any other
//! host fails its row with the host's explanation. No function sends an
//! `authorization` header, so an endpoint that needs an API key is out of
//! reach for now.
//!
//! A `field` argument picks the member of a response. One that starts with
//! `/` is a JSON Pointer (RFC 6901), such as `/result/label`. Any other is the
//! name of a top-level member, such as `label`, and the empty string picks
//! the whole response.

use sandtable_guest::http::{Request, Response};
use sandtable_guest::{Json, JsonView, StrView, udf, usage};
use serde_json::{Value, json};

/// The number of characters of a response body that an error quotes.
const QUOTED_CHARS: usize = 200;

/// POSTs `body` to `url` and returns the member `field` of the JSON response.
///
/// Each row sends one request. A non-2xx response, a response that is not JSON
/// or lacks `field`, and a request that fails are that row's error. The
/// other rows go on.
#[udf(pool = "request-rate:http-json", batch_size = 16, deadline_ms = 60_000)]
fn post(url: &str, body: Json<'_>, field: &str) -> Result<Value, String> {
    let document = post_json(url, body.as_str())?;
    select(url, &document, field).cloned()
}

/// POSTs the batch's bodies as one JSON array to `url`, and returns the
/// member `field` of the response's element for each row.
///
/// The response must be a JSON array with one element a row, in the order of
/// the request's array: element `i` is the result for row `i`. Rows with
/// different URLs go in one request for each URL. A failed request, a
/// non-2xx response, or a response that is not an array of the right length
/// fails every row of that request. A missing `field` fails only its row.
#[udf(
    batch,
    pool = "request-rate:http-json",
    batch_size = 64,
    deadline_ms = 60_000
)]
fn post_batch(
    url: StrView<'_>,
    body: JsonView<'_>,
    field: StrView<'_>,
) -> Vec<Result<Value, String>> {
    let mut results: Vec<Result<Value, String>> = vec![Ok(Value::Null); body.len()];
    let pairs = url.iter().zip(body.iter().map(|doc| doc.as_str()));
    for (url, rows) in group_by_url(pairs) {
        let docs: Vec<&str> = rows
            .iter()
            .filter_map(|&row| body.get(row))
            .map(|doc| doc.as_str())
            .collect();
        let array = format!("[{}]", docs.join(","));
        let elements =
            post_json(url, &array).and_then(|document| into_elements(url, document, rows.len()));
        match elements {
            Ok(elements) => {
                for (element, &row) in elements.iter().zip(&rows) {
                    let field = field.get(row).unwrap_or_default();
                    results[row] = select(url, element, field).cloned();
                }
            }
            Err(message) => {
                for &row in &rows {
                    results[row] = Err(message.clone());
                }
            }
        }
    }
    results
}

/// Asks an OpenAI-style chat-completions endpoint at `url` to reply to
/// `prompt` with `model`, and returns the reply.
///
/// The request is `{"model": model, "messages": [{"role": "user",
/// "content": prompt}]}` and the reply is `choices[0].message.content`. The
/// response's `usage.total_tokens` goes to the host's `openai` pool through
/// `usage.report-tokens`.
#[udf(pool = "openai", batch_size = 16, deadline_ms = 60_000)]
fn chat(url: &str, model: &str, prompt: &str) -> Result<String, String> {
    let request = json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
    });
    let document = post_json(url, &request.to_string())?;
    if let Some(tokens) = total_tokens(&document) {
        usage::report_tokens(tokens);
    }
    chat_reply(url, &document)
}

sandtable_guest::plugin!(functions = [post, post_batch, chat], outbound_hosts = ["*"]);

/// POSTs the JSON text `body` to `url` and parses the response, which must
/// have a 2xx status.
fn post_json(url: &str, body: &str) -> Result<Value, String> {
    let response = Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body)
        .send()
        .map_err(|error| error.to_string())?;
    check_status(url, &response)?;
    response.json().map_err(|error| {
        format!(
            "the response from {url} is not JSON ({error}): {}",
            quote(&response.body)
        )
    })
}

/// Fails for a non-2xx response, quoting the start of its body.
fn check_status(url: &str, response: &Response) -> Result<(), String> {
    if response.is_success() {
        return Ok(());
    }
    Err(format!(
        "HTTP {} from {url}: {}",
        response.status,
        quote(&response.body)
    ))
}

/// Returns the first `QUOTED_CHARS` characters of `body`, with invalid UTF-8
/// replaced by U+FFFD.
fn quote(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(QUOTED_CHARS)
        .collect()
}

/// Returns the member of `document` that `field` names.
fn select<'a>(url: &str, document: &'a Value, field: &str) -> Result<&'a Value, String> {
    let member = if field.starts_with('/') {
        document.pointer(field)
    } else if field.is_empty() {
        Some(document)
    } else {
        document.get(field)
    };
    member.ok_or_else(|| {
        format!(
            "the response from {url} has no member `{field}`: {}",
            quote(document.to_string().as_bytes())
        )
    })
}

/// Returns the rows of each distinct URL, in the order of their first rows,
/// from the `(url, body)` pairs of the batch.
///
/// A row whose body is empty is left out: the host sends no null row to a
/// strict function, and should one come, its empty placeholder is not JSON,
/// so the SDK gives that row a null result.
fn group_by_url<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (row, (url, body)) in pairs.enumerate() {
        if body.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(seen, _)| *seen == url) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((url, vec![row])),
        }
    }
    groups
}

/// Returns the elements of a batch response, which must be an array of `rows`
/// elements.
fn into_elements(url: &str, document: Value, rows: usize) -> Result<Vec<Value>, String> {
    match document {
        Value::Array(elements) if elements.len() == rows => Ok(elements),
        Value::Array(elements) => Err(format!(
            "the response from {url} has {} elements, but the request sent {rows} rows",
            elements.len()
        )),
        other => Err(format!(
            "the response from {url} is not a JSON array of {rows} elements: {}",
            quote(other.to_string().as_bytes())
        )),
    }
}

/// Returns `usage.total_tokens` of a chat-completions response.
fn total_tokens(document: &Value) -> Option<u64> {
    document
        .pointer("/usage/total_tokens")
        .and_then(Value::as_u64)
}

/// Returns `choices[0].message.content` of a chat-completions response.
fn chat_reply(url: &str, document: &Value) -> Result<String, String> {
    document
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "the response from {url} has no text at `choices[0].message.content`: {}",
                quote(document.to_string().as_bytes())
            )
        })
}

#[cfg(test)]
mod tests {
    use sandtable_guest::types::{Column, DataType};
    use sandtable_guest::{Value as Row, testing};

    use super::*;

    const URL: &str = "http://127.0.0.1:8080/v1";

    #[test]
    fn describe_lists_pools_and_batches() {
        let description = testing::describe_plugin::<SandtablePlugin>();
        assert_eq!(description.name, "http-json");
        assert_eq!(description.capabilities.outbound_hosts, ["*"]);

        let functions: Vec<_> = description
            .functions
            .iter()
            .map(|function| {
                (
                    function.name.as_str(),
                    function.pool.as_deref(),
                    function.batch_size,
                    function.limits.deadline_ms,
                )
            })
            .collect();
        assert_eq!(
            functions,
            [
                ("post", Some("request-rate:http-json"), 16, Some(60_000)),
                (
                    "post_batch",
                    Some("request-rate:http-json"),
                    64,
                    Some(60_000)
                ),
                ("chat", Some("openai"), 16, Some(60_000)),
            ]
        );

        let post = &description.functions[0];
        let types: Vec<_> = post.params.iter().map(|p| p.type_).collect();
        assert_eq!(types, [DataType::String, DataType::Json, DataType::String]);
        assert_eq!(post.returns, DataType::Json);
        assert_eq!(description.functions[2].returns, DataType::String);
    }

    #[test]
    fn post_fails_each_row_on_its_own() {
        let args = [
            Column::strings(["ftp://127.0.0.1/", "127.0.0.1:8080"]),
            Column::json(["{}", "{}"]),
            Column::strings(["label", "label"]),
        ];
        let result = testing::call::<post>(&args).unwrap();
        assert_eq!(result.errors.len(), 2);
        assert_eq!(result.errors[0].row, 0);
        assert!(
            result.errors[0]
                .message
                .contains("unsupported scheme `ftp`"),
            "{}",
            result.errors[0].message
        );
        assert_eq!(result.errors[1].row, 1);
        assert!(
            result.errors[1].message.contains("it has no scheme"),
            "{}",
            result.errors[1].message
        );
        assert_eq!(result.column.to_values(), [None, None]);
    }

    #[test]
    fn post_batch_fails_rows_of_one_url_together() {
        let args = [
            Column::strings(["ftp://a/", "ftp://b/", "ftp://a/"]),
            Column::json(["1", "2", "3"]),
            Column::strings(["", "", ""]),
        ];
        let result = testing::call::<post_batch>(&args).unwrap();
        let mut messages: Vec<_> = result
            .errors
            .iter()
            .map(|error| (error.row, error.message.contains("`ftp://a/`")))
            .collect();
        messages.sort();
        assert_eq!(messages, [(0, true), (1, false), (2, true)]);
    }

    #[test]
    fn group_by_url_keeps_first_seen_order() {
        let urls = ["b", "a", "b", "a", "c"];
        let bodies = ["1", "2", "", "4", "5"];
        assert_eq!(
            group_by_url(urls.into_iter().zip(bodies)),
            [("b", vec![0]), ("a", vec![1, 3]), ("c", vec![4])]
        );
    }

    #[test]
    fn select_takes_pointer_key_or_whole() {
        let document = json!({"result": {"label": "spam"}, "label": "top", "/x": 1});
        assert_eq!(select(URL, &document, "/result/label"), Ok(&json!("spam")));
        assert_eq!(select(URL, &document, "label"), Ok(&document["label"]));
        assert_eq!(select(URL, &document, ""), Ok(&document));
        assert_eq!(select(URL, &document, "/~1x"), Ok(&json!(1)));

        let error = select(URL, &document, "/result/score").unwrap_err();
        assert!(
            error.starts_with(&format!(
                "the response from {URL} has no member `/result/score`: "
            )),
            "{error}"
        );
        assert!(select(URL, &json!([1]), "label").is_err());
    }

    #[test]
    fn check_status_quotes_200_chars() {
        let response = Response {
            status: 503,
            headers: Vec::new(),
            body: "é".repeat(300).into_bytes(),
        };
        let error = check_status(URL, &response).unwrap_err();
        assert_eq!(error, format!("HTTP 503 from {URL}: {}", "é".repeat(200)));

        let ok = Response {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert_eq!(check_status(URL, &ok), Ok(()));
    }

    #[test]
    fn into_elements_checks_length() {
        assert_eq!(
            into_elements(URL, json!([1, 2]), 2),
            Ok(vec![json!(1), json!(2)])
        );
        assert_eq!(
            into_elements(URL, json!([1]), 2),
            Err(format!(
                "the response from {URL} has 1 elements, but the request sent 2 rows"
            ))
        );
        let error = into_elements(URL, json!({"results": [1, 2]}), 2).unwrap_err();
        assert!(
            error.contains("is not a JSON array of 2 elements"),
            "{error}"
        );
    }

    #[test]
    fn chat_response_gives_reply_and_tokens() {
        let document = json!({
            "choices": [{"message": {"role": "assistant", "content": "Paris"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        });
        assert_eq!(chat_reply(URL, &document), Ok("Paris".to_owned()));
        assert_eq!(total_tokens(&document), Some(12));

        let empty = json!({"choices": []});
        assert!(
            chat_reply(URL, &empty)
                .unwrap_err()
                .contains("choices[0].message.content")
        );
        assert_eq!(total_tokens(&empty), None);
    }

    #[test]
    fn chat_reports_nothing_without_response() {
        let args = [
            Column::strings(["ftp://127.0.0.1/"]),
            Column::strings(["gpt-4o-mini"]),
            Column::strings(["hi"]),
        ];
        let result = testing::call::<chat>(&args).unwrap();
        assert_eq!(result.errors.len(), 1);
        assert_eq!(result.column.value(0), None::<Row<'_>>);
        assert_eq!(testing::take_reported_tokens(), 0);
    }
}
