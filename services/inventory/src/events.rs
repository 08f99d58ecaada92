//! The events inventory publishes (payload types, schema version 1; [`published_schemas`], committed
//! in `schemas/events/inventory/`) and the one it consumes ([`OrderConfirmed`], versions 1 and 2).

use chrono::{DateTime, Utc};
use longship_messaging::{ConsumedPayload, PublishedSchema};
use schemars::JsonSchema;
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

/// Every event type inventory publishes, with its payload's schema and version.
pub fn published_schemas() -> Vec<PublishedSchema> {
    vec![
        PublishedSchema::of::<StockReserved>(STOCK_RESERVED, 1),
        PublishedSchema::of::<StockMoved>(STOCK_RELEASED, 1),
        PublishedSchema::of::<StockMoved>(STOCK_COMMITTED, 1),
        PublishedSchema::of::<StockMoved>(RESERVATION_EXPIRED, 1),
    ]
}

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

/// Payload of `orders.v1.order_confirmed` (published by the order service), as of schema
/// version 2: the fields inventory reads (it commits the order's reservation, which holds the
/// lines). Version 1 payloads are upcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// When the order was confirmed (version 2; a version 1 event's own time).
    pub confirmed_at: DateTime<Utc>,
}

impl ConsumedPayload for OrderConfirmed {
    const VERSIONS: &'static [u32] = &[1, 2];
    // version 1 had no confirmed_at: the order was confirmed when its event occurred
    const EVENT_TIME_FIELDS: &'static [(u32, &'static str)] = &[(2, "confirmed_at")];
}
