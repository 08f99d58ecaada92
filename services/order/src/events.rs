//! Events the order service publishes (stream `ORDERS`, subjects `orders.v1.<event>`), each with
//! its schema version; [`published_schemas`] lists them (committed in `schemas/events/order/`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::OrderLine;

longship_messaging::published_events! {
    OrderPlaced, version 1 => {
        /// An order was accepted (PENDING).
        ORDER_PLACED = "orders.v1.order_placed";
    }
    OrderConfirmed, version longship_contracts::ORDER_CONFIRMED.version() => {
        /// Stock and funds are held; the order is final. Inventory commits stock, payment
        /// captures (its contract, with its schema versions, is `longship_contracts`'s).
        ORDER_CONFIRMED = longship_contracts::ORDER_CONFIRMED.name;
    }
    OrderCancelled, version 1 => {
        /// The order was cancelled and everything held was released.
        ORDER_CANCELLED = "orders.v1.order_cancelled";
    }
}

/// Payload of `orders.v1.order_placed`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    /// Order id.
    pub order_id: Uuid,
    /// Customer.
    pub customer_id: String,
    /// Currency.
    pub currency: String,
    /// Lines (unpriced).
    pub items: Vec<OrderLine>,
}

/// Payload of `orders.v1.order_confirmed`, schema version 2.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    /// Order id.
    pub order_id: Uuid,
    /// Customer.
    pub customer_id: String,
    /// Currency.
    pub currency: String,
    /// Total captured.
    pub total_cents: i64,
    /// Priced lines.
    pub items: Vec<OrderLine>,
    /// When the order was confirmed (since schema version 2).
    pub confirmed_at: DateTime<Utc>,
}

/// Payload of `orders.v1.order_cancelled`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    /// Order id.
    pub order_id: Uuid,
    /// Customer.
    pub customer_id: String,
    /// Failure reason.
    pub reason: String,
}
