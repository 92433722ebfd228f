//! Resource pools: per-tenant rate limits that the host charges at the
//! sandbox boundary.
//!
//! A pool is keyed by tenant and name. Its requests are spaced by a
//! [`governor`] limiter in each process, and its rate holds across processes
//! through leases kept in Postgres ([`store`]). A process reserves a block of
//! the pool's time slots with one statement, then spends the block locally,
//! so that a permit that does not wait costs a lock and an atomic update.
//!
//! A slot of a lease is spent only within the lease's own time span, so two
//! processes whose leases follow one another never spend more than the
//! rate together, even when one of them falls behind.
//!
//! Tokens are charged after the response, when they are known. A pool with
//! `tokens_per_minute` delays requests while the tokens already charged run
//! ahead of its budget, as a GCRA whose cost is charged late.

pub mod store;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota};

pub use self::store::PoolStore;
use crate::config::{Config, PoolSpec};

/// The span of slots one lease reserves. Slots not spent within their span
/// are lost, so a shorter span wastes less of the rate when a process stops
/// or slows down. A longer one costs fewer statements.
const LEASE_SPAN: Duration = Duration::from_millis(250);

/// A pool that cannot serve a permit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// The operator refuses the pool.
    #[error(
        "pool `{pool}` is denied by the operator ({origin}); remove `deny = true` from its section \
         to allow it"
    )]
    Denied {
        /// The pool.
        pool: String,
        /// The file or variable that sets the denial.
        origin: String,
    },
    /// The pool's shared state could not be reached.
    #[error("pool `{pool}`: the database did not response a lease: {reason}")]
    Store {
        /// The pool.
        pool: String,
        /// The database's error.
        reason: String,
    },
}

/// The counts of one pool in this process since they were last written to
/// Postgres.
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub requests: AtomicU64,
    pub tokens: AtomicU64,
    pub waits: AtomicU64,
    pub wait_us: AtomicU64,
    pub throttled: AtomicU64,
    pub denied: AtomicU64,
}

impl PoolCounters {
    /// Returns the counters, in the order of `sandtable.pool_stats`.
    fn all(&self) -> [&AtomicU64; 6] {
        [
            &self.requests,
            &self.tokens,
            &self.waits,
            &self.wait_us,
            &self.throttled,
            &self.denied,
        ]
    }

    fn take(&self) -> [i64; 6] {
        self.all()
            .map(|counter| counter.swap(0, Ordering::Relaxed).min(i64::MAX as u64) as i64)
    }

    fn restore(&self, counts: [i64; 6]) {
        for (counter, count) in self.all().into_iter().zip(counts) {
            add_saturating(counter, count as u64);
        }
    }
}

/// A block of leased slots.
#[derive(Debug, Clone, Copy)]
struct Lease {
    remaining: u64,
    not_before: Instant,
    expires: Instant,
}

#[derive(Debug)]
struct LocalState {
    lease: Lease,
    paused_until: Option<Instant>,
    tokens_held_until: Option<Instant>,
    /// The theoretical arrival time of the token budget, when no store
    /// shares it.
    token_tat: Option<Instant>,
}

/// One pool of one tenant, shared by every call in this process.
pub struct Pool {
    tenant_id: i64,
    tenant: String,
    name: String,
    spec: PoolSpec,
    interval: Duration,
    limiter: DefaultDirectRateLimiter,
    state: Mutex<LocalState>,
    refill: tokio::sync::Mutex<()>,
    store: Option<PoolStore>,
    pub(crate) counters: PoolCounters,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Creates a pool; with `store`, its rate is shared with every process
    /// using the same database.
    pub fn new(
        tenant_id: i64,
        tenant: &str,
        name: &str,
        spec: PoolSpec,
        store: Option<PoolStore>,
    ) -> Self {
        let rate = spec.requests_per_minute.max(1);
        let interval = Duration::from_secs(60) / rate;
        let burst = NonZeroU32::new(spec.burst.max(1)).expect("the burst is at least 1");
        let quota = Quota::with_period(interval)
            .expect("the interval is not zero")
            .allow_burst(burst);
        let now = Instant::now();
        let lease = if store.is_some() {
            Lease {
                remaining: 0,
                not_before: now,
                expires: now,
            }
        } else {
            Lease {
                remaining: u64::MAX,
                not_before: now,
                expires: now + Duration::from_secs(100 * 365 * 86_400),
            }
        };
        Pool {
            tenant_id,
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            interval,
            limiter: DefaultDirectRateLimiter::direct(quota),
            state: Mutex::new(LocalState {
                lease,
                paused_until: None,
                tokens_held_until: None,
                token_tat: None,
            }),
            refill: tokio::sync::Mutex::new(()),
            store,
            counters: PoolCounters::default(),
            spec,
        }
    }

    /// Returns the pool's name, such as `request-rate:my_service`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the tenant the pool belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Returns the limits in force.
    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// Waits for a permit for one request; returns how long it waited.
    ///
    /// # Errors
    ///
    /// Fails when the pool is denied or its shared state cannot be reached.
    pub async fn acquire(&self) -> Result<Duration, PoolError> {
        if self.spec.deny {
            self.counters.denied.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::Denied {
                pool: self.name.clone(),
                origin: self.spec.origin.clone(),
            });
        }
        let started = Instant::now();
        let waited = if self.try_permit(started) {
            Duration::ZERO
        } else {
            self.wait_for_permit().await?;
            started.elapsed()
        };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            self.counters.waits.fetch_add(1, Ordering::Relaxed);
            self.counters
                .wait_us
                .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        }
        Ok(waited)
    }

    /// Takes a permit if one is free at `now` without waiting: the pool is
    /// not held, the local limiter admits it and the lease has a slot.
    fn try_permit(&self, now: Instant) -> bool {
        let mut state = self.lock();
        let held = state.paused_until.max(state.tokens_held_until);
        let lease = state.lease;
        let leased = lease.remaining > 0 && now >= lease.not_before && now < lease.expires;
        if held.is_some_and(|until| until > now) || !leased || self.limiter.check().is_err() {
            return false;
        }
        state.lease.remaining -= 1;
        true
    }

    /// [`Pool::acquire`] for a thread that may block.
    ///
    /// # Errors
    ///
    /// As [`Pool::acquire`].
    pub fn acquire_blocking(&self) -> Result<Duration, PoolError> {
        wasmtime_wasi::runtime::in_tokio(self.acquire())
    }

    /// Waits until the pool is not held, a leased slot is usable now and
    /// the local limiter admits a request, then takes the slot.
    ///
    /// The limiter is asked only once a slot is usable, so callers that
    /// waited for a lease starting later still go one by one.
    async fn wait_for_permit(&self) -> Result<(), PoolError> {
        enum Next {
            Until(Instant),
            For(Duration),
            Refill,
        }
        loop {
            let now = Instant::now();
            let next = {
                let mut state = self.lock();
                let held = state.paused_until.max(state.tokens_held_until);
                let lease = state.lease;
                match held.filter(|until| *until > now) {
                    Some(until) => Next::Until(until),
                    None if lease.remaining == 0 || now >= lease.expires => Next::Refill,
                    None if now < lease.not_before => Next::Until(lease.not_before),
                    None => match self.limiter.check() {
                        Ok(()) => {
                            state.lease.remaining -= 1;
                            return Ok(());
                        }
                        Err(not_until) => {
                            Next::For(not_until.wait_time_from(self.limiter.clock().now()))
                        }
                    },
                }
            };
            match next {
                Next::Until(until) => tokio::time::sleep_until(until.into()).await,
                Next::For(wait) => tokio::time::sleep(wait).await,
                Next::Refill => self.refill_lease().await?,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn refill_lease(&self) -> Result<(), PoolError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _refilling = self.refill.lock().await;
        {
            let state = self.lock();
            let lease = &state.lease;
            if lease.remaining > 0 && Instant::now() < lease.expires {
                // Another caller refilled it while this one waited.
                return Ok(());
            }
        }
        let span_slots = (LEASE_SPAN.as_nanos() / self.interval.as_nanos().max(1)) as u64;
        let slots = span_slots.max(1);
        let counts = self.counters.take();
        let leased = store
            .lease(self, slots, counts)
            .await
            .inspect_err(|_| self.counters.restore(counts))
            .map_err(|error| PoolError::Store {
                pool: self.name.clone(),
                reason: error.to_string(),
            })?;
        let now = Instant::now();
        let at = |offset_us: i64| -> Instant {
            if offset_us >= 0 {
                now + Duration::from_micros(offset_us as u64)
            } else {
                now.checked_sub(Duration::from_micros(offset_us.unsigned_abs()))
                    .unwrap_or(now)
            }
        };
        let not_before = at(leased.start_us - leased.now_us);
        let burst = u64::from(self.spec.burst.max(1));
        // The slots, and the burst's tolerance by which the start may lie
        // in the past. A slot spent after its span would fall into the
        // next lease's, perhaps another process's, so none may be.
        let span = self
            .interval
            .saturating_mul(u32::try_from(slots + burst - 1).unwrap_or(u32::MAX));
        let mut state = self.lock();
        state.lease = Lease {
            remaining: slots,
            not_before,
            expires: not_before + span,
        };
        if leased.paused_until_us > leased.now_us {
            state.paused_until = Some(at(leased.paused_until_us - leased.now_us));
        }
        if let Some(tolerance) = self.token_tolerance_us() {
            let ahead = leased.token_tat_us - leased.now_us - tolerance;
            if ahead > 0 {
                state.tokens_held_until = Some(at(ahead));
            }
        }
        Ok(())
    }

    /// Pauses the pool for `duration`, for every caller in every process,
    /// as a `Retry-After` response requests.
    pub async fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        {
            let mut state = self.lock();
            if state.paused_until.is_none_or(|paused| paused < until) {
                state.paused_until = Some(until);
            }
            // Slots already leased fall inside the pause; the next lease
            // starts after it.
            if self.store.is_some() {
                state.lease.remaining = 0;
            }
        }
        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
        if let Some(store) = &self.store
            && let Err(error) = store.pause(self, duration).await
        {
            tracing::warn!(pool = %self.name, %error, "could not share a pool's pause");
        }
    }

    /// Holds the pool's requests until `when`, as a provider's rate-limit
    /// headers ask, in this process.
    pub fn hold_until(&self, until: Instant) {
        let mut state = self.lock();
        if state.paused_until.is_none_or(|paused| paused < until) {
            state.paused_until = Some(until);
        }
    }

    /// Charges `tokens` to the pool's token budget.
    pub async fn charge_tokens(&self, tokens: u64) {
        if tokens == 0 {
            return;
        }
        add_saturating(&self.counters.tokens, tokens);
        let (Some(rate), Some(tolerance)) =
            (self.spec.tokens_per_minute, self.token_tolerance_us())
        else {
            return;
        };
        // One charge delays the pool by a day at most, whatever it counts.
        let cost_us = token_cost_us(tokens, rate).min(86_400_000_000);
        match &self.store {
            Some(store) => match store.charge_tokens(self, cost_us).await {
                Ok((tat_us, now_us)) => {
                    let ahead = tat_us - now_us - tolerance;
                    if ahead > 0 {
                        self.lock().tokens_held_until =
                            Some(Instant::now() + Duration::from_micros(ahead as u64));
                    }
                }
                Err(error) => {
                    tracing::warn!(pool = %self.name, %error, "could not charge a pool's tokens");
                }
            },
            None => {
                let now = Instant::now();
                let mut state = self.lock();
                let tat = state.token_tat.filter(|tat| *tat > now).unwrap_or(now)
                    + Duration::from_micros(cost_us as u64);
                state.token_tat = Some(tat);
                let tolerance = Duration::from_micros(tolerance as u64);
                state.tokens_held_until = tat.checked_sub(tolerance).filter(|held| *held > now);
            }
        }
    }

    /// [`Pool::charge_tokens`] for a thread that may block.
    pub fn charge_tokens_blocking(&self, tokens: u64) {
        wasmtime_wasi::runtime::in_tokio(self.charge_tokens(tokens));
    }

    /// Counts a 429 or 503 response that asked for no pause.
    pub fn count_throttled(&self) {
        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request that never reached a server because the host refused
    /// it.
    pub fn count_denied(&self) {
        self.counters.denied.fetch_add(1, Ordering::Relaxed);
    }

    fn token_tolerance_us(&self) -> Option<i64> {
        let rate = self.spec.tokens_per_minute?;
        let burst = self.spec.effective_token_burst()?;
        Some(token_cost_us(burst, rate))
    }

    /// Writes the counts of this process to Postgres.
    ///
    /// # Errors
    ///
    /// Fails when the database does; the counts are kept for the next try.
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let counts = self.counters.take();
        if counts.iter().all(|count| *count == 0) {
            return Ok(());
        }
        store
            .flush(self, counts)
            .await
            .inspect_err(|_| self.counters.restore(counts))
    }
}

/// Adds `value` to `counter`, stopping at `u64::MAX`: a guest or a server
/// may give any count.
pub(crate) fn add_saturating(counter: &AtomicU64, value: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
        Some(sum.saturating_add(value))
    });
}

/// Returns the time, in microseconds, that `tokens` take to refill at
/// `rate` a minute.
fn token_cost_us(tokens: u64, rate: u64) -> i64 {
    let cost = u128::from(tokens) * 60_000_000 / u128::from(rate.max(1));
    cost.min(i64::MAX as u128) as i64
}

/// Every pool of this process, created on first use from the configuration.
#[derive(Clone)]
pub struct Pools {
    inner: Arc<PoolsInner>,
}

struct PoolsInner {
    config: Arc<Config>,
    store: Option<PoolStore>,
    pools: Mutex<HashMap<(i64, String), Arc<Pool>>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

impl Pools {
    /// Creates the registry; with `store`, pools share their rate through
    /// Postgres.
    pub fn new(config: Arc<Config>, store: Option<PoolStore>) -> Self {
        Pools {
            inner: Arc::new(PoolsInner {
                config,
                store,
                pools: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Returns the configuration the pools come from.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    /// Returns the pool `name` of a tenant, creating it on first use.
    pub fn get(&self, tenant_id: i64, tenant: &str, name: &str) -> Arc<Pool> {
        let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry((tenant_id, name.to_owned()))
            .or_insert_with(|| {
                Arc::new(Pool::new(
                    tenant_id,
                    tenant,
                    name,
                    self.inner.config.pool(name),
                    self.inner.store.clone(),
                ))
            })
            .clone()
    }

    /// Writes every pool's counts to Postgres.
    ///
    /// # Errors
    ///
    /// Fails when the database does.
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        let pools: Vec<Arc<Pool>> = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for pool in pools {
            pool.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: u32, burst: u32) -> PoolSpec {
        PoolSpec {
            requests_per_minute: rate,
            burst,
            ..PoolSpec::default()
        }
    }

    #[tokio::test]
    async fn local_pool_spaces_requests_after_the_burst() {
        let pool = Pool::new(1, "t", "request-rate:x", spec(6000, 2), None);
        let started = Instant::now();
        for _ in 0..6 {
            pool.acquire().await.unwrap();
        }
        // Two go at once, then one every 10 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(35),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn denied_pool_names_its_origin() {
        let mut denied = spec(600, 1);
        denied.deny = true;
        denied.origin = "/etc/sandtable.toml".to_owned();
        let pool = Pool::new(1, "t", "openai", denied, None);
        let error = pool.acquire().await.unwrap_err().to_string();
        assert!(
            error.contains("`openai`") && error.contains("/etc/sandtable.toml"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn token_budget_holds_requests_until_it_refills() {
        let mut tokens = spec(60_000, 1);
        tokens.tokens_per_minute = Some(60_000);
        tokens.token_burst = Some(100);
        let pool = Pool::new(1, "t", "openai", tokens, None);
        pool.acquire().await.unwrap();
        pool.charge_tokens(150).await;
        // 150 tokens against a burst of 100 at 1,000 a second: held 50 ms.
        let waited = pool.acquire().await.unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
    }

    #[test]
    fn token_cost_is_the_refill_time() {
        assert_eq!(token_cost_us(1000, 60_000), 1_000_000);
        assert_eq!(token_cost_us(u64::MAX, 1), i64::MAX);
    }
}
