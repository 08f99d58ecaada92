//! The consumer adapter: `orders.v1.order_confirmed` captures the order's payment.

use longship_messaging::{Consumer, ConsumerSpec, HandlerError};
use longship_tenant::TenantId;
use sqlx::PgConnection;

use crate::events::{self, OrderConfirmed};
use crate::store::{self, Capture};

/// The durable consumer capturing payments on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "payment-order-confirmed";

/// Captures the order's payment when the order service confirms the order.
#[derive(Debug, Clone, Default)]
pub struct CaptureOnOrderConfirmed;

#[async_trait::async_trait]
impl Consumer for CaptureOnOrderConfirmed {
    type Event = OrderConfirmed;
    const EVENT_TYPE: &'static str = events::ORDER_CONFIRMED;

    /// The captures that wait together share a transaction (one commit for all); a batch that
    /// would wait on a lock (an Authorize on the same account, another replica's batch) gives way
    /// and is handled event by event.
    fn spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(ORDER_CONFIRMED_CONSUMER, "ORDERS", Self::EVENT_TYPE).batched(32)
    }

    async fn consume(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        confirmed: OrderConfirmed,
    ) -> Result<(), HandlerError> {
        let outcome = store::capture(tx, tenant, confirmed.order_id)
            .await
            .map_err(HandlerError::with_sources)?;
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
