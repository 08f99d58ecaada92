//! The events inventory publishes (payload types, schema version 1) and the one it consumes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::ReservedLine;

/// Stock was reserved for an order (payload [`StockReserved`]).
pub const STOCK_RESERVED: &str = "inventory.v1.stock_reserved";
/// A reservation was released by the saga (payload [`StockMoved`]).
pub const STOCK_RELEASED: &str = "inventory.v1.stock_released";
/// A reservation was committed: the units left the warehouse (payload [`StockMoved`]).
pub const STOCK_COMMITTED: &str = "inventory.v1.stock_committed";
/// A reservation passed its TTL and was released by the sweep (payload [`StockMoved`]).
pub const RESERVATION_EXPIRED: &str = "inventory.v1.reservation_expired";
/// The order service confirmed an order.
pub const ORDER_CONFIRMED: &str = "orders.v1.order_confirmed";

/// Payload of `inventory.v1.stock_reserved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    /// The order.
    pub order_id: Uuid,
    /// Currency of the unit prices.
    pub currency: String,
    /// What was reserved, with unit prices.
    pub lines: Vec<ReservedLine>,
    /// When the reservation expires unless committed or released.
    pub expires_at: DateTime<Utc>,
}

/// Payload of `stock_released`, `stock_committed` and `reservation_expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockMoved {
    /// The order.
    pub order_id: Uuid,
    /// The reservation's lines.
    pub lines: Vec<ReservedLine>,
}

/// One line of a confirmed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The sku.
    pub sku: String,
    /// Units.
    pub quantity: i64,
    /// Price per unit (null only on orders that never reserved stock).
    #[serde(default)]
    pub unit_price_cents: Option<i64>,
}

/// Payload of `orders.v1.order_confirmed` (published by the order service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// Who pays.
    pub customer_id: String,
    /// Currency of the total.
    pub currency: String,
    /// What the customer pays.
    pub total_cents: i64,
    /// The order's lines.
    pub items: Vec<OrderItem>,
}
