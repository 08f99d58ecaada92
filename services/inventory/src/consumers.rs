//! The consumer adapter: `orders.v1.order_confirmed` commits the order's reservation.

use chrono::{DateTime, Utc};
use longship_messaging::{ConsumedPayload, EventContract, SetConsumer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::CommitOutcome;
use crate::store::{self, CommitResult};

/// What inventory reads of `orders.v1.order_confirmed` (published by the order service), in the
/// shape of its newest schema version: the order (its reservation holds the lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// When the order was confirmed (version 2; a version 1 event's own time).
    pub confirmed_at: DateTime<Utc>,
}

impl ConsumedPayload for OrderConfirmed {
    const EVENT: EventContract = longship_contracts::ORDER_CONFIRMED;
}

fn report(confirmed: &OrderConfirmed, result: &CommitResult) {
    if result.outcome == CommitOutcome::NotReserved {
        store::not_reserved(confirmed.order_id, result.found);
    }
    tracing::info!(order_id = %confirmed.order_id, confirmed_at = %confirmed.confirmed_at, outcome = result.outcome.as_str(), "order confirmed: stock commit");
}

/// Commits the order's reservation when the order service confirms the order (durable consumer
/// `inventory-order-confirmed`).
///
/// The stock commits that wait together share a transaction and one statement
/// ([`store::commit_many`]), whatever their tenants; an event handled alone runs it as a set of
/// one. The statement locks the reservations in (tenant, order) order and then their products in
/// (tenant, sku) order; a batch that would wait on a lock (a Reserve holding a product) still
/// gives way within its lock timeout and is handled event by event, so it can never deadlock the
/// saga's Reserve.
pub const ON_ORDER_CONFIRMED: SetConsumer<OrderConfirmed, Uuid, CommitResult> = SetConsumer::new(
    "inventory-order-confirmed",
    |confirmed| confirmed.order_id,
    |tx, items| Box::pin(store::commit_many(tx, items)),
    report,
);
