//! The events inventory publishes (payload types, schema version 1; [`published_schemas`], committed
//! in `schemas/events/inventory/`) and the one it consumes ([`OrderConfirmed`], versions 1 and 2).

use chrono::{DateTime, Utc};
use longship_messaging::ConsumedPayload;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::ReservedLine;

longship_messaging::published_events! {
    /// Stock was reserved for an order.
    STOCK_RESERVED: StockReserved = "inventory.v1.stock_reserved", version 1;
    /// A reservation was released by the saga.
    STOCK_RELEASED: StockMoved = "inventory.v1.stock_released", version 1;
    /// A reservation was committed: the units left the warehouse.
    STOCK_COMMITTED: StockMoved = "inventory.v1.stock_committed", version 1;
    /// A reservation passed its TTL and was released by the sweep.
    RESERVATION_EXPIRED: StockMoved = "inventory.v1.reservation_expired", version 1;
}

/// The order service confirmed an order: the event inventory consumes.
pub use longship_contracts::ORDER_CONFIRMED;

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
