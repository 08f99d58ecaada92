//! The consumer adapter: `orders.v1.order_confirmed` captures the order's payment.

use longship_messaging::{Consumer, ConsumerSpec, Delivered, HandlerError};
use longship_tenant::TenantId;
use sqlx::PgConnection;

use crate::events::{self, OrderConfirmed};
use crate::store::{self, Capture, CaptureItem};

/// The durable consumer capturing payments on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "payment-order-confirmed";

/// Captures the order's payment when the order service confirms the order.
#[derive(Debug, Clone, Default)]
pub struct CaptureOnOrderConfirmed;

#[async_trait::async_trait]
impl Consumer for CaptureOnOrderConfirmed {
    type Event = OrderConfirmed;
    const EVENT_TYPE: &'static str = events::ORDER_CONFIRMED;

    /// The captures that wait together share a transaction and one statement
    /// ([`store::capture_many`]), whatever their tenants; a batch that would wait on a lock (an
    /// Authorize on the same account, another replica's batch) gives way and is handled event by
    /// event.
    fn spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(ORDER_CONFIRMED_CONSUMER, "ORDERS", Self::EVENT_TYPE)
            .batched(32)
            .set_based()
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
        log_capture(&confirmed, &outcome);
        Ok(())
    }

    async fn consume_many(
        &self,
        tx: &mut PgConnection,
        events: Vec<Delivered<OrderConfirmed>>,
    ) -> Result<(), HandlerError> {
        let items: Vec<CaptureItem> = events.iter().map(|d| d.item(d.event.order_id)).collect();
        let outcomes = store::capture_many(tx, &items)
            .await
            .map_err(HandlerError::with_sources)?;
        for (delivered, outcome) in events.iter().zip(outcomes) {
            delivered.span.in_scope(|| {
                if let Capture::NotCapturable(payment) = &outcome {
                    store::not_capturable(delivered.event.order_id, payment.as_ref());
                }
                log_capture(&delivered.event, &outcome);
            });
        }
        Ok(())
    }
}

/// A captured payment's log line, with a warning when the amount held differs from the confirmed
/// order's total.
fn log_capture(confirmed: &OrderConfirmed, outcome: &Capture) {
    if let Capture::Captured(payment) = outcome {
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
