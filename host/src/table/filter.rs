//! `--where` predicates as SQL over a table's Postgres columns, with every
//! literal bound as a parameter.

use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

use crate::sandbox::types::Values;
use crate::sandbox::{Column, ColumnBuilder, DataType, string_at};

use super::error::{Result, TableError};
use super::expr::{CellPart, ColumnRef, CompareOp, Literal, Operand, Predicate};
use super::schema::TableSchema;
use super::values::{cell_text, push_literal};

/// A value bound to a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// Binds `binds`, in order, to `query`.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    binds: &'q [Bind],
) -> Query<'q, Postgres, PgArguments> {
    for bind in binds {
        query = match bind {
            Bind::Bool(value) => query.bind(*value),
            Bind::Int(value) => query.bind(*value),
            Bind::Float(value) => query.bind(*value),
            Bind::Text(value) => query.bind(value.as_str()),
            Bind::Bytes(value) => query.bind(value.as_slice()),
        };
    }
    query
}

/// Builds SQL for predicates, numbering parameters after those already
/// taken.
pub(crate) struct FilterBuilder<'a> {
    schema: &'a TableSchema,
    pub binds: Vec<Bind>,
}

/// The type of one side of a comparison.
#[derive(Debug, Clone, PartialEq)]
enum Side {
    Column { sql: String, data_type: DataType },
    Literal(Literal),
}

impl<'a> FilterBuilder<'a> {
    pub(crate) fn new(schema: &'a TableSchema, binds: Vec<Bind>) -> Self {
        FilterBuilder { schema, binds }
    }

    /// Returns the SQL of `predicate`, adding its literals to the binds.
    pub(crate) fn sql(&mut self, predicate: &Predicate) -> Result<String> {
        Ok(match predicate {
            Predicate::And(a, b) => format!("({} AND {})", self.sql(a)?, self.sql(b)?),
            Predicate::Or(a, b) => format!("({} OR {})", self.sql(a)?, self.sql(b)?),
            Predicate::Not(a) => format!("(NOT {})", self.sql(a)?),
            Predicate::IsNull { operand, negated } => {
                let not = if *negated { " NOT" } else { "" };
                match self.side(operand)? {
                    Side::Column { sql, .. } => format!("({sql} IS{not} NULL)"),
                    Side::Literal(Literal::Null) => {
                        if *negated { "false" } else { "true" }.to_owned()
                    }
                    Side::Literal(_) => if *negated { "true" } else { "false" }.to_owned(),
                }
            }
            Predicate::Compare { left, op, right } => {
                let (left, right) = (self.side(left)?, self.side(right)?);
                self.comparison(&left, *op, &right, predicate)?
            }
        })
    }

    fn side(&self, operand: &Operand) -> Result<Side> {
        Ok(match operand {
            Operand::Literal(literal) => Side::Literal(literal.clone()),
            Operand::Column(reference) => self.column_side(reference)?,
        })
    }

    fn column_side(&self, reference: &ColumnRef) -> Result<Side> {
        let column = self
            .schema
            .resolve(reference)
            .map_err(|error| match error {
                // `name = "banana"` reads as two columns in SQL, too.
                TableError::NotFound(message) => TableError::NotFound(format!(
                    "{message}; a string is written in single quotes, as in '{}'",
                    reference.name.replace('\'', "''")
                )),
                other => other,
            })?;
        let data_type = match reference.part {
            CellPart::Value => column.data_type,
            _ => DataType::String,
        };
        Ok(Side::Column {
            sql: column.sql(reference.part),
            data_type,
        })
    }

    fn comparison(
        &mut self,
        left: &Side,
        op: CompareOp,
        right: &Side,
        whole: &Predicate,
    ) -> Result<String> {
        let operator = match op {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        };
        let ordered = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        let data_type = match (left, right) {
            (Side::Column { data_type, .. }, _) | (_, Side::Column { data_type, .. }) => *data_type,
            (Side::Literal(_), Side::Literal(_)) => {
                return Err(TableError::Invalid(format!(
                    "`{whole}` compares two literals; compare a column with a value"
                )));
            }
        };
        if ordered
            && matches!(
                data_type,
                DataType::Bytes | DataType::Json | DataType::Vector(_)
            )
        {
            return Err(TableError::Invalid(format!(
                "`{whole}` orders {data_type} values, which have no order; use = or !="
            )));
        }
        if let (
            Side::Column {
                data_type: left_type,
                ..
            },
            Side::Column {
                data_type: right_type,
                ..
            },
        ) = (left, right)
        {
            let numeric = |t: &DataType| matches!(t, DataType::Int | DataType::Float);
            if left_type != right_type && !(numeric(left_type) && numeric(right_type)) {
                return Err(TableError::Invalid(format!(
                    "`{whole}` compares a {left_type} column with a {right_type} column"
                )));
            }
        }
        let left = self.side_sql(left, &data_type, whole)?;
        let right = self.side_sql(right, &data_type, whole)?;
        Ok(format!("({left} {operator} {right})"))
    }

    fn side_sql(&mut self, side: &Side, data_type: &DataType, whole: &Predicate) -> Result<String> {
        match side {
            Side::Column { sql, .. } => Ok(sql.clone()),
            Side::Literal(Literal::Null) => Err(TableError::Invalid(format!(
                "`{whole}` compares with null, which is never true; write `is null` or `is not \
                 null`"
            ))),
            Side::Literal(literal) => {
                let mut builder = ColumnBuilder::new(data_type, 1);
                push_literal(&mut builder, data_type, literal)
                    .map_err(|error| TableError::Invalid(format!("in `{whole}`: {error}")))?;
                let value = builder.finish();
                let (bind, cast) = bind_of(&value, data_type);
                self.binds.push(bind);
                let n = self.binds.len();
                Ok(match cast {
                    Some(cast) => cast.replace("$$", &format!("${n}")),
                    None => format!("${n}"),
                })
            }
        }
    }
}

/// Returns the bind of row 0 of `value`, and the SQL around the parameter (`$$`
/// marks it) when the parameter's type is not the column's.
fn bind_of(value: &Column, data_type: &DataType) -> (Bind, Option<&'static str>) {
    match (&value.values, data_type) {
        (Values::Bool(v), _) => (Bind::Bool(v[0]), None),
        (Values::Int(v), _) => (Bind::Int(v[0]), None),
        (Values::Timestamp(v), _) => (
            Bind::Int(v[0]),
            Some("('epoch'::timestamptz + $$::bigint * interval '1 microsecond')"),
        ),
        (Values::Float(v), _) => (Bind::Float(v[0]), None),
        (Values::String(c), _) => (Bind::Text(string_at(c, 0).to_owned()), None),
        (Values::Json(c), _) => (Bind::Text(string_at(c, 0).to_owned()), Some("$$::jsonb")),
        (Values::Bytes(c), _) => (
            Bind::Bytes(c.data[c.offsets[0] as usize..c.offsets[1] as usize].to_vec()),
            None,
        ),
        (Values::Vector(_), _) => (
            Bind::Text(cell_text(value, 0).unwrap_or_default()),
            Some("$$::vector"),
        ),
    }
}
