//! Events the order service publishes (stream `ORDERS`, subjects `orders.v1.<event>`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::OrderLine;

/// An order was accepted (PENDING).
pub const ORDER_PLACED: &str = "orders.v1.order_placed";
/// Stock and funds are held; the order is final. Inventory commits stock, payment captures.
pub const ORDER_CONFIRMED: &str = "orders.v1.order_confirmed";
/// The order was cancelled and everything held was released.
pub const ORDER_CANCELLED: &str = "orders.v1.order_cancelled";

/// Payload of `orders.v1.order_placed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Payload of `orders.v1.order_confirmed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// Payload of `orders.v1.order_cancelled`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// Order id.
    pub order_id: Uuid,
    /// Customer.
    pub customer_id: String,
    /// Failure reason.
    pub reason: String,
}
