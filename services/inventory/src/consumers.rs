//! The consumer adapter: `orders.v1.order_confirmed` commits the order's reservation.

use longship_messaging::{HandlerError, SetConsumer, SetItem};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::CommitOutcome;
use crate::events::{self, OrderConfirmed};
use crate::store::{self, CommitResult};

/// The durable consumer committing stock on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "inventory-order-confirmed";

/// Commits the order's reservation when the order service confirms the order.
///
/// The stock commits that wait together share a transaction and one statement
/// ([`store::commit_many`]), whatever their tenants; an event handled alone runs it as a set of
/// one. The statement locks the reservations in (tenant, order) order and then their products in
/// (tenant, sku) order; a batch that would wait on a lock (a Reserve holding a product) still
/// gives way within its lock timeout and is handled event by event, so it can never deadlock the
/// saga's Reserve.
#[derive(Debug, Clone, Default)]
pub struct CommitOnOrderConfirmed;

#[async_trait::async_trait]
impl SetConsumer for CommitOnOrderConfirmed {
    type Event = OrderConfirmed;
    type Key = Uuid;
    type Outcome = CommitResult;
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
    ) -> Result<Vec<CommitResult>, HandlerError> {
        store::commit_many(tx, items)
            .await
            .map_err(HandlerError::with_sources)
    }

    fn report(&self, confirmed: &OrderConfirmed, result: &CommitResult) {
        if result.outcome == CommitOutcome::NotReserved {
            store::not_reserved(confirmed.order_id, result.found);
        }
        tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, outcome = result.outcome.as_str(), "order confirmed: stock commit");
    }
}
