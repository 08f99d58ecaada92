//! Orders in Postgres. Every query runs in a tenant-scoped transaction and also filters on the
//! tenant, so isolation holds twice (code and row-level security).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use longship_messaging::OutboxRow;
use longship_saga::SagaRow;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use longship_tenant::TenantId;

/// An order line as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderItem {
    /// The sku.
    pub sku: String,
    /// Quantity.
    pub quantity: u32,
    /// Price per unit in minor units; null until stock is reserved.
    pub unit_price_cents: Option<i64>,
}

/// One step of the order's saga, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SagaStepView {
    /// `ReserveStock`, `AuthorizePayment` or `ConfirmOrder`.
    pub name: String,
    /// PENDING, RUNNING, SUCCEEDED, FAILED, COMPENSATING or COMPENSATED.
    pub status: String,
    /// Attempts of the action.
    pub attempts: u32,
}

/// The order's saga, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SagaView {
    /// RUNNING, COMPENSATING, COMPLETED or COMPENSATED.
    pub status: String,
    /// The step log.
    pub steps: Vec<SagaStepView>,
}

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
    pub items: Vec<OrderItem>,
    /// Why the order was cancelled: insufficient_stock, unknown_sku, payment_declined, currency_mismatch or timeout.
    pub failure_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The saga placing the order.
    pub saga: Option<SagaView>,
}

/// A new order row.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant: &'a TenantId,
    /// Customer.
    pub customer_id: &'a str,
    /// Currency.
    pub currency: &'a str,
    /// Lines.
    pub items: &'a [OrderItem],
    /// Idempotency key, if sent.
    pub idempotency_key: Option<&'a str>,
    /// Request fingerprint.
    pub request_hash: &'a str,
}

/// Inserts a PENDING order together with its `order_placed` event and returns its creation time,
/// or `None` (and no event) when the tenant already used the idempotency key (the insert waits for
/// a concurrent holder of the key to commit, so duplicates never both win).
pub async fn insert_order(
    conn: &mut PgConnection,
    order: &NewOrder<'_>,
    event: OutboxRow,
    saga: SagaRow,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    // the order, its `order_placed` event and its saga in one statement, the last two only if the
    // order was inserted (not on an idempotent replay)
    static INSERT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH placed AS (
                 INSERT INTO orders (id, tenant_id, customer_id, status, currency, total_cents, items, idempotency_key, request_hash)
                 VALUES ($1, $2, $3, 'PENDING', $4, 0, $5, $6, $7)
                 ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
                 RETURNING created_at
             ), event AS ({}), saga AS ({})
             SELECT created_at FROM placed",
            OutboxRow::insert_sql_from(8, "placed"),
            SagaRow::insert_sql_from(14, "placed")
        )
    });
    let query = sqlx::query(sqlx::AssertSqlSafe(INSERT.as_str()))
        .bind(order.id)
        .bind(order.tenant.as_str())
        .bind(order.customer_id)
        .bind(order.currency)
        .bind(sqlx::types::Json(order.items))
        .bind(order.idempotency_key)
        .bind(order.request_hash);
    let placed = saga.bind(event.bind(query)).fetch_optional(conn).await?;
    placed.map(|row| row.try_get("created_at")).transpose()
}

/// The order holding `key`, with its request fingerprint.
pub async fn find_by_idempotency_key(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<(Uuid, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, request_hash FROM orders WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant.as_str())
    .bind(key)
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("request_hash")?)))
        .transpose()
}

const VIEW_COLUMNS: &str =
    "o.id, o.customer_id, o.status, o.currency, o.total_cents, o.items, o.failure_reason,
    o.created_at, o.updated_at, s.status AS saga_status, s.steps AS saga_steps";

/// One order with its saga, or `None` (also for another tenant's order).
pub async fn get_order(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<OrderView>, sqlx::Error> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM orders o LEFT JOIN saga s ON s.id = o.id WHERE o.tenant_id = $1 AND o.id = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| view_from_row(&r)).transpose()
}

/// A page of orders, newest first, after `cursor` (an order id), optionally with one status.
pub async fn list_orders(
    conn: &mut PgConnection,
    tenant: &TenantId,
    status: Option<&str>,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM orders o LEFT JOIN saga s ON s.id = o.id
         WHERE o.tenant_id = $1 AND ($2::text IS NULL OR o.status = $2) AND ($3::uuid IS NULL OR o.id < $3)
         ORDER BY o.id DESC LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(status)
        .bind(cursor)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(view_from_row).collect()
}

fn view_from_row(r: &sqlx::postgres::PgRow) -> Result<OrderView, sqlx::Error> {
    let items: sqlx::types::Json<Vec<OrderItem>> = r.try_get("items")?;
    let saga_status: Option<String> = r.try_get("saga_status")?;
    let saga_steps: Option<serde_json::Value> = r.try_get("saga_steps")?;
    let saga = match (saga_status, saga_steps) {
        (Some(status), Some(steps)) => {
            let steps: Vec<SagaStepView> =
                serde_json::from_value(steps).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Some(SagaView { status, steps })
        }
        _ => None,
    };
    Ok(OrderView {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        currency: r.try_get("currency")?,
        total_cents: r.try_get("total_cents")?,
        items: items.0,
        failure_reason: r.try_get("failure_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        saga,
    })
}

/// Marks the order CONFIRMED with its priced lines and writes `event` (its `order_confirmed`), in
/// one statement.
pub async fn confirm(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    items: &[OrderItem],
    total: i64,
    event: OutboxRow,
) -> Result<(), sqlx::Error> {
    static CONFIRM: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH event AS ({})
             UPDATE orders SET status = 'CONFIRMED', items = $3, total_cents = $4, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = 'PENDING'",
            OutboxRow::insert_sql(5)
        )
    });
    let query = sqlx::query(sqlx::AssertSqlSafe(CONFIRM.as_str()))
        .bind(tenant.as_str())
        .bind(id)
        .bind(sqlx::types::Json(items))
        .bind(total);
    event.execute_with(query, conn).await?;
    Ok(())
}

/// Marks the order CANCELLED with a reason, keeping the lines as priced so far (a cancelled order
/// still shows what it would have cost once its stock was reserved), and writes `event` (its
/// `order_cancelled`), in one statement.
pub async fn cancel(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    reason: &str,
    items: &[OrderItem],
    total: Option<i64>,
    event: OutboxRow,
) -> Result<(), sqlx::Error> {
    static CANCEL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH event AS ({})
             UPDATE orders SET status = 'CANCELLED', failure_reason = $3, items = $4,
                    total_cents = COALESCE($5, total_cents), updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = 'PENDING'",
            OutboxRow::insert_sql(6)
        )
    });
    let query = sqlx::query(sqlx::AssertSqlSafe(CANCEL.as_str()))
        .bind(tenant.as_str())
        .bind(id)
        .bind(reason)
        .bind(sqlx::types::Json(items))
        .bind(total);
    event.execute_with(query, conn).await?;
    Ok(())
}
