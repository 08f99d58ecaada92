//! What `/readyz` answers: the database and NATS are reachable, migrations are applied, the
//! service's streams exist with the configured settings, and the process is not shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use sqlx::PgPool;

/// Readiness checks of one service.
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Option<PgPool>,
    worker_pool: std::sync::OnceLock<PgPool>,
    nats: Option<async_nats::Client>,
    migrated: AtomicBool,
    /// [`STREAMS_UNCHECKED`], [`STREAMS_PENDING`] or [`STREAMS_OK`].
    streams: AtomicU8,
    draining: AtomicBool,
}

/// No streams to wait for (no `streams` check).
const STREAMS_UNCHECKED: u8 = 0;
/// The streams are being created or checked.
const STREAMS_PENDING: u8 = 1;
/// The streams exist with the configured settings.
const STREAMS_OK: u8 = 2;

/// The result of one readiness evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadinessReport {
    /// All checks passed.
    pub ready: bool,
    /// Check name -> "ok" or the failure.
    pub checks: std::collections::BTreeMap<&'static str, String>,
}

impl Readiness {
    /// Checks for a service with (optionally) a database and NATS.
    pub fn new(pool: Option<PgPool>, nats: Option<async_nats::Client>) -> Readiness {
        Readiness {
            inner: Arc::new(Inner {
                pool,
                worker_pool: std::sync::OnceLock::new(),
                nats,
                migrated: AtomicBool::new(false),
                streams: AtomicU8::new(STREAMS_UNCHECKED),
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// The pool the checks probe (for the pool gauges of `/metrics`).
    pub(crate) fn pool(&self) -> Option<&PgPool> {
        self.inner.pool.as_ref()
    }

    /// Adds the pool of background work, for its gauges (the checks probe the request pool).
    pub fn set_worker_pool(&self, pool: PgPool) {
        let _ = self.inner.worker_pool.set(pool);
    }

    /// The pool of background work, if set.
    pub(crate) fn worker_pool(&self) -> Option<&PgPool> {
        self.inner.worker_pool.get()
    }

    /// The NATS client the checks look at (for `nats_connected`).
    pub(crate) fn nats(&self) -> Option<&async_nats::Client> {
        self.inner.nats.as_ref()
    }

    /// Marks migrations as applied.
    pub fn set_migrated(&self) {
        self.inner.migrated.store(true, Ordering::SeqCst);
    }

    /// Adds the `streams` check, pending until [`Readiness::set_streams_ready`].
    pub fn expect_streams(&self) {
        let _ = self.inner.streams.compare_exchange(
            STREAMS_UNCHECKED,
            STREAMS_PENDING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Marks the service's streams as created (or checked) with the configured settings.
    pub fn set_streams_ready(&self) {
        self.inner.streams.store(STREAMS_OK, Ordering::SeqCst);
    }

    /// Marks the process as draining: readiness fails from now on so load balancers stop sending work.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Runs every check (bounded to two seconds each).
    pub async fn check(&self) -> ReadinessReport {
        let mut checks = std::collections::BTreeMap::new();
        if let Some(pool) = &self.inner.pool {
            let probe = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("SELECT 1").execute(pool),
            )
            .await;
            let result = match probe {
                Ok(Ok(_)) => "ok".to_owned(),
                Ok(Err(e)) => format!("unreachable: {}", short(&e.to_string())),
                Err(_) => "timeout".to_owned(),
            };
            checks.insert("database", result);
            let migrated = self.inner.migrated.load(Ordering::SeqCst);
            checks.insert(
                "migrations",
                if migrated {
                    "ok".into()
                } else {
                    "pending".into()
                },
            );
        }
        if let Some(nats) = &self.inner.nats {
            let state = nats.connection_state();
            let ok = matches!(state, async_nats::connection::State::Connected);
            checks.insert(
                "nats",
                if ok {
                    "ok".into()
                } else {
                    format!("{state:?}").to_lowercase()
                },
            );
        }
        match self.inner.streams.load(Ordering::SeqCst) {
            STREAMS_PENDING => {
                checks.insert("streams", "pending".into());
            }
            STREAMS_OK => {
                checks.insert("streams", "ok".into());
            }
            _ => {}
        }
        if self.inner.draining.load(Ordering::SeqCst) {
            checks.insert("lifecycle", "draining".into());
        }
        let ready = checks.values().all(|v| v == "ok");
        ReadinessReport { ready, checks }
    }
}

fn short(message: &str) -> String {
    // enough to diagnose ("connection refused"), not a dump of internals
    message.chars().take(80).collect()
}
