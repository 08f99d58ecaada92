//! The inventory service's own metric families (help text, series at zero from start-up).

longship_telemetry::metric_families! {
    /// Commits that found nothing to commit.
    pub COMMIT_WITHOUT_RESERVATION = counter("inventory_commit_without_reservation_total", "order_confirmed events that found no held reservation to commit");
    /// Reservations the sweep released.
    pub RESERVATIONS_EXPIRED = counter("inventory_reservations_expired_total", "Reservations released by the expiry sweep (nobody confirmed or released them in time)");
    /// Batched Reserves that failed as a whole and were handled order by order.
    pub BATCH_FALLBACKS = counter("inventory_batch_fallbacks_total", "Batched Reserve transactions (all the batch's tenants) that failed as a whole (a database failure, not a refusal) and were handled order by order");
}

/// Describes the families and creates every series at zero.
pub fn register() {
    longship_telemetry::register(&[
        COMMIT_WITHOUT_RESERVATION,
        RESERVATIONS_EXPIRED,
        BATCH_FALLBACKS,
    ]);
}
