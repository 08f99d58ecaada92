//! Dead letters kept in Postgres (`dead_letter`, migration 0003): the consumer runner stores each
//! event it gives up on ([`store`]) before it terminates the delivery; the admin API lists them
//! ([`list`]), redrives one to its consumer ([`lock`], [`deliver`], [`remove`]: the handler runs
//! with the inbox row in the caller's transaction, so a redrive takes effect at most once) and
//! discards one ([`lock`], [`remove`]). `dead_letters_waiting{consumer}` is refreshed from the
//! table ([`refresh_waiting`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::EventEnvelope;
use crate::metric_families::DEAD_LETTERS_WAITING;
use crate::{EventHandler, HandlerError};

/// A dead letter as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Its id (time-ordered).
    pub id: Uuid,
    /// The durable consumer that gave up on it.
    pub consumer: String,
    /// The event's id (null when the message was not an event envelope).
    pub event_id: Option<Uuid>,
    /// The event's type.
    pub event_type: Option<String>,
    /// Where the event was published.
    pub subject: String,
    /// The event's tenant.
    pub tenant_id: Option<String>,
    /// Failed deliveries (and redrives).
    pub deliveries: i64,
    /// The handler's last error.
    pub error: String,
    /// When it was (last) dead-lettered.
    pub dead_lettered_at: DateTime<Utc>,
    /// The message body: the event envelope as JSON, or the bytes as text when they are not JSON.
    pub payload: serde_json::Value,
}

/// A page of dead letters, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub items: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Which dead letters [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this consumer's.
    pub consumer: Option<String>,
    /// Only this tenant's (a tenant admin's own, always).
    pub tenant: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Page size (1-100).
    pub limit: i64,
}

/// What the runner gave up on.
#[derive(Debug)]
pub struct NewDeadLetter<'a> {
    /// The durable consumer.
    pub consumer: &'a str,
    /// The message's subject.
    pub subject: &'a str,
    /// Deliveries so far.
    pub deliveries: i64,
    /// The last error.
    pub error: &'a str,
    /// The message body.
    pub payload: &'a [u8],
    /// The message headers (name -> values).
    pub headers: serde_json::Value,
}

/// Stores a dead letter (or, for an event dead-lettered again by the same consumer, updates its
/// row). The runner terminates the delivery only after this committed.
pub async fn store(pool: &PgPool, letter: &NewDeadLetter<'_>) -> Result<(), sqlx::Error> {
    let envelope = EventEnvelope::decode(letter.payload).ok();
    sqlx::query(
        "INSERT INTO dead_letter (id, consumer, event_id, event_type, subject, tenant_id, deliveries,
                                  error, payload, headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (consumer, event_id) WHERE event_id IS NOT NULL DO UPDATE
         SET deliveries = dead_letter.deliveries + EXCLUDED.deliveries, error = EXCLUDED.error,
             dead_lettered_at = now()",
    )
    .bind(Uuid::now_v7())
    .bind(letter.consumer)
    .bind(envelope.as_ref().map(|e| e.id))
    .bind(envelope.as_ref().map(|e| e.event_type.as_str()))
    .bind(letter.subject)
    .bind(envelope.as_ref().map(|e| e.tenant_id.as_str()))
    .bind(letter.deliveries)
    .bind(truncate(letter.error, 512))
    .bind(letter.payload)
    .bind(&letter.headers)
    .execute(pool)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, consumer, event_id, event_type, subject, tenant_id, deliveries, error, dead_lettered_at, payload";

/// A page of dead letters, newest first.
pub async fn list(pool: &PgPool, filter: &DeadLetterFilter) -> Result<DeadLetterPage, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dead_letter
         WHERE ($1::text IS NULL OR consumer = $1) AND ($2::text IS NULL OR tenant_id = $2)
           AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(filter.consumer.as_deref())
        .bind(filter.tenant.as_deref())
        .bind(filter.cursor)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?;
    let items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    Ok(DeadLetterPage { items, next_cursor })
}

/// A dead letter locked in the caller's transaction for a redrive or a discard.
#[derive(Debug)]
pub struct LockedDeadLetter {
    /// Its id.
    pub id: Uuid,
    /// Its consumer.
    pub consumer: String,
    /// Its tenant.
    pub tenant_id: Option<String>,
    /// The message body.
    pub payload: Vec<u8>,
}

/// Locks dead letter `id` (of `tenant` only, when given: another tenant's is `None`, as is one
/// without a tenant) until the caller's transaction ends; a concurrent redrive or discard of the
/// same dead letter waits, then finds it gone.
pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> Result<Option<LockedDeadLetter>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, consumer, tenant_id, payload FROM dead_letter
         WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) FOR UPDATE",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(LockedDeadLetter {
            id: r.try_get("id")?,
            consumer: r.try_get("consumer")?,
            tenant_id: r.try_get("tenant_id")?,
            payload: r.try_get("payload")?,
        })
    })
    .transpose()
}

/// Delivers `envelope` to `handler` as consumer `consumer` in the caller's transaction, with the
/// inbox row: `Ok(false)` when the consumer had handled it already (then nothing runs). On an
/// error the caller rolls back (to a savepoint taken before).
pub async fn deliver(
    conn: &mut PgConnection,
    consumer: &str,
    handler: &Arc<dyn EventHandler>,
    envelope: &EventEnvelope,
) -> Result<bool, HandlerError> {
    if !crate::inbox::claim(conn, consumer, envelope).await? {
        return Ok(false);
    }
    handler.handle(conn, envelope).await?;
    Ok(true)
}

/// Deletes dead letter `id` in the caller's transaction (after a redrive, or discarded).
pub async fn remove(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM dead_letter WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed redrive on dead letter `id`: one more delivery, the new error.
pub async fn failed_again(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dead_letter SET deliveries = deliveries + 1, error = $2, dead_lettered_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(truncate(error, 512))
    .execute(conn)
    .await?;
    Ok(())
}

/// Dead letters waiting per consumer, of `tenant` only when given.
pub async fn waiting(
    pool: &PgPool,
    tenant: Option<&str>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT consumer, count(*) AS n FROM dead_letter
         WHERE ($1::text IS NULL OR tenant_id = $1) GROUP BY consumer",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("consumer")?, r.try_get("n")?)))
        .collect()
}

/// Sets `dead_letters_waiting{consumer}` for each of `consumers` (and any other consumer that has
/// dead letters in this database) from the table. Failures are logged and leave the gauge as it was.
pub async fn refresh_waiting(pool: &PgPool, consumers: &[String]) {
    match waiting(pool, None).await {
        Ok(counts) => {
            for consumer in consumers {
                if !counts.iter().any(|(c, _)| c == consumer) {
                    metrics::gauge!(DEAD_LETTERS_WAITING.name, "consumer" => consumer.clone())
                        .set(0.0);
                }
            }
            for (consumer, n) in counts {
                metrics::gauge!(DEAD_LETTERS_WAITING.name, "consumer" => consumer).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "refreshing dead_letters_waiting failed"),
    }
}

fn view(row: &PgRow) -> Result<DeadLetter, sqlx::Error> {
    let payload: Vec<u8> = row.try_get("payload")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        consumer: row.try_get("consumer")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        subject: row.try_get("subject")?,
        tenant_id: row.try_get("tenant_id")?,
        deliveries: row.try_get("deliveries")?,
        error: row.try_get("error")?,
        dead_lettered_at: row.try_get("dead_lettered_at")?,
        payload: serde_json::from_slice(&payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&payload).into_owned())
        }),
    })
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
