//! A run of 200 concurrent orders across two tenants with contended stock and tight balances,
//! checked with the invariant checker of `longship_testkit::invariants`.

use std::collections::HashMap;
use std::time::Duration;

use longship_testkit::invariants::{Databases, Initial, wait_quiet};

use crate::harness::{Platform, order_body};

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
    let dbs = Databases {
        orders: p.orders_db.pool(),
        inventory: p.inventory_db.pool(),
        payments: p.payments_db.pool(),
    };
    let violations = wait_quiet(&dbs, &initial, Duration::from_secs(60)).await;
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
