//! The events inventory publishes: their payload types (schema version 1) and, below them, the
//! event types each carries ([`published_schemas`], committed in `schemas/events/inventory/`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::ReservedLine;

/// Payload of `inventory.v1.stock_reserved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockMoved {
    /// The order.
    pub order_id: Uuid,
    /// The reservation's lines.
    pub lines: Vec<ReservedLine>,
}

longship_messaging::published_events! {
    StockReserved, version 1 => {
        /// Stock was reserved for an order.
        STOCK_RESERVED = "inventory.v1.stock_reserved";
    }
    StockMoved, version 1 => {
        /// A reservation was released by the saga.
        STOCK_RELEASED = "inventory.v1.stock_released";
        /// A reservation was committed: the units left the warehouse.
        STOCK_COMMITTED = "inventory.v1.stock_committed";
        /// A reservation passed its TTL and was released by the sweep.
        RESERVATION_EXPIRED = "inventory.v1.reservation_expired";
    }
}
