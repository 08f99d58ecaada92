//! Orders in Postgres. Every query runs in a tenant-scoped transaction and also filters on the
//! tenant, so isolation holds twice (code and row-level security). The saga's state is read
//! beside each order through the saga library's view ([`SagaView`]).

use chrono::{DateTime, Utc};
use longship_messaging::OutboxRow;
use longship_saga::{SagaRow, SagaView};
use longship_sql::Binds;
use longship_tenant::{TenantId, keyed};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::OrderLine;

/// An order as stored, with its saga.
#[derive(Debug, Clone)]
pub struct OrderRow {
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
    /// Why it was cancelled.
    pub failure_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Its saga.
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
    pub items: &'a [OrderLine],
    /// Idempotency key, if sent.
    pub idempotency_key: Option<&'a str>,
    /// Request fingerprint.
    pub request_hash: &'a str,
}

/// Inserts a PENDING order together with its `order_placed` event and its saga, in one statement
/// that is its own transaction (the last two only if the order was inserted, not on an idempotent
/// replay), and returns its creation time, or `None` when the tenant already used the idempotency
/// key (the insert waits for a concurrent holder of the key to commit, so duplicates never both
/// win). The statement scopes itself to `order.tenant` first ([`longship_tenant::scope_cte`]), so
/// row-level security holds its writes as it holds a tenant transaction's; run on the pool, it
/// costs one round trip and one commit (no `BEGIN`, no `COMMIT`).
pub async fn insert_order<'c, E>(
    conn: E,
    order: &NewOrder<'_>,
    event: OutboxRow,
    saga: SagaRow,
) -> Result<Option<DateTime<Utc>>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let mut b = Binds::new();
    let sql = format!(
        "WITH {},
         placed AS (
             INSERT INTO orders (id, tenant_id, customer_id, status, currency, total_cents, items, idempotency_key, request_hash)
             SELECT {}, scope.tenant_id, {}, 'PENDING', {}, 0, {}, {}, {} FROM scope
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
             RETURNING id, created_at
         ), event AS ({}), {}
         SELECT created_at FROM placed",
        longship_tenant::scope_cte(b.push(order.tenant.as_str())),
        b.push(order.id),
        b.push(order.customer_id),
        b.push(order.currency),
        b.push(sqlx::types::Json(order.items)),
        b.push(order.idempotency_key),
        b.push(order.request_hash),
        event.insert_from(&mut b, "placed"),
        saga.ctes_from(&mut b, "placed"),
    );
    let placed = b.query(sql)?.fetch_optional(conn).await?;
    placed.map(|row| row.try_get("created_at")).transpose()
}

/// The order holding `key`, with its request fingerprint.
pub async fn find_by_idempotency_key(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<(Uuid, Option<String>)>, sqlx::Error> {
    let row = keyed(
        "SELECT id, request_hash FROM orders WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant,
        key,
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("request_hash")?)))
        .transpose()
}

fn select_orders(filter: &str) -> String {
    format!(
        "SELECT o.id, o.customer_id, o.status, o.currency, o.total_cents, o.items, o.failure_reason,
                o.created_at, o.updated_at, {}
         FROM orders o LEFT JOIN saga s ON s.id = o.id
         WHERE {filter}",
        SagaView::columns("s")
    )
}

/// One order with its saga, or `None` (also for another tenant's order).
pub async fn get_order(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = select_orders("o.tenant_id = $1 AND o.id = $2");
    let row = keyed(sqlx::AssertSqlSafe(sql), tenant, id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| order_from_row(&r)).transpose()
}

/// A page of orders, newest first, after `cursor` (an order id), optionally with one status.
pub async fn list_orders(
    conn: &mut PgConnection,
    tenant: &TenantId,
    status: Option<&str>,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let sql = format!(
        "{} ORDER BY o.id DESC LIMIT $4",
        select_orders(
            "o.tenant_id = $1 AND ($2::text IS NULL OR o.status = $2) AND ($3::uuid IS NULL OR o.id < $3)"
        )
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(status)
        .bind(cursor)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(order_from_row).collect()
}

fn order_from_row(r: &sqlx::postgres::PgRow) -> Result<OrderRow, sqlx::Error> {
    let items: sqlx::types::Json<Vec<OrderLine>> = r.try_get("items")?;
    Ok(OrderRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        currency: r.try_get("currency")?,
        total_cents: r.try_get("total_cents")?,
        items: items.0,
        failure_reason: r.try_get("failure_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        saga: SagaView::from_row(r)?,
    })
}

/// Marks the order CONFIRMED with its priced lines and writes `event` (its `order_confirmed`), in
/// one statement.
pub async fn confirm(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    items: &[OrderLine],
    total: i64,
    event: OutboxRow,
) -> Result<(), sqlx::Error> {
    let mut b = Binds::new();
    let sql = format!(
        "WITH event AS ({})
         UPDATE orders SET status = 'CONFIRMED', items = {}, total_cents = {}, updated_at = now()
         WHERE tenant_id = {} AND id = {} AND status = 'PENDING'",
        event.insert(&mut b),
        b.push(sqlx::types::Json(items)),
        b.push(total),
        b.push(tenant.as_str()),
        b.push(id),
    );
    b.execute(sql, conn).await?;
    Ok(())
}

/// One order [`confirm_many`] confirms: its tenant, id, priced lines, total and
/// `order_confirmed` event.
#[derive(Debug)]
pub struct Confirmation {
    /// The order's tenant.
    pub tenant: TenantId,
    /// The order.
    pub id: Uuid,
    /// Its priced lines.
    pub items: Vec<OrderLine>,
    /// Its total.
    pub total: i64,
    /// Its `order_confirmed`.
    pub event: OutboxRow,
}

/// [`confirm`] for many orders, of one tenant or several, in one statement (the orders' rows and
/// their events), each order's row keyed by its own tenant: `conn`'s transaction must admit
/// every order's tenant (a tenant set, [`longship_tenant::begin_set`]).
pub async fn confirm_many(
    conn: &mut PgConnection,
    confirmations: Vec<Confirmation>,
) -> Result<(), sqlx::Error> {
    let mut tenants = Vec::with_capacity(confirmations.len());
    let mut ids = Vec::with_capacity(confirmations.len());
    let mut items = Vec::with_capacity(confirmations.len());
    let mut totals = Vec::with_capacity(confirmations.len());
    let mut events = Vec::with_capacity(confirmations.len());
    for c in confirmations {
        tenants.push(c.tenant.as_str().to_owned());
        ids.push(c.id);
        items.push(serde_json::to_value(&c.items).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        totals.push(c.total);
        events.push(c.event);
    }
    let mut b = Binds::new();
    let sql = format!(
        "WITH event AS ({})
         UPDATE orders o SET status = 'CONFIRMED', items = u.items, total_cents = u.total, updated_at = now()
         FROM {} AS u(tenant_id, id, items, total)
         WHERE o.tenant_id = u.tenant_id AND o.id = u.id AND o.status = 'PENDING'",
        OutboxRow::insert_many(events, &mut b),
        b.unnest((tenants, ids, items, totals)),
    );
    b.execute(sql, conn).await?;
    Ok(())
}

/// How a cancelled order ends: its reason, and its lines and total as priced so far (a cancelled
/// order still shows what it would have cost once its stock was reserved).
#[derive(Debug, Clone)]
pub struct Cancellation<'a> {
    /// The failure reason.
    pub reason: &'a str,
    /// The lines.
    pub items: &'a [OrderLine],
    /// The total, when known.
    pub total: Option<i64>,
}

/// Marks the order CANCELLED and writes `event` (its `order_cancelled`), in one statement.
pub async fn cancel(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: Uuid,
    cancellation: &Cancellation<'_>,
    event: OutboxRow,
) -> Result<(), sqlx::Error> {
    let mut b = Binds::new();
    let sql = format!(
        "WITH event AS ({})
         UPDATE orders SET status = 'CANCELLED', failure_reason = {}, items = {},
                total_cents = COALESCE({}, total_cents), updated_at = now()
         WHERE tenant_id = {} AND id = {} AND status = 'PENDING'",
        event.insert(&mut b),
        b.push(cancellation.reason),
        b.push(sqlx::types::Json(cancellation.items)),
        b.push(cancellation.total),
        b.push(tenant.as_str()),
        b.push(id),
    );
    b.execute(sql, conn).await?;
    Ok(())
}
