//! Plugin references as users write them: `text`, `text@2`, `text@3f9a1c`.

use std::fmt;
use std::str::FromStr;

/// A reference to a plugin in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's catalog name.
    pub name: String,
    /// Which version; `None` means the latest.
    pub selector: Option<VersionSelector>,
}

/// The part of a reference after `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    /// A catalog version: 1, 2, 3 ...
    Version(i32),
    /// A prefix of the component's lowercase hex sha256, at least
    /// [`MIN_SHA256_PREFIX`] characters. A prefix of up to 10 digits alone
    /// is read as a version unless written `sha256:PREFIX`.
    Sha256Prefix(String),
}

/// The shortest sha256 prefix accepted in a reference.
pub const MIN_SHA256_PREFIX: usize = 6;

/// The maximum number of digits read as a catalog version rather than a
/// sha256 prefix, so that versions up to `i32::MAX` can be named. A sha256
/// prefix of digits alone that is this short needs the `sha256:` form.
const MAX_VERSION_DIGITS: usize = 10;

/// A reference that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid plugin reference `{0}`: write `NAME`, `NAME@VERSION` (a catalog version such as 2) \
     or `NAME@SHA256` (at least 6 hex digits of the sha256)"
)]
pub struct InvalidReference(pub String);

impl FromStr for PluginRef {
    type Err = InvalidReference;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidReference(text.to_owned());
        let (name, selector) = match text.split_once('@') {
            None => (text, None),
            Some((name, selector)) => (name, Some(parse_selector(selector).ok_or_else(invalid)?)),
        };
        if crate::sandbox::check_name("plugin name", name).is_err() {
            return Err(invalid());
        }
        Ok(PluginRef {
            name: name.to_owned(),
            selector,
        })
    }
}

fn parse_selector(text: &str) -> Option<VersionSelector> {
    let (text, explicit) = match text.strip_prefix("sha256:") {
        Some(prefix) => (prefix, true),
        None => (text, false),
    };
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !explicit
        && digits
        && !text.is_empty()
        && text.len() <= MAX_VERSION_DIGITS
        && !text.starts_with('0')
    {
        return text.parse().ok().map(VersionSelector::Version);
    }
    let hex = text.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && (MIN_SHA256_PREFIX..=64).contains(&text.len()) {
        return Some(VersionSelector::Sha256Prefix(text.to_ascii_lowercase()));
    }
    None
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            None => f.write_str(&self.name),
            Some(VersionSelector::Version(version)) => write!(f, "{}@{version}", self.name),
            Some(VersionSelector::Sha256Prefix(prefix)) => write!(f, "{}@{prefix}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_version_and_prefix() {
        let plain: PluginRef = "text".parse().unwrap();
        assert_eq!(plain.selector, None);
        let version: PluginRef = "text@12".parse().unwrap();
        assert_eq!(version.selector, Some(VersionSelector::Version(12)));
        let prefix: PluginRef = "text@3F9A1C".parse().unwrap();
        assert_eq!(
            prefix.selector,
            Some(VersionSelector::Sha256Prefix("3f9a1c".into()))
        );
        let large: PluginRef = "text@123456".parse().unwrap();
        assert_eq!(large.selector, Some(VersionSelector::Version(123456)));
        let explicit: PluginRef = "text@sha256:123456".parse().unwrap();
        assert_eq!(
            explicit.selector,
            Some(VersionSelector::Sha256Prefix("123456".into()))
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for text in [
            "",
            "text@",
            "text@0",
            "text@abc",
            "te xt",
            "text@zzzzzz",
            "@1",
        ] {
            assert!(text.parse::<PluginRef>().is_err(), "{text:?} parsed");
        }
    }
}
