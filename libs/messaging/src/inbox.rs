//! The inbox: which events each consumer has handled, so a redelivery (or a redrive) is a no-op.

use sqlx::PgConnection;

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
