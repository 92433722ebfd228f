//! Validation of a plugin's `describe` output.

use std::collections::HashSet;

use super::types::{DataType, Description, Function};

/// The maximum batch size a function may prefer.
pub const MAX_BATCH_SIZE: u32 = 65_536;
/// The largest vector dimension, which is pgvector's limit for `vector`.
pub const MAX_VECTOR_DIMENSION: u32 = 16_000;
/// The maximum number of parameters of one function.
pub const MAX_PARAMETERS: usize = 32;
/// The maximum number of functions of one plugin.
pub const MAX_FUNCTIONS: usize = 1024;
/// The maximum length of any text in a description, such as a doc line or
/// a pool name, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The maximum number of directories or outbound hosts a plugin may ask for.
pub const MAX_CAPABILITIES: usize = 64;

/// Checks a description against the rules the host relies on, returning the
/// first broken one.
pub(crate) fn validate(description: &Description) -> Result<(), String> {
    check_name("plugin name", &description.name)?;
    if description.version.trim().is_empty() || description.version.len() > 64 {
        return Err(format!(
            "plugin version `{}` must be 1 to 64 characters",
            description.version
        ));
    }
    check_text("plugin version", &description.version)?;
    if description.functions.is_empty() {
        return Err("the plugin exports no functions".into());
    }
    if description.functions.len() > MAX_FUNCTIONS {
        return Err(format!(
            "the plugin describes {} functions, more than the maximum of {MAX_FUNCTIONS}",
            description.functions.len()
        ));
    }
    let capabilities = &description.capabilities;
    let requested = capabilities
        .directories
        .len()
        .max(capabilities.outbound_hosts.len());
    if requested > MAX_CAPABILITIES {
        return Err(format!(
            "the plugin asks for {requested} directories or hosts, more than the maximum of {MAX_CAPABILITIES}"
        ));
    }
    let mut names = HashSet::new();
    for function in &description.functions {
        if !names.insert(function.name.as_str()) {
            return Err(format!("function `{}` is described twice", function.name));
        }
        validate_function(function)
            .map_err(|error| format!("function `{}`: {error}", function.name))?;
    }
    for path in &description.capabilities.directories {
        check_text("directory", path)?;
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(format!(
                "directory `{path}` must be an absolute guest path without `..`"
            ));
        }
    }
    for host in &description.capabilities.outbound_hosts {
        check_text("outbound host", host)?;
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("outbound host `{host}` must be `host:port`"));
        }
    }
    Ok(())
}

fn validate_function(function: &Function) -> Result<(), String> {
    check_name("function name", &function.name)?;
    check_text("doc", &function.doc)?;
    if function.params.len() > MAX_PARAMETERS {
        return Err(format!(
            "takes {} parameters, more than the maximum of {MAX_PARAMETERS}",
            function.params.len()
        ));
    }
    let mut params = HashSet::new();
    for param in &function.params {
        check_name("parameter name", &param.name)?;
        if !params.insert(param.name.as_str()) {
            return Err(format!("parameter `{}` appears twice", param.name));
        }
        check_type(&param.type_)?;
    }
    check_type(&function.returns)?;
    if function.batch_size == 0 || function.batch_size > MAX_BATCH_SIZE {
        return Err(format!(
            "batch size {} must be from 1 to {MAX_BATCH_SIZE}",
            function.batch_size
        ));
    }
    if let Some(pool) = &function.pool {
        check_text("pool", pool)?;
    }
    if let Some(pool) = &function.pool
        && (pool.is_empty() || pool.len() > 128 || pool.chars().any(char::is_whitespace))
    {
        return Err(format!(
            "pool `{pool}` must be 1 to 128 characters without spaces, such as `request-rate:my_service`"
        ));
    }
    if function.limits.fuel_per_row == Some(0) {
        return Err("requests 0 fuel per row".into());
    }
    if function.limits.deadline_ms == Some(0) {
        return Err("requests a deadline of 0 ms".into());
    }
    Ok(())
}

fn check_type(data_type: &DataType) -> Result<(), String> {
    if let DataType::Vector(dimension) = data_type
        && (*dimension == 0 || *dimension > MAX_VECTOR_DIMENSION)
    {
        return Err(format!(
            "vector dimension {dimension} must be from 1 to {MAX_VECTOR_DIMENSION}"
        ));
    }
    Ok(())
}

/// Checks that text from a plugin is at most [`MAX_TEXT_BYTES`] long and
/// free of characters that could rewrite a terminal or a log line: control
/// characters, line and paragraph separators, and bidirectional overrides.
fn check_text(what: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "{what} is {} bytes, more than the maximum of {MAX_TEXT_BYTES}",
            text.len()
        ));
    }
    if let Some(c) = text.chars().find(|&c| is_unsafe_char(c)) {
        return Err(format!(
            "{what} {:?} contains the character U+{:04X}, which is not allowed in a description",
            text.escape_default().to_string(),
            c as u32
        ));
    }
    Ok(())
}

/// Whether `c` can change how surrounding text is displayed: a control
/// character, a line or paragraph separator, or a bidirectional control.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Checks that a name is 1 to 64 characters of ASCII letters, digits, `_`
/// and `-`, starting with a letter, so it can appear in expressions.
///
/// # Errors
///
/// Returns a message naming `what` and the name.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} `{name}` must be 1 to 64 ASCII letters, digits, `_` or `-`, starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::types::{Capabilities, Limits, Parameter};

    fn description() -> Description {
        Description {
            name: "text".into(),
            version: "1.0.0".into(),
            functions: vec![Function {
                name: "upper".into(),
                doc: String::new(),
                params: vec![Parameter {
                    name: "s".into(),
                    type_: DataType::String,
                }],
                returns: DataType::String,
                takes_nulls: false,
                batch_size: 1024,
                pool: None,
                limits: Limits {
                    fuel_per_row: None,
                    memory_bytes: None,
                    deadline_ms: None,
                    output_bytes: None,
                },
            }],
            capabilities: Capabilities {
                directories: vec![],
                outbound_hosts: vec![],
                warm_instance: false,
            },
        }
    }

    #[test]
    fn valid_description_passes() {
        assert_eq!(validate(&description()), Ok(()));
    }

    #[test]
    fn duplicate_function_is_rejected() {
        let mut d = description();
        d.functions.push(d.functions[0].clone());
        assert_eq!(
            validate(&d).unwrap_err(),
            "function `upper` is described twice"
        );
    }

    #[test]
    fn zero_batch_size_is_rejected() {
        let mut d = description();
        d.functions[0].batch_size = 0;
        let error = validate(&d).unwrap_err();
        assert!(
            error.starts_with("function `upper`: batch size 0"),
            "{error}"
        );
    }

    #[test]
    fn bad_names_are_rejected() {
        let mut d = description();
        d.name = "has space".into();
        assert!(
            validate(&d)
                .unwrap_err()
                .starts_with("plugin name `has space`")
        );
        let mut d = description();
        d.functions[0].name = "1up".into();
        assert!(validate(&d).unwrap_err().contains("function name `1up`"));
    }

    #[test]
    fn oversized_vector_is_rejected() {
        let mut d = description();
        d.functions[0].returns = DataType::Vector(20_000);
        assert!(validate(&d).unwrap_err().contains("vector dimension 20000"));
    }

    #[test]
    fn unsafe_text_is_rejected() {
        for bad in [
            "1.0\u{1b}[2K",
            "1.0\n",
            "1.0\u{202e}",
            "1.0\u{2028}",
            "1.0\0",
        ] {
            let mut d = description();
            d.version = bad.into();
            let error = validate(&d).unwrap_err();
            assert!(error.contains("is not allowed"), "{bad:?}: {error}");
        }
        let mut d = description();
        d.functions[0].pool = Some("request-rate:x\u{7}".into());
        assert!(
            validate(&d)
                .unwrap_err()
                .starts_with("function `upper`: pool")
        );
    }

    #[test]
    fn too_many_functions_are_rejected() {
        let mut d = description();
        let template = d.functions[0].clone();
        d.functions = (0..=MAX_FUNCTIONS)
            .map(|i| Function {
                name: format!("f{i}"),
                ..template.clone()
            })
            .collect();
        assert!(
            validate(&d)
                .unwrap_err()
                .contains("more than the maximum of 1024")
        );
    }

    #[test]
    fn relative_directory_is_rejected() {
        let mut d = description();
        d.capabilities.directories.push("model".into());
        assert!(validate(&d).unwrap_err().contains("directory `model`"));
    }
}
