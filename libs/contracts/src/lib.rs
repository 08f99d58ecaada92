//! The names services share across their boundaries: the stream and event types one service
//! publishes and others consume, declared once so that producer and consumers cannot disagree.
//! Payload types are not here: the producer's type is the schema, each consumer reads its own view.

use longship_messaging::StreamSpec;

/// The order service's stream, `ORDERS` over `orders.>`.
pub const ORDERS: StreamSpec = StreamSpec::new("ORDERS", "orders");

/// Published by the order service when an order is confirmed (stock and funds held, the order
/// final); the saga's participants consume it: inventory commits the stock, payment captures.
pub const ORDER_CONFIRMED: &str = "orders.v1.order_confirmed";
