//! Absolute `http` and `https` URLs, split into the parts that a
//! `wasi:http` request takes.

use std::fmt;
use std::str::FromStr;

use super::HttpError;

/// An absolute `http` or `https` URL: scheme, authority, and path with query.
///
/// Parsing checks the shape that a request needs and nothing more: it does
/// not percent-encode, normalize or resolve host names. The fragment, which
/// never reaches the server, is dropped.
///
/// ```
/// use sandtable_guest::http::Url;
///
/// let url = Url::parse("https://api.example.com/v1/items?page=2#top").unwrap();
/// assert_eq!(url.scheme(), "https");
/// assert_eq!(url.authority(), "api.example.com");
/// assert_eq!(url.path_and_query(), "/v1/items?page=2");
/// assert_eq!(url.join("../v2/x").unwrap().to_string(), "https://api.example.com/v2/x");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Url {
    https: bool,
    authority: String,
    path_and_query: String,
}

impl Url {
    /// Parses an absolute URL such as `https://host:8443/path?query`.
    ///
    /// # Errors
    ///
    /// Returns [`HttpError::UnsupportedScheme`] for a scheme other than `http`
    /// or `https`, and [`HttpError::InvalidUrl`] for text without a scheme or
    /// host, with user info, with a port that is not a number up to 65535, or
    /// with whitespace, control or non-ASCII characters.
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };

        if let Some(bad) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(invalid(&format!(
                "it contains the character {bad:?}; percent-encode it"
            )));
        }

        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(match text.split_once(':') {
                // `localhost:8080/x` has a port, not a scheme.
                Some((scheme, after))
                    if has_scheme(text) && !after.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
                        invalid(&format!("`//` must follow `{scheme}:`"))
                    } else {
                        HttpError::UnsupportedScheme {
                            url: text.to_owned(),
                            scheme: scheme.to_owned(),
                        }
                    }
                }
                _ => invalid("it has no scheme; start it with `https://` or `http://`"),
            });
        };
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(HttpError::UnsupportedScheme {
                url: text.to_owned(),
                scheme: scheme.to_owned(),
            });
        };

        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        check_authority(authority).map_err(|reason| invalid(&reason))?;

        let path_and_query = if path_and_query.starts_with('/') {
            path_and_query.to_owned()
        } else {
            // An empty path, or a query right after the authority.
            format!("/{path_and_query}")
        };
        Ok(Url {
            https,
            authority: authority.to_owned(),
            path_and_query,
        })
    }

    /// Returns the scheme, `http` or `https`, in lower case.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// Returns whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Returns the authority: the host and, when the URL has one, the port,
    /// as written, such as `[::1]:8080`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Returns the path and the query, which starts with `/`: the request
    /// target of an HTTP/1.1 request.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// Resolves `reference`, such as the `location` of a redirect, against
    /// this URL by the rules of RFC 3986, section 5.2.
    ///
    /// An absolute reference replaces the URL, `//host/path` keeps only the
    /// scheme, `/path` keeps the scheme and authority, `?query` keeps the
    /// path too, and a relative path replaces the last segment of the path.
    /// Dot segments (`.` and `..`) of the result are removed.
    ///
    /// # Errors
    ///
    /// Returns the error of [`Url::parse`] for an absolute reference that
    /// does not parse, including one with another scheme.
    pub fn join(&self, reference: &str) -> Result<Url, HttpError> {
        if has_scheme(reference) {
            return Url::parse(reference);
        }
        if reference.starts_with("//") {
            return Url::parse(&format!("{}:{reference}", self.scheme()));
        }

        let reference = reference
            .split_once('#')
            .map_or(reference, |(before, _)| before);
        if reference.is_empty() {
            return Ok(self.clone());
        }
        let (path, query) = match reference.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (reference, None),
        };
        let (base_path, base_query) = match self.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.path_and_query.as_str(), None),
        };

        let (path, query) = if path.is_empty() {
            (base_path.to_owned(), query.or(base_query))
        } else if path.starts_with('/') {
            (remove_dot_segments(path), query)
        } else {
            let directory = &base_path[..=base_path.rfind('/').unwrap_or(0)];
            (remove_dot_segments(&format!("{directory}{path}")), query)
        };
        let resolved = match query {
            Some(query) => format!("{}://{}{path}?{query}", self.scheme(), self.authority),
            None => format!("{}://{}{path}", self.scheme(), self.authority),
        };
        Url::parse(&resolved)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.authority,
            self.path_and_query
        )
    }
}

impl FromStr for Url {
    type Err = HttpError;

    fn from_str(text: &str) -> Result<Url, HttpError> {
        Url::parse(text)
    }
}

/// Checks `host[:port]`, with the host a name, an IPv4 address or an IPv6
/// address in brackets.
fn check_authority(authority: &str) -> Result<(), String> {
    if authority.is_empty() {
        return Err("it has no host after the scheme".to_owned());
    }
    if authority.contains('@') {
        return Err(
            "it has user info before `@`, which is not supported; send credentials in a header"
                .to_owned(),
        );
    }

    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err("its IPv6 address has no closing `]`".to_owned());
        };
        if after.is_empty() {
            (address, None)
        } else if let Some(port) = after.strip_prefix(':') {
            (address, Some(port))
        } else {
            return Err(format!("`{after}` follows its IPv6 address"));
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };

    if host.is_empty() {
        return Err("it has no host after the scheme".to_owned());
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok();
        if !valid {
            return Err(format!("its port `{port}` is not a number from 0 to 65535"));
        }
    }
    Ok(())
}

/// Returns whether `reference` starts with a scheme and `:`, as in
/// `https:`, by RFC 3986: a letter, then letters, digits, `+`, `-` or `.`.
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Removes the `.` and `..` segments of an absolute path, by RFC 3986,
/// section 5.2.4. A `..` at the root stays at the root.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut output: Vec<&str> = Vec::with_capacity(segments.len());
    for (index, &segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        match segment {
            "." => {}
            ".." => {
                output.pop();
            }
            segment => output.push(segment),
        }
        // A path ending in a dot segment names a directory, so it keeps its
        // final `/`.
        if last && matches!(segment, "." | "..") {
            output.push("");
        }
    }
    format!("/{}", output.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_parts() {
        let cases = [
            ("https://example.com", "https", "example.com", "/"),
            ("http://example.com/", "http", "example.com", "/"),
            (
                "HTTP://example.com:8080/a/b?c=d",
                "http",
                "example.com:8080",
                "/a/b?c=d",
            ),
            ("https://example.com?q=1", "https", "example.com", "/?q=1"),
            ("https://example.com/x#frag", "https", "example.com", "/x"),
            ("http://127.0.0.1:9/", "http", "127.0.0.1:9", "/"),
            ("http://[::1]:8080/v1", "http", "[::1]:8080", "/v1"),
            ("http://[::1]/", "http", "[::1]", "/"),
        ];
        for (text, scheme, authority, path_and_query) in cases {
            let url = Url::parse(text).unwrap();
            assert_eq!(url.scheme(), scheme, "{text}");
            assert_eq!(url.authority(), authority, "{text}");
            assert_eq!(url.path_and_query(), path_and_query, "{text}");
        }
    }

    #[test]
    fn parse_rejects_other_schemes() {
        let error = Url::parse("mailto:someone@example.com").unwrap_err();
        assert!(matches!(
            &error,
            HttpError::UnsupportedScheme { scheme, .. } if scheme == "mailto"
        ));

        let error = Url::parse("ftp://example.com/file").unwrap_err();
        assert!(matches!(
            &error,
            HttpError::UnsupportedScheme { scheme, .. } if scheme == "ftp"
        ));
        assert_eq!(
            error.to_string(),
            "unsupported scheme `ftp` in URL `ftp://example.com/file`; use `http` or `https`"
        );
    }

    #[test]
    fn parse_rejects_malformed_urls() {
        let cases = [
            ("example.com/path", "it has no scheme"),
            ("localhost:8080/path", "it has no scheme"),
            ("https:/example.com/", "`//` must follow `https:`"),
            ("https://", "it has no host"),
            ("https:///path", "it has no host"),
            ("https://:80/", "it has no host"),
            ("https://user:secret@example.com/", "user info"),
            ("https://example.com:http/", "port `http`"),
            ("https://example.com:65536/", "port `65536`"),
            ("https://example.com:/", "port ``"),
            ("https://[::1/", "no closing `]`"),
            ("https://[::1]x/", "`x` follows"),
            ("https://example.com/a b", "the character ' '"),
            ("https://example.com/\n", "the character '\\n'"),
            ("https://exämple.com/", "the character 'ä'"),
        ];
        for (text, expected) in cases {
            let error = Url::parse(text).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, HttpError::InvalidUrl { .. }),
                "{text}: {message}"
            );
            assert!(message.contains(expected), "{text}: {message}");
            assert!(message.contains(&format!("`{text}`")), "{text}: {message}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["https://example.com/", "http://[::1]:8080/a?b=c"] {
            assert_eq!(Url::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            "HTTPS://example.com".parse::<Url>().unwrap().to_string(),
            "https://example.com/"
        );
    }

    /// The normal examples of RFC 3986, section 5.4.1, except those that
    /// only keep a fragment, which a request drops.
    #[test]
    fn join_follows_rfc_3986_examples() {
        let base = Url::parse("http://a/b/c/d;p?q").unwrap();
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/../h", "http://a/b/c/h"),
            ("https://other:8443/x", "https://other:8443/x"),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                base.join(reference).unwrap().to_string(),
                expected,
                "{reference}"
            );
        }
    }

    #[test]
    fn join_rejects_other_schemes() {
        let base = Url::parse("https://example.com/a").unwrap();
        let error = base.join("ftp://example.com/b").unwrap_err();
        assert!(matches!(error, HttpError::UnsupportedScheme { .. }));
    }
}
