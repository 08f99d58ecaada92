//! Set-based captures: the authorized payments of many orders, of any tenants, captured in one
//! statement (the `order_confirmed` consumer's batches). The transaction admits every tenant of
//! the batch (`app.tenant_ids`), so every part of the statement keys an order's rows by the
//! order's own tenant: payments by `(tenant_id, order_id)`, accounts by `(tenant_id,
//! customer_id)`, the events by the payment's tenant.

use longship_errors::Error;
use longship_messaging::{SetItem, SetTransition, fetch_per_item};
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
    // a later item of the same order reads the first one's row
    let rows: Vec<(FoundRow, bool)> = fetch_per_item(conn, &CAPTURE, items)
        .await
        .map_err(db_error)?;
    let mut outcomes = Vec::with_capacity(rows.len());
    for (row, is_first) in rows {
        let payment = row.payment();
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

/// A row of [`CAPTURE`]: the payment as it was locked (all null: none).
#[derive(Clone, sqlx::FromRow)]
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

/// The set statement of [`capture_many`]: authorized payments are captured, each with its
/// `payment_captured` event.
const CAPTURE: SetTransition = SetTransition {
    event_type: events::PAYMENT_CAPTURED,
    from: PaymentStatus::Authorized.as_str(),
    to: PaymentStatus::Captured.as_str(),
    table: "payments",
    key_column: "order_id",
    columns: "t.id, t.order_id, t.customer_id, t.amount_cents, t.currency, t.decline_reason",
    effects: "held AS MATERIALIZED (
             SELECT tenant_id, customer_id, sum(amount_cents)::bigint AS amount
             FROM found WHERE status = $6 GROUP BY tenant_id, customer_id
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
         )",
    payload: "jsonb_build_object('payment_id', found.id, 'order_id', found.order_id,
                  'customer_id', found.customer_id, 'amount_cents', found.amount_cents,
                  'currency', found.currency)
              || CASE WHEN found.decline_reason IS NULL THEN '{}'::jsonb
                      ELSE jsonb_build_object('reason', found.decline_reason) END",
    answer: "found.id, found.order_id, found.customer_id, found.amount_cents, found.currency,
             found.status, found.decline_reason",
};
