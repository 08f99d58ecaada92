//! The order service's database sessions terminated (`pg_terminate_backend`, SQLSTATE 57P01) again
//! and again while orders are placed and read: every answer is a success or 503
//! `database.unavailable` with `Retry-After`, never a 500; afterwards every saga finishes and the
//! invariants hold.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use longship_testkit::invariants::{Databases, Initial, wait_quiet};

use crate::harness::{Platform, order_body};

#[tokio::test]
async fn terminated_database_sessions_answer_503_with_retry_after_never_500() {
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-1", 100, "USD", 10_000).await;
    p.seed_account("acme", "c-1", 100_000_000, "USD").await;
    let initial = Initial {
        stock: HashMap::from([(("acme".into(), "SKU-1".into()), 10_000)]),
        balances: HashMap::from([(("acme".into(), "c-1".into()), 100_000_000)]),
    };
    let storming = AtomicBool::new(true);
    let killer = async {
        let mut terminated = 0i64;
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            terminated += sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(p.orders_db.name())
            .fetch_one(p.orders_db.pool())
            .await
            .unwrap_or(0);
        }
        storming.store(false, Ordering::SeqCst);
        terminated
    };
    let client = |worker: usize| {
        let (p, storming) = (&p, &storming);
        async move {
            let mut answers: Vec<(u16, Option<String>, Option<String>)> = Vec::new();
            let mut i = 0;
            while storming.load(Ordering::SeqCst) {
                i += 1;
                let r = if i % 2 == 0 {
                    p.place(
                        "acme",
                        order_body("c-1", "USD", &[("SKU-1", 1)]),
                        Some(&format!("w{worker}-{i}")),
                    )
                    .await
                } else {
                    p.orders("acme")
                        .get("/v1/orders?limit=5")
                        .await
                        .expect("answer")
                };
                let code = r.json()["code"].as_str().map(str::to_owned);
                answers.push((r.status.as_u16(), code, r.header("retry-after")));
            }
            answers
        }
    };
    let (terminated, answers) = tokio::join!(killer, futures::future::join_all((0..4).map(client)));
    let answers: Vec<_> = answers.into_iter().flatten().collect();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (status, _, _) in &answers {
        *by_status.entry(*status).or_default() += 1;
    }
    eprintln!(
        "{terminated} sessions terminated; {} requests answered {by_status:?}",
        answers.len()
    );
    assert!(terminated > 0, "no session was terminated");
    for (status, code, retry_after) in &answers {
        match status {
            200 | 202 => {}
            503 => assert!(
                code.as_deref() == Some("database.unavailable") && retry_after.is_some(),
                "503 {code:?} retry-after {retry_after:?}"
            ),
            other => panic!("answered {other} {code:?} during the termination storm"),
        }
    }
    // every order placed during the storm finishes, and nothing is lost
    let dbs = Databases {
        orders: p.orders_db.pool(),
        inventory: p.inventory_db.pool(),
        payments: p.payments_db.pool(),
    };
    let violations = wait_quiet(&dbs, &initial, Duration::from_secs(60)).await;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    p.stop().await;
}
