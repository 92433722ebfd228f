//! Text functions: case conversion, lengths, word counts and JSON field
//! access.

use sandtable_guest::{Json, udf};
use serde_json::Value;

/// Converts text to upper case, by Unicode's full case mapping.
#[udf]
fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// Converts text to lower case, by Unicode's full case mapping.
#[udf]
fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// Counts the characters (Unicode scalar values) of text.
#[udf]
fn length(s: &str) -> i64 {
    s.chars().count() as i64
}

/// Counts the words of text, separated by Unicode whitespace.
#[udf]
fn word_count(s: &str) -> i64 {
    s.split_whitespace().count() as i64
}

/// Returns the value at a dot-separated path of keys and array indices.
///
/// A missing key, an index past the end or a path through a scalar gives
/// null. An empty path returns the whole document, and a JSON `null` at the
/// path is returned as the JSON document `null`.
#[udf]
fn json_field(doc: Json<'_>, path: &str) -> Result<Option<Value>, String> {
    let mut value: Value = serde_json::from_str(doc.as_str())
        .map_err(|error| format!("argument `doc` is not a JSON document: {error}"))?;
    if path.is_empty() {
        return Ok(Some(value));
    }
    for segment in path.split('.') {
        value = match value {
            Value::Object(mut fields) => match fields.remove(segment) {
                Some(field) => field,
                None => return Ok(None),
            },
            Value::Array(mut items) => match segment.parse::<usize>() {
                Ok(index) if index < items.len() => items.swap_remove(index),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
    }
    Ok(Some(value))
}

sandtable_guest::plugin!(functions = [upper, lower, length, word_count, json_field]);

#[cfg(test)]
mod tests {
    use sandtable_guest::types::{Column, DataType, Values};
    use sandtable_guest::{Value, testing};

    use super::*;

    #[test]
    fn case_conversion_is_unicode_aware() {
        let input = Column::strings(["Straße", "ǅ", "İ"]);
        let result = testing::call::<upper>(std::slice::from_ref(&input)).unwrap();
        assert_eq!(
            result.column.to_values(),
            [
                Some(Value::String("STRASSE")),
                Some(Value::String("Ǆ")),
                Some(Value::String("İ"))
            ]
        );
        let result = testing::call::<lower>(&[input]).unwrap();
        assert_eq!(
            result.column.to_values(),
            [
                Some(Value::String("straße")),
                Some(Value::String("ǆ")),
                Some(Value::String("i\u{307}"))
            ]
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let result = testing::call::<length>(&[Column::strings(["", "héllo", "日本語"])]).unwrap();
        assert_eq!(result.column.values, Values::Int(vec![0, 5, 3]));
    }

    #[test]
    fn word_count_splits_on_unicode_whitespace() {
        let input = Column::strings(["", "  one ", "a b\tc\nd", "x\u{3000}y\u{a0}z"]);
        let result = testing::call::<word_count>(&[input]).unwrap();
        assert_eq!(result.column.values, Values::Int(vec![0, 1, 4, 3]));
    }

    #[test]
    fn json_field_follows_keys_and_indices() {
        let doc = r#"{"a": {"b": [10, {"c": "deep"}]}, "n": null}"#;
        let paths = [
            "a.b.0", "a.b.1.c", "", "n", "missing", "a.b.2", "a.b.x", "a.b.0.c",
        ];
        let docs = Column::json(vec![doc; paths.len()]);
        let result = testing::call::<json_field>(&[docs, Column::strings(paths)]).unwrap();
        assert_eq!(
            result.column.to_values(),
            [
                Some(Value::Json("10")),
                Some(Value::Json(r#""deep""#)),
                Some(Value::Json(r#"{"a":{"b":[10,{"c":"deep"}]},"n":null}"#)),
                Some(Value::Json("null")),
                None,
                None,
                None,
                None,
            ]
        );
        assert!(result.errors.is_empty());
    }

    #[test]
    fn json_field_reports_invalid_document() {
        let result =
            testing::call::<json_field>(&[Column::json(["{"]), Column::strings(["a"])]).unwrap();
        assert_eq!(result.column.to_values(), [None]);
        assert_eq!(result.errors.len(), 1);
        assert_eq!(result.errors[0].row, 0);
        assert!(
            result.errors[0]
                .message
                .starts_with("argument `doc` is not a JSON document: "),
            "{}",
            result.errors[0].message
        );
    }

    #[test]
    fn description_lists_signatures() {
        let description = testing::describe_plugin::<SandtablePlugin>();
        assert_eq!(description.name, "text");
        let signatures: Vec<(&str, Vec<DataType>, DataType)> = description
            .functions
            .iter()
            .map(|function| {
                let params = function.params.iter().map(|param| param.type_).collect();
                (function.name.as_str(), params, function.returns)
            })
            .collect();
        assert_eq!(
            signatures,
            [
                ("upper", vec![DataType::String], DataType::String),
                ("lower", vec![DataType::String], DataType::String),
                ("length", vec![DataType::String], DataType::Int),
                ("word_count", vec![DataType::String], DataType::Int),
                (
                    "json_field",
                    vec![DataType::Json, DataType::String],
                    DataType::Json
                ),
            ]
        );
    }
}
