//! Per-function call aggregates in `sandtable.function_stats`, summed per
//! minute over every process that writes them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Catalog, CatalogError, Tenant};
use crate::sandbox::{FunctionKey, FunctionStats, UdfEngine};

/// How often [`Catalog::spawn_stats_writer`] writes by default.
pub const STATS_INTERVAL: Duration = Duration::from_secs(60);

impl Catalog {
    /// Adds aggregates to the current minute's rows. Aggregates of a tenant
    /// that is not in the catalog are skipped.
    ///
    /// # Errors
    ///
    /// Fails when the database does; nothing is written then.
    pub async fn write_stats(
        &self,
        stats: &[(FunctionKey, FunctionStats)],
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        for (key, stats) in stats {
            sqlx::query(
                "INSERT INTO sandtable.function_stats AS s \
                   (tenant_id, plugin, version, function, minute, calls, rows, guest_us, faults, \
                    latency_us_buckets, fuel) \
                 SELECT t.id, $2, $3, $4, date_trunc('minute', now()), $5, $6, $7, $8, $9, $10 \
                   FROM sandtable.tenants t WHERE t.name = $1 \
                 ON CONFLICT (tenant_id, plugin, version, function, minute) DO UPDATE SET \
                   calls = s.calls + excluded.calls, \
                   rows = s.rows + excluded.rows, \
                   guest_us = s.guest_us + excluded.guest_us, \
                   fuel = s.fuel + excluded.fuel, \
                   faults = ARRAY(SELECT a + b FROM unnest(s.faults, excluded.faults) \
                     WITH ORDINALITY AS u(a, b, n) ORDER BY n), \
                   latency_us_buckets = ARRAY(SELECT a + b \
                     FROM unnest(s.latency_us_buckets, excluded.latency_us_buckets) \
                     WITH ORDINALITY AS u(a, b, n) ORDER BY n)",
            )
            .bind(&key.tenant)
            .bind(&key.plugin)
            .bind(key.version)
            .bind(&key.function)
            .bind(stats.calls as i64)
            .bind(stats.rows as i64)
            .bind(stats.guest_us as i64)
            .bind(stats.faults.iter().map(|&n| n as i64).collect::<Vec<_>>())
            .bind(
                stats
                    .latency_buckets
                    .iter()
                    .map(|&n| n as i64)
                    .collect::<Vec<_>>(),
            )
            .bind(i64::try_from(stats.fuel).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes the engine's aggregates and the pools' counts and writes them;
    /// on failure they go back for the next write.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn flush_stats(&self, engine: &UdfEngine) -> Result<(), CatalogError> {
        self.pools().flush().await?;
        let stats = engine.take_stats();
        if stats.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.write_stats(&stats).await {
            engine.restore_stats(stats);
            return Err(error);
        }
        Ok(())
    }

    /// Starts a task that flushes the engine's aggregates every `interval`
    /// and logs failures.
    ///
    /// The task runs until the returned handle is aborted or the runtime
    /// shuts down. Call [`Catalog::flush_stats`] once more before exit, so
    /// that the last partial interval is written too.
    pub fn spawn_stats_writer(
        &self,
        engine: UdfEngine,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let catalog = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = catalog.flush_stats(&engine).await {
                    tracing::warn!(
                        target: "sandtable::catalog",
                        error = %error,
                        "writing function stats failed; they are kept for the next write"
                    );
                }
            }
        })
    }

    /// Reads the aggregates of `tenant` over the last `window`, summed per
    /// function and ordered by plugin, version and function.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn function_stats(
        &self,
        tenant: &Tenant,
        window: Duration,
    ) -> Result<Vec<(FunctionKey, FunctionStats)>, CatalogError> {
        let rows: Vec<StatsRow> = sqlx::query_as(
            "SELECT plugin, version, function, calls, rows, guest_us, fuel, faults, latency_us_buckets \
               FROM sandtable.function_stats \
              WHERE tenant_id = $1 AND minute >= date_trunc('minute', now() - $2::double precision * interval '1 second')",
        )
        .bind(tenant.id)
        .bind(window.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let mut summed: BTreeMap<(String, i32, String), FunctionStats> = BTreeMap::new();
        for row in rows {
            let mut stats = FunctionStats {
                calls: row.calls as u64,
                rows: row.rows as u64,
                guest_us: row.guest_us as u64,
                fuel: row.fuel as u64,
                ..FunctionStats::default()
            };
            copy_counts(&mut stats.faults, &row.faults);
            copy_counts(&mut stats.latency_buckets, &row.latency_us_buckets);
            summed
                .entry((row.plugin, row.version, row.function))
                .or_default()
                .merge(&stats);
        }
        Ok(summed
            .into_iter()
            .map(|((plugin, version, function), stats)| {
                let key = FunctionKey {
                    tenant: tenant.name.clone(),
                    plugin,
                    version,
                    function,
                };
                (key, stats)
            })
            .collect())
    }
}

/// One minute's row of `sandtable.function_stats`.
#[derive(sqlx::FromRow)]
struct StatsRow {
    plugin: String,
    version: i32,
    function: String,
    calls: i64,
    fuel: i64,
    rows: i64,
    guest_us: i64,
    faults: Vec<i64>,
    latency_us_buckets: Vec<i64>,
}

/// Copies stored counts into an array of the current length; a shorter
/// stored array leaves the rest at 0.
fn copy_counts(target: &mut [u64], stored: &[i64]) {
    for (slot, &count) in target.iter_mut().zip(stored) {
        *slot = count.max(0) as u64;
    }
}
