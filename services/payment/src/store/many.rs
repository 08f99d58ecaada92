//! Set-based captures: the authorized payments of many orders, of any tenants, captured in one
//! statement (the `order_confirmed` consumer's batches). The transaction admits every tenant of
//! the batch (`app.tenant_ids`), so every part of the statement keys an order's rows by the
//! order's own tenant: payments by `(tenant_id, order_id)`, accounts by `(tenant_id,
//! customer_id)`, the events by the payment's tenant.

use longship_errors::Error;
use longship_messaging::{SetItem, fetch_per_item, first_of_each};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Capture, Payment, db_error};
use crate::domain::{self, CaptureAction, PaymentStatus};
use crate::events;

/// One order's capture in a batch: its tenant, the order (`key`) and the trace context stored
/// with the event it writes.
pub type CaptureItem = SetItem<Uuid>;

/// Captures the authorized payments of `items` at once, with the outcomes and rules of
/// [`super::capture`] for each (an authorized payment captures; a captured one stays as it is; a
/// voided, declined or missing one captures nothing), in one statement: it locks the payments in
/// `(tenant, order)` order, then their accounts in `(tenant, customer)` byte order (payment rows
/// before accounts, as Authorize and Void lock them), takes the captured amounts (summed per
/// account) out of the accounts, marks the payments CAPTURED and writes a `payment_captured` event
/// for each. Returns each item's outcome, in order (an order named twice: the second finds it
/// captured).
pub async fn capture_many(
    conn: &mut PgConnection,
    items: &[CaptureItem],
) -> Result<Vec<Capture>, Error> {
    // each (tenant, order) once: a later item of the same order reads the first one's result
    let (unique, slots) = first_of_each(items);
    let found = lock_and_capture(conn, &unique).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    for (slot, is_first) in slots {
        let payment = found[slot].clone();
        let status = payment.as_ref().map(Payment::parsed_status).transpose()?;
        outcomes.push(match (domain::decide_capture(status), payment) {
            (CaptureAction::Capture, Some(mut payment)) => {
                payment.status = PaymentStatus::Captured.as_str().to_owned();
                if is_first {
                    Capture::Captured(payment)
                } else {
                    Capture::AlreadyCaptured(payment)
                }
            }
            (CaptureAction::AlreadyCaptured, Some(payment)) => Capture::AlreadyCaptured(payment),
            (_, payment) => Capture::NotCapturable(payment),
        });
    }
    Ok(outcomes)
}

/// A row of [`lock_and_capture`]: the payment as it was locked (all null: none).
#[derive(sqlx::FromRow)]
struct FoundRow {
    id: Option<Uuid>,
    order_id: Option<Uuid>,
    customer_id: Option<String>,
    amount_cents: Option<i64>,
    currency: Option<String>,
    status: Option<String>,
    decline_reason: Option<String>,
}

impl FoundRow {
    fn payment(self) -> Option<Payment> {
        Some(Payment {
            id: self.id?,
            order_id: self.order_id?,
            customer_id: self.customer_id?,
            amount_cents: self.amount_cents?,
            currency: self.currency?,
            status: self.status?,
            decline_reason: self.decline_reason,
        })
    }
}

/// The statement of [`capture_many`] for distinct orders; each order's payment as it was locked.
async fn lock_and_capture(
    conn: &mut PgConnection,
    items: &[&CaptureItem],
) -> Result<Vec<Option<Payment>>, Error> {
    let rows: Vec<FoundRow> = fetch_per_item(
        conn,
        "WITH item AS (
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[])
                 WITH ORDINALITY AS u(tenant_id, order_id, event_id, traceparent, n)
         ), p AS MATERIALIZED (
             SELECT pay.tenant_id, pay.id, pay.order_id, pay.customer_id, pay.amount_cents,
                    pay.currency, pay.status, pay.decline_reason
             FROM payments pay
             JOIN item ON pay.tenant_id = item.tenant_id AND pay.order_id = item.order_id
             ORDER BY pay.tenant_id COLLATE \"C\", pay.order_id
             FOR UPDATE OF pay
         ), held AS MATERIALIZED (
             SELECT tenant_id, customer_id, sum(amount_cents)::bigint AS amount
             FROM p WHERE status = $6 GROUP BY tenant_id, customer_id
         ), locked AS MATERIALIZED (
             SELECT a.tenant_id, a.customer_id, held.amount
             FROM accounts a
             JOIN held ON a.tenant_id = held.tenant_id AND a.customer_id = held.customer_id
             ORDER BY a.tenant_id COLLATE \"C\", a.customer_id COLLATE \"C\"
             FOR UPDATE OF a
         ), funds AS (
             UPDATE accounts a
             SET held_cents = a.held_cents - locked.amount,
                 balance_cents = a.balance_cents - locked.amount, updated_at = now()
             FROM locked WHERE a.tenant_id = locked.tenant_id AND a.customer_id = locked.customer_id
         ), captured AS (
             UPDATE payments pay SET status = $7, updated_at = now()
             FROM p WHERE p.status = $6 AND pay.tenant_id = p.tenant_id AND pay.id = p.id
         ), event AS (
             INSERT INTO outbox (id, tenant_id, event_type, schema_version, payload, traceparent)
             SELECT item.event_id, p.tenant_id, $5, 1,
                    jsonb_build_object('payment_id', p.id, 'order_id', p.order_id,
                        'customer_id', p.customer_id, 'amount_cents', p.amount_cents,
                        'currency', p.currency)
                    || CASE WHEN p.decline_reason IS NULL THEN '{}'::jsonb
                            ELSE jsonb_build_object('reason', p.decline_reason) END,
                    item.traceparent
             FROM p JOIN item ON item.tenant_id = p.tenant_id AND item.order_id = p.order_id
             WHERE p.status = $6
         )
         SELECT p.id, p.order_id, p.customer_id, p.amount_cents, p.currency, p.status,
                p.decline_reason
         FROM item LEFT JOIN p ON p.tenant_id = item.tenant_id AND p.order_id = item.order_id
         ORDER BY item.n",
        items,
        events::PAYMENT_CAPTURED,
        |query| {
            query
                .bind(PaymentStatus::Authorized.as_str())
                .bind(PaymentStatus::Captured.as_str())
        },
    )
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().map(FoundRow::payment).collect())
}
