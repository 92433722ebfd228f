//! One request and response over the `wasi:http@0.2` imports.
//!
//! The body is written after `outgoing-handler.handle`, because the host
//! buffers only a bounded part of a body before the request is sent: a large
//! body written first would block forever.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, IncomingResponse,
    IoError, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme, http_error_code,
};
use wasip2::io::streams::StreamError;

use super::{HttpError, Request, Response, Url};

/// The maximum number of bytes read from the response body at once.
const READ_CHUNK_BYTES: u64 = 64 * 1024;

/// Sends `request` to `url`, its parsed URL.
pub(super) fn send(request: &Request, url: &Url) -> Result<Response, HttpError> {
    let context = Context {
        method: &request.method,
        url,
    };

    let headers = Fields::new();
    for (name, value) in &request.headers {
        append_header(&headers, name, value)?;
    }
    let sends_body = request.sends_body();
    if sends_body && request.header_value("content-length").is_none() {
        append_header(&headers, "content-length", &request.body.len().to_string())?;
    }

    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&method(&request.method))
        .map_err(|()| HttpError::InvalidMethod {
            method: request.method.clone(),
        })?;
    let scheme = if url.is_https() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| context.invalid_url("the host rejects its scheme"))?;
    outgoing
        .set_authority(Some(url.authority()))
        .map_err(|()| context.invalid_url("the host rejects its authority"))?;
    outgoing
        .set_path_with_query(Some(url.path_and_query()))
        .map_err(|()| context.invalid_url("the host rejects its path or query"))?;
    let body = if sends_body {
        let body = outgoing
            .body()
            .map_err(|()| context.stream("the host rejects a body for the request"))?;
        Some(body)
    } else {
        None
    };
    let options = request.timeout.map(request_options).transpose()?;

    let future = outgoing_handler::handle(outgoing, options).map_err(|code| context.code(code))?;
    let written = match body {
        Some(body) => write_body(body, &request.body, &context),
        None => Ok(()),
    };
    let response = wait(&future).map_err(|code| context.code(code))?;
    drop(future);

    // A server may respond before it has read the whole body, such as with
    // 413, and then the write fails. Its response explains more than the
    // write error does, unless it is a success.
    let status = response.status();
    if let Err(error) = written
        && (200..300).contains(&status)
    {
        return Err(error);
    }
    read_response(response, status, &context)
}

/// The method and URL of the request, for errors.
struct Context<'a> {
    method: &'a str,
    url: &'a Url,
}

impl Context<'_> {
    fn code(&self, code: ErrorCode) -> HttpError {
        HttpError::Request {
            method: self.method.to_owned(),
            url: self.url.to_string(),
            code,
        }
    }

    fn stream(&self, message: &str) -> HttpError {
        HttpError::Stream {
            method: self.method.to_owned(),
            url: self.url.to_string(),
            message: message.to_owned(),
        }
    }

    /// Returns the error of a failed stream operation: the `wasi:http` error
    /// code that its I/O error carries, else the host's description.
    fn stream_error(&self, error: StreamError, closed: &str) -> HttpError {
        match error {
            StreamError::Closed => self.stream(closed),
            StreamError::LastOperationFailed(error) => self.io_error(&error),
        }
    }

    fn io_error(&self, error: &IoError) -> HttpError {
        match http_error_code(error) {
            Some(code) => self.code(code),
            None => self.stream(&error.to_debug_string()),
        }
    }

    fn invalid_url(&self, reason: &str) -> HttpError {
        HttpError::InvalidUrl {
            url: self.url.to_string(),
            reason: reason.to_owned(),
        }
    }
}

fn append_header(headers: &Fields, name: &str, value: &str) -> Result<(), HttpError> {
    headers
        .append(name, value.as_bytes())
        .map_err(|error| HttpError::InvalidHeader {
            name: name.to_owned(),
            reason: match error {
                HeaderError::InvalidSyntax => "the name or the value is not valid HTTP syntax",
                HeaderError::Forbidden => "the host forbids this header",
                HeaderError::Immutable => "the headers are immutable",
            },
        })
}

/// Returns the `wasi:http` method for a token. Methods are case-sensitive,
/// so `get` is a method of its own.
fn method(token: &str) -> Method {
    match token {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

fn request_options(timeout: std::time::Duration) -> Result<RequestOptions, HttpError> {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    let unsupported = |option| move |()| HttpError::UnsupportedOption { option };
    options
        .set_connect_timeout(Some(nanos))
        .map_err(unsupported("connect-timeout"))?;
    options
        .set_first_byte_timeout(Some(nanos))
        .map_err(unsupported("first-byte-timeout"))?;
    options
        .set_between_bytes_timeout(Some(nanos))
        .map_err(unsupported("between-bytes-timeout"))?;
    Ok(options)
}

/// Writes all of `bytes` to `body` and finishes it.
fn write_body(
    body: OutgoingBody,
    mut bytes: &[u8],
    context: &Context<'_>,
) -> Result<(), HttpError> {
    let closed = "the request body stream closed before the body was sent";
    {
        let stream = body
            .write()
            .map_err(|()| context.stream("the request body stream is already taken"))?;
        while !bytes.is_empty() {
            let permitted = stream
                .check_write()
                .map_err(|error| context.stream_error(error, closed))?;
            if permitted == 0 {
                stream.subscribe().block();
                continue;
            }
            let length = bytes
                .len()
                .min(usize::try_from(permitted).unwrap_or(usize::MAX));
            let (chunk, rest) = bytes.split_at(length);
            stream
                .write(chunk)
                .map_err(|error| context.stream_error(error, closed))?;
            bytes = rest;
        }
        stream
            .blocking_flush()
            .map_err(|error| context.stream_error(error, closed))?;
        // The stream is a child resource of the body, so it is dropped here,
        // before `finish`.
    }
    OutgoingBody::finish(body, None).map_err(|code| context.code(code))
}

/// Blocks until the response's status and headers arrive.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    loop {
        match future.get() {
            Some(Ok(result)) => return result,
            Some(Err(())) => {
                return Err(ErrorCode::InternalError(Some(
                    "the response was already taken from its future".to_owned(),
                )));
            }
            None => future.subscribe().block(),
        }
    }
}

/// Reads the headers and the whole body of `response`.
fn read_response(
    response: IncomingResponse,
    status: u16,
    context: &Context<'_>,
) -> Result<Response, HttpError> {
    let headers = {
        let fields = response.headers();
        fields
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect()
    };
    let body = response
        .consume()
        .map_err(|()| context.stream("the response body is already taken"))?;
    let bytes = read_body(&body, context)?;
    // The trailers, which this client does not read, arrive through the
    // future that `finish` returns.
    drop(IncomingBody::finish(body));
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn read_body(body: &IncomingBody, context: &Context<'_>) -> Result<Vec<u8>, HttpError> {
    let stream = body
        .stream()
        .map_err(|()| context.stream("the response body stream is already taken"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK_BYTES) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => return Err(context.io_error(&error)),
        }
    }
}
