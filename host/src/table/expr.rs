//! The text forms a user types: computed-column expressions, `--where`
//! predicates, `--columns` lists and `--set` assignments.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which part of a cell a column reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellPart {
    /// The value.
    Value,
    /// The error type of a computed cell (`COLUMN.errortype`).
    ErrorType,
    /// The error message of a computed cell (`COLUMN.errormsg`).
    ErrorMsg,
}

/// A reference to a column, or to the error type or message of its cells.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnRef {
    /// The column's name.
    pub name: String,
    /// The part of the cell.
    pub part: CellPart,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer, such as `-12`.
    Int(i64),
    /// A number with a fraction or an exponent, such as `1.5` or `2e3`.
    Float(f64),
    /// A string in single quotes, such as `'it''s'`.
    String(String),
}

/// A computed-column expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// A column, or a part of its cells.
    Column(ColumnRef),
    /// A literal.
    Literal(Literal),
    /// A call of a plugin's function.
    Call(Call),
}

/// A call `PLUGIN.FUNCTION(ARG, ...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The plugin reference as written: `text`, `text@2` or `text@3f9a1c`.
    pub plugin: String,
    /// The function's name.
    pub function: String,
    /// The arguments.
    pub args: Vec<Expr>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// A column, or a part of its cells.
    Column(ColumnRef),
    /// A literal.
    Literal(Literal),
}

/// A `--where` predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    /// `LEFT OP RIGHT`.
    Compare {
        /// The left side.
        left: Operand,
        /// The operator.
        op: CompareOp,
        /// The right side.
        right: Operand,
    },
    /// `OPERAND is null`, or `OPERAND is not null` when `negated`.
    IsNull {
        /// What is tested.
        operand: Operand,
        /// Whether the test is `is not null`.
        negated: bool,
    },
    /// `A and B`.
    And(Box<Predicate>, Box<Predicate>),
    /// `A or B`.
    Or(Box<Predicate>, Box<Predicate>),
    /// `not A`.
    Not(Box<Predicate>),
}

/// An assignment `COLUMN = LITERAL` of `sandtable update --set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The column's name.
    pub column: String,
    /// The new value.
    pub value: Literal,
}

/// Text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {position} of `{input}`")]
pub struct ParseError {
    /// What is wrong, and what would be accepted there.
    pub message: String,
    /// The character offset (from 1) where the problem starts.
    pub position: usize,
    /// The whole text that was parsed.
    pub input: String,
}

// TODO: the parser and the `Display` forms below.

/// Parses a computed-column expression.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    Err(error(input, 1, "expressions are not parsed yet"))
}

/// Parses a `--where` predicate.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_predicate(input: &str) -> Result<Predicate, ParseError> {
    Err(error(input, 1, "predicates are not parsed yet"))
}

/// Parses a comma-separated `--columns` list.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_column_list(input: &str) -> Result<Vec<ColumnRef>, ParseError> {
    Err(error(input, 1, "column lists are not parsed yet"))
}

/// Parses an assignment `COLUMN = LITERAL`.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_assignment(input: &str) -> Result<Assignment, ParseError> {
    Err(error(input, 1, "assignments are not parsed yet"))
}

fn error(input: &str, position: usize, message: &str) -> ParseError {
    ParseError {
        message: message.to_owned(),
        position,
        input: input.to_owned(),
    }
}

/// Writes `name` as it must appear in an expression: bare when it is an
/// identifier that is not a keyword, otherwise in double quotes.
pub fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    f.write_str(name)
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_name(f, &self.name)?;
        match self.part {
            CellPart::Value => Ok(()),
            CellPart::ErrorType => f.write_str(".errortype"),
            CellPart::ErrorMsg => f.write_str(".errormsg"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(column) => column.fmt(f),
            Expr::Literal(_) => f.write_str("?"),
            Expr::Call(call) => {
                write!(f, "{}.{}(", call.plugin, call.function)?;
                for (i, arg) in call.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    arg.fmt(f)?;
                }
                f.write_str(")")
            }
        }
    }
}
