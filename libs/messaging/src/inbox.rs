//! The inbox: which events each consumer has handled, so a redelivery (or a redrive) is a no-op.

use std::collections::HashSet;
use std::time::Duration;

use longship_tenant::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::EventEnvelope;

/// Scopes the rest of the transaction to the event's tenant (a transaction-local setting, so
/// row-level security holds every handler to its own event's tenant, also in a batch) and records
/// the event in `consumer`'s inbox; `false` when that consumer handled it before. Also used by a
/// dead letter's redrive ([`crate::dead_letter::deliver`]).
pub(crate) async fn claim(
    tx: &mut PgConnection,
    consumer: &str,
    envelope: &EventEnvelope,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "WITH tenant AS (SELECT set_config('app.tenant_id', $3, true))
         INSERT INTO inbox (consumer, event_id, tenant_id) SELECT $1, $2, $3 FROM tenant
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(envelope.id)
    .bind(envelope.tenant_id.as_str())
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A set-based batch's claim, in one statement: scopes the rest of the transaction to the tenants
/// of `events` (`app.tenant_ids`, as `longship_tenant::begin_set` does) with `lock_timeout`, and
/// records each event (each once, under its own tenant) in `consumer`'s inbox. Returns the ids of
/// the events it recorded now (the others were handled before).
pub(crate) async fn claim_set(
    tx: &mut PgConnection,
    consumer: &str,
    events: &[&EventEnvelope],
    lock_timeout: Duration,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut tenants: Vec<TenantId> = events.iter().map(|e| e.tenant_id.clone()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let owners: Vec<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
    // `scope` runs before any row is inserted: every row is built from it, so the inbox's
    // tenant-set policy checks the rows against the batch's tenants
    let claimed: Vec<Uuid> = sqlx::query_scalar(
        "WITH scope AS MATERIALIZED (
             SELECT set_config('app.tenant_ids', $1, true) AS tenants,
                    set_config('lock_timeout', $2, true) AS lock_timeout
         )
         INSERT INTO inbox (consumer, event_id, tenant_id)
         SELECT $3, u.event_id, u.tenant_id
         FROM scope CROSS JOIN unnest($4::uuid[], $5::text[]) AS u(event_id, tenant_id)
         ON CONFLICT DO NOTHING
         RETURNING event_id",
    )
    .bind(longship_tenant::tenant_set_literal(&tenants))
    .bind(format!("{}ms", lock_timeout.as_millis().max(1)))
    .bind(consumer)
    .bind(ids)
    .bind(owners)
    .fetch_all(tx)
    .await?;
    Ok(claimed.into_iter().collect())
}
