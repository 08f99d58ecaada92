//! The consumer adapter: `orders.v1.order_confirmed` commits the order's reservation.

use longship_messaging::{ConsumerSpec, EventEnvelope, EventHandler, HandlerError};
use sqlx::PgConnection;

use crate::events::{self, OrderConfirmed};
use crate::store;

/// The durable consumer committing stock on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "inventory-order-confirmed";

/// The consumer's settings: the stock commits that wait together share a transaction (one commit
/// for all). Each locks its reservation and then its products in sku order, so across a batch the
/// product rows are locked out of order; a batch that would wait on a lock (a Reserve holding a
/// product) gives way within its lock timeout and is handled event by event, so it can never
/// deadlock the saga's Reserve.
pub fn order_confirmed() -> ConsumerSpec {
    ConsumerSpec::new(ORDER_CONFIRMED_CONSUMER, "ORDERS", events::ORDER_CONFIRMED).batched(32)
}

/// Commits the order's reservation when the order service confirms the order.
#[derive(Debug, Clone, Default)]
pub struct CommitOnOrderConfirmed;

#[async_trait::async_trait]
impl EventHandler for CommitOnOrderConfirmed {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        if event.event_type != events::ORDER_CONFIRMED {
            return Ok(());
        }
        let confirmed: OrderConfirmed = event.read()?;
        let outcome = store::commit(tx, &event.tenant_id, confirmed.order_id)
            .await
            .map_err(|e| HandlerError(format!("{e}: {}", e.source_chain())))?;
        tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, outcome = outcome.as_str(), "order confirmed: stock commit");
        Ok(())
    }
}
