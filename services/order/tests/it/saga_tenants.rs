//! Sagas of two tenants that share sku and customer names, placed at the same moment: the set-based
//! steps (ReserveBatch, AuthorizeBatch, the ConfirmOrder local step) serve both tenants in one
//! transaction, and every order is priced, held and confirmed from its own tenant's rows only.

use std::time::Duration;

use crate::harness::{Platform, order_body};

const WITHIN: Duration = Duration::from_secs(30);
const PER_TENANT: usize = 12;

#[tokio::test]
async fn sagas_of_two_tenants_batched_together_each_use_their_own_tenants_rows() {
    let p = Platform::start().await;
    // the same names in both tenants, with different prices and funds
    p.seed_product("acme", "SKU", 100, "USD", 1_000).await;
    p.seed_product("globex", "SKU", 7, "USD", 1_000).await;
    p.seed_account("acme", "c", 1_000_000, "USD").await;
    p.seed_account("globex", "c", 1_000_000, "USD").await;

    let placed = futures::future::join_all((0..2 * PER_TENANT).map(|i| {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let p = &p;
        async move {
            let r = p
                .place(tenant, order_body("c", "USD", &[("SKU", 3)]), None)
                .await;
            assert_eq!(r.status, 202, "{}", r.text());
            (tenant, r.json()["id"].as_str().expect("id").to_owned())
        }
    }))
    .await;
    for (tenant, id) in &placed {
        let order = p.wait_final(tenant, id, WITHIN).await;
        assert_eq!(order["status"], "CONFIRMED", "{tenant}: {order}");
        let unit = if *tenant == "acme" { 100 } else { 7 };
        assert_eq!(order["total_cents"], 3 * unit, "{tenant}: {order}");
        assert_eq!(order["items"][0]["unit_price_cents"], unit, "{tenant}");
    }
    let units = 3 * PER_TENANT as i64;
    for (tenant, unit) in [("acme", 100), ("globex", 7)] {
        p.eventually("stock committed", WITHIN, || async {
            let product = p.product(tenant, "SKU").await;
            product["on_hand"] == 1_000 - units && product["reserved"] == 0
        })
        .await;
        p.eventually("payments captured", WITHIN, || async {
            let account = p.account(tenant, "c").await;
            account["balance_cents"] == 1_000_000 - units * unit && account["held_cents"] == 0
        })
        .await;
    }
    // the orders of both tenants, each under its own tenant: every row where it belongs
    let per_tenant: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tenant_id, count(*) FROM orders WHERE status = 'CONFIRMED' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(p.orders_db.pool())
    .await
    .expect("orders");
    assert_eq!(
        per_tenant,
        [
            ("acme".to_owned(), PER_TENANT as i64),
            ("globex".to_owned(), PER_TENANT as i64)
        ]
    );
    p.stop().await;
}
