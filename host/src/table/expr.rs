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
#[error("in `{}`, at character {position}: {message}", excerpt(input, *position))]
pub struct ParseError {
    /// What is wrong, and what would be accepted there.
    pub message: String,
    /// The character offset (from 1) where the problem starts.
    pub position: usize,
    /// The whole text that was parsed.
    pub input: String,
}

/// Returns the input for an error message: whole when short, else the 120
/// characters around `position`, with `...` where it was cut.
fn excerpt(input: &str, position: usize) -> String {
    const WIDTH: usize = 120;
    let length = input.chars().count();
    if length <= WIDTH {
        return input.to_owned();
    }
    let start = position.saturating_sub(WIDTH / 2 + 1).min(length - WIDTH);
    let mut text: String = input.chars().skip(start).take(WIDTH).collect();
    if start > 0 {
        text.insert_str(0, "...");
    }
    if start + WIDTH < length {
        text.push_str("...");
    }
    text
}

/// The maximum nesting of calls inside calls in an expression, and of
/// parentheses and `not` in a predicate. The parser recurses once per level,
/// so the cap keeps hostile input from overflowing the stack.
pub const MAX_NESTING: usize = 64;

/// The most `and` and `or` operators a predicate may have.
pub const MAX_JOINS: usize = 256;

/// The words that a bare name may not be, in any case.
pub const KEYWORDS: [&str; 7] = ["and", "or", "not", "is", "null", "true", "false"];

/// Checks whether `word` is one of the [`KEYWORDS`], ignoring ASCII case.
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS
        .iter()
        .any(|keyword| keyword.eq_ignore_ascii_case(word))
}

/// Checks whether `name` matches `[A-Za-z_][A-Za-z0-9_-]*`, the form of a
/// bare identifier (keywords included).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_identifier_start) && chars.all(is_identifier_char)
}

fn is_identifier_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_identifier_char(c: char) -> bool {
    c == '_' || c == '-' || c.is_ascii_alphanumeric()
}

fn is_selector_char(c: char) -> bool {
    c == ':' || c.is_ascii_alphanumeric()
}

/// Parses a computed-column expression.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(input);
    if parser.at_end() {
        return Err(parser.error_here(
            "the expression is empty; write a column, a literal or a call such as \
             `text.upper(title)`",
        ));
    }
    let expr = parser.expr(0)?;
    parser.expect_end("end of input after the expression")?;
    Ok(expr)
}

/// Parses a `--where` predicate.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_predicate(input: &str) -> Result<Predicate, ParseError> {
    let mut parser = Parser::new(input);
    if parser.at_end() {
        return Err(
            parser.error_here("the predicate is empty; write a condition such as `year >= 2000`")
        );
    }
    let predicate = parser.disjunction(0)?;
    parser.expect_end("`and`, `or` or end of input")?;
    Ok(predicate)
}

/// Parses a comma-separated `--columns` list.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_column_list(input: &str) -> Result<Vec<ColumnRef>, ParseError> {
    let mut parser = Parser::new(input);
    if parser.at_end() {
        return Err(parser.error_here("the column list is empty; name at least one column"));
    }
    let mut columns = Vec::new();
    let mut last_comma = None;
    loop {
        let extra_comma = match parser.peek().kind {
            Kind::Comma => Some(parser.peek().start),
            Kind::End => last_comma,
            _ => None,
        };
        if let Some(start) = extra_comma {
            return Err(
                parser.error_at(start, "empty item in the column list; remove the extra `,`")
            );
        }

        let column = parser.column_ref(false)?;
        match parser.peek().kind {
            Kind::Comma => {
                last_comma = Some(parser.peek().start);
                parser.advance();
                columns.push(column);
            }
            Kind::End => {
                columns.push(column);
                return Ok(columns);
            }
            _ => {
                return Err(parser.unexpected(&format!("`,` or end of input after `{column}`")));
            }
        }
    }
}

/// Parses an assignment `COLUMN = LITERAL`.
///
/// # Errors
///
/// Returns a [`ParseError`] naming the first problem and its position.
pub fn parse_assignment(input: &str) -> Result<Assignment, ParseError> {
    let mut parser = Parser::new(input);
    if parser.at_end() {
        return Err(
            parser.error_here("the assignment is empty; write one such as `status = 'done'`")
        );
    }
    let column = parser.name()?;
    let name_text = Name(&column).to_string();
    if matches!(parser.peek().kind, Kind::Dot) {
        return Err(parser.error_here(&format!(
            "an assignment sets the value of a whole column; remove the suffix after `{name_text}`"
        )));
    }
    if !matches!(parser.peek().kind, Kind::Operator(CompareOp::Eq)) {
        return Err(parser.unexpected(&format!("`=` after `{name_text}`")));
    }
    parser.advance();

    let Some(value) = parser.peek().literal() else {
        return Err(
            parser.unexpected("a literal (a number, a 'string', true, false or null) after `=`")
        );
    };
    parser.advance();
    parser.expect_end("end of input after the value")?;
    Ok(Assignment { column, value })
}

fn error(input: &str, position: usize, message: &str) -> ParseError {
    ParseError {
        message: message.to_owned(),
        position,
        input: input.to_owned(),
    }
}

/// A kind of token.
#[derive(Debug, Clone)]
enum Kind {
    /// A bare identifier or keyword, as written.
    Word(String),
    /// A double-quoted name, with `""` unescaped.
    QuotedName(String),
    /// A plugin reference `IDENTIFIER@SELECTOR`, as written.
    PluginRef(String),
    /// A number or a single-quoted string. `true`, `false` and `null` are
    /// words, because they are keywords.
    Literal(Literal),
    Dot,
    Comma,
    Open,
    Close,
    Operator(CompareOp),
    End,
    /// The place where the lexer stopped at an error, which the parser
    /// reports when it reaches this token.
    Invalid,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// The character index (from 0) where the token starts.
    start: usize,
    /// The character index just past the token.
    end: usize,
}

impl Token {
    /// Converts the token to a literal, if it is one.
    fn literal(&self) -> Option<Literal> {
        match &self.kind {
            Kind::Literal(literal) => Some(literal.clone()),
            Kind::Word(word) if word.eq_ignore_ascii_case("null") => Some(Literal::Null),
            Kind::Word(word) if word.eq_ignore_ascii_case("true") => Some(Literal::Bool(true)),
            Kind::Word(word) if word.eq_ignore_ascii_case("false") => Some(Literal::Bool(false)),
            _ => None,
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.kind, Kind::Word(word) if word.eq_ignore_ascii_case(keyword))
    }
}

/// Splits the input into tokens, stopping at the first invalid one.
struct Lexer<'a> {
    input: &'a str,
    chars: &'a [char],
    at: usize,
}

impl Lexer<'_> {
    /// Returns the tokens, which end with [`Kind::End`], or with
    /// [`Kind::Invalid`] and the error that stopped the lexer.
    fn run(mut self) -> (Vec<Token>, Option<ParseError>) {
        let mut tokens = Vec::new();
        loop {
            while self.peek(0).is_some_and(char::is_whitespace) {
                self.at += 1;
            }
            let start = self.at;
            match self.token() {
                Ok(Kind::End) => {
                    tokens.push(Token {
                        kind: Kind::End,
                        start,
                        end: start,
                    });
                    return (tokens, None);
                }
                Ok(kind) => tokens.push(Token {
                    kind,
                    start,
                    end: self.at,
                }),
                Err(error) => {
                    tokens.push(Token {
                        kind: Kind::Invalid,
                        start,
                        end: start,
                    });
                    return (tokens, Some(error));
                }
            }
        }
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.at + offset).copied()
    }

    fn text(&self, start: usize) -> String {
        self.chars[start..self.at].iter().collect()
    }

    fn error(&self, start: usize, message: &str) -> ParseError {
        error(self.input, start + 1, message)
    }

    fn token(&mut self) -> Result<Kind, ParseError> {
        let Some(c) = self.peek(0) else {
            return Ok(Kind::End);
        };
        let single = match c {
            '.' => Some(Kind::Dot),
            ',' => Some(Kind::Comma),
            '(' => Some(Kind::Open),
            ')' => Some(Kind::Close),
            _ => None,
        };
        if let Some(kind) = single {
            self.at += 1;
            return Ok(kind);
        }
        match c {
            '=' | '<' | '>' | '!' => self.operator(),
            '\'' => self.string(),
            '"' => self.quoted_name(),
            '-' | '0'..='9' => self.number(),
            c if is_identifier_start(c) => self.word(),
            '@' => Err(self.error(
                self.at,
                "unexpected `@`; write a plugin version right after the plugin name, as in \
                 `text@2`",
            )),
            c if c.is_control() => Err(self.error(
                self.at,
                &format!("unexpected control character U+{:04X}", u32::from(c)),
            )),
            c if c.is_alphanumeric() => Err(self.error(
                self.at,
                &format!(
                    "unexpected character `{c}`; write a name that contains it in double \
                     quotes, as in \"{c}\""
                ),
            )),
            c => Err(self.error(self.at, &format!("unexpected character `{c}`"))),
        }
    }

    fn operator(&mut self) -> Result<Kind, ParseError> {
        let start = self.at;
        while self.peek(0).is_some_and(|c| "=<>!".contains(c)) {
            self.at += 1;
        }
        let op = match self.text(start).as_str() {
            "=" => CompareOp::Eq,
            "!=" | "<>" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            other => {
                return Err(self.error(
                    start,
                    &format!("unknown operator `{other}`; use one of =, !=, <>, <, <=, >, >="),
                ));
            }
        };
        Ok(Kind::Operator(op))
    }

    /// Reads a string in single quotes, where `''` is one quote.
    fn string(&mut self) -> Result<Kind, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        loop {
            match self.peek(0) {
                None => {
                    return Err(self.error(start, "unterminated string; add a closing `'`"));
                }
                Some('\'') if self.peek(1) == Some('\'') => {
                    value.push('\'');
                    self.at += 2;
                }
                Some('\'') => {
                    self.at += 1;
                    return Ok(Kind::Literal(Literal::String(value)));
                }
                Some(c) => {
                    value.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// Reads a name in double quotes, where `""` is one quote.
    fn quoted_name(&mut self) -> Result<Kind, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut name = String::new();
        loop {
            match self.peek(0) {
                None => {
                    return Err(self.error(start, "unterminated quoted name; add a closing `\"`"));
                }
                Some('"') if self.peek(1) == Some('"') => {
                    name.push('"');
                    self.at += 2;
                }
                Some('"') => break,
                Some(c) if c.is_control() => {
                    return Err(self.error(
                        self.at,
                        &format!(
                            "control character U+{:04X} in a quoted name; names may not \
                             contain control characters",
                            u32::from(c)
                        ),
                    ));
                }
                Some(c) => {
                    name.push(c);
                    self.at += 1;
                }
            }
        }
        if name.is_empty() {
            return Err(self.error(
                start,
                "empty quoted name `\"\"`; a name needs at least one character",
            ));
        }
        self.at += 1;
        Ok(Kind::QuotedName(name))
    }

    /// Reads `-?DIGITS(.DIGITS)?([eE][+-]?DIGITS)?`, an integer unless it
    /// has a fraction or an exponent.
    fn number(&mut self) -> Result<Kind, ParseError> {
        let start = self.at;
        if self.peek(0) == Some('-') {
            if !self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(
                    start,
                    "unexpected `-`; write a negative number with the minus sign right \
                     before its digits, as in `-12`",
                ));
            }
            self.at += 1;
        }
        self.skip_digits();

        let mut is_float = false;
        if self.peek(0) == Some('.') {
            is_float = true;
            self.at += 1;
            if !self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(
                    start,
                    &format!(
                        "invalid number `{}`; write digits after the decimal point, as in `1.0`",
                        self.text(start)
                    ),
                ));
            }
            self.skip_digits();
        }
        if self.peek(0).is_some_and(|c| c == 'e' || c == 'E') {
            is_float = true;
            self.at += 1;
            if self.peek(0).is_some_and(|c| c == '+' || c == '-') {
                self.at += 1;
            }
            if !self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(
                    start,
                    &format!(
                        "invalid number `{}`; write digits after the exponent, as in `2e3`",
                        self.text(start)
                    ),
                ));
            }
            self.skip_digits();
        }
        if self
            .peek(0)
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        {
            while self.peek(0).is_some_and(is_identifier_char) {
                self.at += 1;
            }
            let text = self.text(start);
            return Err(self.error(
                start,
                &format!(
                    "invalid number `{text}`; write a name that starts with a digit in double \
                     quotes, as in \"{text}\""
                ),
            ));
        }

        let text = self.text(start);
        if is_float {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(Kind::Literal(Literal::Float(value))),
                _ => Err(self.error(
                    start,
                    &format!("number `{text}` is out of range for a 64-bit float"),
                )),
            }
        } else {
            match text.parse::<i64>() {
                Ok(value) => Ok(Kind::Literal(Literal::Int(value))),
                Err(_) => Err(self.error(
                    start,
                    &format!(
                        "integer `{text}` does not fit in 64 bits; write a value from {} to {}, \
                         or a float such as `{text}.0`",
                        i64::MIN,
                        i64::MAX
                    ),
                )),
            }
        }
    }

    fn skip_digits(&mut self) {
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// Reads a bare identifier, or a plugin reference `IDENTIFIER@SELECTOR`.
    fn word(&mut self) -> Result<Kind, ParseError> {
        let start = self.at;
        while self.peek(0).is_some_and(is_identifier_char) {
            self.at += 1;
        }
        if self.peek(0) != Some('@') {
            return Ok(Kind::Word(self.text(start)));
        }

        let plugin = self.text(start);
        self.at += 1;
        let selector_start = self.at;
        while self.peek(0).is_some_and(is_selector_char) {
            self.at += 1;
        }
        if self.at == selector_start {
            return Err(self.error(
                selector_start,
                &format!("expected a version or hash after `{plugin}@`, as in `{plugin}@2`"),
            ));
        }
        if self.peek(0).is_some_and(|c| c == '_' || c == '-') {
            while self
                .peek(0)
                .is_some_and(|c| is_selector_char(c) || c == '_' || c == '-')
            {
                self.at += 1;
            }
            return Err(self.error(
                selector_start,
                &format!(
                    "invalid selector `{}` after `{plugin}@`; a version or hash contains only \
                     letters, digits and `:`",
                    self.text(selector_start)
                ),
            ));
        }
        Ok(Kind::PluginRef(self.text(start)))
    }
}

/// A recursive-descent parser over the tokens of one input.
struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    tokens: Vec<Token>,
    lex_error: Option<ParseError>,
    at: usize,
    /// The `and` and `or` operators read so far.
    joins: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        let chars: Vec<char> = input.chars().collect();
        let (tokens, lex_error) = Lexer {
            input,
            chars: &chars,
            at: 0,
        }
        .run();
        Parser {
            input,
            chars,
            tokens,
            lex_error,
            at: 0,
            joins: 0,
        }
    }

    /// Returns the token at `offset` past the current one. The last token,
    /// [`Kind::End`] or [`Kind::Invalid`], repeats past the end.
    fn peek_at(&self, offset: usize) -> &Token {
        let index = (self.at + offset).min(self.tokens.len() - 1);
        &self.tokens[index]
    }

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn at_end(&self) -> bool {
        matches!(self.peek().kind, Kind::End)
    }

    /// Copies the input from character `start` to `end`, cut short when it
    /// is long, for a message.
    fn excerpt(&self, start: usize, end: usize) -> String {
        const MAX_EXCERPT_CHARS: usize = 40;
        let text = &self.chars[start..end];
        if text.len() > MAX_EXCERPT_CHARS {
            let mut excerpt: String = text[..MAX_EXCERPT_CHARS - 3].iter().collect();
            excerpt.push_str("...");
            excerpt
        } else {
            text.iter().collect()
        }
    }

    fn error_at(&self, start: usize, message: &str) -> ParseError {
        error(self.input, start + 1, message)
    }

    fn error_here(&self, message: &str) -> ParseError {
        self.error_at(self.peek().start, message)
    }

    /// Builds an error saying what was expected at the current token and
    /// what was found, or returns the lexer's error when it stopped there.
    fn unexpected(&self, expected: &str) -> ParseError {
        let token = self.peek();
        let found = match token.kind {
            Kind::Invalid => {
                return self
                    .lex_error
                    .clone()
                    .expect("an invalid token comes with the lexer's error");
            }
            Kind::End => "end of input".to_owned(),
            _ => format!("`{}`", self.excerpt(token.start, token.end)),
        };
        self.error_at(token.start, &format!("expected {expected}, found {found}"))
    }

    fn expect_end(&self, expected: &str) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Checks whether the next tokens start a call, which is a plugin
    /// reference with a selector or `WORD . WORD (`.
    fn call_ahead(&self) -> bool {
        match self.peek().kind {
            Kind::PluginRef(_) => true,
            Kind::Word(_) => {
                matches!(self.peek_at(1).kind, Kind::Dot)
                    && matches!(self.peek_at(2).kind, Kind::Word(_))
                    && matches!(self.peek_at(3).kind, Kind::Open)
            }
            _ => false,
        }
    }

    /// Reads a bare or quoted name. A bare keyword is not a name.
    fn name(&mut self) -> Result<String, ParseError> {
        let token = self.peek();
        let name = match &token.kind {
            Kind::Word(word) if is_keyword(word) => {
                return Err(self.error_at(
                    token.start,
                    &format!("`{word}` is a keyword; write \"{word}\" to name a column"),
                ));
            }
            Kind::Word(word) | Kind::QuotedName(word) => word.clone(),
            _ => return Err(self.unexpected("a column name")),
        };
        self.advance();
        Ok(name)
    }

    /// Reads `NAME`, `NAME.errortype` or `NAME.errormsg`. `in_expr` adds a
    /// hint about calls to the error for an unknown suffix.
    fn column_ref(&mut self, in_expr: bool) -> Result<ColumnRef, ParseError> {
        let name = self.name()?;
        let mut part = CellPart::Value;
        if matches!(self.peek().kind, Kind::Dot) {
            self.advance();
            let token = self.peek();
            let name_text = Name(&name).to_string();
            part = match &token.kind {
                Kind::Word(word) if word.eq_ignore_ascii_case("errortype") => CellPart::ErrorType,
                Kind::Word(word) if word.eq_ignore_ascii_case("errormsg") => CellPart::ErrorMsg,
                Kind::Word(word) => {
                    let call_hint = if in_expr {
                        format!(", or `{name_text}.{word}(...)` to call a plugin function")
                    } else {
                        String::new()
                    };
                    return Err(self.error_at(
                        token.start,
                        &format!(
                            "unknown suffix `.{word}` after column `{name_text}`; use `.errortype` \
                             or `.errormsg`{call_hint}"
                        ),
                    ));
                }
                _ => {
                    return Err(
                        self.unexpected(&format!("`errortype` or `errormsg` after `{name_text}.`"))
                    );
                }
            };
            self.advance();
        }
        Ok(ColumnRef { name, part })
    }

    /// Reads an expression whose calls are `depth` levels inside others.
    fn expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if self.call_ahead() {
            return self.call(depth).map(Expr::Call);
        }
        if let Some(literal) = self.peek().literal() {
            self.advance();
            return Ok(Expr::Literal(literal));
        }
        match &self.peek().kind {
            Kind::QuotedName(name)
                if matches!(self.peek_at(1).kind, Kind::Dot)
                    && matches!(self.peek_at(2).kind, Kind::Word(_))
                    && matches!(self.peek_at(3).kind, Kind::Open) =>
            {
                Err(self.error_here(&format!(
                    "a plugin name is written without quotes, so `\"{name}\"` cannot name a \
                     plugin; write a plugin reference such as `text` or `text@2`"
                )))
            }
            Kind::Word(_) | Kind::QuotedName(_) => self.column_ref(true).map(Expr::Column),
            _ => Err(self.unexpected("a column, a literal or a call such as `text.upper(title)`")),
        }
    }

    /// Reads `PLUGIN.FUNCTION(ARG, ...)` at `depth` levels inside other calls.
    fn call(&mut self, depth: usize) -> Result<Call, ParseError> {
        let plugin_token = self.advance();
        let plugin = match plugin_token.kind {
            Kind::Word(plugin) | Kind::PluginRef(plugin) => plugin,
            _ => unreachable!("call_ahead checks for a word or a plugin reference"),
        };
        if depth >= MAX_NESTING {
            return Err(self.error_at(
                plugin_token.start,
                &format!(
                    "calls nest more than {MAX_NESTING} levels deep; move the inner calls into \
                     computed columns of their own"
                ),
            ));
        }
        if !matches!(self.peek().kind, Kind::Dot) {
            return Err(self.unexpected(&format!("`.FUNCTION(` after plugin `{plugin}`")));
        }
        self.advance();
        let function = match &self.peek().kind {
            Kind::Word(word) => word.clone(),
            _ => return Err(self.unexpected(&format!("a function name after `{plugin}.`"))),
        };
        self.advance();
        if !matches!(self.peek().kind, Kind::Open) {
            return Err(self.unexpected(&format!("`(` after `{plugin}.{function}`")));
        }
        self.advance();

        let mut args = Vec::new();
        if matches!(self.peek().kind, Kind::Close) {
            self.advance();
        } else {
            loop {
                args.push(self.expr(depth + 1)?);
                match self.peek().kind {
                    Kind::Comma => {
                        self.advance();
                    }
                    Kind::Close => {
                        self.advance();
                        break;
                    }
                    _ => {
                        return Err(self.unexpected(&format!(
                            "`)` after the arguments of `{plugin}.{function}`"
                        )));
                    }
                }
            }
        }
        Ok(Call {
            plugin,
            function,
            args,
        })
    }

    /// Reads `A or B or ...` at `depth` levels of parentheses and `not`.
    ///
    /// Chains of `or` and `and` build a tree as deep as they are long, which
    /// drop, `PartialEq` and serde walk recursively, so a predicate takes at
    /// most [`MAX_JOINS`] of them.
    fn disjunction(&mut self, depth: usize) -> Result<Predicate, ParseError> {
        let mut left = self.conjunction(depth)?;
        while self.peek().is_keyword("or") {
            self.join()?;
            let right = self.conjunction(depth)?;
            left = Predicate::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Consumes an `and` or `or`, counting it against [`MAX_JOINS`].
    fn join(&mut self) -> Result<(), ParseError> {
        self.joins += 1;
        if self.joins > MAX_JOINS {
            return Err(self.error_here(&format!(
                "the predicate joins more than {MAX_JOINS} conditions with `and` and `or`; \
                 simplify it"
            )));
        }
        self.advance();
        Ok(())
    }

    /// Reads `A and B and ...`.
    fn conjunction(&mut self, depth: usize) -> Result<Predicate, ParseError> {
        let mut left = self.negation(depth)?;
        while self.peek().is_keyword("and") {
            self.join()?;
            let right = self.negation(depth)?;
            left = Predicate::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Reads `not A`, `(A)` or a comparison.
    fn negation(&mut self, depth: usize) -> Result<Predicate, ParseError> {
        let token = self.peek();
        let is_not = token.is_keyword("not");
        let is_open = matches!(token.kind, Kind::Open);
        if is_not && matches!(self.peek_at(1).kind, Kind::Operator(_)) {
            let word = self.excerpt(token.start, token.end);
            return Err(self.error_here(&format!(
                "`{word}` is a keyword; write \"{word}\" to name a column"
            )));
        }
        if (is_not || is_open) && depth >= MAX_NESTING {
            return Err(self.error_here(&format!(
                "the predicate nests more than {MAX_NESTING} levels of parentheses and `not`; \
                 simplify it"
            )));
        }

        if is_not {
            self.advance();
            let inner = self.negation(depth + 1)?;
            return Ok(Predicate::Not(Box::new(inner)));
        }
        if is_open {
            let open = self.advance();
            let inner = self.disjunction(depth + 1)?;
            if !matches!(self.peek().kind, Kind::Close) {
                return Err(self.unexpected(&format!(
                    "`)` to close the `(` at character {}",
                    open.start + 1
                )));
            }
            self.advance();
            return Ok(inner);
        }
        self.comparison()
    }

    /// Reads `OPERAND OP OPERAND`, `OPERAND is null` or `OPERAND is not null`.
    fn comparison(&mut self) -> Result<Predicate, ParseError> {
        let start = self.peek().start;
        let left = self.operand()?;
        let left_text = self.excerpt(start, self.tokens[self.at - 1].end);

        if let Kind::Operator(op) = self.peek().kind {
            self.advance();
            let right = self.operand()?;
            return Ok(Predicate::Compare { left, op, right });
        }
        if !self.peek().is_keyword("is") {
            return Err(self.unexpected(&format!(
                "a comparison operator (=, !=, <>, <, <=, >, >=) or `is` after `{left_text}`"
            )));
        }
        self.advance();
        let negated = self.peek().is_keyword("not");
        if negated {
            self.advance();
        }
        if !self.peek().is_keyword("null") {
            let expected = if negated {
                "`null` after `is not`"
            } else {
                "`null` or `not null` after `is`"
            };
            return Err(self.unexpected(expected));
        }
        self.advance();
        Ok(Predicate::IsNull {
            operand: left,
            negated,
        })
    }

    /// Reads a column reference or a literal.
    fn operand(&mut self) -> Result<Operand, ParseError> {
        if self.call_ahead() {
            return Err(self.error_here(
                "a predicate cannot call a plugin function; compare a computed column that \
                 holds the call instead",
            ));
        }
        if let Some(literal) = self.peek().literal() {
            self.advance();
            return Ok(Operand::Literal(literal));
        }
        match self.peek().kind {
            Kind::Word(_) | Kind::QuotedName(_) => self.column_ref(false).map(Operand::Column),
            _ => Err(self.unexpected("a column or a literal")),
        }
    }
}

/// Writes `name` as it must appear in an expression: bare when it is an
/// identifier that is not a keyword, otherwise in double quotes with each
/// `"` doubled.
pub fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if is_identifier(name) && !is_keyword(name) {
        return f.write_str(name);
    }
    f.write_str("\"")?;
    f.write_str(&name.replace('"', "\"\""))?;
    f.write_str("\"")
}

/// A name that displays as [`write_name`] writes it.
struct Name<'a>(&'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_name(f, self.0)
    }
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

/// Writes the literal so that it parses back to itself. A NaN or infinite
/// float has no literal form and is written as `NaN`, `inf` or `-inf`.
impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(true) => f.write_str("true"),
            Literal::Bool(false) => f.write_str("false"),
            Literal::Int(value) => write!(f, "{value}"),
            // ryu writes the shortest digits that read back as the same
            // float, and always a `.` or an exponent (`1.0`, `1e300`), as
            // `format64` in ryu 1.0.23 src/pretty/mod.rs shows.
            Literal::Float(value) if value.is_finite() => {
                f.write_str(ryu::Buffer::new().format_finite(*value))
            }
            Literal::Float(value) => write!(f, "{value}"),
            Literal::String(value) => write!(f, "'{}'", value.replace('\'', "''")),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}(", self.plugin, self.function)?;
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            arg.fmt(f)?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(column) => column.fmt(f),
            Expr::Literal(literal) => literal.fmt(f),
            Expr::Call(call) => call.fmt(f),
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        })
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Column(column) => column.fmt(f),
            Operand::Literal(literal) => literal.fmt(f),
        }
    }
}

/// Writes the predicate with the parentheses that parsing needs to rebuild
/// the same tree. `and` and `or` group to the left, so a chain such as
/// `a and b and c` needs none. A chain is written in a loop, so a long one
/// does not deepen the recursion.
impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Compare { left, op, right } => write!(f, "{left} {op} {right}"),
            Predicate::IsNull {
                operand,
                negated: false,
            } => write!(f, "{operand} is null"),
            Predicate::IsNull {
                operand,
                negated: true,
            } => write!(f, "{operand} is not null"),
            Predicate::And(..) => write_chain(f, self, Junction::And),
            Predicate::Or(..) => write_chain(f, self, Junction::Or),
            Predicate::Not(inner) => {
                f.write_str("not ")?;
                let grouped = matches!(**inner, Predicate::And(..) | Predicate::Or(..));
                write_grouped(f, inner, grouped)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Junction {
    And,
    Or,
}

impl Junction {
    /// Splits `predicate` into its two sides when it is this junction.
    fn split(self, predicate: &Predicate) -> Option<(&Predicate, &Predicate)> {
        match (self, predicate) {
            (Junction::And, Predicate::And(left, right))
            | (Junction::Or, Predicate::Or(left, right)) => Some((left, right)),
            _ => None,
        }
    }

    /// Checks whether `predicate` needs parentheses as an operand of this
    /// junction other than the leftmost. Those are `and` inside `and`, and
    /// any `or`.
    fn groups_right(self, predicate: &Predicate) -> bool {
        match predicate {
            Predicate::Or(..) => true,
            Predicate::And(..) => self == Junction::And,
            _ => false,
        }
    }
}

/// Writes a left-grouped chain `A op B op C ...` of `junction`.
fn write_chain(
    f: &mut fmt::Formatter<'_>,
    predicate: &Predicate,
    junction: Junction,
) -> fmt::Result {
    let mut rights = Vec::new();
    let mut leftmost = predicate;
    while let Some((left, right)) = junction.split(leftmost) {
        rights.push(right);
        leftmost = left;
    }

    // The leftmost operand is not this junction, and only an `or` under an
    // `and` binds more loosely than the chain.
    let grouped = junction == Junction::And && matches!(leftmost, Predicate::Or(..));
    write_grouped(f, leftmost, grouped)?;
    let word = match junction {
        Junction::And => " and ",
        Junction::Or => " or ",
    };
    for right in rights.into_iter().rev() {
        f.write_str(word)?;
        write_grouped(f, right, junction.groups_right(right))?;
    }
    Ok(())
}

fn write_grouped(f: &mut fmt::Formatter<'_>, predicate: &Predicate, grouped: bool) -> fmt::Result {
    if grouped {
        write!(f, "({predicate})")
    } else {
        fmt::Display::fmt(predicate, f)
    }
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_name(f, &self.column)?;
        write!(f, " = {}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str) -> ColumnRef {
        ColumnRef {
            name: name.to_owned(),
            part: CellPart::Value,
        }
    }

    fn column_part(name: &str, part: CellPart) -> ColumnRef {
        ColumnRef {
            name: name.to_owned(),
            part,
        }
    }

    fn expr_column(name: &str) -> Expr {
        Expr::Column(column(name))
    }

    fn call(plugin: &str, function: &str, args: Vec<Expr>) -> Expr {
        Expr::Call(Call {
            plugin: plugin.to_owned(),
            function: function.to_owned(),
            args,
        })
    }

    fn compare(name: &str, op: CompareOp, value: i64) -> Predicate {
        Predicate::Compare {
            left: Operand::Column(column(name)),
            op,
            right: Operand::Literal(Literal::Int(value)),
        }
    }

    fn eq(name: &str, value: i64) -> Predicate {
        compare(name, CompareOp::Eq, value)
    }

    fn and(left: Predicate, right: Predicate) -> Predicate {
        Predicate::And(Box::new(left), Box::new(right))
    }

    fn or(left: Predicate, right: Predicate) -> Predicate {
        Predicate::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Predicate) -> Predicate {
        Predicate::Not(Box::new(inner))
    }

    fn literal(input: &str) -> Literal {
        match parse_expr(input) {
            Ok(Expr::Literal(literal)) => literal,
            other => panic!("`{input}` parsed as {other:?}, not a literal"),
        }
    }

    #[track_caller]
    fn assert_error<T: fmt::Debug>(result: Result<T, ParseError>, message: &str, position: usize) {
        let error = result.expect_err("the input should be rejected");
        assert_eq!(error.message, message);
        assert_eq!(error.position, position, "position for: {message}");
    }

    #[test]
    fn bare_names() {
        for name in ["title", "hash-embed", "_x9", "a-", "Title_2", "errortype"] {
            assert_eq!(parse_expr(name), Ok(expr_column(name)), "{name}");
        }
    }

    #[test]
    fn quoted_names() {
        let cases = [
            ("\"my col\"", "my col"),
            ("\"say \"\"hi\"\"\"", "say \"hi\""),
            ("\"and\"", "and"),
            ("\"NULL\"", "NULL"),
            ("\"a, b\"", "a, b"),
            ("\"é\"", "é"),
            ("\"  \"", "  "),
            ("\"x.errortype\"", "x.errortype"),
            ("\"\"\"\"", "\""),
        ];
        for (input, name) in cases {
            assert_eq!(parse_expr(input), Ok(expr_column(name)), "{input}");
        }
    }

    #[test]
    fn keyword_as_bare_name_rejected() {
        assert_error(
            parse_expr("and"),
            "`and` is a keyword; write \"and\" to name a column",
            1,
        );
        assert_error(
            parse_column_list("title, Or"),
            "`Or` is a keyword; write \"Or\" to name a column",
            8,
        );
        assert_error(
            parse_predicate("is = 1"),
            "`is` is a keyword; write \"is\" to name a column",
            1,
        );
        assert_error(
            parse_predicate("a = 1 and not = 2"),
            "`not` is a keyword; write \"not\" to name a column",
            11,
        );
        assert_error(
            parse_assignment("NULL = 1"),
            "`NULL` is a keyword; write \"NULL\" to name a column",
            1,
        );
        assert_error(
            parse_column_list("true"),
            "`true` is a keyword; write \"true\" to name a column",
            1,
        );
    }

    #[test]
    fn quoted_name_errors() {
        assert_error(
            parse_expr("\"\""),
            "empty quoted name `\"\"`; a name needs at least one character",
            1,
        );
        assert_error(
            parse_expr("\"a\tb\""),
            "control character U+0009 in a quoted name; names may not contain control \
             characters",
            3,
        );
        assert_error(
            parse_expr("\"a\nb\""),
            "control character U+000A in a quoted name; names may not contain control \
             characters",
            3,
        );
        assert_error(
            parse_predicate("x = \"abc"),
            "unterminated quoted name; add a closing `\"`",
            5,
        );
    }

    #[test]
    fn unexpected_characters() {
        assert_error(
            parse_expr("é"),
            "unexpected character `é`; write a name that contains it in double quotes, as in \
             \"é\"",
            1,
        );
        assert_error(parse_expr("title # x"), "unexpected character `#`", 7);
        assert_error(
            parse_expr("a\u{7}"),
            "unexpected control character U+0007",
            2,
        );
        // Positions count characters, not bytes.
        assert_error(
            parse_predicate("\"é\" = 'x' #"),
            "unexpected character `#`",
            11,
        );
    }

    #[test]
    fn column_suffixes() {
        assert_eq!(
            parse_expr("title.errortype"),
            Ok(Expr::Column(column_part("title", CellPart::ErrorType)))
        );
        assert_eq!(
            parse_expr("title.ERRORMSG"),
            Ok(Expr::Column(column_part("title", CellPart::ErrorMsg)))
        );
        assert_eq!(
            parse_expr("\"my col\" . ErrorType"),
            Ok(Expr::Column(column_part("my col", CellPart::ErrorType)))
        );
    }

    #[test]
    fn column_suffix_errors() {
        assert_error(
            parse_column_list("title.errorcode"),
            "unknown suffix `.errorcode` after column `title`; use `.errortype` or `.errormsg`",
            7,
        );
        assert_error(
            parse_expr("text.upper"),
            "unknown suffix `.upper` after column `text`; use `.errortype` or `.errormsg`, or \
             `text.upper(...)` to call a plugin function",
            6,
        );
        assert_error(
            parse_expr("title."),
            "expected `errortype` or `errormsg` after `title.`, found end of input",
            7,
        );
        assert_error(
            parse_predicate("\"my col\".5 = 1"),
            "expected `errortype` or `errormsg` after `\"my col\".`, found `5`",
            10,
        );
        assert_error(
            parse_expr("title.errortype.errormsg"),
            "expected end of input after the expression, found `.`",
            16,
        );
    }

    #[test]
    fn integers() {
        assert_eq!(literal("12"), Literal::Int(12));
        assert_eq!(literal("-12"), Literal::Int(-12));
        assert_eq!(literal("0"), Literal::Int(0));
        assert_eq!(literal("007"), Literal::Int(7));
        assert_eq!(literal("9223372036854775807"), Literal::Int(i64::MAX));
        assert_eq!(literal("-9223372036854775808"), Literal::Int(i64::MIN));
    }

    #[test]
    fn integer_out_of_range_rejected() {
        assert_error(
            parse_expr("9223372036854775808"),
            "integer `9223372036854775808` does not fit in 64 bits; write a value from \
             -9223372036854775808 to 9223372036854775807, or a float such as \
             `9223372036854775808.0`",
            1,
        );
        let error = parse_predicate("x > -99999999999999999999").unwrap_err();
        assert!(
            error
                .message
                .starts_with("integer `-99999999999999999999` does not fit in 64 bits"),
            "{}",
            error.message
        );
        assert_eq!(error.position, 5);
    }

    #[test]
    fn floats() {
        assert_eq!(literal("1.5"), Literal::Float(1.5));
        assert_eq!(literal("-0.25"), Literal::Float(-0.25));
        assert_eq!(literal("2e3"), Literal::Float(2000.0));
        assert_eq!(literal("1.5E-3"), Literal::Float(0.0015));
        assert_eq!(literal("1e+2"), Literal::Float(100.0));
        assert_eq!(literal("0.0"), Literal::Float(0.0));
        assert_eq!(literal("5e-324"), Literal::Float(5e-324));
    }

    #[test]
    fn invalid_numbers_rejected() {
        assert_error(
            parse_expr("1e999"),
            "number `1e999` is out of range for a 64-bit float",
            1,
        );
        assert_error(
            parse_expr("x.f(1.)"),
            "invalid number `1.`; write digits after the decimal point, as in `1.0`",
            5,
        );
        assert_error(
            parse_expr("2e"),
            "invalid number `2e`; write digits after the exponent, as in `2e3`",
            1,
        );
        assert_error(
            parse_expr("2e+"),
            "invalid number `2e+`; write digits after the exponent, as in `2e3`",
            1,
        );
        assert_error(
            parse_expr("12abc"),
            "invalid number `12abc`; write a name that starts with a digit in double quotes, \
             as in \"12abc\"",
            1,
        );
        assert_error(
            parse_expr("-"),
            "unexpected `-`; write a negative number with the minus sign right before its \
             digits, as in `-12`",
            1,
        );
        assert_error(
            parse_predicate("x > - 1"),
            "unexpected `-`; write a negative number with the minus sign right before its \
             digits, as in `-12`",
            5,
        );
    }

    #[test]
    fn strings() {
        assert_eq!(literal("'it''s'"), Literal::String("it's".into()));
        assert_eq!(literal("''"), Literal::String(String::new()));
        assert_eq!(literal("''''"), Literal::String("'".into()));
        assert_eq!(literal("'a\nb'"), Literal::String("a\nb".into()));
        assert_eq!(
            literal("'say \"hi\", (x)'"),
            Literal::String("say \"hi\", (x)".into())
        );
    }

    #[test]
    fn unterminated_string_rejected() {
        assert_error(
            parse_expr("'abc"),
            "unterminated string; add a closing `'`",
            1,
        );
        assert_error(
            parse_expr("'''"),
            "unterminated string; add a closing `'`",
            1,
        );
        assert_error(
            parse_expr("text.upper('abc"),
            "unterminated string; add a closing `'`",
            12,
        );
    }

    #[test]
    fn keyword_literals() {
        assert_eq!(literal("true"), Literal::Bool(true));
        assert_eq!(literal("TRUE"), Literal::Bool(true));
        assert_eq!(literal("False"), Literal::Bool(false));
        assert_eq!(literal("NULL"), Literal::Null);
        assert_eq!(literal("null"), Literal::Null);
    }

    #[test]
    fn calls() {
        assert_eq!(
            parse_expr("text.upper(title)"),
            Ok(call("text", "upper", vec![expr_column("title")]))
        );
        assert_eq!(parse_expr("clock.now()"), Ok(call("clock", "now", vec![])));
        assert_eq!(
            parse_expr(" text . upper ( title , 'x' ) "),
            Ok(call(
                "text",
                "upper",
                vec![
                    expr_column("title"),
                    Expr::Literal(Literal::String("x".into()))
                ]
            ))
        );
        assert_eq!(
            parse_expr("text.concat(text.upper(a), 'x', 1, -2.5, null, b.errormsg, \"c d\")"),
            Ok(call(
                "text",
                "concat",
                vec![
                    call("text", "upper", vec![expr_column("a")]),
                    Expr::Literal(Literal::String("x".into())),
                    Expr::Literal(Literal::Int(1)),
                    Expr::Literal(Literal::Float(-2.5)),
                    Expr::Literal(Literal::Null),
                    Expr::Column(column_part("b", CellPart::ErrorMsg)),
                    expr_column("c d"),
                ]
            ))
        );
        assert_eq!(
            parse_expr("hash-embed.embed(title)"),
            Ok(call("hash-embed", "embed", vec![expr_column("title")]))
        );
        // A call is recognized by `(`, so a keyword can name a plugin or a
        // function there.
        assert_eq!(parse_expr("null.and()"), Ok(call("null", "and", vec![])));
    }

    #[test]
    fn call_plugin_selectors() {
        let hash = "sha256:3f9a1c0d5e7b2a4f6c8e0a1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f";
        for plugin in ["text@2", "text@3f9a1c", &format!("text@{hash}")] {
            assert_eq!(
                parse_expr(&format!("{plugin}.upper(x)")),
                Ok(call(plugin, "upper", vec![expr_column("x")])),
                "{plugin}"
            );
        }
    }

    #[test]
    fn call_errors() {
        assert_error(
            parse_expr("text.upper(title"),
            "expected `)` after the arguments of `text.upper`, found end of input",
            17,
        );
        assert_error(
            parse_expr("text.upper(a b)"),
            "expected `)` after the arguments of `text.upper`, found `b`",
            14,
        );
        assert_error(
            parse_expr("text.upper(a,)"),
            "expected a column, a literal or a call such as `text.upper(title)`, found `)`",
            14,
        );
        assert_error(
            parse_expr("text@2"),
            "expected `.FUNCTION(` after plugin `text@2`, found end of input",
            7,
        );
        assert_error(
            parse_expr("text@2.upper"),
            "expected `(` after `text@2.upper`, found end of input",
            13,
        );
        assert_error(
            parse_expr("text@2.(x)"),
            "expected a function name after `text@2.`, found `(`",
            8,
        );
        assert_error(
            parse_expr("text@.upper()"),
            "expected a version or hash after `text@`, as in `text@2`",
            6,
        );
        assert_error(
            parse_expr("text @2.upper()"),
            "unexpected `@`; write a plugin version right after the plugin name, as in \
             `text@2`",
            6,
        );
        assert_error(
            parse_expr("text@v1_2.upper()"),
            "invalid selector `v1_2` after `text@`; a version or hash contains only letters, \
             digits and `:`",
            6,
        );
        assert_error(
            parse_expr("\"text\".upper(x)"),
            "a plugin name is written without quotes, so `\"text\"` cannot name a plugin; \
             write a plugin reference such as `text` or `text@2`",
            1,
        );
    }

    #[test]
    fn expression_trailing_and_empty() {
        assert_error(
            parse_expr("title x"),
            "expected end of input after the expression, found `x`",
            7,
        );
        assert_error(
            parse_expr("text.upper(x))"),
            "expected end of input after the expression, found `)`",
            14,
        );
        assert_error(
            parse_expr(")"),
            "expected a column, a literal or a call such as `text.upper(title)`, found `)`",
            1,
        );
        let empty = "the expression is empty; write a column, a literal or a call such as \
                     `text.upper(title)`";
        assert_error(parse_expr(""), empty, 1);
        assert_error(parse_expr("  "), empty, 3);
    }

    fn nested_calls(depth: usize) -> String {
        format!("{}x{}", "f.g(".repeat(depth), ")".repeat(depth))
    }

    #[test]
    fn call_nesting_capped() {
        let mut expr = parse_expr(&nested_calls(MAX_NESTING)).unwrap();
        let mut depth = 0;
        while let Expr::Call(call) = expr {
            depth += 1;
            expr = call.args.into_iter().next().unwrap();
        }
        assert_eq!(depth, MAX_NESTING);

        let message = "calls nest more than 64 levels deep; move the inner calls into computed \
                       columns of their own";
        assert_error(
            parse_expr(&nested_calls(MAX_NESTING + 1)),
            message,
            4 * MAX_NESTING + 1,
        );
        assert_error(
            parse_expr(&nested_calls(100_000)),
            message,
            4 * MAX_NESTING + 1,
        );
    }

    #[test]
    fn predicate_comparisons() {
        let ops = [
            ("=", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<>", CompareOp::Ne),
            ("<", CompareOp::Lt),
            ("<=", CompareOp::Le),
            (">", CompareOp::Gt),
            (">=", CompareOp::Ge),
        ];
        for (text, op) in ops {
            assert_eq!(
                parse_predicate(&format!("year {text} 2000")),
                Ok(compare("year", op, 2000)),
                "{text}"
            );
            assert_eq!(
                parse_predicate(&format!("year{text}-2000")),
                Ok(compare("year", op, -2000)),
                "{text} without spaces"
            );
        }
        assert_eq!(
            parse_predicate("'x' = a.errormsg"),
            Ok(Predicate::Compare {
                left: Operand::Literal(Literal::String("x".into())),
                op: CompareOp::Eq,
                right: Operand::Column(column_part("a", CellPart::ErrorMsg)),
            })
        );
        assert_eq!(
            parse_predicate("a = \"b c\""),
            Ok(Predicate::Compare {
                left: Operand::Column(column("a")),
                op: CompareOp::Eq,
                right: Operand::Column(column("b c")),
            })
        );
        assert_eq!(
            parse_predicate("done = TRUE"),
            Ok(Predicate::Compare {
                left: Operand::Column(column("done")),
                op: CompareOp::Eq,
                right: Operand::Literal(Literal::Bool(true)),
            })
        );
    }

    #[test]
    fn predicate_is_null() {
        assert_eq!(
            parse_predicate("a is null"),
            Ok(Predicate::IsNull {
                operand: Operand::Column(column("a")),
                negated: false,
            })
        );
        assert_eq!(
            parse_predicate("a.errortype IS NOT NULL"),
            Ok(Predicate::IsNull {
                operand: Operand::Column(column_part("a", CellPart::ErrorType)),
                negated: true,
            })
        );
    }

    #[test]
    fn predicate_precedence() {
        assert_eq!(
            parse_predicate("a = 1 or b = 2 and c = 3"),
            Ok(or(eq("a", 1), and(eq("b", 2), eq("c", 3))))
        );
        assert_eq!(
            parse_predicate("a = 1 AND b = 2 Or c = 3"),
            Ok(or(and(eq("a", 1), eq("b", 2)), eq("c", 3)))
        );
        assert_eq!(
            parse_predicate("not a = 1 and b = 2"),
            Ok(and(not(eq("a", 1)), eq("b", 2)))
        );
        assert_eq!(
            parse_predicate("not (a = 1 and b = 2)"),
            Ok(not(and(eq("a", 1), eq("b", 2))))
        );
        assert_eq!(
            parse_predicate("(a = 1 or b = 2) and c = 3"),
            Ok(and(or(eq("a", 1), eq("b", 2)), eq("c", 3)))
        );
        assert_eq!(
            parse_predicate("a = 1 and b = 2 and c = 3"),
            Ok(and(and(eq("a", 1), eq("b", 2)), eq("c", 3)))
        );
        assert_eq!(
            parse_predicate("a = 1 or b = 2 or c = 3"),
            Ok(or(or(eq("a", 1), eq("b", 2)), eq("c", 3)))
        );
        assert_eq!(parse_predicate("not not a = 1"), Ok(not(not(eq("a", 1)))));
        assert_eq!(parse_predicate("((a = 1))"), Ok(eq("a", 1)));
    }

    #[test]
    fn predicate_operator_errors() {
        let unknown =
            |op: &str| format!("unknown operator `{op}`; use one of =, !=, <>, <, <=, >, >=");
        assert_error(parse_predicate("a => 1"), &unknown("=>"), 3);
        assert_error(parse_predicate("a == 1"), &unknown("=="), 3);
        assert_error(parse_predicate("a ! 1"), &unknown("!"), 3);
        assert_error(
            parse_predicate("a 1"),
            "expected a comparison operator (=, !=, <>, <, <=, >, >=) or `is` after `a`, \
             found `1`",
            3,
        );
        assert_error(
            parse_predicate("a.errormsg"),
            "expected a comparison operator (=, !=, <>, <, <=, >, >=) or `is` after \
             `a.errormsg`, found end of input",
            11,
        );
        assert_error(
            parse_predicate("a is 1"),
            "expected `null` or `not null` after `is`, found `1`",
            6,
        );
        assert_error(
            parse_predicate("a is not"),
            "expected `null` after `is not`, found end of input",
            9,
        );
    }

    #[test]
    fn predicate_grouping_errors() {
        assert_error(
            parse_predicate("(a = 1"),
            "expected `)` to close the `(` at character 1, found end of input",
            7,
        );
        assert_error(
            parse_predicate("a = 1)"),
            "expected `and`, `or` or end of input, found `)`",
            6,
        );
        assert_error(
            parse_predicate("a = 1 b = 2"),
            "expected `and`, `or` or end of input, found `b`",
            7,
        );
        assert_error(
            parse_predicate("a ="),
            "expected a column or a literal, found end of input",
            4,
        );
        assert_error(
            parse_predicate("a = 1 and"),
            "expected a column or a literal, found end of input",
            10,
        );
    }

    #[test]
    fn predicate_call_rejected() {
        assert_error(
            parse_predicate("text.upper(a) = 'A'"),
            "a predicate cannot call a plugin function; compare a computed column that holds \
             the call instead",
            1,
        );
        assert_error(
            parse_predicate("a = text@2.upper(b)"),
            "a predicate cannot call a plugin function; compare a computed column that holds \
             the call instead",
            5,
        );
    }

    #[test]
    fn predicate_empty_rejected() {
        let empty = "the predicate is empty; write a condition such as `year >= 2000`";
        assert_error(parse_predicate(""), empty, 1);
        assert_error(parse_predicate(" \n "), empty, 4);
    }

    #[test]
    fn predicate_nesting_capped() {
        let message =
            "the predicate nests more than 64 levels of parentheses and `not`; simplify it";
        let parens = |depth: usize| format!("{}a = 1{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(parse_predicate(&parens(MAX_NESTING)), Ok(eq("a", 1)));
        assert_error(
            parse_predicate(&parens(MAX_NESTING + 1)),
            message,
            MAX_NESTING + 1,
        );
        assert_error(parse_predicate(&parens(100_000)), message, MAX_NESTING + 1);

        let nots = |depth: usize| format!("{}a = 1", "not ".repeat(depth));
        assert!(parse_predicate(&nots(MAX_NESTING)).is_ok());
        assert_error(
            parse_predicate(&nots(MAX_NESTING + 1)),
            message,
            4 * MAX_NESTING + 1,
        );

        // Parentheses and `not` count together.
        let mixed = format!("{}a = 1{}", "not (".repeat(32), ")".repeat(32));
        assert!(parse_predicate(&mixed).is_ok());
        let mixed = format!("{}not a = 1{}", "not (".repeat(32), ")".repeat(32));
        assert_error(parse_predicate(&mixed), message, 5 * 32 + 1);
    }

    #[test]
    fn long_chain_displays_without_parentheses() {
        let input = vec!["a = 1"; MAX_JOINS + 1].join(" or ");
        let predicate = parse_predicate(&input).unwrap();
        assert_eq!(predicate.to_string(), input);
    }

    #[test]
    fn predicate_join_limit_error() {
        let input = vec!["a = 1"; MAX_JOINS + 2].join(" and ");
        let error = parse_predicate(&input).unwrap_err();
        assert!(
            error.message.contains("more than 256 conditions"),
            "{}",
            error.message
        );
        let shown = error.to_string();
        assert!(
            shown.len() < 400,
            "the message quotes all of a long input: {}",
            shown.len()
        );
        assert!(shown.contains("..."), "{shown}");
    }

    #[test]
    fn column_lists() {
        assert_eq!(
            parse_column_list("title, \"my, col\".errormsg, year"),
            Ok(vec![
                column("title"),
                column_part("my, col", CellPart::ErrorMsg),
                column("year"),
            ])
        );
        assert_eq!(parse_column_list("a"), Ok(vec![column("a")]));
        assert_eq!(
            parse_column_list(" a ,b.ErrorType "),
            Ok(vec![column("a"), column_part("b", CellPart::ErrorType)])
        );
        assert_eq!(
            parse_column_list("\"and\",\"or\""),
            Ok(vec![column("and"), column("or")])
        );
    }

    #[test]
    fn column_list_errors() {
        assert_error(
            parse_column_list(""),
            "the column list is empty; name at least one column",
            1,
        );
        let empty_item = "empty item in the column list; remove the extra `,`";
        assert_error(parse_column_list("a,,b"), empty_item, 3);
        assert_error(parse_column_list(",a"), empty_item, 1);
        assert_error(parse_column_list("a,"), empty_item, 2);
        assert_error(parse_column_list("a, , b"), empty_item, 4);
        assert_error(parse_column_list("a, "), empty_item, 2);
        assert_error(
            parse_column_list("a b"),
            "expected `,` or end of input after `a`, found `b`",
            3,
        );
        assert_error(
            parse_column_list("\"my col\" b"),
            "expected `,` or end of input after `\"my col\"`, found `b`",
            10,
        );
        assert_error(
            parse_column_list("1"),
            "expected a column name, found `1`",
            1,
        );
    }

    #[test]
    fn assignments() {
        let cases = [
            ("status = 'done'", "status", Literal::String("done".into())),
            ("\"my col\" = 1", "my col", Literal::Int(1)),
            ("x = -2.5", "x", Literal::Float(-2.5)),
            ("x=null", "x", Literal::Null),
            ("\"and\" = TRUE", "and", Literal::Bool(true)),
        ];
        for (input, column, value) in cases {
            assert_eq!(
                parse_assignment(input),
                Ok(Assignment {
                    column: column.to_owned(),
                    value
                }),
                "{input}"
            );
        }
    }

    #[test]
    fn assignment_errors() {
        assert_error(
            parse_assignment(""),
            "the assignment is empty; write one such as `status = 'done'`",
            1,
        );
        assert_error(
            parse_assignment("x.errortype = 1"),
            "an assignment sets the value of a whole column; remove the suffix after `x`",
            2,
        );
        assert_error(
            parse_assignment("x 1"),
            "expected `=` after `x`, found `1`",
            3,
        );
        assert_error(
            parse_assignment("\"my col\" != 1"),
            "expected `=` after `\"my col\"`, found `!=`",
            10,
        );
        assert_error(
            parse_assignment("x = y"),
            "expected a literal (a number, a 'string', true, false or null) after `=`, found \
             `y`",
            5,
        );
        assert_error(
            parse_assignment("x ="),
            "expected a literal (a number, a 'string', true, false or null) after `=`, found \
             end of input",
            4,
        );
        assert_error(
            parse_assignment("x = 1 2"),
            "expected end of input after the value, found `2`",
            7,
        );
        assert_error(
            parse_assignment("'x' = 1"),
            "expected a column name, found `'x'`",
            1,
        );
    }

    #[test]
    fn error_display() {
        let error = parse_expr("a b").unwrap_err();
        assert_eq!(
            error.to_string(),
            "in `a b`, at character 3: expected end of input after the expression, found `b`"
        );
        assert_eq!(error.input, "a b");
    }

    #[test]
    fn long_token_shortened_in_message() {
        let long = "x".repeat(50);
        assert_error(
            parse_predicate(&format!("a = 1 '{long}'")),
            &format!(
                "expected `and`, `or` or end of input, found `'{}...`",
                "x".repeat(36)
            ),
            7,
        );
    }

    #[test]
    fn earlier_parse_error_wins_over_later_lex_error() {
        assert_error(
            parse_expr("a b 'unterminated"),
            "expected end of input after the expression, found `b`",
            3,
        );
    }

    /// Displays a name as `write_name` writes it.
    fn written(name: &str) -> String {
        Name(name).to_string()
    }

    #[test]
    fn write_name_quotes_when_needed() {
        for name in ["title", "hash-embed", "_", "a-", "errortype", "Andy"] {
            assert_eq!(written(name), name);
        }
        let quoted = [
            ("and", "\"and\""),
            ("NULL", "\"NULL\""),
            ("my col", "\"my col\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("9lives", "\"9lives\""),
            ("-a", "\"-a\""),
            ("é", "\"é\""),
            ("a.b", "\"a.b\""),
        ];
        for (name, text) in quoted {
            assert_eq!(written(name), text);
        }
    }

    #[test]
    fn literal_display() {
        let cases = [
            (Literal::Null, "null"),
            (Literal::Bool(true), "true"),
            (Literal::Bool(false), "false"),
            (Literal::Int(-12), "-12"),
            (Literal::Int(i64::MIN), "-9223372036854775808"),
            (Literal::Float(1.0), "1.0"),
            (Literal::Float(-0.25), "-0.25"),
            (Literal::Float(2000.0), "2000.0"),
            (Literal::Float(1e300), "1e300"),
            (Literal::Float(1.5e-7), "1.5e-7"),
            (Literal::String("it's".into()), "'it''s'"),
            (Literal::String("a\nb".into()), "'a\nb'"),
        ];
        for (literal, text) in cases {
            assert_eq!(literal.to_string(), text);
        }
    }

    #[test]
    fn expression_display() {
        let expr = call(
            "text@2",
            "concat",
            vec![
                Expr::Column(column_part("my col", CellPart::ErrorMsg)),
                Expr::Literal(Literal::Float(3.0)),
                call("clock", "now", vec![]),
            ],
        );
        assert_eq!(
            expr.to_string(),
            "text@2.concat(\"my col\".errormsg, 3.0, clock.now())"
        );
    }

    #[test]
    fn predicate_display() {
        let cases = [
            (
                or(eq("a", 1), and(eq("b", 2), eq("c", 3))),
                "a = 1 or b = 2 and c = 3",
            ),
            (
                or(and(eq("a", 1), eq("b", 2)), eq("c", 3)),
                "a = 1 and b = 2 or c = 3",
            ),
            (
                and(eq("a", 1), and(eq("b", 2), eq("c", 3))),
                "a = 1 and (b = 2 and c = 3)",
            ),
            (
                or(eq("a", 1), or(eq("b", 2), eq("c", 3))),
                "a = 1 or (b = 2 or c = 3)",
            ),
            (
                and(or(eq("a", 1), eq("b", 2)), or(eq("c", 3), eq("d", 4))),
                "(a = 1 or b = 2) and (c = 3 or d = 4)",
            ),
            (not(and(eq("a", 1), eq("b", 2))), "not (a = 1 and b = 2)"),
            (not(not(eq("a", 1))), "not not a = 1"),
            (
                and(not(eq("a", 1)), not(eq("b", 2))),
                "not a = 1 and not b = 2",
            ),
            (compare("a", CompareOp::Ne, 1), "a != 1"),
            (
                Predicate::IsNull {
                    operand: Operand::Column(column("and")),
                    negated: true,
                },
                "\"and\" is not null",
            ),
        ];
        for (predicate, text) in cases {
            assert_eq!(predicate.to_string(), text);
            assert_eq!(parse_predicate(text), Ok(predicate), "{text}");
        }
    }

    #[test]
    fn assignment_display() {
        let assignment = Assignment {
            column: "my col".into(),
            value: Literal::String("it's".into()),
        };
        assert_eq!(assignment.to_string(), "\"my col\" = 'it''s'");
    }

    /// A xorshift64* generator, so the round-trip cases are the same on
    /// every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const NAMES: [&str; 17] = [
        "title",
        "hash-embed",
        "_x",
        "a-",
        "and",
        "NULL",
        "Is",
        "my, col",
        "say \"hi\"",
        " spaced ",
        "9lives",
        "é",
        "errortype",
        "x.y",
        "'",
        "(",
        "\"",
    ];

    fn random_column(rng: &mut Rng) -> ColumnRef {
        let parts = [CellPart::Value, CellPart::ErrorType, CellPart::ErrorMsg];
        column_part(rng.pick(&NAMES), parts[rng.below(parts.len())])
    }

    fn random_literal(rng: &mut Rng) -> Literal {
        match rng.below(5) {
            0 => Literal::Null,
            1 => Literal::Bool(rng.below(2) == 0),
            2 => {
                let ints = [0, 1, -1, i64::MIN, i64::MAX, rng.next() as i64];
                Literal::Int(ints[rng.below(ints.len())])
            }
            3 => {
                let mut random = f64::from_bits(rng.next());
                while !random.is_finite() {
                    random = f64::from_bits(rng.next());
                }
                let floats = [
                    0.0,
                    -0.0,
                    1.0,
                    -0.25,
                    0.1,
                    1e16,
                    1e300,
                    5e-324,
                    f64::MAX,
                    f64::MIN,
                    f64::MIN_POSITIVE,
                    123456.789,
                    random,
                ];
                Literal::Float(floats[rng.below(floats.len())])
            }
            _ => {
                let strings = ["", "it's", "''", "a\nb", "\"", "tab\there", "é", "x) or (y"];
                Literal::String(rng.pick(&strings).to_owned())
            }
        }
    }

    fn random_expr(rng: &mut Rng, depth: usize) -> Expr {
        match rng.below(if depth == 0 { 2 } else { 4 }) {
            0 => Expr::Column(random_column(rng)),
            1 => Expr::Literal(random_literal(rng)),
            _ => {
                let plugins = ["text", "text@2", "text@sha256:3f9a1c", "hash-embed", "null"];
                let functions = ["upper", "f", "and", "x-y"];
                let args = (0..rng.below(4))
                    .map(|_| random_expr(rng, depth - 1))
                    .collect();
                call(rng.pick(&plugins), rng.pick(&functions), args)
            }
        }
    }

    fn random_operand(rng: &mut Rng) -> Operand {
        if rng.below(2) == 0 {
            Operand::Column(random_column(rng))
        } else {
            Operand::Literal(random_literal(rng))
        }
    }

    fn random_predicate(rng: &mut Rng, depth: usize) -> Predicate {
        let ops = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
        ];
        match rng.below(if depth == 0 { 2 } else { 5 }) {
            0 => Predicate::Compare {
                left: random_operand(rng),
                op: ops[rng.below(ops.len())],
                right: random_operand(rng),
            },
            1 => Predicate::IsNull {
                operand: random_operand(rng),
                negated: rng.below(2) == 0,
            },
            2 => and(
                random_predicate(rng, depth - 1),
                random_predicate(rng, depth - 1),
            ),
            3 => or(
                random_predicate(rng, depth - 1),
                random_predicate(rng, depth - 1),
            ),
            _ => not(random_predicate(rng, depth - 1)),
        }
    }

    #[test]
    fn expression_round_trip() {
        let mut rng = Rng(0x5eed_0001);
        for _ in 0..3000 {
            let expr = random_expr(&mut rng, 5);
            let text = expr.to_string();
            assert_eq!(parse_expr(&text), Ok(expr), "{text}");
        }
    }

    #[test]
    fn predicate_round_trip() {
        let mut rng = Rng(0x5eed_0002);
        for _ in 0..3000 {
            let predicate = random_predicate(&mut rng, 6);
            let text = predicate.to_string();
            assert_eq!(parse_predicate(&text), Ok(predicate), "{text}");
        }
    }

    #[test]
    fn column_list_round_trip() {
        let mut rng = Rng(0x5eed_0003);
        for _ in 0..1000 {
            let columns: Vec<ColumnRef> = (0..1 + rng.below(5))
                .map(|_| random_column(&mut rng))
                .collect();
            let text = columns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            assert_eq!(parse_column_list(&text), Ok(columns), "{text}");
        }
    }

    #[test]
    fn assignment_round_trip() {
        let mut rng = Rng(0x5eed_0004);
        for _ in 0..1000 {
            let assignment = Assignment {
                column: rng.pick(&NAMES).to_owned(),
                value: random_literal(&mut rng),
            };
            let text = assignment.to_string();
            assert_eq!(parse_assignment(&text), Ok(assignment), "{text}");
        }
    }
}
