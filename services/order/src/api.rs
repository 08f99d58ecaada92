//! What the order API shows: the view types both adapters (HTTP and gRPC) render.

use chrono::{DateTime, Utc};
use longship_saga::SagaView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::OrderLine;
use crate::store::OrderRow;

/// An order as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// Order id (UUID v7).
    pub id: Uuid,
    /// The customer.
    pub customer_id: String,
    /// PENDING, CONFIRMED or CANCELLED.
    pub status: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of quantity x unit price (0 until stock is reserved).
    pub total_cents: i64,
    /// The lines.
    pub items: Vec<OrderLine>,
    /// Why the order was cancelled: insufficient_stock, unknown_sku, payment_declined,
    /// currency_mismatch, timeout, operator_cancelled or amount_out_of_range.
    pub failure_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The saga placing the order.
    pub saga: Option<SagaView>,
}

impl From<OrderRow> for OrderView {
    fn from(row: OrderRow) -> OrderView {
        OrderView {
            id: row.id,
            customer_id: row.customer_id,
            status: row.status,
            currency: row.currency,
            total_cents: row.total_cents,
            items: row.items,
            failure_reason: row.failure_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
            saga: row.saga,
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Orders, newest first.
    pub items: Vec<OrderView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
