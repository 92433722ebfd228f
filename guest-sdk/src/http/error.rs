//! The error of an HTTP request, and readable text for `wasi:http` error
//! codes.

use std::fmt;

pub use wasip2::http::types::ErrorCode;

/// The error of [`Request::send`](super::Request::send).
///
/// A response with any status, 4xx and 5xx included, is not an error: check
/// [`Response::status`](super::Response::status).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL does not parse.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The reason it is invalid, such as a missing host.
        reason: String,
    },
    /// The URL's scheme is neither `http` nor `https`.
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// The scheme, as written.
        scheme: String,
    },
    /// The host rejected a header of the request.
    InvalidHeader {
        /// The header's name.
        name: String,
        /// The reason the host rejected it.
        reason: &'static str,
    },
    /// The method is not an HTTP token, such as `GET`.
    InvalidMethod {
        /// The method as given.
        method: String,
    },
    /// The host does not support a request option, such as a timeout.
    UnsupportedOption {
        /// The option's name in `wasi:http`, such as `first-byte-timeout`.
        option: &'static str,
    },
    /// The host reported a failure with a `wasi:http` error code: the request
    /// was not allowed, could not be sent, or its response did not arrive in
    /// full.
    Request {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The error code.
        code: ErrorCode,
    },
    /// Writing the request body or reading the response body failed with an
    /// I/O error that carries no `wasi:http` error code.
    Stream {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The host's description of the I/O error.
        message: String,
    },
    /// The code was compiled for a target without `wasi:http`, as in native
    /// tests, where no request is sent.
    Unsupported,
}

impl HttpError {
    /// Returns the `wasi:http` error code of a [`HttpError::Request`].
    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self {
            HttpError::Request { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidUrl { url, reason } => write!(f, "invalid URL `{url}`: {reason}"),
            HttpError::UnsupportedScheme { url, scheme } => write!(
                f,
                "unsupported scheme `{scheme}` in URL `{url}`; use `http` or `https`"
            ),
            HttpError::InvalidHeader { name, reason } => {
                write!(f, "invalid request header `{name}`: {reason}")
            }
            HttpError::InvalidMethod { method } => write!(
                f,
                "invalid HTTP method `{method}`; use a token such as `GET` or `POST`"
            ),
            HttpError::UnsupportedOption { option } => {
                write!(f, "the host does not support the request option `{option}`")
            }
            HttpError::Request { method, url, code } => {
                write!(f, "{method} {url} failed: ")?;
                write_error_code(f, code)
            }
            HttpError::Stream {
                method,
                url,
                message,
            } => write!(f, "{method} {url} failed: {message}"),
            HttpError::Unsupported => f.write_str(
                "HTTP requests need a `wasm32-wasip2` component; a native build sends none",
            ),
        }
    }
}

impl std::error::Error for HttpError {}

/// Writes the meaning of `code`, after the names of the cases of the
/// `error-code` variant of `wasi:http/types@0.2`, which follow the IANA HTTP
/// proxy error types.
///
/// The message of `internal-error` is written verbatim, since a host puts
/// its explanation there, such as why it does not allow a destination.
fn write_error_code(f: &mut fmt::Formatter<'_>, code: &ErrorCode) -> fmt::Result {
    match code {
        ErrorCode::DnsTimeout => f.write_str("DNS lookup timed out"),
        ErrorCode::DnsError(payload) => {
            f.write_str("DNS lookup failed")?;
            if let Some(rcode) = &payload.rcode {
                write!(f, " with rcode {rcode}")?;
            }
            if let Some(info_code) = payload.info_code {
                write!(f, " (extended DNS error {info_code})")?;
            }
            Ok(())
        }
        ErrorCode::DestinationNotFound => f.write_str("destination not found"),
        ErrorCode::DestinationUnavailable => f.write_str("destination unavailable"),
        ErrorCode::DestinationIpProhibited => f.write_str("destination IP address prohibited"),
        ErrorCode::DestinationIpUnroutable => f.write_str("destination IP address unroutable"),
        ErrorCode::ConnectionRefused => f.write_str("connection refused"),
        ErrorCode::ConnectionTerminated => f.write_str("connection terminated"),
        ErrorCode::ConnectionTimeout => f.write_str("connection timed out"),
        ErrorCode::ConnectionReadTimeout => f.write_str("read timed out"),
        ErrorCode::ConnectionWriteTimeout => f.write_str("write timed out"),
        ErrorCode::ConnectionLimitReached => f.write_str("connection limit reached"),
        ErrorCode::TlsProtocolError => f.write_str("TLS protocol error"),
        ErrorCode::TlsCertificateError => f.write_str("TLS certificate error"),
        ErrorCode::TlsAlertReceived(payload) => {
            f.write_str("TLS alert received")?;
            if let Some(alert_id) = payload.alert_id {
                write!(f, ": alert {alert_id}")?;
            }
            if let Some(message) = &payload.alert_message {
                write!(f, " ({message})")?;
            }
            Ok(())
        }
        ErrorCode::HttpRequestDenied => f.write_str("request denied"),
        ErrorCode::HttpRequestLengthRequired => f.write_str("request length required"),
        ErrorCode::HttpRequestBodySize(size) => {
            f.write_str("invalid request body size")?;
            write_size(f, size.as_ref())
        }
        ErrorCode::HttpRequestMethodInvalid => f.write_str("invalid request method"),
        ErrorCode::HttpRequestUriInvalid => f.write_str("invalid request URI"),
        ErrorCode::HttpRequestUriTooLong => f.write_str("request URI too long"),
        ErrorCode::HttpRequestHeaderSectionSize(size) => {
            f.write_str("request header section too large")?;
            write_size(f, size.as_ref())
        }
        ErrorCode::HttpRequestHeaderSize(field) => {
            f.write_str("request header too large")?;
            if let Some(field) = field {
                write_field(f, field)?;
            }
            Ok(())
        }
        ErrorCode::HttpRequestTrailerSectionSize(size) => {
            f.write_str("request trailer section too large")?;
            write_size(f, size.as_ref())
        }
        ErrorCode::HttpRequestTrailerSize(field) => {
            f.write_str("request trailer too large")?;
            write_field(f, field)
        }
        ErrorCode::HttpResponseIncomplete => f.write_str("response incomplete"),
        ErrorCode::HttpResponseHeaderSectionSize(size) => {
            f.write_str("response header section too large")?;
            write_size(f, size.as_ref())
        }
        ErrorCode::HttpResponseHeaderSize(field) => {
            f.write_str("response header too large")?;
            write_field(f, field)
        }
        ErrorCode::HttpResponseBodySize(size) => {
            f.write_str("invalid response body size")?;
            write_size(f, size.as_ref())
        }
        ErrorCode::HttpResponseTrailerSectionSize(size) => {
            f.write_str("response trailer section too large")?;
            write_size(f, size.as_ref())
        }
        ErrorCode::HttpResponseTrailerSize(field) => {
            f.write_str("response trailer too large")?;
            write_field(f, field)
        }
        ErrorCode::HttpResponseTransferCoding(coding) => {
            f.write_str("unsupported response transfer coding")?;
            if let Some(coding) = coding {
                write!(f, " `{coding}`")?;
            }
            Ok(())
        }
        ErrorCode::HttpResponseContentCoding(coding) => {
            f.write_str("unsupported response content coding")?;
            if let Some(coding) = coding {
                write!(f, " `{coding}`")?;
            }
            Ok(())
        }
        ErrorCode::HttpResponseTimeout => f.write_str("response timed out"),
        ErrorCode::HttpUpgradeFailed => f.write_str("HTTP upgrade failed"),
        ErrorCode::HttpProtocolError => f.write_str("HTTP protocol error"),
        ErrorCode::LoopDetected => f.write_str("loop detected"),
        ErrorCode::ConfigurationError => f.write_str("configuration error"),
        ErrorCode::InternalError(Some(message)) => f.write_str(message),
        ErrorCode::InternalError(None) => f.write_str("internal error"),
    }
}

/// Writes ` (N bytes)` when the host gave a size.
fn write_size(f: &mut fmt::Formatter<'_>, size: Option<&impl fmt::Display>) -> fmt::Result {
    match size {
        Some(size) => write!(f, " ({size} bytes)"),
        None => Ok(()),
    }
}

/// Writes the name and size of a header or trailer, as far as the host gave
/// them.
fn write_field(
    f: &mut fmt::Formatter<'_>,
    field: &wasip2::http::types::FieldSizePayload,
) -> fmt::Result {
    if let Some(name) = &field.field_name {
        write!(f, ": `{name}`")?;
    }
    write_size(f, field.field_size.as_ref())
}

#[cfg(test)]
mod tests {
    use wasip2::http::types::{DnsErrorPayload, FieldSizePayload};

    use super::*;

    fn request_error(code: ErrorCode) -> String {
        HttpError::Request {
            method: "POST".to_owned(),
            url: "http://127.0.0.1:8080/v1".to_owned(),
            code,
        }
        .to_string()
    }

    #[test]
    fn internal_error_message_is_verbatim() {
        let message = "host `evil.example:443` is not in the plugin's allow-list; grant it with `--allow-host`";
        assert_eq!(
            request_error(ErrorCode::InternalError(Some(message.to_owned()))),
            format!("POST http://127.0.0.1:8080/v1 failed: {message}")
        );
        assert_eq!(
            request_error(ErrorCode::InternalError(None)),
            "POST http://127.0.0.1:8080/v1 failed: internal error"
        );
    }

    #[test]
    fn error_codes_read_as_text() {
        let cases = [
            (ErrorCode::ConnectionRefused, "connection refused"),
            (ErrorCode::HttpResponseTimeout, "response timed out"),
            (
                ErrorCode::HttpResponseBodySize(Some(1 << 20)),
                "invalid response body size (1048576 bytes)",
            ),
            (
                ErrorCode::DnsError(DnsErrorPayload {
                    rcode: Some("NXDOMAIN".to_owned()),
                    info_code: None,
                }),
                "DNS lookup failed with rcode NXDOMAIN",
            ),
            (
                ErrorCode::HttpResponseHeaderSize(FieldSizePayload {
                    field_name: Some("set-cookie".to_owned()),
                    field_size: Some(9000),
                }),
                "response header too large: `set-cookie` (9000 bytes)",
            ),
        ];
        for (code, text) in cases {
            assert_eq!(
                request_error(code),
                format!("POST http://127.0.0.1:8080/v1 failed: {text}")
            );
        }
    }

    #[test]
    fn error_code_is_exposed() {
        let error = HttpError::Request {
            method: "GET".to_owned(),
            url: "http://127.0.0.1/".to_owned(),
            code: ErrorCode::ConnectionRefused,
        };
        assert!(matches!(
            error.error_code(),
            Some(ErrorCode::ConnectionRefused)
        ));
        assert!(HttpError::Unsupported.error_code().is_none());
    }

    #[test]
    fn other_errors_name_the_value() {
        let header = HttpError::InvalidHeader {
            name: "host".to_owned(),
            reason: "the host forbids this header",
        };
        assert_eq!(
            header.to_string(),
            "invalid request header `host`: the host forbids this header"
        );
        let method = HttpError::InvalidMethod {
            method: "GE T".to_owned(),
        };
        assert!(method.to_string().contains("`GE T`"));
        let stream = HttpError::Stream {
            method: "GET".to_owned(),
            url: "http://127.0.0.1/".to_owned(),
            message: "stream closed".to_owned(),
        };
        assert_eq!(
            stream.to_string(),
            "GET http://127.0.0.1/ failed: stream closed"
        );
    }
}
