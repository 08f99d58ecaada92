//! The events payment publishes (payload [`PaymentEvent`], schema version 1) and the one it
//! consumes.

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

/// Payload of every payment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Payload of `orders.v1.order_confirmed` (published by the order service); the fields payment
/// needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// Who pays.
    pub customer_id: String,
    /// Currency of the total.
    pub currency: String,
    /// What the customer pays.
    pub total_cents: i64,
}
