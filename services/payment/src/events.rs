//! The events payment publishes (payload [`PaymentEvent`], schema version 1; [`published_schemas`],
//! committed in `schemas/events/payment/`) and the one it consumes ([`OrderConfirmed`], versions 1
//! and 2).

use chrono::{DateTime, Utc};
use longship_messaging::ConsumedPayload;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

longship_messaging::published_events! {
    /// Funds are held for an order.
    PAYMENT_AUTHORIZED: PaymentEvent = "payments.v1.payment_authorized", version 1;
    /// An authorization was declined (`reason` says why).
    PAYMENT_DECLINED: PaymentEvent = "payments.v1.payment_declined", version 1;
    /// A hold was released.
    PAYMENT_VOIDED: PaymentEvent = "payments.v1.payment_voided", version 1;
    /// A held payment was captured: the money left the account.
    PAYMENT_CAPTURED: PaymentEvent = "payments.v1.payment_captured", version 1;
}

/// The order service confirmed an order: the event payment consumes.
pub use longship_contracts::ORDER_CONFIRMED;

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

/// Payload of `orders.v1.order_confirmed` (published by the order service), as of schema version
/// 2: the fields payment reads (the capture checks the held amount against the total). Version 1
/// payloads are upcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// Currency of the total.
    pub currency: String,
    /// What the customer pays.
    pub total_cents: i64,
    /// When the order was confirmed (version 2; a version 1 event's own time).
    pub confirmed_at: DateTime<Utc>,
}

impl ConsumedPayload for OrderConfirmed {
    const VERSIONS: &'static [u32] = &[1, 2];
    // before version 2 the event's own time was the confirmation time
    const EVENT_TIME_FIELDS: &'static [(u32, &'static str)] = &[(2, "confirmed_at")];
}
