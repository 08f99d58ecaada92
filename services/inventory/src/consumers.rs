//! The consumer adapter: `orders.v1.order_confirmed` commits the order's reservation.

use longship_messaging::{Consumer, ConsumerSpec, Delivered, HandlerError};
use longship_tenant::TenantId;
use sqlx::PgConnection;

use crate::domain::CommitOutcome;
use crate::events::{self, OrderConfirmed};
use crate::store::{self, CommitItem};

/// The durable consumer committing stock on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "inventory-order-confirmed";

/// Commits the order's reservation when the order service confirms the order.
#[derive(Debug, Clone, Default)]
pub struct CommitOnOrderConfirmed;

#[async_trait::async_trait]
impl Consumer for CommitOnOrderConfirmed {
    type Event = OrderConfirmed;
    const EVENT_TYPE: &'static str = events::ORDER_CONFIRMED;

    /// The stock commits that wait together share a transaction and one statement
    /// ([`store::commit_many`]), whatever their tenants. The statement locks the reservations in
    /// (tenant, order) order and then their products in (tenant, sku) order; a batch that would
    /// wait on a lock (a Reserve holding a product) still gives way within its lock timeout and
    /// is handled event by event, so it can never deadlock the saga's Reserve.
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
        let outcome = store::commit(tx, tenant, confirmed.order_id)
            .await
            .map_err(HandlerError::with_sources)?;
        tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, outcome = outcome.as_str(), "order confirmed: stock commit");
        Ok(())
    }

    async fn consume_many(
        &self,
        tx: &mut PgConnection,
        events: Vec<Delivered<OrderConfirmed>>,
    ) -> Result<(), HandlerError> {
        let items: Vec<CommitItem> = events.iter().map(|d| d.item(d.event.order_id)).collect();
        let results = store::commit_many(tx, &items)
            .await
            .map_err(HandlerError::with_sources)?;
        for (delivered, result) in events.iter().zip(results) {
            let confirmed = &delivered.event;
            delivered.span.in_scope(|| {
                if result.outcome == CommitOutcome::NotReserved {
                    store::not_reserved(confirmed.order_id, result.found);
                }
                tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, outcome = result.outcome.as_str(), "order confirmed: stock commit");
            });
        }
        Ok(())
    }
}
