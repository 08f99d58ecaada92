//! The consumer adapter: `orders.v1.order_confirmed` captures the order's payment.

use chrono::{DateTime, Utc};
use longship_messaging::{ConsumedPayload, EventContract, SetConsumer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{self, Capture};

/// What payment reads of `orders.v1.order_confirmed` (published by the order service), in the
/// shape of its newest schema version: the order and its total (the capture checks the held amount
/// against it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// Currency of the total.
    pub currency: String,
    /// What the customer pays.
    pub total_cents: i64,
    /// When the order was confirmed (version 2; a version 1 event's own time).
    pub confirmed_at: DateTime<Utc>,
}

impl ConsumedPayload for OrderConfirmed {
    const EVENT: EventContract = longship_contracts::ORDER_CONFIRMED;
}

/// A captured payment's log line, with a warning when the amount held differs from the confirmed
/// order's total; a capture that found nothing authorized is logged and counted.
fn report(confirmed: &OrderConfirmed, outcome: &Capture) {
    let payment = match outcome {
        Capture::NotCapturable(payment) => {
            return store::not_capturable(confirmed.order_id, payment.as_ref());
        }
        Capture::AlreadyCaptured(_) => return,
        Capture::Captured(payment) => payment,
    };
    if payment.amount_cents != confirmed.total_cents || payment.currency != confirmed.currency {
        tracing::warn!(
            order_id = %confirmed.order_id,
            authorized_cents = payment.amount_cents,
            order_total_cents = confirmed.total_cents,
            "captured amount differs from the confirmed order total"
        );
    }
    tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, amount_cents = payment.amount_cents, "payment captured");
}

/// Captures the order's payment when the order service confirms the order (durable consumer
/// `payment-order-confirmed`).
///
/// The captures that wait together share a transaction and one statement
/// ([`store::capture_many`]), whatever their tenants; an event handled alone runs it as a set of
/// one. A batch that would wait on a lock (an Authorize on the same account, another replica's
/// batch) gives way and is handled event by event.
pub const ON_ORDER_CONFIRMED: SetConsumer<OrderConfirmed, Uuid, Capture> = SetConsumer::new(
    "payment-order-confirmed",
    |confirmed| confirmed.order_id,
    |tx, items| Box::pin(store::capture_many(tx, items)),
    report,
);
