//! Set-based stock commits: the reservations of many orders, of any tenants, committed in one
//! statement (the `order_confirmed` consumer's batches). The transaction admits every tenant of
//! the batch (`app.tenant_ids`), so every part of the statement keys an order's rows by the
//! order's own tenant: reservations by `(tenant_id, order_id)`, products by `(tenant_id, sku)`,
//! the events by the reservation's tenant.

use longship_errors::Error;
use longship_messaging::{SetItem, SetTransition, fetch_per_item};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{db_error, parse_status};
use crate::domain::{self, CommitOutcome, ReservationStatus};
use crate::events;

/// One order's stock commit in a batch: its tenant, the order (`key`) and the trace context stored
/// with the event it writes.
pub type CommitItem = SetItem<Uuid>;

/// What a commit in a batch found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitResult {
    /// What happened, decided as [`super::commit`] decides it.
    pub outcome: CommitOutcome,
    /// The reservation's status before the commit (`None`: no reservation).
    pub found: Option<ReservationStatus>,
}

/// Commits the reservations of `items` at once, with the outcomes and rules of [`super::commit`]
/// for each (a held reservation commits, whatever its deadline; a committed one stays as it is;
/// a missing, released, expired or tombstoned one changes nothing), in one statement: it locks
/// the reservations in `(tenant, order)` order, then their products in `(tenant, sku)` byte order,
/// moves the held units (summed per product) out of the warehouse, marks the reservations
/// COMMITTED and writes a `stock_committed` event for each. Returns each item's result, in order
/// (an order named twice: the second finds it committed).
pub async fn commit_many(
    conn: &mut PgConnection,
    items: &[CommitItem],
) -> Result<Vec<CommitResult>, Error> {
    // a later item of the same order reads the first one's row
    let rows: Vec<((Option<String>,), bool)> = fetch_per_item(conn, &COMMIT, items)
        .await
        .map_err(db_error)?;
    let mut results = Vec::with_capacity(rows.len());
    for ((status,), is_first) in rows {
        let before = status.as_deref().map(parse_status).transpose()?;
        let found = match (is_first, domain::decide_commit(before)) {
            (true, _) | (false, CommitOutcome::NotReserved) => before,
            (false, _) => Some(ReservationStatus::Committed),
        };
        results.push(CommitResult {
            outcome: domain::decide_commit(found),
            found,
        });
    }
    Ok(results)
}

/// The set statement of [`commit_many`]: held reservations are committed, each with its
/// `stock_committed` event.
const COMMIT: SetTransition = SetTransition {
    event_type: events::STOCK_COMMITTED,
    from: ReservationStatus::Reserved.as_str(),
    to: ReservationStatus::Committed.as_str(),
    table: "reservations",
    key_column: "order_id",
    columns: "t.lines",
    effects: "held AS MATERIALIZED (
             SELECT found.tenant_id, l.sku, sum(l.quantity)::bigint AS quantity
             FROM found
             CROSS JOIN LATERAL jsonb_to_recordset(found.lines) AS l(sku text, quantity bigint)
             WHERE found.status = $6
             GROUP BY found.tenant_id, l.sku
         ), locked AS MATERIALIZED (
             SELECT p.tenant_id, p.sku, held.quantity
             FROM products p JOIN held ON p.tenant_id = held.tenant_id AND p.sku = held.sku
             ORDER BY p.tenant_id COLLATE \"C\", p.sku COLLATE \"C\"
             FOR UPDATE OF p
         ), moved AS (
             UPDATE products p
             SET on_hand = p.on_hand - locked.quantity, reserved = p.reserved - locked.quantity,
                 updated_at = now()
             FROM locked WHERE p.tenant_id = locked.tenant_id AND p.sku = locked.sku
         )",
    payload: "jsonb_build_object('order_id', found.key, 'lines', found.lines)",
    answer: "found.status",
};
