//! The invariant checker of ARCHITECTURE.md section 8, over the three databases of a quiet system,
//! and a run of 200 concurrent orders across two tenants with contended stock and tight balances.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row;

use crate::harness::{Platform, order_body};

/// Initial stock per (tenant, sku) and balance per (tenant, customer) the run started from.
pub struct Initial {
    pub stock: HashMap<(String, String), i64>,
    pub balances: HashMap<(String, String), i64>,
}

/// Checks every invariant; returns the violations (empty = all hold).
pub async fn check(p: &Platform, initial: &Initial) -> Vec<String> {
    let mut violations = Vec::new();
    let orders = p.orders_db.pool();
    let inventory = p.inventory_db.pool();
    let payments = p.payments_db.pool();

    // 1. nothing pending, every saga finished
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PENDING'")
        .fetch_one(orders)
        .await
        .unwrap_or(-1);
    if pending != 0 {
        violations.push(format!("{pending} orders still PENDING"));
    }
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saga WHERE status NOT IN ('COMPLETED', 'COMPENSATED')",
    )
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
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(pool)
                .await
                .unwrap_or(-1);
        if unsent != 0 {
            violations.push(format!("{name}: {unsent} outbox rows unpublished"));
        }
    }

    let order_rows =
        sqlx::query("SELECT id, tenant_id, customer_id, status, total_cents, items FROM orders")
            .fetch_all(orders)
            .await
            .unwrap_or_default();
    let payment_rows =
        sqlx::query("SELECT tenant_id, order_id, amount_cents, status FROM payments")
            .fetch_all(payments)
            .await
            .unwrap_or_default();
    let reservation_rows = sqlx::query("SELECT tenant_id, order_id, status FROM reservations")
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
    violations
}

/// Waits until the system is quiet (no pending orders, outboxes drained, events handled), bounded.
pub async fn wait_quiet(p: &Platform, initial: &Initial, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let violations = check(p, initial).await;
        if violations.is_empty() || tokio::time::Instant::now() >= deadline {
            return violations;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_hundred_concurrent_orders_across_two_tenants_keep_every_invariant() {
    let p = Platform::start().await;
    let mut initial = Initial {
        stock: HashMap::new(),
        balances: HashMap::new(),
    };
    let tenants = ["acme", "globex"];
    for t in tenants {
        for (sku, price, on_hand) in [("SKU-1", 300, 40), ("SKU-2", 700, 25), ("SKU-3", 1100, 60)] {
            p.seed_product(t, sku, price, "USD", on_hand).await;
            initial.stock.insert((t.into(), sku.into()), on_hand);
        }
        for c in 0..5 {
            let customer = format!("c-{c}");
            p.seed_account(t, &customer, 6_000, "USD").await;
            initial.balances.insert((t.into(), customer), 6_000);
        }
    }
    let orders = (0..200).map(|i| {
        let tenant = tenants[i % 2];
        let customer = format!("c-{}", (i / 2) % 5);
        let items: Vec<(&str, u32)> = match i % 4 {
            0 => vec![("SKU-1", 2)],
            1 => vec![("SKU-2", 1), ("SKU-1", 1)],
            2 => vec![("SKU-3", 3)],
            _ => vec![("SKU-2", 2), ("SKU-3", 1)],
        };
        let body = order_body(&customer, "USD", &items);
        let p = &p;
        async move {
            let r = p.place(tenant, body, Some(&format!("bulk-{i}"))).await;
            assert_eq!(r.status, 202, "{}", r.text());
        }
    });
    futures::future::join_all(orders).await;
    let violations = wait_quiet(&p, &initial, Duration::from_secs(60)).await;
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status")
            .fetch_all(p.orders_db.pool())
            .await
            .expect("counts");
    let confirmed = counts
        .iter()
        .find(|(s, _)| s == "CONFIRMED")
        .map(|c| c.1)
        .unwrap_or(0);
    let cancelled = counts
        .iter()
        .find(|(s, _)| s == "CANCELLED")
        .map(|c| c.1)
        .unwrap_or(0);
    assert_eq!(confirmed + cancelled, 200);
    assert!(
        confirmed > 0 && cancelled > 0,
        "contention should confirm some and compensate some: {counts:?}"
    );
    p.stop().await;
}
