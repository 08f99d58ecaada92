//! The audit log: every state-changing admin call (when, actor = the JWT `sub`, tenant, action,
//! target, reason), written in the transaction of the action it records, read newest first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Action;

/// One audited admin call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRecord {
    /// The record's id (time-ordered).
    pub id: Uuid,
    /// When the action committed.
    pub at: DateTime<Utc>,
    /// The caller's JWT `sub`.
    pub actor: String,
    /// The tenant of the object acted on (null when it has none, e.g. an undecodable dead letter).
    pub tenant_id: Option<String>,
    /// What was done: `saga.retry`, `saga.cancel`, `dead_letter.redrive`, `dead_letter.discard`.
    pub action: String,
    /// The object's id (a saga's or a dead letter's).
    pub target: String,
    /// The operator's reason, where the action takes one.
    pub reason: Option<String>,
}

/// A page of audit records, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// The records.
    pub items: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Records `action` on `target` by `actor` in the caller's transaction `conn` (it commits, or
/// rolls back, with the action).
pub async fn record(
    conn: &mut PgConnection,
    actor: &str,
    tenant: Option<&str>,
    action: Action,
    target: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_audit (id, actor, tenant_id, action, target, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(actor)
    .bind(tenant)
    .bind(action.0)
    .bind(target)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of records newest first, of `tenant` only when given; `cursor` is the previous page's
/// `next_cursor`, `limit` 1-100.
pub async fn list(
    pool: &PgPool,
    tenant: Option<&str>,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<AuditPage, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at, actor, tenant_id, action, target, reason FROM admin_audit
         WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(cursor)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(AuditRecord {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                tenant_id: r.try_get("tenant_id")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(AuditPage { items, next_cursor })
}
