//! Embedding indexes and similarity search.
//!
//! An embedding index is a computed vector column, `FUNCTION(SOURCE)`,
//! with an HNSW index (pgvector) over its Postgres column, added in one
//! write: the column is filled first and the HNSW graph is built over the
//! filled column, which is faster than growing it row by row. Later writes
//! keep it current, since Postgres indexes every row version they add.
//!
//! Because the HNSW index contains every row version, a search filters to the
//! version it reads (`_v_min <= W < _v_max`) and uses pgvector's iterative
//! index scan, which goes on scanning until `k` rows pass the filter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use crate::sandbox::{Column, ColumnBuilder, DataType};

use super::cells::{Cells, decode_value};
use super::compute::{Batch, PluginSet, bind, evaluate};
use super::error::{Result, TableError};
use super::expr::{
    CellPart, ColumnRef, Expr, Predicate, parse_column_list, parse_expr, parse_predicate,
};
use super::filter::{Bind, FilterBuilder, bind_all};
use super::schema::{LIVE, TableSchema, check_name, load_schema};
use super::select::{
    OutputColumn, Resolved, SelectSource, every_column, resolve_source, select_list,
};
use super::write::{self, Changes, LockMode, Write};
use super::{ColumnAdded, Progress, Tables, WriteOptions, WriteSummary};

/// The memory an HNSW build may use. pgvector builds the graph in memory
/// while it fits and far more slowly after: 100,000 vectors of 64
/// dimensions took 36 s at 64 MB and 15 s at 1 GB on 2 cores.
const BUILD_MEMORY: &str = "1GB";

/// The smallest candidate list of an HNSW search (`hnsw.ef_search`).
const EF_SEARCH_MIN: u64 = 100;

/// The HNSW settings that every connection of the host's pool starts with:
/// the iterative scan, which goes on until `k` rows pass the filter, and
/// the candidate list. A search whose candidate list is [`EF_SEARCH_MIN`]
/// uses them as they are.
pub(crate) const SESSION_SETTINGS: [(&str, &str); 2] = [
    ("hnsw.iterative_scan", "relaxed_order"),
    ("hnsw.ef_search", "100"),
];

/// The maximum number of rows a search returns.
pub const MAX_SEARCH_ROWS: u64 = 1000;

/// The distance an index orders by.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine distance; the score is the cosine similarity.
    #[default]
    Cosine,
    /// Euclidean distance; the score is the distance.
    L2,
    /// Inner product; the score is the inner product.
    Ip,
}

impl Metric {
    /// Returns the name stored in the catalog and written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::Ip => "ip",
        }
    }

    /// Returns the name of a search result's score column.
    pub fn score_name(self) -> &'static str {
        match self {
            Metric::Cosine => "similarity",
            Metric::L2 => "distance",
            Metric::Ip => "inner_product",
        }
    }

    fn operator_class(self) -> &'static str {
        match self {
            Metric::Cosine => "vector_cosine_ops",
            Metric::L2 => "vector_l2_ops",
            Metric::Ip => "vector_ip_ops",
        }
    }

    fn operator(self) -> &'static str {
        match self {
            Metric::Cosine => "<=>",
            Metric::L2 => "<->",
            Metric::Ip => "<#>",
        }
    }

    /// Returns the SQL of the score, given the SQL of the operator's value.
    fn score_sql(self, distance: &str) -> String {
        match self {
            Metric::Cosine => format!("1 - {distance}"),
            Metric::L2 => distance.to_owned(),
            Metric::Ip => format!("-{distance}"),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = TableError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "cosine" => Ok(Metric::Cosine),
            "l2" => Ok(Metric::L2),
            "ip" => Ok(Metric::Ip),
            other => Err(TableError::Invalid(format!(
                "`{other}` is not a metric; use cosine, l2 or ip"
            ))),
        }
    }
}

/// An embedding index of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IndexInfo {
    /// The index's name, which is also its vector column's name.
    pub name: String,
    /// The table.
    pub table: String,
    /// The column the index embeds.
    pub source: String,
    /// The expression that fills the vector column, with its plugin pinned.
    pub expression: String,
    /// The vector column's type.
    pub data_type: String,
    /// The distance.
    pub metric: Metric,
    /// The version that added the index.
    pub version: i64,
}

/// The result of adding an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IndexAdded {
    /// The index's name.
    pub index: String,
    /// The vector column's addition.
    #[serde(flatten)]
    pub column: ColumnAdded,
}

/// An index that a column add builds once the column is filled.
pub(crate) struct NewIndex {
    pub name: String,
    pub metric: Metric,
    pub source: String,
}

impl NewIndex {
    /// Checks that the expression returns vectors.
    pub(crate) fn check(&self, pinned: &Expr, data_type: &DataType) -> Result<()> {
        if !matches!(data_type, DataType::Vector(_)) {
            let function = match pinned {
                Expr::Call(call) => format!("{}.{}", call.plugin, call.function),
                other => other.to_string(),
            };
            return Err(TableError::Invalid(format!(
                "`{function}` returns {data_type}, not a vector, so it cannot fill an embedding \
                 index; give a function that returns vector(N) (`sandtable plugin show NAME` \
                 lists a plugin's functions and types)"
            )));
        }
        Ok(())
    }

    /// Records the index in the catalog as added by this write, and
    /// returns its id.
    pub(crate) async fn record(&self, write: &mut Write, column_id: i64) -> Result<i64> {
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sandtable.indexes \
             WHERE table_id = $1 AND name = $2 AND dropped_write = $3",
        )
        .bind(write.schema.id)
        .bind(&self.name)
        .bind(LIVE)
        .fetch_optional(&mut *write.tx)
        .await?;
        if taken.is_some() {
            return Err(TableError::Conflict(format!(
                "table `{}` already has an index `{}`; choose another name with --name",
                write.schema.name, self.name
            )));
        }
        let source = write.schema.column(&self.source)?.id;
        let id = sqlx::query_scalar(
            "INSERT INTO sandtable.indexes (table_id, name, column_id, source_column, metric, \
                                            added_write) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(write.schema.id)
        .bind(&self.name)
        .bind(column_id)
        .bind(source)
        .bind(self.metric.as_str())
        .bind(write.write_id)
        .fetch_one(&mut *write.tx)
        .await?;
        Ok(id)
    }

    /// Builds the HNSW index over the filled column.
    pub(crate) async fn build(
        &self,
        write: &mut Write,
        index_id: i64,
        column_id: i64,
    ) -> Result<()> {
        let table_id = write.schema.id;
        build_hnsw(write, table_id, index_id, column_id, self.metric).await
    }
}

/// Creates the Postgres index of catalog index `index_id`.
pub(crate) async fn build_hnsw(
    write: &mut Write,
    table_id: i64,
    index_id: i64,
    column_id: i64,
    metric: Metric,
) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'"
    )))
    .execute(&mut *write.tx)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE INDEX t_{table_id}_i_{index_id} ON {} USING hnsw (c_{column_id} {})",
        write.schema.sql_table(),
        metric.operator_class()
    )))
    .execute(&mut *write.tx)
    .await?;
    Ok(())
}

/// The text or vector to search for.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchInput {
    /// Text, embedded by the index's own function.
    Text(String),
    /// A vector of the index's dimension.
    Vector(Vec<f32>),
}

/// A similarity search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The index; the table's only index when `None`.
    pub index: Option<String>,
    /// The text or vector to search for.
    pub input: SearchInput,
    /// How many rows to return, from 1 to [`MAX_SEARCH_ROWS`].
    pub k: u64,
    /// A predicate the rows must match.
    pub filter: Option<String>,
    /// The columns to return; by default every column's value but the
    /// vector columns.
    pub columns: Option<String>,
    /// Search this version of a table instead of the current one.
    pub version: Option<i64>,
    /// Run the search under `EXPLAIN ANALYZE` and return its plan instead
    /// of rows.
    pub explain: bool,
}

/// The rows a search found, nearest first.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// The source of the rows. The first output column is the score.
    pub source: SelectSource,
    /// The index searched.
    pub index: String,
    /// Its metric.
    pub metric: Metric,
    /// One column for each output column.
    pub columns: Vec<Column>,
    /// The time the query's embedding took, for a text search.
    pub embed_us: Option<u64>,
    /// The plan, when the search was explained.
    pub plan: Option<String>,
}

/// The maximum number of versions a [`VersionCache`] keeps.
const CACHED_VERSIONS: usize = 256;

/// The schema and indexes of committed table versions, by table id and
/// write number. A committed version's schema and indexes never change: a
/// revert removes the version, whose write number is never given out
/// again, and a table created anew gets a new id.
#[derive(Default)]
pub(crate) struct VersionCache {
    versions: std::sync::Mutex<std::collections::HashMap<(i64, i64), std::sync::Arc<VersionView>>>,
    /// The source that each name and requested version last resolved to.
    /// An entry may be out of date, so a search that reads it checks it.
    sources: std::sync::Mutex<std::collections::HashMap<(String, Option<i64>), Resolved>>,
}

/// The schema and indexes of one version, as a search reads them.
pub(crate) struct VersionView {
    schema: TableSchema,
    indexes: Vec<VisibleIndex>,
}

impl VersionCache {
    fn get(&self, key: (i64, i64)) -> Option<std::sync::Arc<VersionView>> {
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        versions.get(&key).cloned()
    }

    fn insert(&self, key: (i64, i64), view: std::sync::Arc<VersionView>) {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        if versions.len() >= CACHED_VERSIONS {
            versions.clear();
        }
        versions.insert(key, view);
    }

    fn guess(&self, source: &str, version: Option<i64>) -> Option<Resolved> {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.get(&(source.to_owned(), version)).cloned()
    }

    fn remember(&self, source: &str, version: Option<i64>, resolved: &Resolved) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if sources.len() >= CACHED_VERSIONS {
            sources.clear();
        }
        sources.insert((source.to_owned(), version), resolved.clone());
    }
}

/// An index as one version of a table has it.
#[derive(Clone)]
struct VisibleIndex {
    name: String,
    column_id: i64,
    source_id: i64,
    metric: Metric,
}

impl Tables {
    /// Adds an embedding index over column `source`: a computed vector
    /// column `embedding(source)`, named `name` (by default
    /// `SOURCE_FUNCTION`), filled for the live rows, and an HNSW index over
    /// it, as one new version.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::Invalid`] when `embedding` is not
    /// `PLUGIN.FUNCTION` or does not return vectors of `source`'s type,
    /// [`TableError::Conflict`] for a name in use, and
    /// [`TableError::CellFailed`] for a failed cell under abort.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_index(
        &self,
        table: &str,
        source: &str,
        embedding: &str,
        metric: Metric,
        name: Option<&str>,
        options: &WriteOptions,
        progress: &dyn Progress,
    ) -> Result<IndexAdded> {
        let call = embedding_call(embedding, source)?;
        let name_given = name;
        let name = match name {
            Some(name) => name.to_owned(),
            None => {
                let Expr::Call(call) = &call else {
                    unreachable!("embedding_call returns a call");
                };
                format!("{source}_{}", call.function)
            }
        };
        if let Err(error) = check_name("index", &name) {
            if name_given.is_some() {
                return Err(error);
            }
            return Err(TableError::Invalid(format!(
                "the index name `{}` made from the column and function is not a valid name \
                 ({error}); give one with --name",
                truncate_name(&name)
            )));
        }
        let index = NewIndex {
            name: name.clone(),
            metric,
            source: source.to_owned(),
        };
        let column = self
            .add_column_with(table, &name, &call, Some(&index), options, progress)
            .await?;
        Ok(IndexAdded {
            index: name,
            column,
        })
    }

    /// Lists the live indexes of `table`, or of every table.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] for an unknown table.
    pub async fn list_indexes(&self, table: Option<&str>) -> Result<Vec<IndexInfo>> {
        let mut conn = self.catalog.pool().acquire().await?;
        let table_id = match table {
            Some(name) => Some(write::find_table(&mut conn, &self.tenant, name).await?),
            None => None,
        };
        let rows = sqlx::query(
            "SELECT i.name, t.name AS table_name, src.name AS source, c.data_type, i.metric, \
                    s.expression, \
                    (SELECT version FROM sandtable.table_versions v \
                     WHERE v.table_id = i.table_id AND v.write_id = i.added_write) AS version \
             FROM sandtable.indexes i \
             JOIN sandtable.tables t ON t.id = i.table_id \
             JOIN sandtable.columns c ON c.id = i.column_id \
             JOIN sandtable.columns src ON src.id = i.source_column \
             JOIN sandtable.column_specs s ON s.column_id = c.id AND s.write_to = $3 \
             WHERE t.tenant_id = $1 AND ($2::bigint IS NULL OR t.id = $2) \
               AND i.dropped_write = $3 \
             ORDER BY t.name, i.name",
        )
        .bind(self.tenant.id)
        .bind(table_id)
        .bind(LIVE)
        .fetch_all(&mut *conn)
        .await?;
        let mut indexes = Vec::with_capacity(rows.len());
        for row in rows {
            let expression: serde_json::Value = row.try_get("expression")?;
            let expression: Expr = serde_json::from_value(expression).map_err(|error| {
                TableError::Invalid(format!("a stored index expression is unreadable: {error}"))
            })?;
            let metric: String = row.try_get("metric")?;
            indexes.push(IndexInfo {
                name: row.try_get("name")?,
                table: row.try_get("table_name")?,
                source: row.try_get("source")?,
                expression: expression.to_string(),
                data_type: row.try_get("data_type")?,
                metric: metric.parse()?,
                version: row
                    .try_get::<Option<i64>, _>("version")?
                    .unwrap_or_default(),
            });
        }
        Ok(indexes)
    }

    /// Drops index `name` of `table` with its vector column, as a new
    /// version. Earlier versions and the snapshots of them keep the column,
    /// and a search of them scans it without the HNSW index.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] for an unknown table or index.
    pub async fn drop_index(&self, table: &str, name: &str) -> Result<WriteSummary> {
        let mut write =
            write::begin(self.catalog.pool(), &self.tenant, table, LockMode::Schema).await?;
        write.wait_turn().await?;
        let found: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, column_id FROM sandtable.indexes \
             WHERE table_id = $1 AND name = $2 AND dropped_write = $3",
        )
        .bind(write.schema.id)
        .bind(name)
        .bind(LIVE)
        .fetch_optional(&mut *write.tx)
        .await?;
        let Some((index_id, column_id)) = found else {
            let names = live_index_names(&mut write).await?;
            return Err(TableError::NotFound(format!(
                "table `{table}` has no index `{name}`; its indexes are {}",
                list_or_none(&names)
            )));
        };
        sqlx::query("UPDATE sandtable.indexes SET dropped_write = $2 WHERE id = $1")
            .bind(index_id)
            .bind(write.write_id)
            .execute(&mut *write.tx)
            .await?;
        sqlx::query("UPDATE sandtable.columns SET dropped_write = $2 WHERE id = $1")
            .bind(column_id)
            .bind(write.write_id)
            .execute(&mut *write.tx)
            .await?;
        sqlx::query(
            "UPDATE sandtable.column_specs SET write_to = $2 WHERE column_id = $1 AND write_to = $3",
        )
        .bind(column_id)
        .bind(write.write_id)
        .bind(LIVE)
        .execute(&mut *write.tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP INDEX \"{}\".t_{}_i_{index_id}",
            self.tenant.schema_name, write.schema.id
        )))
        .execute(&mut *write.tx)
        .await?;
        let summary = WriteSummary {
            table: table.to_owned(),
            version: 0,
            changes: Changes::default(),
            cell_errors: 0,
        };
        let detail = serde_json::json!({ "index": name });
        let version = write.commit("drop_index", &summary.changes, detail).await?;
        tracing::info!(
            target: "sandtable::table",
            tenant = %self.tenant.name,
            table,
            index = name,
            version,
            "index dropped"
        );
        Ok(WriteSummary { version, ..summary })
    }

    /// Finds the `k` rows nearest to the query in an index of a table
    /// version or a snapshot, nearest first, with their scores.
    ///
    /// Text is embedded through the sandbox by the function, and the plugin
    /// version, that filled the index at that version.
    ///
    /// # Errors
    ///
    /// Returns [`TableError::NotFound`] for an unknown table, snapshot,
    /// version, index or column, [`TableError::Invalid`] for an empty
    /// query, a vector of another dimension or with a non-finite element,
    /// or a bad `k`, and [`TableError::CellFailed`] when embedding the
    /// text fails.
    pub async fn search(&self, source: &str, query: &SearchQuery) -> Result<SearchResult> {
        if query.k == 0 || query.k > MAX_SEARCH_ROWS {
            return Err(TableError::Invalid(format!(
                "-k {} is out of range; give 1 to {MAX_SEARCH_ROWS} rows",
                query.k
            )));
        }
        if let SearchInput::Text(text) = &query.input
            && text.trim().is_empty()
        {
            return Err(TableError::Invalid(
                "the query text is empty; give text to search for, or a vector with --vector"
                    .into(),
            ));
        }
        let columns = query
            .columns
            .as_deref()
            .map(parse_column_list)
            .transpose()?;
        let predicate = query.filter.as_deref().map(parse_predicate).transpose()?;
        let terms = SearchTerms {
            source,
            query,
            columns: columns.as_deref(),
            predicate: predicate.as_ref(),
        };
        // pgvector's default candidate list of 40 reached a recall@10 of
        // 0.94 on 12,000 texts hashed to 64 dimensions; 100 reaches 0.99.
        let ef_search = (query.k * 4).clamp(EF_SEARCH_MIN, 1000);
        if let SearchInput::Vector(vector) = &query.input
            && ef_search == EF_SEARCH_MIN
            && !query.explain
            && let Some(result) = self.search_guessed(&terms, vector).await?
        {
            return Ok(result);
        }
        self.search_resolved(&terms, ef_search).await
    }

    /// Searches by vector in one statement, without resolving the source
    /// first: the statement reads the version that the last search of the
    /// same source resolved, and returns no rows unless the source still
    /// resolves to it. Returns `None` when there is no such version, or when
    /// fewer than `k` rows came back, for [`Tables::search_resolved`] to
    /// decide.
    ///
    /// The statement runs with the session's HNSW settings, which every
    /// connection of a pool made with [`crate::pg::pool_options`] starts with (see
    /// [`SESSION_SETTINGS`]), and returns no rows on a connection without
    /// them.
    async fn search_guessed(
        &self,
        terms: &SearchTerms<'_>,
        vector: &[f32],
    ) -> Result<Option<SearchResult>> {
        let Some(resolved) = self.versions.guess(terms.source, terms.query.version) else {
            return Ok(None);
        };
        let Some(view) = self.versions.get((resolved.table_id, resolved.write_id)) else {
            return Ok(None);
        };
        // An error here may come from an outdated guess, so the resolved
        // search reports the error.
        let Ok(mut plan) = SearchPlan::new(&view, terms, &resolved) else {
            return Ok(None);
        };
        if check_query_vector(vector, plan.dimension, &plan.index).is_err() {
            return Ok(None);
        }
        // One probe of the catalog checks the guess. A table's latest
        // version has its largest write number, because versions are only
        // added at the end and removed from it. A dropped table has none.
        plan.binds.push(Bind::Int(resolved.table_id));
        let table = plan.binds.len();
        plan.binds.push(Bind::Int(resolved.write_id));
        let write = plan.binds.len();
        let guard = match (&resolved.snapshot, terms.query.version) {
            (Some(snapshot), _) => {
                plan.binds.push(Bind::Int(self.tenant.id));
                plan.binds.push(Bind::Text(snapshot.clone()));
                let name = plan.binds.len();
                format!(
                    "EXISTS (SELECT FROM sandtable.snapshots WHERE tenant_id = ${} AND name = \
                     ${name} AND table_id = ${table} AND write_id = ${write})",
                    name - 1
                )
            }
            (None, Some(version)) => {
                plan.binds.push(Bind::Int(version));
                format!(
                    "EXISTS (SELECT FROM sandtable.table_versions WHERE table_id = ${table} \
                     AND version = ${} AND write_id = ${write})",
                    plan.binds.len()
                )
            }
            (None, None) => format!(
                "(SELECT write_id FROM sandtable.table_versions WHERE table_id = ${table} \
                 ORDER BY version DESC LIMIT 1) = ${write}"
            ),
        };
        // A pool made elsewhere may lack the session's settings, and then
        // the resolved search sets them.
        let settings = SESSION_SETTINGS
            .iter()
            .map(|(name, value)| format!("current_setting('{name}', true) = '{value}' AND "))
            .collect::<String>();
        let sql = plan.sql(Some(&format!("{settings}{guard}")));
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &plan.binds)
            .bind(pgvector::Vector::from(vector.to_vec()))
            .fetch_all(self.catalog.pool())
            .await?;
        if (rows.len() as u64) < terms.query.k {
            return Ok(None);
        }
        plan.finish(resolved, &rows, None).map(Some)
    }

    /// Searches in one read-only repeatable-read transaction that resolves
    /// the source, embeds a text query, and falls back to an exact scan
    /// when the HNSW scan returns fewer than `k` rows.
    async fn search_resolved(
        &self,
        terms: &SearchTerms<'_>,
        ef_search: u64,
    ) -> Result<SearchResult> {
        let query = terms.query;
        let mut tx = self
            .catalog
            .pool()
            .begin_with(AssertSqlSafe(format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SET LOCAL hnsw.iterative_scan = relaxed_order; \
                 SET LOCAL hnsw.ef_search = {ef_search}"
            )))
            .await?;
        let resolved = resolve_source(&mut tx, self, terms.source, query.version).await?;
        let key = (resolved.table_id, resolved.write_id);
        let view = match self.versions.get(key) {
            Some(view) => view,
            None => {
                let schema = load_schema(
                    &mut tx,
                    &self.tenant,
                    resolved.table_id,
                    &resolved.table,
                    resolved.write_id,
                )
                .await?;
                let indexes = visible_indexes(&mut tx, schema.id, resolved.write_id).await?;
                let view = std::sync::Arc::new(VersionView { schema, indexes });
                self.versions.insert(key, view.clone());
                view
            }
        };
        self.versions
            .remember(terms.source, query.version, &resolved);
        let plan = SearchPlan::new(&view, terms, &resolved)?;
        let (vector, embed_us) = match &query.input {
            SearchInput::Vector(vector) => (vector.clone(), None),
            SearchInput::Text(text) => {
                let started = std::time::Instant::now();
                let vector = self
                    .embed_query(&view.schema, plan.position, &plan.index, text)
                    .await?;
                (vector, Some(started.elapsed().as_micros() as u64))
            }
        };
        check_query_vector(&vector, plan.dimension, &plan.index)?;
        let sql = plan.sql(None);
        let query_vector = pgvector::Vector::from(vector);
        if query.explain {
            let lines: Vec<String> = bind_all(
                sqlx::query(AssertSqlSafe(format!("EXPLAIN ANALYZE {sql}"))),
                &plan.binds,
            )
            .bind(query_vector)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
            tx.commit().await?;
            let mut result = plan.finish(resolved, &[], embed_us)?;
            result.plan = Some(lines.join("\n"));
            return Ok(result);
        }
        let mut rows = bind_all(sqlx::query(AssertSqlSafe(sql.clone())), &plan.binds)
            .bind(query_vector.clone())
            .fetch_all(&mut *tx)
            .await?;
        if (rows.len() as u64) < query.k {
            // An HNSW scan can end before k rows pass the filter: the graph
            // contains every row version, and many copies of one vector (rows
            // rewritten with their vectors unchanged) leave parts of it
            // unreachable. An exact scan in the same snapshot returns every
            // row there is, up to k.
            sqlx::query("SET LOCAL enable_indexscan = off")
                .execute(&mut *tx)
                .await?;
            rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &plan.binds)
                .bind(query_vector)
                .fetch_all(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        plan.finish(resolved, &rows, embed_us)
    }

    /// Embeds `text` with the expression that computes the index's column
    /// in `schema`, through the sandbox.
    async fn embed_query(
        &self,
        schema: &TableSchema,
        position: usize,
        index: &VisibleIndex,
        text: &str,
    ) -> Result<Vec<f32>> {
        let column = &schema.columns[position];
        let spec = column.computed.as_ref().ok_or_else(|| {
            TableError::Invalid(format!(
                "index `{}` covers column `{}`, which is not computed, so text cannot be \
                 embedded for it; search with --vector",
                index.name, column.name
            ))
        })?;
        let source = schema
            .columns
            .iter()
            .position(|c| c.id == index.source_id)
            .ok_or_else(|| {
                TableError::Invalid(format!(
                    "the source column of index `{}` is not in this version",
                    index.name
                ))
            })?;
        let source_type = schema.columns[source].data_type;
        if source_type != DataType::String {
            return Err(TableError::Invalid(format!(
                "index `{}` embeds column `{}`, which is {source_type}, so a text query does not \
                 fit it; search with --vector",
                index.name, schema.columns[source].name
            )));
        }
        let mut plugins = PluginSet::default();
        plugins
            .load_for(&self.catalog, &self.engine, &self.tenant, &spec.expression)
            .await?;
        let (plan, _, _) = bind(&spec.expression, schema, &plugins)?;
        let plan = plan.for_column(column);
        let mut builder = ColumnBuilder::new(&DataType::String, 1);
        builder.push_str(text);
        let mut cells: Vec<Option<Cells>> = vec![None; schema.columns.len()];
        cells[source] = Some(Cells::plain(builder.finish()));
        let batch = Batch { rows: 1, cells };
        let engine = self.engine.clone();
        let computed = tokio::task::spawn_blocking(move || evaluate(&engine, &plan, &batch))
            .await
            .expect("the embedding task does not panic")?;
        if let Some(failure) = computed.error(0) {
            return Err(TableError::CellFailed(format!(
                "embedding the query for index `{}` failed: {}: {}",
                index.name, failure.error_type, failure.message
            )));
        }
        match &computed.values.values {
            crate::sandbox::types::Values::Vector(vectors) if !computed.values.is_null(0) => {
                Ok(vectors.data.clone())
            }
            _ => Err(TableError::CellFailed(format!(
                "embedding the query for index `{}` returned null; the function `{}` gives no \
                 vector for this text",
                index.name, spec.expression
            ))),
        }
    }
}

/// Parses `PLUGIN.FUNCTION` and returns the call of it on column `source`.
fn embedding_call(embedding: &str, source: &str) -> Result<Expr> {
    let invalid = || {
        TableError::Invalid(format!(
            "--embedding `{embedding}` is not PLUGIN.FUNCTION; give a plugin's function \
             without arguments, such as `minilm.embed`"
        ))
    };
    if embedding.contains(['(', ')', ',']) || !embedding.contains('.') {
        return Err(invalid());
    }
    let column = ColumnRef {
        name: source.to_owned(),
        part: CellPart::Value,
    };
    let expr = parse_expr(&format!("{embedding}({column})")).map_err(|_| invalid())?;
    match &expr {
        Expr::Call(call) if call.args.len() == 1 && matches!(call.args[0], Expr::Column(_)) => {
            Ok(expr)
        }
        _ => Err(invalid()),
    }
}

/// The indexes that version `write_id` of table `table_id` has.
async fn visible_indexes(
    conn: &mut sqlx::PgConnection,
    table_id: i64,
    write_id: i64,
) -> Result<Vec<VisibleIndex>> {
    let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT name, column_id, source_column, metric FROM sandtable.indexes \
         WHERE table_id = $1 AND added_write <= $2 \
           AND ($2 < dropped_write OR dropped_write = $3) \
         ORDER BY name",
    )
    .bind(table_id)
    .bind(write_id)
    .bind(LIVE)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(name, column_id, source_id, metric)| {
            Ok(VisibleIndex {
                name,
                column_id,
                source_id,
                metric: metric.parse()?,
            })
        })
        .collect()
}

/// The parsed terms of a search.
struct SearchTerms<'a> {
    source: &'a str,
    query: &'a SearchQuery,
    columns: Option<&'a [ColumnRef]>,
    predicate: Option<&'a Predicate>,
}

/// A search's SQL over one version, all but the query vector, which is
/// the last parameter.
struct SearchPlan {
    index: VisibleIndex,
    /// The position of the index's column in the schema.
    position: usize,
    dimension: u32,
    output: Vec<OutputColumn>,
    /// The nearest rows' select list, filter and limit.
    select: Vec<String>,
    conditions: Vec<String>,
    distance: String,
    table: String,
    limit: usize,
    binds: Vec<Bind>,
}

impl SearchPlan {
    fn new(view: &VersionView, terms: &SearchTerms<'_>, resolved: &Resolved) -> Result<Self> {
        let schema = &view.schema;
        let index = choose_index(schema, &view.indexes, terms.query.index.as_deref())?;
        let position = schema
            .columns
            .iter()
            .position(|c| c.id == index.column_id)
            .ok_or_else(|| {
                TableError::Invalid(format!(
                    "index `{}` has no vector column at version {}",
                    index.name, resolved.version
                ))
            })?;
        let column = &schema.columns[position];
        let DataType::Vector(dimension) = column.data_type else {
            return Err(TableError::Invalid(format!(
                "index `{}` covers column `{}`, which is {}, not a vector",
                index.name, column.name, column.data_type
            )));
        };
        // By default every column but vectors, which are long and which the
        // score sums up.
        let references = match terms.columns {
            Some(columns) => columns.to_vec(),
            None => every_column(schema)
                .into_iter()
                .zip(&schema.columns)
                .filter(|(_, column)| !matches!(column.data_type, DataType::Vector(_)))
                .map(|(reference, _)| reference)
                .collect(),
        };
        let (mut output, select) = select_list(schema, &references)?;
        // The score takes the metric's name, with underscores before it
        // until no output column has that name.
        let mut score_name = index.metric.score_name().to_owned();
        while output.iter().any(|c| c.name == score_name) {
            score_name.insert(0, '_');
        }
        output.insert(
            0,
            OutputColumn {
                name: score_name,
                data_type: DataType::Float,
            },
        );
        let mut conditions = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(predicate) = terms.predicate {
            let mut builder = FilterBuilder::new(schema, binds);
            conditions.push(builder.sql(predicate)?);
            binds = builder.binds;
        }
        binds.push(Bind::Int(resolved.write_id));
        let w = binds.len();
        conditions.push(format!("_v_min <= ${w} AND _v_max > ${w}"));
        let vector_sql = column.sql(CellPart::Value);
        conditions.push(format!("{vector_sql} IS NOT NULL"));
        binds.push(Bind::Int(terms.query.k as i64));
        let limit = binds.len();
        Ok(SearchPlan {
            distance: format!("{vector_sql} {}", index.metric.operator()),
            index,
            position,
            dimension,
            output,
            select,
            conditions,
            table: schema.sql_table(),
            limit,
            binds,
        })
    }

    /// Returns the statement, with `guard` as one more condition. The
    /// query vector is the parameter after the binds.
    fn sql(&self, guard: Option<&str>) -> String {
        let q = self.binds.len() + 1;
        let distance = format!("{} ${q}", self.distance);
        let mut inner_select = vec![format!("{distance} AS _distance")];
        inner_select.extend(
            self.select
                .iter()
                .enumerate()
                .map(|(i, sql)| format!("{sql} AS _o{i}")),
        );
        let mut outer_select = vec![format!(
            "({})::float8",
            self.index.metric.score_sql("_distance")
        )];
        outer_select.extend((0..self.select.len()).map(|i| format!("_o{i}")));
        let mut conditions = self.conditions.clone();
        conditions.extend(guard.map(str::to_owned));
        // A relaxed iterative scan may return rows slightly out of order, so
        // the outer query sorts the k rows it found.
        format!(
            "WITH nearest AS MATERIALIZED (SELECT {} FROM {} WHERE {} ORDER BY {distance} \
             LIMIT ${}) SELECT {} FROM nearest ORDER BY _distance",
            inner_select.join(", "),
            self.table,
            conditions.join(" AND "),
            self.limit,
            outer_select.join(", "),
        )
    }

    /// Decodes the rows into the result.
    fn finish(
        self,
        resolved: Resolved,
        rows: &[sqlx::postgres::PgRow],
        embed_us: Option<u64>,
    ) -> Result<SearchResult> {
        let mut builders: Vec<ColumnBuilder> = self
            .output
            .iter()
            .map(|c| ColumnBuilder::new(&c.data_type, rows.len()))
            .collect();
        for row in rows {
            for (field, builder) in builders.iter_mut().enumerate() {
                decode_value(builder, &self.output[field].data_type, row, field)?;
            }
        }
        Ok(SearchResult {
            source: SelectSource {
                table: resolved.table,
                snapshot: resolved.snapshot,
                version: resolved.version,
                columns: self.output,
            },
            index: self.index.name,
            metric: self.index.metric,
            columns: builders.into_iter().map(ColumnBuilder::finish).collect(),
            embed_us,
            plan: None,
        })
    }
}

/// Picks the index named `name`, or the only index, of a version.
fn choose_index(
    schema: &TableSchema,
    indexes: &[VisibleIndex],
    name: Option<&str>,
) -> Result<VisibleIndex> {
    let names: Vec<String> = indexes.iter().map(|index| index.name.clone()).collect();
    match name {
        Some(name) => indexes
            .iter()
            .find(|index| index.name == name)
            .cloned()
            .ok_or_else(|| {
                TableError::NotFound(format!(
                    "table `{}` has no index `{name}` at this version; its indexes are {}",
                    schema.name,
                    list_or_none(&names)
                ))
            }),
        None => match indexes {
            [index] => Ok(index.clone()),
            [] => Err(TableError::NotFound(format!(
                "table `{}` has no index at this version; add one with `sandtable index add \
                 {} COLUMN --embedding PLUGIN.FUNCTION`",
                schema.name, schema.name
            ))),
            _ => Err(TableError::Invalid(format!(
                "table `{}` has indexes {}; choose one with --index",
                schema.name,
                list_or_none(&names)
            ))),
        },
    }
}

/// Checks a query vector against the index: its dimension, finite
/// elements, and for cosine a direction.
fn check_query_vector(vector: &[f32], dimension: u32, index: &VisibleIndex) -> Result<()> {
    if vector.len() != dimension as usize {
        return Err(TableError::Invalid(format!(
            "the query vector has {} numbers, but index `{}` is vector({dimension}); give \
             {dimension} numbers",
            vector.len(),
            index.name
        )));
    }
    if let Some((element, value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(TableError::Invalid(format!(
            "the query vector contains {value} at element {element}; give finite numbers"
        )));
    }
    if let Some(norm) = crate::sandbox::oversized_norm(vector) {
        return Err(TableError::Invalid(format!(
            "the query vector's norm is {norm:e}, over the maximum of {:e}, so its distances \
             overflow 32-bit floats; scale it down",
            crate::sandbox::MAX_VECTOR_NORM
        )));
    }
    if index.metric == Metric::Cosine && vector.iter().all(|v| *v == 0.0) {
        return Err(TableError::Invalid(format!(
            "the query vector is zero, which has no direction for the cosine index `{}`; give a \
             non-zero vector",
            index.name
        )));
    }
    Ok(())
}

async fn live_index_names(write: &mut Write) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT name FROM sandtable.indexes WHERE table_id = $1 AND dropped_write = $2 \
         ORDER BY name",
    )
    .bind(write.schema.id)
    .bind(LIVE)
    .fetch_all(&mut *write.tx)
    .await?)
}

/// Returns the first 40 characters of a name, for a message.
fn truncate_name(name: &str) -> String {
    let shown: String = name.chars().take(40).collect();
    if shown.len() < name.len() {
        format!("{shown}...")
    } else {
        shown
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        super::tables::quoted_list(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_must_be_a_function_without_arguments() {
        let call = embedding_call("hash-embed@2.embed64", "my text").unwrap();
        assert_eq!(call.to_string(), "hash-embed@2.embed64(\"my text\")");
        for bad in ["embed64", "text.upper(title)", "a.b,c", ""] {
            let error = embedding_call(bad, "title").unwrap_err().to_string();
            assert!(error.contains("PLUGIN.FUNCTION"), "{bad}: {error}");
        }
    }

    #[test]
    fn query_vectors_are_checked() {
        let index = VisibleIndex {
            name: "e".into(),
            column_id: 1,
            source_id: 2,
            metric: Metric::Cosine,
        };
        let error = check_query_vector(&[1.0], 2, &index)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("has 1 numbers") && error.contains("vector(2)"),
            "{error}"
        );
        let error = check_query_vector(&[1.0, f32::NAN], 2, &index)
            .unwrap_err()
            .to_string();
        assert!(error.contains("NaN at element 1"), "{error}");
        let error = check_query_vector(&[0.0, 0.0], 2, &index)
            .unwrap_err()
            .to_string();
        assert!(error.contains("zero"), "{error}");
        let l2 = VisibleIndex {
            metric: Metric::L2,
            ..index
        };
        check_query_vector(&[0.0, 0.0], 2, &l2).unwrap();
    }

    #[test]
    fn metrics_parse_and_score() {
        for metric in [Metric::Cosine, Metric::L2, Metric::Ip] {
            assert_eq!(metric.as_str().parse::<Metric>().unwrap(), metric);
        }
        assert!(
            "dot"
                .parse::<Metric>()
                .unwrap_err()
                .to_string()
                .contains("cosine, l2 or ip")
        );
        assert_eq!(Metric::Cosine.score_sql("d"), "1 - d");
    }

    #[test]
    fn sessions_start_with_the_smallest_candidate_list() {
        let ef_search = SESSION_SETTINGS
            .iter()
            .find(|(name, _)| *name == "hnsw.ef_search")
            .map(|(_, value)| value.parse::<u64>().unwrap());
        assert_eq!(ef_search, Some(EF_SEARCH_MIN));
    }
}
