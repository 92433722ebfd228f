//! Pool state in Postgres: leases of request slots, token charges, pauses
//! and per-minute counts, each one statement.

use sqlx::PgPool;

use super::Pool;

/// The current time on the database's clock, in microseconds since 1970, as
/// SQL text for `concat!`.
macro_rules! now_us {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
    };
}

/// The shared state of pools, in `sandtable.pools`.
#[derive(Debug, Clone)]
pub struct PoolStore {
    pool: PgPool,
}

/// A block of request slots, in microseconds on the database's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leased {
    pub start_us: i64,
    pub now_us: i64,
    pub paused_until_us: i64,
    pub token_tat_us: i64,
}

impl PoolStore {
    /// Shares pools through the database behind `pool`.
    pub fn new(pool: PgPool) -> Self {
        PoolStore { pool }
    }

    /// Leases `slots` request slots of `pool`, and writes the counts of this
    /// process since the last write.
    pub(crate) async fn lease(
        &self,
        pool: &Pool,
        slots: u64,
        counts: [i64; 6],
    ) -> Result<Leased, sqlx::Error> {
        let interval_us = pool.interval.as_micros() as i64;
        let tolerance_us = interval_us * (i64::from(pool.spec.burst.max(1)) - 1);
        let span_us = interval_us * slots as i64;
        let query = concat!(
            "INSERT INTO sandtable.pools AS p (tenant_id, name, requests_per_minute, burst, \
                 tokens_per_minute, origin, request_tat_us, updated_us) \
             SELECT $1, $2, $3, $4, $5, $6, now_us - $7 + $8, now_us FROM (SELECT ",
            now_us!(),
            " AS now_us) t \
             ON CONFLICT (tenant_id, name) DO UPDATE SET \
                 request_tat_us = greatest(p.request_tat_us, excluded.updated_us - $7, p.paused_until_us) + $8, \
                 requests_per_minute = excluded.requests_per_minute, burst = excluded.burst, \
                 tokens_per_minute = excluded.tokens_per_minute, origin = excluded.origin, \
                 updated_us = excluded.updated_us \
             RETURNING request_tat_us - $8, updated_us, paused_until_us, token_tat_us"
        );
        let (start_us, now_us, paused_until_us, token_tat_us): (i64, i64, i64, i64) =
            sqlx::query_as(query)
                .bind(pool.tenant_id)
                .bind(&pool.name)
                .bind(pool.spec.requests_per_minute as i32)
                .bind(pool.spec.burst as i32)
                .bind(pool.spec.tokens_per_minute.map(|tokens| tokens as i64))
                .bind(&pool.spec.origin)
                .bind(tolerance_us)
                .bind(span_us)
                .fetch_one(&self.pool)
                .await?;
        if counts.iter().any(|count| *count != 0) {
            self.flush(pool, counts).await?;
        }
        Ok(Leased {
            start_us,
            now_us,
            paused_until_us,
            token_tat_us,
        })
    }

    /// Pauses `pool` for `duration` from now, for every process.
    pub(crate) async fn pause(
        &self,
        pool: &Pool,
        duration: std::time::Duration,
    ) -> Result<(), sqlx::Error> {
        let query = concat!(
            "UPDATE sandtable.pools SET paused_until_us = greatest(paused_until_us, ",
            now_us!(),
            " + $3) \
             WHERE tenant_id = $1 AND name = $2"
        );
        sqlx::query(query)
            .bind(pool.tenant_id)
            .bind(&pool.name)
            .bind(duration.as_micros() as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Charges `cost_us` of token time to `pool`; returns the new
    /// theoretical arrival time and now.
    pub(crate) async fn charge_tokens(
        &self,
        pool: &Pool,
        cost_us: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        let query = concat!(
            "UPDATE sandtable.pools AS p SET token_tat_us = greatest(p.token_tat_us, t.now_us) + $3 \
             FROM (SELECT ",
            now_us!(),
            " AS now_us) t \
             WHERE p.tenant_id = $1 AND p.name = $2 \
             RETURNING p.token_tat_us, t.now_us"
        );
        let row: Option<(i64, i64)> = sqlx::query_as(query)
            .bind(pool.tenant_id)
            .bind(&pool.name)
            .bind(cost_us)
            .fetch_optional(&self.pool)
            .await?;
        // A pool gets its row with its first lease, which comes before any
        // response; without one, nothing is held.
        Ok(row.unwrap_or((0, 0)))
    }

    /// Adds counts to the current minute of `pool`.
    pub(crate) async fn flush(&self, pool: &Pool, counts: [i64; 6]) -> Result<(), sqlx::Error> {
        let [requests, tokens, waits, wait_us, throttled, denied] = counts;
        sqlx::query(
            "INSERT INTO sandtable.pool_stats AS s \
                 (tenant_id, name, minute, requests, tokens, waits, wait_us, throttled, denied) \
             VALUES ($1, $2, date_trunc('minute', clock_timestamp()), $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id, name, minute) DO UPDATE SET \
                 requests = s.requests + excluded.requests, tokens = s.tokens + excluded.tokens, \
                 waits = s.waits + excluded.waits, wait_us = s.wait_us + excluded.wait_us, \
                 throttled = s.throttled + excluded.throttled, denied = s.denied + excluded.denied",
        )
        .bind(pool.tenant_id)
        .bind(&pool.name)
        .bind(requests)
        .bind(tokens)
        .bind(waits)
        .bind(wait_us)
        .bind(throttled)
        .bind(denied)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// One pool as `sandtable pool list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolSummary {
    /// The pool's name.
    pub name: String,
    /// The rate last used by any process.
    pub requests_per_minute: i32,
    /// The burst.
    pub burst: i32,
    /// The token budget, if any.
    pub tokens_per_minute: Option<i64>,
    /// The source of the limits.
    pub origin: String,
    /// Requests in the current minute of the clock.
    pub requests_this_minute: i64,
    /// Requests in the window asked for.
    pub requests: i64,
    /// Tokens in the window.
    pub tokens: i64,
    /// Requests that waited for a permit, in the window.
    pub waits: i64,
    /// The mean wait of those that waited, in milliseconds.
    pub mean_wait_ms: f64,
    /// 429 and 503 responses, in the window.
    pub throttled: i64,
    /// Requests refused (denied pool or host not allow-listed), in the
    /// window.
    pub denied: i64,
    /// Seconds until the pool's pause ends; 0 when it is not paused.
    pub paused_for_s: f64,
}

impl PoolSummary {
    /// Returns the summary of a pool that no process used yet.
    pub fn unused(name: &str) -> Self {
        PoolSummary {
            name: name.to_owned(),
            requests_per_minute: 0,
            burst: 0,
            tokens_per_minute: None,
            origin: String::new(),
            requests_this_minute: 0,
            requests: 0,
            tokens: 0,
            waits: 0,
            mean_wait_ms: 0.0,
            throttled: 0,
            denied: 0,
            paused_for_s: 0.0,
        }
    }
}

impl PoolStore {
    /// Lists every pool of a tenant that any process used, with its counts over
    /// the last `minutes` minutes.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn list(
        &self,
        tenant_id: i64,
        minutes: u64,
    ) -> Result<Vec<PoolSummary>, sqlx::Error> {
        let query = concat!(
            "SELECT p.name, p.requests_per_minute, p.burst, p.tokens_per_minute, p.origin, \
                 coalesce(sum(s.requests) FILTER (WHERE s.minute >= date_trunc('minute', clock_timestamp())), 0)::bigint, \
                 coalesce(sum(s.requests), 0)::bigint, coalesce(sum(s.tokens), 0)::bigint, \
                 coalesce(sum(s.waits), 0)::bigint, coalesce(sum(s.wait_us), 0)::bigint, \
                 coalesce(sum(s.throttled), 0)::bigint, coalesce(sum(s.denied), 0)::bigint, \
                 greatest(p.paused_until_us - ",
            now_us!(),
            ", 0) \
             FROM sandtable.pools p \
             LEFT JOIN sandtable.pool_stats s ON s.tenant_id = p.tenant_id AND s.name = p.name \
                 AND s.minute > clock_timestamp() - make_interval(mins => $2) \
             WHERE p.tenant_id = $1 \
             GROUP BY p.name, p.requests_per_minute, p.burst, p.tokens_per_minute, p.origin, p.paused_until_us \
             ORDER BY p.name"
        );
        type Row = (
            String,
            i32,
            i32,
            Option<i64>,
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(query)
            .bind(tenant_id)
            .bind(minutes.min(i32::MAX as u64) as i32)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| PoolSummary {
                name: row.0,
                requests_per_minute: row.1,
                burst: row.2,
                tokens_per_minute: row.3,
                origin: row.4,
                requests_this_minute: row.5,
                requests: row.6,
                tokens: row.7,
                waits: row.8,
                mean_wait_ms: if row.8 > 0 {
                    row.9 as f64 / row.8 as f64 / 1000.0
                } else {
                    0.0
                },
                throttled: row.10,
                denied: row.11,
                paused_for_s: row.12 as f64 / 1e6,
            })
            .collect())
    }
}
