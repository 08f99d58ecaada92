//! The events payment publishes: their payload type ([`PaymentEvent`], schema version 1) and,
//! below it, the event types it carries ([`published_schemas`], committed in
//! `schemas/events/payment/`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Payload of every payment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentEvent {
    /// The payment.
    pub payment_id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// Who pays.
    pub customer_id: String,
    /// The amount.
    pub amount_cents: i64,
    /// Its currency.
    pub currency: String,
    /// Why it was declined: `insufficient_funds`, `no_account` or `currency_mismatch` (declines only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

longship_messaging::published_events! {
    PaymentEvent, version 1 => {
        /// Funds are held for an order.
        PAYMENT_AUTHORIZED = "payments.v1.payment_authorized";
        /// An authorization was declined (`reason` says why).
        PAYMENT_DECLINED = "payments.v1.payment_declined";
        /// A hold was released.
        PAYMENT_VOIDED = "payments.v1.payment_voided";
        /// A held payment was captured: the money left the account.
        PAYMENT_CAPTURED = "payments.v1.payment_captured";
    }
}
