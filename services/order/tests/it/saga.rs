//! The place-order saga end to end: happy path, every business failure, idempotency.

use std::time::Duration;

use crate::harness::{Platform, order_body};

const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn happy_path_confirms_captures_and_commits_stock() {
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-1", 1250, "USD", 10).await;
    p.seed_product("acme", "SKU-2", 99, "USD", 5).await;
    p.seed_account("acme", "c-1", 10_000, "USD").await;

    let r = p
        .place(
            "acme",
            order_body("c-1", "USD", &[("SKU-1", 2), ("SKU-2", 3)]),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let placed = r.json();
    assert_eq!(placed["status"], "PENDING");
    let id = placed["id"].as_str().expect("id").to_owned();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/v1/orders/{id}").as_str())
    );

    let order = p.wait_final("acme", &id, WITHIN).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["total_cents"], 2 * 1250 + 3 * 99);
    assert_eq!(order["failure_reason"], serde_json::Value::Null);
    assert_eq!(order["items"][0]["unit_price_cents"], 1250);
    let steps: Vec<(String, String)> = order["saga"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("ReserveStock".into(), "SUCCEEDED".into()),
            ("AuthorizePayment".into(), "SUCCEEDED".into()),
            ("ConfirmOrder".into(), "SUCCEEDED".into())
        ]
    );
    assert_eq!(order["saga"]["status"], "COMPLETED");

    // events: stock committed and payment captured
    p.eventually("stock committed", WITHIN, || async {
        let product = p.product("acme", "SKU-1").await;
        product["on_hand"] == 8 && product["reserved"] == 0
    })
    .await;
    p.eventually("payment captured", WITHIN, || async {
        let account = p.account("acme", "c-1").await;
        account["balance_cents"] == 10_000 - 2797 && account["held_cents"] == 0
    })
    .await;
    let payments = p
        .payments("acme")
        .get(&format!("/v1/payments?order_id={id}"))
        .await
        .expect("payments")
        .json();
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(payments["items"][0]["status"], "CAPTURED");
    assert_eq!(payments["items"][0]["amount_cents"], 2797);
    let sku2 = p.product("acme", "SKU-2").await;
    assert_eq!(
        (sku2["on_hand"].as_i64(), sku2["available"].as_i64()),
        (Some(2), Some(2))
    );
    p.stop().await;
}

async fn expect_cancelled(
    p: &Platform,
    body: serde_json::Value,
    reason: &str,
) -> serde_json::Value {
    let r = p.place("acme", body, None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let order = p.wait_final("acme", &id, WITHIN).await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert_eq!(order["failure_reason"], reason, "{order}");
    assert_eq!(order["saga"]["status"], "COMPENSATED");
    order
}

#[tokio::test]
async fn business_failures_cancel_with_their_reason_and_hold_nothing() {
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-1", 1000, "USD", 3).await;
    p.seed_product("acme", "SKU-EUR", 1000, "EUR", 3).await;
    p.seed_account("acme", "rich", 1_000_000, "USD").await;
    p.seed_account("acme", "poor", 500, "USD").await;

    expect_cancelled(&p, order_body("rich", "USD", &[("NOPE", 1)]), "unknown_sku").await;
    expect_cancelled(
        &p,
        order_body("rich", "USD", &[("SKU-1", 4)]),
        "insufficient_stock",
    )
    .await;
    expect_cancelled(
        &p,
        order_body("rich", "USD", &[("SKU-EUR", 1)]),
        "currency_mismatch",
    )
    .await;
    let declined = expect_cancelled(
        &p,
        order_body("poor", "USD", &[("SKU-1", 1)]),
        "payment_declined",
    )
    .await;
    // stock was priced before the decline: the cancelled order still shows what it would have cost
    assert_eq!(
        (
            declined["total_cents"].as_i64(),
            declined["items"][0]["unit_price_cents"].as_i64()
        ),
        (Some(1000), Some(1000))
    );
    expect_cancelled(
        &p,
        order_body("nobody", "USD", &[("SKU-1", 1)]),
        "payment_declined",
    )
    .await;
    // one line short cancels the whole order: nothing reserved for the other line
    expect_cancelled(
        &p,
        order_body("rich", "USD", &[("SKU-1", 1), ("NOPE", 1)]),
        "unknown_sku",
    )
    .await;

    // stock and funds untouched after everything was released
    p.eventually("all reservations released", WITHIN, || async {
        let product = p.product("acme", "SKU-1").await;
        product["reserved"] == 0 && product["on_hand"] == 3
    })
    .await;
    let poor = p.account("acme", "poor").await;
    assert_eq!(
        (poor["balance_cents"].as_i64(), poor["held_cents"].as_i64()),
        (Some(500), Some(0))
    );
    let rich = p.account("acme", "rich").await;
    assert_eq!(rich["held_cents"], 0);
    p.stop().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_first_order_even_under_concurrent_duplicates() {
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-1", 100, "USD", 1000).await;
    p.seed_account("acme", "c-1", 1_000_000, "USD").await;
    let body = order_body("c-1", "USD", &[("SKU-1", 1)]);

    let first = p.place("acme", body.clone(), Some("key-1")).await;
    assert_eq!(first.status, 202);
    let again = p.place("acme", body.clone(), Some("key-1")).await;
    assert_eq!(again.status, 202);
    assert_eq!(first.json()["id"], again.json()["id"]);

    // same key, different body
    let other = p
        .place(
            "acme",
            order_body("c-1", "USD", &[("SKU-1", 2)]),
            Some("key-1"),
        )
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.json()["code"], "idempotency_key_reused");

    // 20 concurrent duplicates with a fresh key create exactly one order
    let responses = futures::future::join_all(
        (0..20).map(|_| p.place("acme", body.clone(), Some("key-concurrent"))),
    )
    .await;
    let ids: std::collections::HashSet<String> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");

    // the same key in another tenant is another order
    p.seed_product("globex", "SKU-1", 100, "USD", 10).await;
    let theirs = p.place("globex", body.clone(), Some("key-1")).await;
    assert_eq!(theirs.status, 202);
    assert_ne!(theirs.json()["id"], first.json()["id"]);

    let id = first.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.wait_final("acme", &id, WITHIN).await["status"],
        "CONFIRMED"
    );
    let confirmed = p
        .orders("acme")
        .get("/v1/orders?limit=100")
        .await
        .expect("list")
        .json();
    assert_eq!(
        confirmed["items"].as_array().map(Vec::len),
        Some(2),
        "key-1 and key-concurrent: two orders"
    );
    p.stop().await;
}
