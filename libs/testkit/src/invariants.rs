//! The invariants of ARCHITECTURE.md section 8, checked directly in the three databases of a quiet
//! system: used by the end-to-end tests, the chaos runner and the load generator.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{PgPool, Row};

/// The three service databases (connect as an owner or superuser: the checks read across tenants).
#[derive(Debug, Clone, Copy)]
pub struct Databases<'a> {
    /// The order service's database.
    pub orders: &'a PgPool,
    /// The inventory service's database.
    pub inventory: &'a PgPool,
    /// The payment service's database.
    pub payments: &'a PgPool,
}

/// Initial stock per (tenant, sku) and balance per (tenant, customer) the run started from.
#[derive(Debug, Clone, Default)]
pub struct Initial {
    /// (tenant, sku) -> on_hand at the start.
    pub stock: HashMap<(String, String), i64>,
    /// (tenant, customer) -> balance at the start.
    pub balances: HashMap<(String, String), i64>,
}

/// Checks every invariant; returns the violations (empty = all hold).
pub async fn check(dbs: &Databases<'_>, initial: &Initial) -> Vec<String> {
    check_scoped(dbs, initial, None).await
}

/// Like [`check`], but only over the rows of `tenants` when given (databases shared with earlier
/// runs or other work, e.g. the load generator's run against a long-lived platform). `None`
/// checks whole databases.
pub async fn check_scoped(
    dbs: &Databases<'_>,
    initial: &Initial,
    tenants: Option<&[String]>,
) -> Vec<String> {
    let mut violations = Vec::new();
    nothing_pending(dbs, tenants, &mut violations).await;
    let (sold, spent) = orders_settled(dbs, tenants, &mut violations).await;
    confirmations_handled(dbs, tenants, &mut violations).await;
    stock_per_sku(dbs.inventory, initial, &sold, &mut violations).await;
    money_per_customer(dbs.payments, initial, &spent, &mut violations).await;
    violations
}

/// Units sold per (tenant, sku) and money spent per (tenant, customer) by confirmed orders.
type Totals = HashMap<(String, String), i64>;

/// Invariant 1, nothing pending and every saga finished, and 6 on the producer side: every outbox
/// row published.
async fn nothing_pending(
    dbs: &Databases<'_>,
    tenants: Option<&[String]>,
    violations: &mut Vec<String>,
) {
    let (orders, inventory, payments) = (dbs.orders, dbs.inventory, dbs.payments);
    // 1. nothing pending, every saga finished
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE status = 'PENDING' AND ($1::text[] IS NULL OR tenant_id = ANY($1))",
    )
    .bind(tenants)
    .fetch_one(orders)
        .await
        .unwrap_or(-1);
    if pending != 0 {
        violations.push(format!("{pending} orders still PENDING"));
    }
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saga WHERE status NOT IN ('COMPLETED', 'COMPENSATED') AND ($1::text[] IS NULL OR tenant_id = ANY($1))",
    )
    .bind(tenants)
    .fetch_one(orders)
    .await
    .unwrap_or(-1);
    if running != 0 {
        violations.push(format!("{running} sagas unfinished"));
    }
    // 6 (producer side). every outbox row published
    for (name, pool) in [
        ("orders", orders),
        ("inventory", inventory),
        ("payments", payments),
    ] {
        let unsent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL AND ($1::text[] IS NULL OR tenant_id = ANY($1))")
                .bind(tenants)
                .fetch_one(pool)
                .await
                .unwrap_or(-1);
        if unsent != 0 {
            violations.push(format!("{name}: {unsent} outbox rows unpublished"));
        }
    }
}

/// Invariants 2 and 3: a confirmed order has exactly one payment, captured, amount = total =
/// sum(q x price), and its stock committed; a cancelled one no capture, any hold voided, its
/// reservation released. Returns what confirmed orders sold and spent.
async fn orders_settled(
    dbs: &Databases<'_>,
    tenants: Option<&[String]>,
    violations: &mut Vec<String>,
) -> (Totals, Totals) {
    let (orders, inventory, payments) = (dbs.orders, dbs.inventory, dbs.payments);
    let order_rows =
        sqlx::query("SELECT id, tenant_id, customer_id, status, total_cents, items FROM orders WHERE $1::text[] IS NULL OR tenant_id = ANY($1)")
            .bind(tenants)
            .fetch_all(orders)
            .await
            .unwrap_or_default();
    let payment_rows =
        sqlx::query("SELECT tenant_id, order_id, amount_cents, status FROM payments WHERE $1::text[] IS NULL OR tenant_id = ANY($1)")
            .bind(tenants)
            .fetch_all(payments)
            .await
            .unwrap_or_default();
    let reservation_rows = sqlx::query("SELECT tenant_id, order_id, status FROM reservations WHERE $1::text[] IS NULL OR tenant_id = ANY($1)")
        .bind(tenants)
        .fetch_all(inventory)
        .await
        .unwrap_or_default();
    let mut payments_by_order: HashMap<uuid::Uuid, Vec<(i64, String)>> = HashMap::new();
    for r in &payment_rows {
        payments_by_order
            .entry(r.get("order_id"))
            .or_default()
            .push((r.get("amount_cents"), r.get("status")));
    }
    let reservation_by_order: HashMap<uuid::Uuid, String> = reservation_rows
        .iter()
        .map(|r| (r.get("order_id"), r.get("status")))
        .collect();

    let mut sold: HashMap<(String, String), i64> = HashMap::new();
    let mut spent: HashMap<(String, String), i64> = HashMap::new();
    for o in &order_rows {
        let id: uuid::Uuid = o.get("id");
        let tenant: String = o.get("tenant_id");
        let status: String = o.get("status");
        let total: i64 = o.get("total_cents");
        let items: serde_json::Value = o.get("items");
        let pays = payments_by_order.get(&id).cloned().unwrap_or_default();
        let reservation = reservation_by_order.get(&id).cloned();
        match status.as_str() {
            "CONFIRMED" => {
                // 2. exactly one payment, captured, amount = total = sum(q x price); stock committed
                let sum: i64 = items
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|i| {
                                i["quantity"].as_i64().unwrap_or(0)
                                    * i["unit_price_cents"].as_i64().unwrap_or(0)
                            })
                            .sum()
                    })
                    .unwrap_or(-1);
                if pays.len() != 1 || pays[0].1 != "CAPTURED" || pays[0].0 != total || sum != total
                {
                    violations.push(format!(
                        "confirmed order {id}: payments {pays:?}, total {total}, sum {sum}"
                    ));
                }
                if reservation.as_deref() != Some("COMMITTED") {
                    violations.push(format!("confirmed order {id}: reservation {reservation:?}"));
                }
                for i in items.as_array().into_iter().flatten() {
                    *sold
                        .entry((tenant.clone(), i["sku"].as_str().unwrap_or("").to_owned()))
                        .or_default() += i["quantity"].as_i64().unwrap_or(0);
                }
                *spent
                    .entry((tenant.clone(), o.get("customer_id")))
                    .or_default() += total;
            }
            "CANCELLED" => {
                // 3. no capture, any hold voided, reservation released
                if pays
                    .iter()
                    .any(|(_, s)| s == "CAPTURED" || s == "AUTHORIZED")
                {
                    violations.push(format!("cancelled order {id}: payments {pays:?}"));
                }
                if matches!(reservation.as_deref(), Some("RESERVED") | Some("COMMITTED")) {
                    violations.push(format!("cancelled order {id}: reservation {reservation:?}"));
                }
            }
            other => violations.push(format!("order {id} in status {other}")),
        }
    }
    (sold, spent)
}

/// Invariant 6 on the consumer side: every order_confirmed event handled by each consumer.
async fn confirmations_handled(
    dbs: &Databases<'_>,
    tenants: Option<&[String]>,
    violations: &mut Vec<String>,
) {
    let (orders, inventory, payments) = (dbs.orders, dbs.inventory, dbs.payments);
    // 6 (consumer side). every order_confirmed event handled exactly once by each consumer
    let confirmed_events: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE event_type = 'orders.v1.order_confirmed' AND ($1::text[] IS NULL OR tenant_id = ANY($1))")
            .bind(tenants)
            .fetch_all(orders)
            .await
            .unwrap_or_default();
    for (name, pool, consumer) in [
        ("inventory", inventory, "inventory-order-confirmed"),
        ("payments", payments, "payment-order-confirmed"),
    ] {
        let handled: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT event_id FROM inbox WHERE consumer = $1 AND ($2::text[] IS NULL OR tenant_id = ANY($2))")
                .bind(consumer)
                .bind(tenants)
                .fetch_all(pool)
                .await
                .unwrap_or_default();
        let handled: std::collections::HashSet<uuid::Uuid> = handled.into_iter().collect();
        let missing = confirmed_events
            .iter()
            .filter(|id| !handled.contains(id))
            .count();
        if missing > 0 {
            violations.push(format!(
                "{name}: {missing} order_confirmed events not handled by {consumer}"
            ));
        }
    }
}

/// Invariant 4, stock per sku: on_hand = initial - sold, nothing reserved.
async fn stock_per_sku(
    inventory: &PgPool,
    initial: &Initial,
    sold: &Totals,
    violations: &mut Vec<String>,
) {
    // 4. stock per sku
    for ((tenant, sku), start) in &initial.stock {
        let row =
            sqlx::query("SELECT on_hand, reserved FROM products WHERE tenant_id = $1 AND sku = $2")
                .bind(tenant)
                .bind(sku)
                .fetch_one(inventory)
                .await;
        let (on_hand, reserved): (i64, i64) = row
            .map(|r| (r.get("on_hand"), r.get("reserved")))
            .unwrap_or((-1, -1));
        let expected = start
            - sold
                .get(&(tenant.clone(), sku.clone()))
                .copied()
                .unwrap_or(0);
        if on_hand != expected || reserved != 0 || on_hand < 0 {
            violations.push(format!(
                "{tenant}/{sku}: on_hand {on_hand} (expected {expected}), reserved {reserved}"
            ));
        }
    }
}

/// Invariant 5, money per customer: balance = initial - spent, nothing held.
async fn money_per_customer(
    payments: &PgPool,
    initial: &Initial,
    spent: &Totals,
    violations: &mut Vec<String>,
) {
    // 5. money per customer
    for ((tenant, customer), start) in &initial.balances {
        let row = sqlx::query("SELECT balance_cents, held_cents FROM accounts WHERE tenant_id = $1 AND customer_id = $2").bind(tenant).bind(customer).fetch_one(payments).await;
        let (balance, held): (i64, i64) = row
            .map(|r| (r.get("balance_cents"), r.get("held_cents")))
            .unwrap_or((-1, -1));
        let expected = start
            - spent
                .get(&(tenant.clone(), customer.clone()))
                .copied()
                .unwrap_or(0);
        if balance != expected || held != 0 || balance < 0 {
            violations.push(format!(
                "{tenant}/{customer}: balance {balance} (expected {expected}), held {held}"
            ));
        }
    }
}

/// Waits until the system is quiet (no pending orders, outboxes drained, events handled), bounded.
pub async fn wait_quiet(dbs: &Databases<'_>, initial: &Initial, within: Duration) -> Vec<String> {
    wait_quiet_scoped(dbs, initial, None, within).await
}

/// [`wait_quiet`] over the rows of `tenants` only (see [`check_scoped`]).
pub async fn wait_quiet_scoped(
    dbs: &Databases<'_>,
    initial: &Initial,
    tenants: Option<&[String]>,
    within: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let violations = check_scoped(dbs, initial, tenants).await;
        if violations.is_empty() || tokio::time::Instant::now() >= deadline {
            return violations;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
