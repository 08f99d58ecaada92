//! The events payment publishes (payload [`PaymentEvent`], schema version 1; [`published_schemas`],
//! committed in `schemas/events/payment/`) and the one it consumes ([`OrderConfirmed`], versions 1
//! and 2).

use chrono::{DateTime, Utc};
use longship_messaging::{ConsumedPayload, PublishedSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Funds are held for an order.
pub const PAYMENT_AUTHORIZED: &str = "payments.v1.payment_authorized";
/// An authorization was declined (`reason` says why).
pub const PAYMENT_DECLINED: &str = "payments.v1.payment_declined";
/// A hold was released.
pub const PAYMENT_VOIDED: &str = "payments.v1.payment_voided";
/// A held payment was captured: the money left the account.
pub const PAYMENT_CAPTURED: &str = "payments.v1.payment_captured";
/// The order service confirmed an order.
pub const ORDER_CONFIRMED: &str = "orders.v1.order_confirmed";

/// Every event type payment publishes, with its payload's schema and version.
pub fn published_schemas() -> Vec<PublishedSchema> {
    [
        PAYMENT_AUTHORIZED,
        PAYMENT_DECLINED,
        PAYMENT_VOIDED,
        PAYMENT_CAPTURED,
    ]
    .into_iter()
    .map(|event_type| PublishedSchema::of::<PaymentEvent>(event_type, 1))
    .collect()
}

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
