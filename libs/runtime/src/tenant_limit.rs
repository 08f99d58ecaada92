//! Per-tenant admission control on the public `/v1` API, so one tenant's flood cannot starve the
//! others ("noisy neighbours"): a cap on the requests a tenant has in flight on this replica
//! (`TENANT_CONCURRENCY_LIMIT`) and a token bucket on its request rate (`TENANT_RATE_LIMIT_RPS`,
//! `TENANT_RATE_LIMIT_BURST`). A request over either limit is answered at once with 429
//! problem+json, code `request.rate_limited`, and a `Retry-After` header; it never reaches the
//! handler or the database.
//!
//! The key is the authenticated tenant (the same verification the [`longship_tenant::Tenant`]
//! extractor does, whose result is handed on to it). Requests whose credentials fail are passed
//! through untouched so the handler answers its usual 400/401.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use longship_errors::{Error, Kind};
use longship_tenant::{Authenticator, Tenant, TenantId};

/// Above this many tracked tenants, idle entries are dropped so the table cannot grow without bound
/// (with `AUTH_ALLOW_TENANT_HEADER=true` any caller can name any number of tenants).
const MAX_TRACKED_TENANTS: usize = 10_000;

/// The limits; zero switches a limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TenantLimits {
    /// Requests one tenant may have in flight at once on this replica (0 = unlimited).
    pub concurrency: usize,
    /// Sustained requests per second one tenant may make on this replica (0 = unlimited).
    pub rate_per_sec: f64,
    /// Requests a tenant may make at once after being idle (the bucket size); at least 1.
    pub burst: u32,
}

impl TenantLimits {
    /// Whether any limit is on.
    pub fn enabled(&self) -> bool {
        self.concurrency > 0 || self.rate_per_sec > 0.0
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant already has `concurrency` requests in flight.
    Concurrency,
    /// The tenant's token bucket is empty; a token is due after the given time.
    Rate(Duration),
}

impl Refusal {
    /// The `Retry-After` value, whole seconds, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Concurrency => 1,
            Refusal::Rate(wait) => wait.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Refusal::Concurrency => "concurrency",
            Refusal::Rate(_) => "rate",
        }
    }
}

struct Bucket {
    in_flight: usize,
    tokens: f64,
    refilled: Instant,
}

struct Inner {
    limits: TenantLimits,
    tenants: Mutex<HashMap<TenantId, Bucket>>,
}

/// The per-tenant limiter shared by every request of one router.
#[derive(Clone)]
pub struct TenantLimiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TenantLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLimiter")
            .field("limits", &self.inner.limits)
            .finish()
    }
}

/// Proof of admission: while it lives the request counts against its tenant's concurrency.
#[derive(Debug)]
pub struct Permit {
    limiter: TenantLimiter,
    tenant: Option<TenantId>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(tenant) = self.tenant.take() {
            let mut tenants = self.limiter.lock();
            if let Some(bucket) = tenants.get_mut(&tenant) {
                bucket.in_flight = bucket.in_flight.saturating_sub(1);
            }
        }
    }
}

impl TenantLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: TenantLimits) -> TenantLimiter {
        let limits = TenantLimits {
            burst: limits.burst.max(1),
            ..limits
        };
        TenantLimiter {
            inner: Arc::new(Inner {
                limits,
                tenants: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> TenantLimits {
        self.inner.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Bucket>> {
        // the map holds counters only; a panic elsewhere cannot leave it inconsistent
        self.inner
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one request of `tenant` now, or says why not.
    pub fn try_acquire(&self, tenant: &TenantId) -> Result<Permit, Refusal> {
        self.try_acquire_at(tenant, Instant::now())
    }

    fn try_acquire_at(&self, tenant: &TenantId, now: Instant) -> Result<Permit, Refusal> {
        let limits = self.inner.limits;
        if !limits.enabled() {
            return Ok(Permit {
                limiter: self.clone(),
                tenant: None,
            });
        }
        let burst = f64::from(limits.burst);
        let mut tenants = self.lock();
        if tenants.len() >= MAX_TRACKED_TENANTS && !tenants.contains_key(tenant) {
            prune_idle(&mut tenants, &limits, now);
        }
        let bucket = tenants.entry(tenant.clone()).or_insert_with(|| Bucket {
            in_flight: 0,
            tokens: burst,
            refilled: now,
        });
        if limits.concurrency > 0 && bucket.in_flight >= limits.concurrency {
            return Err(Refusal::Concurrency);
        }
        if limits.rate_per_sec > 0.0 {
            let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * limits.rate_per_sec).min(burst);
            bucket.refilled = now;
            if bucket.tokens < 1.0 {
                let wait = (1.0 - bucket.tokens) / limits.rate_per_sec;
                return Err(Refusal::Rate(Duration::from_secs_f64(wait)));
            }
            bucket.tokens -= 1.0;
        }
        bucket.in_flight += 1;
        Ok(Permit {
            limiter: self.clone(),
            tenant: Some(tenant.clone()),
        })
    }

    /// How many tenants are tracked (for tests of the bound).
    pub fn tracked_tenants(&self) -> usize {
        self.lock().len()
    }
}

/// Drops tenants with nothing in flight and a bucket that has refilled: forgetting them changes
/// nothing, as a new entry starts exactly so.
fn prune_idle(tenants: &mut HashMap<TenantId, Bucket>, limits: &TenantLimits, now: Instant) {
    let burst = f64::from(limits.burst);
    tenants.retain(|_, bucket| {
        let refilled = limits.rate_per_sec <= 0.0
            || bucket.tokens
                + now.saturating_duration_since(bucket.refilled).as_secs_f64()
                    * limits.rate_per_sec
                >= burst;
        bucket.in_flight > 0 || !refilled
    });
}

/// The 429 answer for `refusal`.
pub fn rate_limited(refusal: Refusal) -> Error {
    let message = match refusal {
        Refusal::Concurrency => "too many concurrent requests for this tenant, retry later",
        Refusal::Rate(_) => "request rate limit of this tenant exceeded, retry later",
    };
    Error::new(
        Kind::TooManyRequests,
        Kind::TooManyRequests.default_code(),
        message,
    )
    .with_retry_after(refusal.retry_after_secs())
}

/// axum middleware (install with `from_fn_with_state` as a route layer on the `/v1` routes):
/// authenticates the tenant once, hands it to the [`Tenant`] extractor and admits or refuses the
/// request by the tenant's limits.
pub async fn limit_tenant(
    State(limiter): State<TenantLimiter>,
    mut request: Request,
    next: Next,
) -> Response {
    let authenticator = request.extensions().get::<Arc<Authenticator>>().cloned();
    let Some(authenticator) = authenticator else {
        return next.run(request).await;
    };
    let Ok(tenant) = authenticator.authenticate(request.headers()) else {
        // the handler's extractor answers the precise 400/401
        return next.run(request).await;
    };
    tracing::Span::current().record("tenant_id", tenant.as_str());
    match limiter.try_acquire(&tenant) {
        Ok(permit) => {
            request.extensions_mut().insert(Tenant(tenant));
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(refusal) => {
            metrics::counter!("http_tenant_rejections_total", "reason" => refusal.reason())
                .increment(1);
            tracing::debug!(tenant_id = %tenant, reason = refusal.reason(), "tenant over its limit");
            rate_limited(refusal).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn disabled_admits_everything() {
        let limiter = TenantLimiter::new(TenantLimits::default());
        let permits: Vec<_> = (0..1000)
            .map(|_| limiter.try_acquire(&tenant("a")))
            .collect();
        assert!(permits.iter().all(Result::is_ok));
        assert_eq!(limiter.tracked_tenants(), 0);
    }

    #[test]
    fn concurrency_is_per_tenant_and_released_on_drop() {
        let limiter = TenantLimiter::new(TenantLimits {
            concurrency: 2,
            ..TenantLimits::default()
        });
        let a1 = limiter.try_acquire(&tenant("a"));
        let a2 = limiter.try_acquire(&tenant("a"));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(
            limiter.try_acquire(&tenant("a")).err(),
            Some(Refusal::Concurrency)
        );
        // another tenant is not affected by a's requests
        assert!(limiter.try_acquire(&tenant("b")).is_ok());
        drop(a1);
        assert!(limiter.try_acquire(&tenant("a")).is_ok());
    }

    #[test]
    fn token_bucket_refills_at_the_rate() {
        let limiter = TenantLimiter::new(TenantLimits {
            rate_per_sec: 10.0,
            burst: 5,
            ..TenantLimits::default()
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.try_acquire_at(&tenant("a"), t0).is_ok());
        }
        let refused = limiter.try_acquire_at(&tenant("a"), t0).err();
        assert!(matches!(refused, Some(Refusal::Rate(_))), "{refused:?}");
        assert_eq!(refused.map(Refusal::retry_after_secs), Some(1));
        assert!(limiter.try_acquire_at(&tenant("b"), t0).is_ok());
        // 100 ms later one token is back, and only one
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.try_acquire_at(&tenant("a"), t1).is_ok());
        assert!(limiter.try_acquire_at(&tenant("a"), t1).is_err());
        // never more than the burst, however long the pause
        let t2 = t1 + Duration::from_secs(3600);
        let admitted = (0..20)
            .filter(|_| limiter.try_acquire_at(&tenant("a"), t2).is_ok())
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn slow_rates_ask_for_a_longer_wait() {
        let refusal = Refusal::Rate(Duration::from_millis(2500));
        assert_eq!(refusal.retry_after_secs(), 3);
        assert_eq!(Refusal::Rate(Duration::ZERO).retry_after_secs(), 1);
    }

    #[test]
    fn the_table_of_tenants_stays_bounded() {
        let limiter = TenantLimiter::new(TenantLimits {
            concurrency: 1,
            ..TenantLimits::default()
        });
        for i in 0..(MAX_TRACKED_TENANTS + 500) {
            let permit = limiter.try_acquire(&tenant(&format!("t{i}")));
            assert!(permit.is_ok());
        }
        assert!(limiter.tracked_tenants() <= MAX_TRACKED_TENANTS + 1);
        // a tenant with a request in flight is never forgotten (its limit would reset)
        let held = limiter.try_acquire(&tenant("busy"));
        assert!(held.is_ok());
        for i in 0..(MAX_TRACKED_TENANTS + 10) {
            drop(limiter.try_acquire(&tenant(&format!("u{i}"))));
        }
        assert_eq!(
            limiter.try_acquire(&tenant("busy")).err(),
            Some(Refusal::Concurrency)
        );
    }
}
