//! The events services share across their boundaries: the stream and event types one service
//! publishes and others consume, with their schema versions, declared once so that producer and
//! consumers cannot disagree. Payload types are not here: the producer's type is the schema, each
//! consumer reads its own view (a `ConsumedPayload` naming the contract).

use longship_messaging::{EventContract, StreamSpec};

/// The order service's stream, `ORDERS` over `orders.>`.
pub const ORDERS: StreamSpec = StreamSpec::new("ORDERS", "orders");

/// Published by the order service when an order is confirmed (stock and funds held, the order
/// final); the saga's participants consume it: inventory commits the stock, payment captures.
/// Schema version 2 added `confirmed_at` (a version 1 payload takes its event's own time).
pub const ORDER_CONFIRMED: EventContract = EventContract {
    name: "orders.v1.order_confirmed",
    stream: ORDERS,
    versions: &[1, 2],
    event_time_fields: &[(2, "confirmed_at")],
};
