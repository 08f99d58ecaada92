//! The inventory service's own metric families (help text, series at zero from start-up).

use longship_telemetry::MetricFamily;

/// Commits that found nothing to commit.
pub const COMMIT_WITHOUT_RESERVATION: MetricFamily = MetricFamily::counter(
    "inventory_commit_without_reservation_total",
    "order_confirmed events that found no held reservation to commit",
);
/// Reservations the sweep released.
pub const RESERVATIONS_EXPIRED: MetricFamily = MetricFamily::counter(
    "inventory_reservations_expired_total",
    "Reservations released by the expiry sweep (nobody confirmed or released them in time)",
);
/// Batched Reserves that failed as a whole and were handled order by order.
pub const BATCH_FALLBACKS: MetricFamily = MetricFamily::counter(
    "inventory_batch_fallbacks_total",
    "Batched Reserve transactions of one tenant that failed as a whole (a database failure, not a refusal) and were handled order by order",
);

/// Describes the families and creates every series at zero.
pub fn register() {
    let families = [
        COMMIT_WITHOUT_RESERVATION,
        RESERVATIONS_EXPIRED,
        BATCH_FALLBACKS,
    ];
    longship_telemetry::describe(&families);
    for family in families {
        family.zero(&[]);
    }
}
