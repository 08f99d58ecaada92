//! The events payment publishes (payload [`PaymentEvent`], schema version 1) and the
//! `order_confirmed` consumer that captures payments.

use std::sync::Arc;

use longship_messaging::{EventEnvelope, EventHandler, HandlerError};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::{self, Capture};

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
/// The durable consumer capturing payments on `order_confirmed`.
pub const ORDER_CONFIRMED_CONSUMER: &str = "payment-order-confirmed";

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

/// Captures the order's payment when the order service confirms the order.
#[derive(Debug, Clone, Default)]
pub struct CaptureOnOrderConfirmed {
    relay_wake: Option<Arc<Notify>>,
}

impl CaptureOnOrderConfirmed {
    /// The handler, waking the outbox relay (`OutboxRelay::waker`) after each commit: the event it
    /// enqueues is published at once (the service's connections do not `NOTIFY`).
    pub fn waking(relay_wake: Arc<Notify>) -> CaptureOnOrderConfirmed {
        CaptureOnOrderConfirmed {
            relay_wake: Some(relay_wake),
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for CaptureOnOrderConfirmed {
    fn after_commit(&self) {
        if let Some(wake) = &self.relay_wake {
            wake.notify_one();
        }
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        if event.event_type != ORDER_CONFIRMED {
            return Ok(());
        }
        let confirmed: OrderConfirmed = event.payload()?;
        let outcome = store::capture(tx, &event.tenant_id, confirmed.order_id)
            .await
            .map_err(|e| HandlerError(format!("{e}: {}", e.source_chain())))?;
        if let Capture::Captured(payment) = &outcome {
            if payment.amount_cents != confirmed.total_cents
                || payment.currency != confirmed.currency
            {
                tracing::warn!(
                    order_id = %confirmed.order_id,
                    authorized_cents = payment.amount_cents,
                    order_total_cents = confirmed.total_cents,
                    "captured amount differs from the confirmed order total"
                );
            }
            tracing::info!(order_id = %confirmed.order_id, amount_cents = payment.amount_cents, "payment captured");
        }
        Ok(())
    }
}
