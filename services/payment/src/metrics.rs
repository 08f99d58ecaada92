//! The payment service's own metric families (help text, series at zero from start-up).

use crate::domain::Decline;

longship_telemetry::metric_families! {
    /// Authorizations declined.
    pub DECLINES = counter("payment_declines_total", "Authorizations declined, by reason (no_account, currency_mismatch, insufficient_funds)");
    /// Captures that found nothing to capture.
    pub CAPTURE_WITHOUT_AUTHORIZATION = counter("payment_capture_without_authorization_total", "order_confirmed events that found no authorized payment to capture");
    /// Batched Authorizes that failed as a whole and were handled order by order.
    pub BATCH_FALLBACKS = counter("payment_batch_fallbacks_total", "Batched Authorize transactions (all the batch's tenants) that failed as a whole (a database failure, not a decline) and were handled order by order");
}

/// Describes the families and creates every series at zero (one per decline reason).
pub fn register() {
    longship_telemetry::register(&[CAPTURE_WITHOUT_AUTHORIZATION, BATCH_FALLBACKS]);
    longship_telemetry::describe(&[DECLINES]);
    for decline in [
        Decline::NoAccount,
        Decline::CurrencyMismatch,
        Decline::InsufficientFunds,
    ] {
        DECLINES.zero(&[("reason", decline.as_str().to_owned())]);
    }
}
