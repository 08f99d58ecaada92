//! The transactional outbox: [`enqueue`] (or [`OutboxRow`] inside a statement of the caller's own)
//! in the caller's transaction, [`OutboxRelay`] to publish.
//!
//! Table (this library's schema, `migrations/0001_outbox_inbox.sql`): `outbox(seq bigserial
//! primary key, id uuid unique, tenant_id text, event_type text, schema_version int, payload jsonb,
//! traceparent text, occurred_at timestamptz, published_at timestamptz)`, with a statement trigger
//! that `NOTIFY outbox` on insert (unless the connection opted out).

mod row;

pub(crate) use row::OUTBOX_INSERT;
pub use row::{EnqueueError, MAX_PAYLOAD_BYTES, OutboxError, OutboxRow, enqueue};

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::join_all;
use sqlx::{PgPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metric_families::{
    OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED,
};
use crate::{EventEnvelope, Naming};

/// The Postgres channel the outbox trigger notifies.
pub const CHANNEL: &str = "outbox";

/// Wakes a service's outbox relay after a commit that enqueued events: the relay then publishes at
/// once instead of at its next poll (the services' connections do not `NOTIFY`). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RelayWake(Arc<Notify>);

impl RelayWake {
    /// Wakes the relay (several wakes before it runs count as one).
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Relay tuning.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows claimed and published per batch (acks awaited together).
    pub batch_size: i64,
    /// Fallback poll when no notification arrives.
    pub poll_interval: Duration,
    /// How long to wait for JetStream acks of one batch.
    pub ack_timeout: Duration,
    /// Sent rows older than this are deleted.
    pub retention: Duration,
    /// How long a woken relay waits before claiming, when its last batch was not full, so that
    /// the events of commits close together share one claim, one publish round and one mark (a
    /// few milliseconds of event latency for several times fewer relay transactions at moderate
    /// load; under heavy load batches are full and nobody waits).
    pub linger: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 256,
            poll_interval: Duration::from_millis(500),
            ack_timeout: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 3600),
            linger: Duration::from_millis(2),
        }
    }
}

/// Publishes committed outbox rows to JetStream. Several replicas may run one each: rows are claimed
/// with `FOR UPDATE SKIP LOCKED`, and JetStream drops the rare duplicate by `Nats-Msg-Id`.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    js: jetstream::Context,
    naming: Naming,
    config: RelayConfig,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("config", &self.config)
            .finish()
    }
}

struct Pending {
    /// Its place in the outbox (insertion order).
    seq: i64,
    id: Uuid,
    tenant_id: String,
    event_type: String,
    schema_version: i32,
    payload: serde_json::Value,
    traceparent: Option<String>,
    occurred_at: DateTime<Utc>,
}

impl OutboxRelay {
    /// A relay over `pool`'s outbox.
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        naming: Naming,
        config: RelayConfig,
    ) -> OutboxRelay {
        crate::metric_families::zero_relay();
        OutboxRelay {
            pool,
            js,
            naming,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the relay now (call after committing a transaction that enqueued events, to skip the
    /// LISTEN/NOTIFY round trip in the same process).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A handle that wakes this relay, for the parts of a service that commit events (the saga
    /// engine, the consumer runner, request handlers).
    pub fn waker(&self) -> RelayWake {
        RelayWake(Arc::clone(&self.wake))
    }

    /// Runs until `shutdown`: publishes whenever woken (in-process, LISTEN/NOTIFY, or the poll
    /// fallback); backs off while NATS or Postgres is unavailable; nothing is dropped.
    pub async fn run(self, shutdown: CancellationToken) {
        let listener = self.spawn_listener(shutdown.clone());
        let mut backoff = Duration::from_millis(50);
        let mut last_prune = tokio::time::Instant::now();
        let mut last_gauge = tokio::time::Instant::now() - Duration::from_secs(10);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.publish_batch().await {
                Ok(n) if n as i64 >= self.config.batch_size => {
                    backoff = Duration::from_millis(50);
                    continue;
                }
                Ok(_) => backoff = Duration::from_millis(50),
                Err(e) => {
                    metrics::counter!(OUTBOX_PUBLISH_FAILURES.name).increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox publish failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            if last_gauge.elapsed() >= Duration::from_secs(1) {
                self.record_backlog().await;
                last_gauge = tokio::time::Instant::now();
            }
            if last_prune.elapsed() >= Duration::from_secs(60) {
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "pruning sent outbox rows failed");
                }
                last_prune = tokio::time::Instant::now();
            }
            tokio::select! {
                () = self.wake.notified() => {
                    if !self.config.linger.is_zero() {
                        tokio::select! {
                            () = tokio::time::sleep(self.config.linger) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                }
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
        listener.abort();
    }

    fn spawn_listener(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        let wake = Arc::clone(&self.wake);
        tokio::spawn(async move {
            loop {
                let listening = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(CHANNEL).await?;
                    loop {
                        listener.recv().await?;
                        wake.notify_one();
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), sqlx::Error>(())
                };
                tokio::select! {
                    result = listening => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "outbox listener lost; polling meanwhile");
                        }
                    }
                    () = shutdown.cancelled() => return,
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Claims, publishes and marks one batch. Returns how many rows were sent.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        // The mark is committed asynchronously (no wait for the WAL flush): losing it in a Postgres
        // crash only means its rows are published again, which JetStream drops by `Nats-Msg-Id`
        // and consumers' inboxes drop after that. Every event's own row was committed durably by
        // the transaction that wrote it.
        // A wake stored by a commit before this point is answered by the claim below (the commit
        // precedes its wake, which precedes the claim's snapshot): consume it, so the loop does
        // not come back for rows this batch already sends. Commits after this point wake it again.
        let _ = self.wake.notified().now_or_never();
        let mut tx = self.pool.begin().await?;
        // Claims the batch and marks it sent in one statement: if a message is then not
        // acknowledged, its row and the rows after it are marked unsent again before the commit,
        // and a relay that dies before the commit leaves them all unsent. The mark's commit does
        // not wait for the WAL flush (`synchronous_commit` off for this transaction, set by the
        // same statement). The rows are found by their physical address (`ctid = ANY(...)`, a TID
        // scan in every plan, whatever the planner believes about the table's size).
        let rows = sqlx::query(
            "WITH claimed AS (
                 SELECT ctid AS tid FROM outbox WHERE published_at IS NULL
                 ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
             ), relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))
             UPDATE outbox SET published_at = now()
             WHERE ctid = ANY (ARRAY(SELECT tid FROM claimed)) AND EXISTS (SELECT 1 FROM relaxed)
             RETURNING seq, id, tenant_id, event_type, schema_version, payload, traceparent, occurred_at",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let mut pending: Vec<Pending> = rows
            .iter()
            .map(|r| {
                Ok(Pending {
                    seq: r.try_get("seq")?,
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    event_type: r.try_get("event_type")?,
                    schema_version: r.try_get("schema_version")?,
                    payload: r.try_get("payload")?,
                    traceparent: r.try_get("traceparent")?,
                    occurred_at: r.try_get("occurred_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        // RETURNING has no order: publish in insertion order
        pending.sort_unstable_by_key(|p| p.seq);

        // send every message first (pipelined), then await the acks together; each message has a
        // PRODUCER span from its send to its ack (crate::producer)
        let mut acks = Vec::with_capacity(pending.len());
        for row in &pending {
            let (subject, headers, body) = self.message(row)?;
            let id = row.id.to_string();
            let event = crate::producer::Traced {
                id: &id,
                tenant_id: &row.tenant_id,
                stored: row.traceparent.as_deref(),
            };
            match crate::producer::send(&self.js, subject, headers, body, event).await {
                (Ok(ack), span) => acks.push((row.seq, Some(ack), span)),
                (Err(_), span) => {
                    acks.push((row.seq, None, span));
                    break;
                }
            }
        }
        let results = tokio::time::timeout(
            self.config.ack_timeout,
            join_all(acks.into_iter().map(|(seq, ack, span)| async move {
                let acked = match ack {
                    Some(ack) => ack.await.is_ok(),
                    None => false,
                };
                if !acked {
                    longship_telemetry::spans::record_failure(&span);
                }
                (seq, acked)
            })),
        )
        .await
        .map_err(|_| RelayError::AckTimeout)?;
        // the acknowledged prefix stays marked; anything from the first failure on (or never
        // sent) is marked unsent again and waits (keeps insertion order)
        let sent = results.iter().take_while(|(_, ok)| *ok).count();
        let unsent: Vec<i64> = pending.iter().skip(sent).map(|p| p.seq).collect();
        if !unsent.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = NULL WHERE seq = ANY($1)")
                .bind(&unsent)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        metrics::counter!(OUTBOX_PUBLISHED.name).increment(sent as u64);
        if sent < pending.len() {
            return Err(RelayError::Nats(
                "some messages were not acknowledged".into(),
            ));
        }
        Ok(sent)
    }

    fn message(
        &self,
        row: &Pending,
    ) -> Result<(String, async_nats::HeaderMap, bytes::Bytes), RelayError> {
        let tenant = longship_tenant::TenantId::parse(&row.tenant_id)
            .map_err(|_| RelayError::Corrupt(row.id))?;
        let envelope = EventEnvelope {
            id: row.id,
            event_type: row.event_type.clone(),
            tenant_id: tenant.clone(),
            occurred_at: row.occurred_at,
            schema_version: row.schema_version as u32,
            data: row.payload.clone(),
        };
        let body = serde_json::to_vec(&envelope).map_err(|_| RelayError::Corrupt(row.id))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            row.id.to_string().as_str(),
        );
        longship_tenant::nats::inject(&mut headers, &tenant);
        headers.insert("Event-Type", row.event_type.as_str());
        headers.insert("Event-Time", row.occurred_at.to_rfc3339().as_str());
        Ok((self.naming.subject(&row.event_type), headers, body.into()))
    }

    async fn record_backlog(&self) {
        let row = sqlx::query(
            "SELECT count(*) AS n, EXTRACT(EPOCH FROM (now() - min(occurred_at)))::float8 AS age
             FROM outbox WHERE published_at IS NULL",
        )
        // planned afresh each time (a cached plan made while the table was small would keep
        // scanning the whole table as it grows, until something re-analyzes it)
        .persistent(false)
        .fetch_one(&self.pool)
        .await;
        if let Ok(row) = row {
            let n: i64 = row.try_get("n").unwrap_or(0);
            let age: Option<f64> = row.try_get("age").unwrap_or(None);
            metrics::gauge!(OUTBOX_BACKLOG.name).set(n as f64);
            metrics::gauge!(OUTBOX_OLDEST_AGE.name).set(age.unwrap_or(0.0));
        }
    }

    /// Deletes sent rows older than the retention; returns how many. Rows are appended in `seq`
    /// order, so the rows past the retention are (all but a few) a prefix of the table by `seq`:
    /// the statement reads that prefix along the primary key up to the first younger row and
    /// deletes its sent rows, at most 10,000 per statement, never scanning the rows it keeps.
    /// (A row that was still unsent is kept; a late row inside the prefix waits for the next
    /// round.) The relay runs it once a minute.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let secs = self.config.retention.as_secs_f64();
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM outbox WHERE seq IN (
                     SELECT seq FROM outbox
                     WHERE seq < COALESCE(
                             (SELECT seq FROM outbox WHERE occurred_at >= now() - make_interval(secs => $1)
                              ORDER BY seq LIMIT 1),
                             9223372036854775807)
                       AND published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)
                     ORDER BY seq LIMIT 10000)",
            )
            .bind(secs)
            .persistent(false)
            .execute(&self.pool)
            .await?
            .rows_affected();
            pruned += done;
            if done < 10_000 {
                break;
            }
        }
        if pruned > 0 {
            tracing::debug!(rows = pruned, "pruned sent outbox rows");
        }
        Ok(pruned)
    }
}

/// Why a relay batch failed (rows stay pending and are retried).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// NATS failed.
    #[error("nats: {0}")]
    Nats(String),
    /// JetStream did not acknowledge in time.
    #[error("timed out waiting for JetStream acks")]
    AckTimeout,
    /// A row cannot be encoded (should be impossible: rows are validated on enqueue).
    #[error("outbox row {0} cannot be encoded")]
    Corrupt(Uuid),
}
