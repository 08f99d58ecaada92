//! gRPC AuthorizeBatch over several tenants in one transaction: each order reads and charges only
//! its own tenant's account where tenants share customer ids and order ids, a mixed batch of two
//! tenants answers every item as a single Authorize of its tenant would, and concurrent batches
//! over the same customers in opposite orders finish without deadlock.

use longship_proto::payment::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::batch::{authorize_batch, authorized, item, refused};
use crate::helpers::{PaymentApp, TestApp};

/// `(balance_cents, held_cents)` of a tenant's account, read as the owner (no row-level security).
async fn funds_of(app: &TestApp, tenant: &str, customer: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT balance_cents, held_cents FROM accounts WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_one(app.db.pool())
    .await
    .expect("account row")
}

#[tokio::test]
async fn one_transaction_keeps_each_order_to_its_tenant_where_customers_and_order_ids_collide() {
    let app = TestApp::spawn().await;
    app.given_account_of("acme", "c", 1_000).await;
    app.given_account_of("globex", "c", 50).await;

    let (shared, other) = (Uuid::now_v7(), Uuid::now_v7());
    let results = authorize_batch(
        &app,
        vec![
            item("acme", shared, "c", 600),
            item("globex", shared, "c", 40),
            // globex's customer has 10 left: acme's customer of that name does not pay for it
            item("globex", other, "c", 20),
            // acme's order a second time in the batch: the repeat of a single Authorize
            item("acme", shared, "c", 600),
        ],
    )
    .await;
    let first = authorized(&results[0]);
    assert_eq!(first.amount_cents, 600);
    assert_eq!(authorized(&results[1]).amount_cents, 40);
    assert_ne!(authorized(&results[1]).id, first.id);
    assert_eq!(refused(&results[2]).2, pb::Refusal::Declined);
    assert_eq!(
        authorized(&results[3]).id,
        first.id,
        "the repeat answers the first"
    );
    assert_eq!(funds_of(&app, "acme", "c").await, (1_000, 600));
    assert_eq!(funds_of(&app, "globex", "c").await, (50, 40));

    // both tenants' payments of the shared order id (and globex's decline), one transaction
    let rows: Vec<(String, Uuid, String, String)> = sqlx::query_as(
        "SELECT tenant_id, order_id, status, xmin::text FROM payments
         WHERE order_id = ANY($1) ORDER BY tenant_id, status",
    )
    .bind(vec![shared, other])
    .fetch_all(app.db.pool())
    .await
    .expect("payments");
    let seen: Vec<(&str, Uuid, &str)> = rows
        .iter()
        .map(|(t, o, s, _)| (t.as_str(), *o, s.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("acme", shared, "AUTHORIZED"),
            ("globex", shared, "AUTHORIZED"),
            ("globex", other, "DECLINED"),
        ]
    );
    assert!(
        rows.iter().all(|r| r.3 == rows[0].3),
        "one transaction: {rows:?}"
    );

    // acme's Void of the shared order id releases acme's hold only
    assert_eq!(app.void(shared).await, "VOIDED");
    assert_eq!(funds_of(&app, "acme", "c").await, (1_000, 0));
    assert_eq!(funds_of(&app, "globex", "c").await, (50, 40));
    app.stop().await;
}

#[tokio::test]
async fn a_mixed_batch_of_two_tenants_answers_each_item_as_a_single_authorize_would() {
    let app = TestApp::spawn().await;
    app.given_account_of("acme", "rich", 10_000).await;
    app.given_account_of("acme", "poor", 100).await;
    app.given_account_of("globex", "g", 5_000).await;

    let repeated = Uuid::now_v7();
    let first = app
        .authorize(repeated, "rich", 1_000, "USD")
        .await
        .expect("first authorize");
    let tombstoned = Uuid::now_v7();
    let voided = app
        .grpc()
        .void(app.request_as(
            "globex",
            pb::VoidRequest {
                order_id: tombstoned.to_string(),
                idempotency_key: format!("{tombstoned}:void"),
            },
        ))
        .await
        .expect("void")
        .into_inner()
        .outcome;
    assert_eq!(voided, "TOMBSTONED");
    let (declined, ok, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

    let results = authorize_batch(
        &app,
        vec![
            item("acme", declined, "poor", 500),
            item("acme", repeated, "rich", 1_000),
            item("globex", tombstoned, "g", 10),
            item("globex", ok, "g", 2_000),
            // globex naming acme's customer: no such account for globex
            item("globex", unknown, "rich", 10),
        ],
    )
    .await;
    assert_eq!(
        refused(&results[0]),
        (
            Code::FailedPrecondition,
            "payment.declined".into(),
            pb::Refusal::Declined
        )
    );
    assert_eq!(authorized(&results[1]).id, first.id);
    assert_eq!(refused(&results[2]).2, pb::Refusal::Voided);
    assert_eq!(authorized(&results[3]).amount_cents, 2_000);
    assert_eq!(refused(&results[4]).0, Code::FailedPrecondition);
    assert_eq!(funds_of(&app, "acme", "rich").await, (10_000, 1_000));
    assert_eq!(funds_of(&app, "acme", "poor").await, (100, 0));
    assert_eq!(funds_of(&app, "globex", "g").await, (5_000, 2_000));
    app.stop().await;
}

#[tokio::test]
async fn batches_over_the_same_customers_in_opposite_orders_do_not_deadlock() {
    let app = TestApp::spawn().await;
    let customers = ["c1", "c2", "c3", "c4", "c5", "c6"];
    for tenant in ["acme", "globex"] {
        for c in customers {
            app.given_account_of(tenant, c, 1_000_000).await;
        }
    }
    let forward: Vec<(&str, &str)> = ["acme", "globex"]
        .iter()
        .flat_map(|t| customers.iter().map(move |c| (*t, *c)))
        .collect();
    let backward: Vec<(&str, &str)> = forward.iter().rev().copied().collect();
    let rounds = 10;
    let run = |order: Vec<(&'static str, &'static str)>| {
        let grpc = app.grpc();
        async move {
            for _ in 0..rounds {
                let items: Vec<_> = order
                    .iter()
                    .map(|(t, c)| item(t, Uuid::now_v7(), c, 1))
                    .collect();
                let results = grpc
                    .clone()
                    .authorize_batch(tonic::Request::new(pb::AuthorizeBatchRequest { items }))
                    .await
                    .expect("batch")
                    .into_inner()
                    .results;
                for r in &results {
                    authorized(r);
                }
            }
        }
    };
    longship_testkit::batches::opposite_orders_finish(forward, backward, run).await;
    for tenant in ["acme", "globex"] {
        for c in customers {
            assert_eq!(
                funds_of(&app, tenant, c).await,
                (1_000_000, 4 * rounds),
                "{tenant} {c}"
            );
        }
    }
    app.stop().await;
}
