//! The order service's own metric families (help text, series at zero from start-up).

use longship_telemetry::MetricFamily;

/// Orders created.
pub const PLACED: MetricFamily =
    MetricFamily::counter("orders_placed_total", "Orders created by POST /v1/orders");
/// Repeats answered from an earlier request.
pub const IDEMPOTENT_REPLAYS: MetricFamily = MetricFamily::counter(
    "orders_idempotent_replays_total",
    "POST /v1/orders answered with the order an earlier request with the same Idempotency-Key created",
);

/// Describes the families and creates every series at zero.
pub fn register() {
    let families = [PLACED, IDEMPOTENT_REPLAYS];
    longship_telemetry::describe(&families);
    for family in families {
        family.zero(&[]);
    }
}
