//! Postgres access for products and reservations. Every function runs on a connection inside a
//! transaction the caller opened with `longship_tenant::begin`, so row-level security scopes it to
//! one tenant; queries name the tenant as well (the set-based [`commit_many`] runs under a set of
//! tenants instead and keys every order's rows by its own tenant). Product rows are always locked
//! in sku order, after the reservation row, so concurrent reservations, releases and commits
//! cannot deadlock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use longship_errors::{Error, PlatformCode};
use longship_messaging::OutboxRow;
use longship_sql::{Binds, Placeholder};
use longship_tenant::{TenantId, keyed, keyed_as};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{
    self, CommitOutcome, InventoryCode, ProductInput, ProductStock, ReleaseAction, ReleaseOutcome,
    ReleaseReason, RequestedLine, ReservationStatus, ReservedLine, StockLevel,
};
use crate::events;

mod many;

pub use many::{CommitItem, CommitResult, commit_many};

fn on_hand_below_reserved() -> Error {
    Error::from_code(InventoryCode::OnHandBelowReserved)
}

pub(crate) fn outbox(e: longship_messaging::OutboxError) -> Error {
    Error::internal(e)
}

/// Named constraints and the client errors they mean.
const CONSTRAINTS: longship_errors::ConstraintMap<'static> =
    &[("products_reserved_within_on_hand", on_hand_below_reserved)];

pub(crate) fn db_error(err: sqlx::Error) -> Error {
    Error::from_sqlx(err, CONSTRAINTS)
}

/// A product row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Product {
    /// The sku.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price.
    pub price_cents: i64,
    /// Price currency.
    pub currency: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held for orders.
    pub reserved: i64,
}

/// The [`Product`] of the tenant with the sku `$2`, for [`longship_runtime::TenantDb::find`].
pub const PRODUCT: &str = "SELECT sku, name, price_cents, currency, on_hand, reserved FROM products WHERE tenant_id = $1 AND sku = $2";

impl Product {
    /// Units that may still be reserved.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Creates or replaces a product (setting `on_hand`; `reserved` is kept).
pub async fn upsert_product(
    conn: &mut PgConnection,
    tenant: &TenantId,
    input: &ProductInput,
) -> Result<Product, Error> {
    keyed_as(
        "INSERT INTO products (tenant_id, sku, name, price_cents, currency, on_hand)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, sku) DO UPDATE
           SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency,
               on_hand = EXCLUDED.on_hand, updated_at = now()
         RETURNING sku, name, price_cents, currency, on_hand, reserved",
        tenant,
        &input.sku,
    )
    .bind(&input.name)
    .bind(input.price_cents)
    .bind(&input.currency)
    .bind(input.on_hand)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

/// A Reserve's result: the reserved lines with their unit prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The order.
    pub order_id: Uuid,
    /// The currency of the prices.
    pub currency: String,
    /// The lines, in request order.
    pub lines: Vec<ReservedLine>,
}

/// A Reserve command.
#[derive(Debug, Clone)]
pub struct ReserveCommand {
    /// The order the stock is for (the idempotency key of the operation).
    pub order_id: Uuid,
    /// The caller's idempotency key, kept for auditing.
    pub idempotency_key: String,
    /// The currency every product must be priced in.
    pub currency: String,
    /// What to reserve (validated).
    pub lines: Vec<RequestedLine>,
    /// How long the reservation is held unless committed or released.
    pub ttl: Duration,
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    status: String,
    currency: Option<String>,
    lines: Json<Vec<ReservedLine>>,
}

impl ReservationRow {
    fn status(&self) -> Result<ReservationStatus, Error> {
        parse_status(&self.status)
    }
}

/// A stored reservation status.
pub(crate) fn parse_status(status: &str) -> Result<ReservationStatus, Error> {
    ReservationStatus::parse(status).ok_or_else(|| {
        Error::internal(std::io::Error::other(format!(
            "unknown reservation status {status:?}"
        )))
    })
}

/// Reserves every line or none, idempotently by order id: a repeat returns the stored lines; a
/// Reserve after a release (or a tombstone) is refused.
pub async fn reserve(
    conn: &mut PgConnection,
    tenant: &TenantId,
    command: &ReserveCommand,
) -> Result<Reserved, Error> {
    // claim the order first (a concurrent duplicate waits at the claim and then sees the committed
    // row), and only when claimed lock the products, one primary-key lookup per sku in sku order:
    // one statement. No row: the order was claimed before.
    let skus: Vec<String> = command.lines.iter().map(|l| l.sku.clone()).collect();
    let rows: Vec<ClaimedStockRow> = keyed_as(
        "WITH claim AS (
             INSERT INTO reservations (tenant_id, order_id, status, currency, idempotency_key, expires_at)
             VALUES ($1, $2, 'RESERVED', $3, $4, now() + make_interval(secs => $5))
             ON CONFLICT (tenant_id, order_id) DO NOTHING
             RETURNING expires_at
         )
         SELECT c.expires_at, p.sku, p.currency, p.price_cents, p.on_hand, p.reserved
         FROM claim c
         LEFT JOIN LATERAL (
             SELECT q.sku, q.currency, q.price_cents, q.on_hand, q.reserved, u.n
             FROM unnest($6::text[]) WITH ORDINALITY AS u(sku, n)
             CROSS JOIN LATERAL (
                 SELECT sku, currency, price_cents, on_hand, reserved FROM products
                 WHERE tenant_id = $1 AND sku = u.sku FOR UPDATE
             ) AS q
         ) AS p ON true
         ORDER BY p.n",
        tenant,
        command.order_id,
    )
    .bind(&command.currency)
    .bind(&command.idempotency_key)
    .bind(command.ttl.as_secs_f64())
    .bind(sorted_unique(&skus))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(expires_at) = rows.first().map(|r| r.expires_at) else {
        let existing = reservation(&mut *conn, tenant, command.order_id)
            .await?
            .ok_or_else(|| Error::internal(std::io::Error::other("reservation row vanished")))?;
        domain::replay_reserve(existing.status()?)?;
        return Ok(Reserved {
            order_id: command.order_id,
            currency: existing
                .currency
                .unwrap_or_else(|| command.currency.clone()),
            lines: existing.lines.0,
        });
    };
    let products: Vec<ProductStock> = rows
        .into_iter()
        .filter_map(ClaimedStockRow::product)
        .collect();
    let planned = domain::plan_reservation(&command.currency, &command.lines, &products)?;

    // the held units, the reservation's lines and the event in one statement (rows locked above)
    let payload = events::StockReserved {
        order_id: command.order_id,
        currency: command.currency.clone(),
        lines: planned.clone(),
        expires_at,
    };
    let event = OutboxRow::new(events::STOCK_RESERVED, tenant, &payload).map_err(outbox)?;
    // the plan keeps the request's lines in order, so `skus` pairs with these quantities
    let quantities: Vec<i64> = planned.iter().map(|l| l.quantity).collect();
    let mut b = Binds::new();
    let (t, sku_list, amounts) = (b.push(tenant.as_str()), b.push(&skus), b.push(&quantities));
    let sql = format!(
        "WITH held AS (
             UPDATE products p SET reserved = p.reserved + ({}), updated_at = now()
             WHERE p.tenant_id = {t} AND p.sku = ANY({sku_list}::text[])
         ), event AS ({})
         UPDATE reservations SET lines = {}, updated_at = now() WHERE tenant_id = {t} AND order_id = {}",
        quantity(sku_list, amounts),
        event.insert(&mut b),
        b.push(Json(&planned)),
        b.push(command.order_id),
    );
    b.execute(sql, &mut *conn).await.map_err(db_error)?;
    Ok(Reserved {
        order_id: command.order_id,
        currency: command.currency.clone(),
        lines: planned,
    })
}

/// The tombstone of an order released before it was reserved (none if the order has a row).
const TOMBSTONE: &str =
    "INSERT INTO reservations (tenant_id, order_id, status) VALUES ($1, $2, 'TOMBSTONE')
     ON CONFLICT (tenant_id, order_id) DO NOTHING";

/// Releases the order's reservation (the saga's compensation). Idempotent; records a tombstone
/// when nothing was reserved so that a late Reserve is refused.
pub async fn release(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<ReleaseOutcome, Error> {
    // a concurrent Reserve may commit between our read and our tombstone insert; then read again
    for _ in 0..3 {
        let current = lock_reservation(&mut *conn, tenant, order_id, Held::Any).await?;
        let status = current.as_ref().map(ReservationRow::status).transpose()?;
        match domain::decide_release(status, ReleaseReason::Requested) {
            ReleaseAction::Nothing(outcome) => return Ok(outcome),
            ReleaseAction::Release(next) => {
                let lines = current.map(|r| r.lines.0).unwrap_or_default();
                return_stock(conn, tenant, order_id, &lines, next, StockMove::Release).await?;
                return Ok(ReleaseOutcome::Released);
            }
            ReleaseAction::Tombstone => {
                let tombstone = keyed(TOMBSTONE, tenant, order_id).execute(&mut *conn);
                if tombstone.await.map_err(db_error)?.rows_affected() == 1 {
                    return Ok(ReleaseOutcome::Tombstoned);
                }
            }
        }
    }
    Err(Error::coded(
        PlatformCode::Retry,
        "a concurrent update conflicted, retry",
    ))
}

/// Expires the order's reservation if it is still held and past its deadline. Returns whether it did.
pub async fn expire(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<bool, Error> {
    let row = lock_reservation(&mut *conn, tenant, order_id, Held::PastItsDeadline).await?;
    let status = row.as_ref().map(ReservationRow::status).transpose()?;
    match domain::decide_release(status, ReleaseReason::Expired) {
        ReleaseAction::Release(next) => {
            let lines = row.map(|r| r.lines.0).unwrap_or_default();
            return_stock(conn, tenant, order_id, &lines, next, StockMove::Release).await?;
            Ok(true)
        }
        ReleaseAction::Nothing(_) | ReleaseAction::Tombstone => Ok(false),
    }
}

/// Commits the order's reservation: its units leave the warehouse. Idempotent. A confirmed order
/// without a held reservation is logged and counted (it means the TTL was shorter than the saga).
pub async fn commit(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<CommitOutcome, Error> {
    let current = lock_reservation(&mut *conn, tenant, order_id, Held::Any).await?;
    let status = current.as_ref().map(ReservationRow::status).transpose()?;
    let outcome = domain::decide_commit(status);
    match outcome {
        CommitOutcome::Committed => {
            let lines = current.map(|r| r.lines.0).unwrap_or_default();
            return_stock(
                conn,
                tenant,
                order_id,
                &lines,
                ReservationStatus::Committed,
                StockMove::Commit,
            )
            .await?;
        }
        CommitOutcome::AlreadyCommitted => {}
        CommitOutcome::NotReserved => not_reserved(order_id, status),
    }
    Ok(outcome)
}

/// Logs and counts a commit that found no held reservation (the TTL was shorter than the saga).
pub fn not_reserved(order_id: Uuid, found: Option<ReservationStatus>) {
    metrics::counter!("inventory_commit_without_reservation_total").increment(1);
    tracing::warn!(
        %order_id,
        status = found.map(ReservationStatus::as_str).unwrap_or("NONE"),
        "order confirmed but no reservation is held; stock not committed"
    );
}

async fn reservation(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
) -> Result<Option<ReservationRow>, Error> {
    keyed_as(
        "SELECT status, currency, lines FROM reservations WHERE tenant_id = $1 AND order_id = $2",
        tenant,
        order_id,
    )
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

/// Which reservation [`lock_reservation`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The order's reservation, whatever its deadline.
    Any,
    /// Only if its deadline has passed (the expiry sweep).
    PastItsDeadline,
}

/// Locks the order's reservation and, when it still holds stock (RESERVED), its products, in one
/// statement: the reservation first, then the products in sku order (byte order, as
/// [`sorted_unique`] sorts them for Reserve, so the two cannot deadlock), as Release, Commit and
/// the expiry sweep need them before they move stock ([`return_stock`]).
async fn lock_reservation(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
    held: Held,
) -> Result<Option<ReservationRow>, Error> {
    keyed_as(
        "WITH r AS MATERIALIZED (
             SELECT status, currency, lines FROM reservations
             WHERE tenant_id = $1 AND order_id = $2 AND ($3 OR expires_at <= now()) FOR UPDATE
         ), locked AS MATERIALIZED (
             SELECT p.sku
             FROM (
                 SELECT l.sku
                 FROM r CROSS JOIN LATERAL jsonb_to_recordset(r.lines) AS l(sku text)
                 WHERE r.status = 'RESERVED'
                 GROUP BY l.sku
                 ORDER BY l.sku COLLATE \"C\" -- byte order; the lookup keeps the column's collation (its index)
             ) AS u
             CROSS JOIN LATERAL (
                 SELECT sku FROM products WHERE tenant_id = $1 AND sku = u.sku FOR UPDATE
             ) AS p
         )
         -- reading `locked` is what runs it (an unread CTE is never executed), after `r`
         SELECT status, currency, lines, (SELECT count(*) FROM locked) AS products_locked FROM r",
        tenant,
        order_id,
    )
    .bind(held == Held::Any)
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

/// The skus in lock order (sorted, each once).
pub(crate) fn sorted_unique(skus: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = skus.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// A row of Reserve's claim: the claim's expiry and one locked product (none when no sku exists).
#[derive(sqlx::FromRow)]
struct ClaimedStockRow {
    expires_at: DateTime<Utc>,
    sku: Option<String>,
    currency: Option<String>,
    price_cents: Option<i64>,
    on_hand: Option<i64>,
    reserved: Option<i64>,
}

impl ClaimedStockRow {
    fn product(self) -> Option<ProductStock> {
        let row = StockRow {
            sku: self.sku?,
            currency: self.currency?,
            price_cents: self.price_cents?,
            on_hand: self.on_hand?,
            reserved: self.reserved?,
        };
        Some(row.into())
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StockRow {
    sku: String,
    currency: String,
    price_cents: i64,
    on_hand: i64,
    reserved: i64,
}

impl From<StockRow> for ProductStock {
    fn from(r: StockRow) -> ProductStock {
        ProductStock {
            sku: r.sku,
            currency: r.currency,
            price_cents: r.price_cents,
            stock: StockLevel {
                on_hand: r.on_hand,
                reserved: r.reserved,
            },
        }
    }
}

/// The quantity of the updated product's sku, from the statement's `$2` (skus) and `$3`
/// (quantities); the rows updated are those of `skus`, locked before.
fn quantity(skus: Placeholder, quantities: Placeholder) -> String {
    format!(
        "SELECT u.quantity FROM unnest({skus}::text[], {quantities}::bigint[]) AS u(sku, quantity) WHERE u.sku = p.sku"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StockMove {
    /// Reserved units become available again.
    Release,
    /// Reserved units leave the warehouse.
    Commit,
}

/// Moves a reservation's units out of `reserved` (back to available, or out of `on_hand`), sets
/// the reservation's new status and enqueues the matching event. The reservation and its products
/// are locked already ([`lock_reservation`]).
async fn return_stock(
    conn: &mut PgConnection,
    tenant: &TenantId,
    order_id: Uuid,
    lines: &[ReservedLine],
    next: ReservationStatus,
    movement: StockMove,
) -> Result<(), Error> {
    let skus: Vec<String> = lines.iter().map(|l| l.sku.clone()).collect();
    let quantities: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
    // the stock movement, the reservation's new status and the event in one statement (the rows
    // were locked by `lock_reservation`)
    let event_type = match next {
        ReservationStatus::Committed => events::STOCK_COMMITTED,
        ReservationStatus::Expired => events::RESERVATION_EXPIRED,
        _ => events::STOCK_RELEASED,
    };
    let payload = events::StockMoved {
        order_id,
        lines: lines.to_vec(),
    };
    let event = OutboxRow::new(event_type, tenant, &payload).map_err(outbox)?;
    let mut b = Binds::new();
    let (t, sku_list, amounts) = (b.push(tenant.as_str()), b.push(&skus), b.push(&quantities));
    let moved = quantity(sku_list, amounts);
    let counters = match movement {
        StockMove::Release => format!("reserved = p.reserved - ({moved})"),
        StockMove::Commit => {
            format!("on_hand = p.on_hand - ({moved}), reserved = p.reserved - ({moved})")
        }
    };
    let sql = format!(
        "WITH moved AS (
             UPDATE products p SET {counters}, updated_at = now()
             WHERE p.tenant_id = {t} AND p.sku = ANY({sku_list}::text[])
         ), event AS ({})
         UPDATE reservations SET status = {}, updated_at = now() WHERE tenant_id = {t} AND order_id = {}",
        event.insert(&mut b),
        b.push(next.as_str()),
        b.push(order_id),
    );
    b.execute(sql, &mut *conn).await.map_err(db_error)?;
    Ok(())
}

/// Keys of reservations past their deadline, across tenants (through the migration's
/// `SECURITY DEFINER` function; the app role cannot read other tenants' rows itself).
pub async fn expired_reservations(
    pool: &sqlx::PgPool,
    limit: i32,
) -> Result<Vec<(String, Uuid)>, Error> {
    sqlx::query_as::<_, (String, Uuid)>("SELECT tenant_id, order_id FROM expired_reservations($1)")
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_error)
}
