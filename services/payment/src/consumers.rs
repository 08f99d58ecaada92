//! The consumer adapter: `orders.v1.order_confirmed` captures the order's payment.

use longship_messaging::{HandlerError, SetConsumer, SetItem};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::events::{self, OrderConfirmed};
use crate::store::{self, Capture};

/// The durable consumer capturing payments on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "payment-order-confirmed";

/// Captures the order's payment when the order service confirms the order.
///
/// The captures that wait together share a transaction and one statement
/// ([`store::capture_many`]), whatever their tenants; an event handled alone runs it as a set of
/// one. A batch that would wait on a lock (an Authorize on the same account, another replica's
/// batch) gives way and is handled event by event.
#[derive(Debug, Clone, Default)]
pub struct CaptureOnOrderConfirmed;

#[async_trait::async_trait]
impl SetConsumer for CaptureOnOrderConfirmed {
    type Event = OrderConfirmed;
    type Key = Uuid;
    type Outcome = Capture;
    const EVENT: &'static str = events::ORDER_CONFIRMED;
    const DURABLE_NAME: &'static str = ORDER_CONFIRMED_CONSUMER;
    const STREAM: &'static str = longship_contracts::ORDERS.name;

    fn key(confirmed: &OrderConfirmed) -> Uuid {
        confirmed.order_id
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        items: &[SetItem<Uuid>],
    ) -> Result<Vec<Capture>, HandlerError> {
        store::capture_many(tx, items)
            .await
            .map_err(HandlerError::with_sources)
    }

    /// A captured payment's log line, with a warning when the amount held differs from the
    /// confirmed order's total; a capture that found nothing authorized is logged and counted.
    fn report(&self, confirmed: &OrderConfirmed, outcome: &Capture) {
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
}
