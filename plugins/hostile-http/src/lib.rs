//! An HTTP plugin that misbehaves for the host's tests: it follows redirects
//! itself, floods an endpoint with requests, reports fewer tokens than a
//! provider's response counts, and forges requests from raw `wasi:http`
//! parts that the SDK's client would reject.
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

/// Sends `concurrent` GET requests at once, built from raw `wasi:http`
/// parts, then sleeps `sleep_ms` milliseconds and reports `tokens` tokens,
/// or `u64::MAX` for a negative `tokens`.
///
/// `scheme` is `http`, `https`, empty for none, or any other text for
/// `scheme::other`. `authority` and `path` are set as given, or left unset
/// when empty, and `header` is `name: value` or empty. Returns the statuses
/// of the responses, comma-separated, or the first step that failed.
#[udf(pool = "openai")]
fn forge(
    scheme: &str,
    authority: &str,
    path: &str,
    header: &str,
    concurrent: i64,
    sleep_ms: i64,
    tokens: i64,
) -> Result<String, String> {
    let parts = raw::Parts {
        scheme,
        authority,
        path,
        header,
    };
    let futures = (0..concurrent.max(0))
        .map(|_| raw::start(&parts))
        .collect::<Result<Vec<_>, String>>()?;
    let mut statuses = Vec::new();
    for future in futures {
        statuses.push(raw::finish(future)?.to_string());
    }
    std::thread::sleep(std::time::Duration::from_millis(sleep_ms.max(0) as u64));
    usage::report_tokens(u64::try_from(tokens).unwrap_or(u64::MAX));
    Ok(statuses.join(","))
}

sandtable_guest::plugin!(
    functions = [fetch, flood, chat_underreport, forge],
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

/// Requests over the `wasi:http@0.2.12` imports themselves, with the
/// canonical ABI written out, so that `forge` can set any scheme, authority,
/// path and header. The SDK's bindings import the same functions, so the
/// component's imports stay the same.
mod raw {
    /// The parts of a forged request.
    pub struct Parts<'a> {
        pub scheme: &'a str,
        pub authority: &'a str,
        pub path: &'a str,
        pub header: &'a str,
    }

    /// A `future-incoming-response` handle.
    pub struct Pending(#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] i32);

    /// The names of `wasi:http/types.error-code`'s cases, in order.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    const ERROR_CODES: [&str; 39] = [
        "DNS-timeout",
        "DNS-error",
        "destination-not-found",
        "destination-unavailable",
        "destination-IP-prohibited",
        "destination-IP-unroutable",
        "connection-refused",
        "connection-terminated",
        "connection-timeout",
        "connection-read-timeout",
        "connection-write-timeout",
        "connection-limit-reached",
        "TLS-protocol-error",
        "TLS-certificate-error",
        "TLS-alert-received",
        "HTTP-request-denied",
        "HTTP-request-length-required",
        "HTTP-request-body-size",
        "HTTP-request-method-invalid",
        "HTTP-request-URI-invalid",
        "HTTP-request-URI-too-long",
        "HTTP-request-header-section-size",
        "HTTP-request-header-size",
        "HTTP-request-trailer-section-size",
        "HTTP-request-trailer-size",
        "HTTP-response-incomplete",
        "HTTP-response-header-section-size",
        "HTTP-response-header-size",
        "HTTP-response-body-size",
        "HTTP-response-trailer-section-size",
        "HTTP-response-trailer-size",
        "HTTP-response-transfer-coding",
        "HTTP-response-content-coding",
        "HTTP-response-timeout",
        "HTTP-upgrade-failed",
        "HTTP-protocol-error",
        "loop-detected",
        "configuration-error",
        "internal-error",
    ];

    #[cfg(target_arch = "wasm32")]
    mod imports {
        #[link(wasm_import_module = "wasi:http/types@0.2.12")]
        unsafe extern "C" {
            #[link_name = "[constructor]fields"]
            pub fn fields_new() -> i32;
            #[link_name = "[method]fields.append"]
            pub fn fields_append(
                fields: i32,
                name: *const u8,
                name_len: usize,
                value: *const u8,
                value_len: usize,
                result: *mut u8,
            );
            #[link_name = "[constructor]outgoing-request"]
            pub fn request_new(fields: i32) -> i32;
            #[link_name = "[method]outgoing-request.set-scheme"]
            pub fn set_scheme(
                request: i32,
                some: i32,
                case: i32,
                ptr: *const u8,
                len: usize,
            ) -> i32;
            #[link_name = "[method]outgoing-request.set-authority"]
            pub fn set_authority(request: i32, some: i32, ptr: *const u8, len: usize) -> i32;
            #[link_name = "[method]outgoing-request.set-path-with-query"]
            pub fn set_path_with_query(request: i32, some: i32, ptr: *const u8, len: usize) -> i32;
            #[link_name = "[method]future-incoming-response.subscribe"]
            pub fn future_subscribe(future: i32) -> i32;
            #[link_name = "[method]future-incoming-response.get"]
            pub fn future_get(future: i32, result: *mut u8);
            #[link_name = "[resource-drop]future-incoming-response"]
            pub fn future_drop(future: i32);
            #[link_name = "[method]incoming-response.status"]
            pub fn response_status(response: i32) -> i32;
            #[link_name = "[resource-drop]incoming-response"]
            pub fn response_drop(response: i32);
        }

        #[link(wasm_import_module = "wasi:http/outgoing-handler@0.2.12")]
        unsafe extern "C" {
            #[link_name = "handle"]
            pub fn handle(request: i32, has_options: i32, options: i32, result: *mut u8);
        }

        #[link(wasm_import_module = "wasi:io/poll@0.2.12")]
        unsafe extern "C" {
            #[link_name = "[method]pollable.block"]
            pub fn pollable_block(pollable: i32);
            #[link_name = "[resource-drop]pollable"]
            pub fn pollable_drop(pollable: i32);
        }
    }

    /// A return area of the canonical ABI: 8-aligned, large enough for any
    /// `error-code`.
    #[cfg(target_arch = "wasm32")]
    #[repr(C, align(8))]
    struct ReturnArea([u8; 64]);

    #[cfg(target_arch = "wasm32")]
    impl ReturnArea {
        fn new() -> Self {
            ReturnArea([0; 64])
        }

        fn byte(&self, offset: usize) -> u8 {
            self.0[offset]
        }

        fn word(&self, offset: usize) -> u32 {
            let bytes = [
                self.0[offset],
                self.0[offset + 1],
                self.0[offset + 2],
                self.0[offset + 3],
            ];
            u32::from_le_bytes(bytes)
        }

        /// Reads the `error-code` stored at `offset`, with the message of an
        /// `internal-error`, which the host allocated in guest memory.
        fn error_code(&self, offset: usize) -> String {
            let case = usize::from(self.byte(offset));
            let name = ERROR_CODES.get(case).copied().unwrap_or("unknown");
            if case != 38 || self.byte(offset + 8) == 0 {
                return name.to_owned();
            }
            let ptr = self.word(offset + 12) as usize as *mut u8;
            let len = self.word(offset + 16) as usize;
            // SAFETY: the host wrote a string of `len` bytes, allocated with
            // the guest's `cabi_realloc`, whose ownership passes to the guest.
            let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
            format!("{name}: {}", String::from_utf8_lossy(&bytes))
        }
    }

    /// Builds and sends one request, and returns its pending response.
    #[cfg(target_arch = "wasm32")]
    pub fn start(parts: &Parts<'_>) -> Result<Pending, String> {
        use imports::*;

        // SAFETY: each call passes handles this function owns and pointers
        // to live buffers, in the layout of the functions' signatures in
        // `wasi:http@0.2.12`.
        unsafe {
            let fields = fields_new();
            if let Some((name, value)) = parts.header.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                let mut result = ReturnArea::new();
                fields_append(
                    fields,
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                    result.0.as_mut_ptr(),
                );
                if result.byte(0) != 0 {
                    let reason = ["invalid-syntax", "forbidden", "immutable"]
                        .get(usize::from(result.byte(1)))
                        .copied()
                        .unwrap_or("unknown");
                    return Err(format!("header `{name}` rejected: {reason}"));
                }
            }
            let request = request_new(fields);
            let rejected = match parts.scheme {
                "" => set_scheme(request, 0, 0, std::ptr::null(), 0),
                "http" => set_scheme(request, 1, 0, std::ptr::null(), 0),
                "https" => set_scheme(request, 1, 1, std::ptr::null(), 0),
                other => set_scheme(request, 1, 2, other.as_ptr(), other.len()),
            };
            if rejected != 0 {
                return Err(format!("scheme `{}` rejected", parts.scheme));
            }
            let (some, text) = optional(parts.authority);
            if set_authority(request, some, text.as_ptr(), text.len()) != 0 {
                return Err(format!("authority `{}` rejected", parts.authority));
            }
            let (some, text) = optional(parts.path);
            if set_path_with_query(request, some, text.as_ptr(), text.len()) != 0 {
                return Err(format!("path `{}` rejected", parts.path));
            }
            let mut result = ReturnArea::new();
            handle(request, 0, 0, result.0.as_mut_ptr());
            if result.byte(0) != 0 {
                return Err(format!("handle failed: {}", result.error_code(8)));
            }
            Ok(Pending(result.word(8) as i32))
        }
    }

    /// Waits for a pending response, and returns its status.
    #[cfg(target_arch = "wasm32")]
    pub fn finish(pending: Pending) -> Result<u16, String> {
        use imports::*;

        // SAFETY: as in `start`. The future and the response are dropped
        // once, here.
        unsafe {
            let pollable = future_subscribe(pending.0);
            pollable_block(pollable);
            pollable_drop(pollable);
            let mut result = ReturnArea::new();
            future_get(pending.0, result.0.as_mut_ptr());
            future_drop(pending.0);
            if result.byte(0) == 0 || result.byte(8) != 0 {
                return Err("the response was not ready after its pollable".to_owned());
            }
            if result.byte(16) != 0 {
                return Err(format!("the request failed: {}", result.error_code(24)));
            }
            let response = result.word(24) as i32;
            let status = response_status(response) as u16;
            response_drop(response);
            Ok(status)
        }
    }

    /// Returns the `option<string>` lowering of `text`: none when it is
    /// empty.
    #[cfg(target_arch = "wasm32")]
    fn optional(text: &str) -> (i32, &str) {
        (i32::from(!text.is_empty()), text)
    }

    /// Returns an error, since a native build has no `wasi:http`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn start(_parts: &Parts<'_>) -> Result<Pending, String> {
        Err("no `wasi:http` to send through in a native build".to_owned())
    }

    /// Returns an error, since a native build never has a pending request.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn finish(_pending: Pending) -> Result<u16, String> {
        Err("no `wasi:http` to send through in a native build".to_owned())
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
                ("forge", Some("openai")),
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
