//! Table and column names, column types, and the schema of a table as the
//! catalog stores it.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};

use crate::catalog::Tenant;
use crate::sandbox::{DataType, MAX_VECTOR_DIMENSION, is_unsafe_char};

use super::error::{Result, TableError};
use super::expr::{CellPart, ColumnRef, Expr};

/// The `_v_max` of a live row version.
pub const LIVE: i64 = i64::MAX;

/// The maximum length of a table, snapshot or column name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Checks a table, snapshot or column name: 1 to 128 characters, none of
/// them a control character, a line separator or a bidirectional control,
/// and no leading or trailing space. Names are stored as given and never
/// appear in SQL, so quotes and keywords are fine.
///
/// # Errors
///
/// Returns [`TableError::Invalid`] naming `what` and the name.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty".to_owned())
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some(format!("is longer than {MAX_NAME_CHARS} characters"))
    } else if name.chars().any(is_unsafe_char) {
        Some("contains a control or bidirectional character".to_owned())
    } else if name.trim() != name {
        Some("starts or ends with white space".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(TableError::Invalid(format!(
            "{what} name {:?} {problem}; use 1 to {MAX_NAME_CHARS} printable characters",
            truncate(name, 64)
        ))),
    }
}

/// Parses a column type: `bool`, `int`, `float`, `string`, `bytes`, `json`,
/// `timestamp` or `vector(N)`.
///
/// # Errors
///
/// Returns [`TableError::Invalid`] naming the text and the types there are.
pub fn parse_data_type(text: &str) -> Result<DataType> {
    let trimmed = text.trim().to_ascii_lowercase();
    let data_type = match trimmed.as_str() {
        "bool" => DataType::Bool,
        "int" => DataType::Int,
        "float" => DataType::Float,
        "string" => DataType::String,
        "bytes" => DataType::Bytes,
        "json" => DataType::Json,
        "timestamp" => DataType::Timestamp,
        other => {
            let dimension = other
                .strip_prefix("vector(")
                .and_then(|rest| rest.strip_suffix(')'))
                .map(|digits| digits.trim().parse::<u32>());
            match dimension {
                Some(Ok(dimension)) if (1..=MAX_VECTOR_DIMENSION).contains(&dimension) => {
                    DataType::Vector(dimension)
                }
                Some(_) => {
                    return Err(TableError::Invalid(format!(
                        "type `{text}` has no valid dimension; give vector(N) with N from 1 to \
                         {MAX_VECTOR_DIMENSION}"
                    )));
                }
                None => {
                    return Err(TableError::Invalid(format!(
                        "unknown column type `{text}`; use bool, int, float, string, bytes, json, \
                         timestamp or vector(N)"
                    )));
                }
            }
        }
    };
    Ok(data_type)
}

/// Returns the Postgres type that stores a column type.
pub(crate) fn pg_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Bool => "boolean".into(),
        DataType::Int => "bigint".into(),
        DataType::Float => "double precision".into(),
        DataType::String => "text".into(),
        DataType::Bytes => "bytea".into(),
        DataType::Json => "jsonb".into(),
        DataType::Timestamp => "timestamptz".into(),
        DataType::Vector(dimension) => format!("vector({dimension})"),
    }
}

/// Shortens `text` to `max` characters, marking the cut with `...`.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max).collect();
        short.push_str("...");
        short
    }
}

/// The computed part of a column: its expression, pinned to plugin
/// versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComputedSpec {
    /// The expression, with every plugin written `NAME@VERSION`.
    #[schema(value_type = Object)]
    pub expression: Expr,
    /// The write from which this expression computes the column.
    pub write_from: i64,
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColumnInfo {
    /// The column's id, which names its Postgres column `c_<id>`.
    pub id: i64,
    /// The column's name.
    pub name: String,
    /// The column's place in the table, from 0.
    pub position: i32,
    /// The column's type, such as `vector(3)`.
    #[serde(
        serialize_with = "serialize_type",
        deserialize_with = "deserialize_type"
    )]
    #[schema(value_type = String)]
    pub data_type: DataType,
    /// The expression of a computed column.
    pub computed: Option<ComputedSpec>,
    /// The write that added the column.
    pub added_write: i64,
    /// Whether a cosine index covers the column, so that a zero vector,
    /// which has no direction, is a failed cell.
    #[serde(skip)]
    pub direction_required: bool,
}

/// Writes a column type in its text form, such as `vector(3)`.
pub(crate) fn serialize_type<S: serde::Serializer>(
    data_type: &DataType,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(data_type)
}

/// Reads a column type from its text form, such as `vector(3)`.
pub(crate) fn deserialize_type<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<DataType, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_data_type(&text).map_err(serde::de::Error::custom)
}

impl ColumnInfo {
    /// Returns the Postgres column that contains the part `part` of this column's
    /// cells. A part other than the value exists for computed columns only.
    pub(crate) fn sql(&self, part: CellPart) -> String {
        match part {
            CellPart::Value => format!("c_{}", self.id),
            CellPart::ErrorType => format!("c_{}_et", self.id),
            CellPart::ErrorMsg => format!("c_{}_em", self.id),
        }
    }

    /// Returns whether the column is computed.
    pub fn is_computed(&self) -> bool {
        self.computed.is_some()
    }
}

/// A table's schema as of one write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableSchema {
    /// The table's id, which names its Postgres table `t_<id>`.
    pub id: i64,
    /// The table's name.
    pub name: String,
    /// The Postgres schema of the tenant that owns the table.
    #[serde(skip)]
    pub(crate) tenant_schema: String,
    /// The columns, in table order.
    pub columns: Vec<ColumnInfo>,
}

impl TableSchema {
    /// Returns the quoted Postgres name of the table.
    pub(crate) fn sql_table(&self) -> String {
        format!("\"{}\".t_{}", self.tenant_schema, self.id)
    }

    /// Looks a column up by name.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] listing the columns there are.
    pub fn column(&self, name: &str) -> Result<&ColumnInfo> {
        self.columns
            .iter()
            .find(|column| column.name == name)
            .ok_or_else(|| {
                TableError::NotFound(format!(
                    "table `{}` has no column `{name}`; its columns are {}",
                    self.name,
                    self.column_names()
                ))
            })
    }

    /// Looks up the column of a reference, and checks that an error part is
    /// asked of a computed column only.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] or [`TableError::Invalid`].
    pub fn resolve(&self, reference: &ColumnRef) -> Result<&ColumnInfo> {
        let column = self.column(&reference.name)?;
        if reference.part != CellPart::Value && !column.is_computed() {
            return Err(TableError::Invalid(format!(
                "column `{}` of table `{}` is not computed, so it has no `{reference}`",
                column.name, self.name
            )));
        }
        Ok(column)
    }

    /// Returns the column names, comma-separated, or `none`.
    pub fn column_names(&self) -> String {
        if self.columns.is_empty() {
            return "none".into();
        }
        self.columns
            .iter()
            .map(|column| format!("`{}`", column.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Loads the schema of table `table_id` of `tenant` as of write
/// `write_id`: the columns that existed then, with the expressions that
/// computed them. [`LIVE`] gives the current schema.
pub(crate) async fn load_schema(
    conn: &mut PgConnection,
    tenant: &Tenant,
    table_id: i64,
    name: &str,
    write_id: i64,
) -> Result<TableSchema> {
    let rows = sqlx::query(
        "SELECT c.id, c.name, c.position, c.data_type, c.computed, c.added_write, \
                s.expression, s.write_from, \
                EXISTS (SELECT 1 FROM sandtable.indexes i \
                        WHERE i.column_id = c.id AND i.metric = 'cosine' \
                          AND i.added_write <= $2 \
                          AND ($2 < i.dropped_write OR i.dropped_write = 9223372036854775807)) \
                AS direction_required \
         FROM sandtable.columns c \
         LEFT JOIN sandtable.column_specs s \
           ON s.column_id = c.id AND s.write_from <= $2 \
          AND ($2 < s.write_to OR s.write_to = 9223372036854775807) \
         WHERE c.table_id = $1 AND c.added_write <= $2 \
           AND ($2 < c.dropped_write OR c.dropped_write = 9223372036854775807) \
         ORDER BY c.position",
    )
    .bind(table_id)
    .bind(write_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("name")?;
        let type_text: String = row.try_get("data_type")?;
        let data_type = parse_data_type(&type_text)?;
        let computed: bool = row.try_get("computed")?;
        let expression: Option<serde_json::Value> = row.try_get("expression")?;
        let computed = match (computed, expression) {
            (true, Some(expression)) => Some(ComputedSpec {
                expression: serde_json::from_value(expression).map_err(|error| {
                    TableError::Invalid(format!(
                        "the stored expression of column `{name}` is unreadable: {error}"
                    ))
                })?,
                write_from: row.try_get("write_from")?,
            }),
            (true, None) => {
                return Err(TableError::Invalid(format!(
                    "computed column `{name}` has no expression for write {write_id}"
                )));
            }
            (false, _) => None,
        };
        columns.push(ColumnInfo {
            id: row.try_get("id")?,
            position: row.try_get("position")?,
            added_write: row.try_get("added_write")?,
            direction_required: row.try_get("direction_required")?,
            name,
            data_type,
            computed,
        });
    }
    Ok(TableSchema {
        id: table_id,
        name: name.to_owned(),
        tenant_schema: tenant.schema_name.clone(),
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_refuses_others() {
        assert_eq!(parse_data_type("int").unwrap(), DataType::Int);
        assert_eq!(parse_data_type(" Vector(3) ").unwrap(), DataType::Vector(3));
        let unknown = parse_data_type("integer").unwrap_err().to_string();
        assert!(
            unknown.contains("unknown column type `integer`"),
            "{unknown}"
        );
        let zero = parse_data_type("vector(0)").unwrap_err().to_string();
        assert!(zero.contains("vector(N) with N from 1"), "{zero}");
    }

    #[test]
    fn names_may_hold_quotes_but_not_controls() {
        check_name("table", "select \"x\"; drop").unwrap();
        assert!(check_name("table", "").is_err());
        assert!(check_name("table", " padded").is_err());
        let control = check_name("column", "a\nb").unwrap_err().to_string();
        assert!(control.contains("column name \"a\\nb\""), "{control}");
    }
}
