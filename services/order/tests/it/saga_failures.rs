//! Every point where the place-order saga can fail, end to end: the order's final status and
//! failure_reason, the saga's step log, every completed step compensated (stock reserved back to 0,
//! nothing held, any payment VOIDED) and the invariants of ARCHITECTURE.md section 8. Transient
//! failures are real database errors raised inside the participant (a trigger answering SQLSTATE
//! 57P03 for one sku or customer), so the gRPC path is the production one.

use std::time::Duration;

use longship_testkit::invariants::{Databases, Initial, wait_quiet};
use serde_json::Value;

use crate::harness::{Platform, order_body};

const WITHIN: Duration = Duration::from_secs(30);
const T: &str = "acme";

/// What one failure point must end with.
struct Case {
    what: &'static str,
    customer: &'static str,
    items: Vec<(&'static str, u32)>,
    reason: &'static str,
    /// (step, status) of the saga's step log at the end.
    steps: [(&'static str, &'static str); 3],
}

fn steps(order: &Value) -> Vec<(String, String)> {
    order["saga"]["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_owned(),
                        s["status"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Places each case's order at once, then checks each one's end and that it left nothing behind.
async fn run(p: &Platform, cases: &[Case], initial: &Initial) {
    let mut placed = Vec::new();
    for case in cases {
        let r = p
            .place(T, order_body(case.customer, "USD", &case.items), None)
            .await;
        assert_eq!(r.status, 202, "{}: {}", case.what, r.text());
        placed.push(r.json()["id"].as_str().expect("id").to_owned());
    }
    let mut finals = Vec::new();
    for id in &placed {
        finals.push(p.wait_final(T, id, WITHIN).await);
    }
    for ((case, id), order) in cases.iter().zip(&placed).zip(finals) {
        assert_eq!(
            (order["status"].as_str(), order["failure_reason"].as_str()),
            (Some("CANCELLED"), Some(case.reason)),
            "{}: {order}",
            case.what
        );
        assert_eq!(order["saga"]["status"], "COMPENSATED", "{}", case.what);
        let expected: Vec<(String, String)> = case
            .steps
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect();
        assert_eq!(steps(&order), expected, "{}: {order}", case.what);
        // once the orders are final, their stock is back and their money is not held (no
        // waiting for the reservation TTL)
        for (sku, _) in &case.items {
            let product = p.product(T, sku).await;
            if product["sku"].is_string() {
                assert_eq!(product["reserved"], 0, "{}: {product}", case.what);
            }
        }
        let account = p.account(T, case.customer).await;
        if account["customer_id"].is_string() {
            assert_eq!(account["held_cents"], 0, "{}: {account}", case.what);
        }
        let payments = p
            .payments(T)
            .get(&format!("/v1/payments?order_id={id}"))
            .await
            .expect("payments")
            .json();
        for payment in payments["items"].as_array().into_iter().flatten() {
            assert!(
                matches!(payment["status"].as_str(), Some("VOIDED" | "DECLINED")),
                "{}: {payment}",
                case.what
            );
        }
    }
    let dbs = Databases {
        orders: p.orders_db.pool(),
        inventory: p.inventory_db.pool(),
        payments: p.payments_db.pool(),
    };
    let violations = wait_quiet(&dbs, initial, WITHIN).await;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Seeds `products` (sku, price, on_hand) and `accounts` (customer, balance) in USD.
async fn seed(p: &Platform, products: &[(&str, i64, i64)], accounts: &[(&str, i64)]) -> Initial {
    let mut initial = Initial::default();
    for (sku, price, on_hand) in products {
        p.seed_product(T, sku, *price, "USD", *on_hand).await;
        initial.stock.insert((T.into(), (*sku).into()), *on_hand);
    }
    for (customer, balance) in accounts {
        p.seed_account(T, customer, *balance, "USD").await;
        initial
            .balances
            .insert((T.into(), (*customer).into()), *balance);
    }
    initial
}

#[tokio::test]
async fn business_failures_and_an_overflowing_total_compensate_every_completed_step() {
    let p = Platform::start().await;
    let initial = seed(
        &p,
        &[
            ("SKU-1", 1000, 3),
            ("SKU-MAX", i64::MAX, 5),
            ("SKU-2", 1, 5),
        ],
        &[("rich", 1_000_000_000), ("poor", 500)],
    )
    .await;
    let released = [
        ("ReserveStock", "COMPENSATED"),
        ("AuthorizePayment", "PENDING"),
        ("ConfirmOrder", "PENDING"),
    ];
    let cases = vec![
        Case {
            what: "reserve refused (unknown sku)",
            customer: "rich",
            items: vec![("NOPE", 1)],
            reason: "unknown_sku",
            steps: [
                ("ReserveStock", "FAILED"),
                ("AuthorizePayment", "PENDING"),
                ("ConfirmOrder", "PENDING"),
            ],
        },
        Case {
            what: "reserve refused (insufficient stock)",
            customer: "rich",
            items: vec![("SKU-1", 4)],
            reason: "insufficient_stock",
            steps: [
                ("ReserveStock", "FAILED"),
                ("AuthorizePayment", "PENDING"),
                ("ConfirmOrder", "PENDING"),
            ],
        },
        Case {
            what: "total overflows: 9223372036854775807 x 2",
            customer: "rich",
            items: vec![("SKU-MAX", 2)],
            reason: "amount_out_of_range",
            steps: released,
        },
        Case {
            what: "total overflows across lines",
            customer: "rich",
            items: vec![("SKU-MAX", 1), ("SKU-2", 1)],
            reason: "amount_out_of_range",
            steps: released,
        },
        Case {
            what: "authorize refused (insufficient funds)",
            customer: "poor",
            items: vec![("SKU-1", 1)],
            reason: "payment_declined",
            steps: [
                ("ReserveStock", "COMPENSATED"),
                ("AuthorizePayment", "FAILED"),
                ("ConfirmOrder", "PENDING"),
            ],
        },
    ];
    run(&p, &cases, &initial).await;
    p.stop().await;
}

/// A trigger answering SQLSTATE 57P03 ("cannot connect now": the database is unavailable) for
/// the rows `condition` selects: a transient failure that lasts past the saga deadline.
async fn refuse(pool: &sqlx::PgPool, name: &str, table: &str, event: &str, condition: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '57P03'; END $$;
         CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({condition})
         EXECUTE FUNCTION {name}();"
    )))
    .execute(pool)
    .await
    .expect("trigger");
}

#[tokio::test]
async fn transient_failures_past_the_deadline_compensate_with_timeout() {
    let p = Platform::start_with(&[("SAGA_DEADLINE_SECS", "3")]).await;
    let initial = seed(
        &p,
        &[
            ("SKU-1", 100, 50),
            ("SKU-3", 100, 50),
            ("SKU-STUCK", 100, 50),
        ],
        &[
            ("c-1", 100_000),
            ("stuck", 100_000),
            ("unconfirmable", 100_000),
        ],
    )
    .await;
    refuse(
        p.inventory_db.pool(),
        "refuse_reserve",
        "products",
        "UPDATE",
        "NEW.sku = 'SKU-STUCK' AND NEW.reserved > OLD.reserved",
    )
    .await;
    refuse(
        p.payments_db.pool(),
        "refuse_authorize",
        "payments",
        "INSERT",
        "NEW.customer_id = 'stuck'",
    )
    .await;
    refuse(
        p.orders_db.pool(),
        "refuse_confirm",
        "orders",
        "UPDATE",
        "NEW.status = 'CONFIRMED' AND NEW.customer_id = 'unconfirmable'",
    )
    .await;
    let cases = vec![
        Case {
            what: "reserve transient until the deadline",
            customer: "c-1",
            items: vec![("SKU-STUCK", 1)],
            reason: "timeout",
            steps: [
                ("ReserveStock", "COMPENSATED"),
                ("AuthorizePayment", "PENDING"),
                ("ConfirmOrder", "PENDING"),
            ],
        },
        Case {
            what: "authorize transient until the deadline",
            customer: "stuck",
            items: vec![("SKU-1", 2)],
            reason: "timeout",
            steps: [
                ("ReserveStock", "COMPENSATED"),
                ("AuthorizePayment", "COMPENSATED"),
                ("ConfirmOrder", "PENDING"),
            ],
        },
        Case {
            what: "confirm failing until the deadline",
            customer: "unconfirmable",
            items: vec![("SKU-3", 3)],
            reason: "timeout",
            steps: [
                ("ReserveStock", "COMPENSATED"),
                ("AuthorizePayment", "COMPENSATED"),
                ("ConfirmOrder", "FAILED"),
            ],
        },
    ];
    run(&p, &cases, &initial).await;
    // the refused Authorize never held anything, and the confirmed-then-voided hold is gone
    let account = p.account(T, "unconfirmable").await;
    assert_eq!(
        (
            account["balance_cents"].as_i64(),
            account["held_cents"].as_i64()
        ),
        (Some(100_000), Some(0))
    );
    p.stop().await;
}
