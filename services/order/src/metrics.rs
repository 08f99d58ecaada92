//! The order service's own metric families (help text, series at zero from start-up).

longship_telemetry::metric_families! {
    /// Orders created.
    pub PLACED = counter("orders_placed_total", "Orders created by POST /v1/orders");
    /// Repeats answered from an earlier request.
    pub IDEMPOTENT_REPLAYS = counter("orders_idempotent_replays_total", "POST /v1/orders answered with the order an earlier request with the same Idempotency-Key created");
}

/// Describes the families and creates every series at zero.
pub fn register() {
    longship_telemetry::register(&[PLACED, IDEMPOTENT_REPLAYS]);
}
