//! The consumer adapter: `orders.v1.order_confirmed` captures the order's payment.

use longship_messaging::{ConsumerSpec, EventEnvelope, EventHandler, HandlerError};
use sqlx::PgConnection;

use crate::events::{self, OrderConfirmed};
use crate::store::{self, Capture};

/// The durable consumer capturing payments on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "payment-order-confirmed";

/// The consumer's settings: the captures that wait together share a transaction (one commit for
/// all); a batch that would wait on a lock (an Authorize on the same account, another replica's
/// batch) gives way and is handled event by event.
pub fn order_confirmed() -> ConsumerSpec {
    ConsumerSpec::new(ORDER_CONFIRMED_CONSUMER, "ORDERS", events::ORDER_CONFIRMED).batched(32)
}

/// Captures the order's payment when the order service confirms the order.
#[derive(Debug, Clone, Default)]
pub struct CaptureOnOrderConfirmed;

#[async_trait::async_trait]
impl EventHandler for CaptureOnOrderConfirmed {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        if event.event_type != events::ORDER_CONFIRMED {
            return Ok(());
        }
        let confirmed: OrderConfirmed = event.read()?;
        let outcome = store::capture(tx, &event.tenant_id, confirmed.order_id)
            .await
            .map_err(|e| HandlerError(format!("{e}: {}", e.source_chain())))?;
        if let Capture::Captured(payment) = &outcome {
            if payment.amount_cents != confirmed.total_cents
                || payment.currency != confirmed.currency
            {
                tracing::warn!(
                    order_id = %confirmed.order_id,
                    authorized_cents = payment.amount_cents,
                    order_total_cents = confirmed.total_cents,
                    "captured amount differs from the confirmed order total"
                );
            }
            tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, amount_cents = payment.amount_cents, "payment captured");
        }
        Ok(())
    }
}
