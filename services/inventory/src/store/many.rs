//! Set-based stock commits: the reservations of many orders, of any tenants, committed in one
//! statement (the `order_confirmed` consumer's batches). The transaction admits every tenant of
//! the batch (`app.tenant_ids`), so every part of the statement keys an order's rows by the
//! order's own tenant: reservations by `(tenant_id, order_id)`, products by `(tenant_id, sku)`,
//! the events by the reservation's tenant.

use longship_errors::Error;
use longship_messaging::{SetItem, fetch_per_item, first_of_each};
use sqlx::PgConnection;
use uuid::Uuid;

use super::db_error;
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
    // each (tenant, order) once: a later item of the same order reads the first one's result
    let (unique, slots) = first_of_each(items);
    let found = lock_and_commit(conn, &unique).await?;
    Ok(slots
        .into_iter()
        .map(|(slot, is_first)| {
            let before = found[slot];
            let found = match (is_first, domain::decide_commit(before)) {
                (true, _) | (false, CommitOutcome::NotReserved) => before,
                (false, _) => Some(ReservationStatus::Committed),
            };
            CommitResult {
                outcome: domain::decide_commit(found),
                found,
            }
        })
        .collect())
}

/// The statement of [`commit_many`] for distinct orders; each order's reservation status as it
/// was locked (`None`: no reservation).
async fn lock_and_commit(
    conn: &mut PgConnection,
    items: &[&CommitItem],
) -> Result<Vec<Option<ReservationStatus>>, Error> {
    let rows: Vec<(i64, Option<String>)> = fetch_per_item(
        conn,
        "WITH item AS (
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[])
                 WITH ORDINALITY AS u(tenant_id, order_id, event_id, traceparent, n)
         ), r AS MATERIALIZED (
             SELECT res.tenant_id, res.order_id, res.status, res.lines
             FROM reservations res
             JOIN item ON res.tenant_id = item.tenant_id AND res.order_id = item.order_id
             ORDER BY res.tenant_id COLLATE \"C\", res.order_id
             FOR UPDATE OF res
         ), held AS MATERIALIZED (
             SELECT r.tenant_id, l.sku, sum(l.quantity)::bigint AS quantity
             FROM r CROSS JOIN LATERAL jsonb_to_recordset(r.lines) AS l(sku text, quantity bigint)
             WHERE r.status = $6
             GROUP BY r.tenant_id, l.sku
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
         ), committed AS (
             UPDATE reservations res SET status = $7, updated_at = now()
             FROM r WHERE r.status = $6 AND res.tenant_id = r.tenant_id AND res.order_id = r.order_id
         ), event AS (
             INSERT INTO outbox (id, tenant_id, event_type, schema_version, payload, traceparent)
             SELECT item.event_id, r.tenant_id, $5, 1,
                    jsonb_build_object('order_id', r.order_id, 'lines', r.lines), item.traceparent
             FROM r JOIN item ON item.tenant_id = r.tenant_id AND item.order_id = r.order_id
             WHERE r.status = $6
         )
         SELECT item.n, r.status
         FROM item LEFT JOIN r ON r.tenant_id = item.tenant_id AND r.order_id = item.order_id
         ORDER BY item.n",
        items,
        events::STOCK_COMMITTED,
        |query| {
            query
                .bind(ReservationStatus::Reserved.as_str())
                .bind(ReservationStatus::Committed.as_str())
        },
    )
    .await
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(_, status)| {
            status
                .map(|s| {
                    ReservationStatus::parse(&s).ok_or_else(|| {
                        Error::internal(std::io::Error::other(format!(
                            "unknown reservation status {s:?}"
                        )))
                    })
                })
                .transpose()
        })
        .collect()
}
