//! Helpers for tests of similarity search: queries, and the columns of a
//! result read back.

use sandtable::sandbox::Column;
use sandtable::sandbox::types::Values;
use sandtable::table::{SearchInput, SearchQuery, SearchResult};

/// Returns a search for the `k` rows nearest to `vector`, with every column.
pub fn vector_query(vector: Vec<f32>, k: u64) -> SearchQuery {
    SearchQuery {
        index: None,
        input: SearchInput::Vector(vector),
        k,
        filter: None,
        columns: None,
        version: None,
        explain: false,
    }
}

/// Returns a search for the `k` rows nearest to `text`, with every column.
pub fn text_query(text: &str, k: u64) -> SearchQuery {
    SearchQuery {
        input: SearchInput::Text(text.into()),
        ..vector_query(Vec::new(), k)
    }
}

/// Returns the output column names of a search, the score first.
pub fn output_names(result: &SearchResult) -> Vec<String> {
    result
        .source
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// Returns the output column `name` of a search.
pub fn column_of<'a>(result: &'a SearchResult, name: &str) -> &'a Column {
    let position = result
        .source
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("the search returns no `{name}`: {:?}", output_names(result)));
    &result.columns[position]
}

/// Returns the values of int column `name` of a search, nearest first.
pub fn ints(result: &SearchResult, name: &str) -> Vec<i64> {
    match &column_of(result, name).values {
        Values::Int(values) => values.clone(),
        other => panic!("`{name}` is not an int column: {other:?}"),
    }
}

/// Returns the scores of a search, nearest first.
pub fn scores(result: &SearchResult) -> Vec<f64> {
    match &result.columns[0].values {
        Values::Float(values) => values.clone(),
        other => panic!("the score is not a float column: {other:?}"),
    }
}
