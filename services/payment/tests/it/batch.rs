//! gRPC AuthorizeBatch: each item answered as its own Authorize would be (decline, repeat,
//! tombstone, success, a malformed item), orders decided against the funds the earlier ones
//! held, and tenants kept apart inside one batch.

use longship_proto::payment::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp};

pub(crate) fn item(
    tenant: &str,
    order_id: Uuid,
    customer: &str,
    amount: i64,
) -> pb::AuthorizeBatchItem {
    pb::AuthorizeBatchItem {
        tenant_id: tenant.into(),
        request: Some(pb::AuthorizeRequest {
            order_id: order_id.to_string(),
            idempotency_key: format!("{order_id}:AuthorizePayment"),
            customer_id: customer.into(),
            amount_cents: amount,
            currency: "USD".into(),
        }),
    }
}

pub(crate) async fn authorize_batch(
    app: &TestApp,
    items: Vec<pb::AuthorizeBatchItem>,
) -> Vec<pb::AuthorizeBatchResult> {
    let n = items.len();
    let results = app
        .grpc()
        .authorize_batch(tonic::Request::new(pb::AuthorizeBatchRequest { items }))
        .await
        .expect("the batch call succeeds whatever its items answer")
        .into_inner()
        .results;
    assert_eq!(results.len(), n, "one answer per item");
    results
}

pub(crate) fn authorized(result: &pb::AuthorizeBatchResult) -> &pb::Payment {
    match &result.outcome {
        Some(pb::authorize_batch_result::Outcome::Authorized(p)) => p,
        other => panic!("expected an authorization, got {other:?}"),
    }
}

pub(crate) fn refused(result: &pb::AuthorizeBatchResult) -> (Code, String, pb::Refusal) {
    let Some(pb::authorize_batch_result::Outcome::Error(e)) = &result.outcome else {
        panic!("expected a refusal, got {result:?}");
    };
    let (code, error_code, refusal) = longship_runtime::participant::read_item_error(e);
    let refusal = pb::Refusal::try_from(refusal).unwrap_or(pb::Refusal::Unspecified);
    (code, error_code, refusal)
}

#[tokio::test]
async fn each_item_is_answered_as_its_own_authorize_would_be() {
    let app = TestApp::spawn().await;
    app.given_account("rich", 10_000, "USD").await;
    app.given_account("poor", 100, "USD").await;

    let repeated = Uuid::now_v7();
    let first = app
        .authorize(repeated, "rich", 1_000, "USD")
        .await
        .expect("first authorize");
    let tombstoned = Uuid::now_v7();
    assert_eq!(app.void(tombstoned).await, "TOMBSTONED");
    let (declined, ok) = (Uuid::now_v7(), Uuid::now_v7());

    let results = authorize_batch(
        &app,
        vec![
            item("acme", declined, "poor", 500),
            item("acme", repeated, "rich", 1_000),
            item("acme", tombstoned, "rich", 10),
            item("acme", ok, "rich", 2_000),
            pb::AuthorizeBatchItem {
                tenant_id: "acme".into(),
                request: Some(pb::AuthorizeRequest {
                    order_id: "not-a-uuid".into(),
                    ..Default::default()
                }),
            },
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
    assert_eq!(
        authorized(&results[1]).id,
        first.id,
        "a repeat answers the first result"
    );
    assert_eq!(
        refused(&results[2]),
        (
            Code::FailedPrecondition,
            "payment.voided".into(),
            pb::Refusal::Voided
        )
    );
    let payment = authorized(&results[3]);
    assert_eq!(
        (payment.status.as_str(), payment.amount_cents),
        ("AUTHORIZED", 2_000)
    );
    assert_eq!(refused(&results[4]).0, Code::InvalidArgument);

    assert_eq!(app.funds("rich").await, (10_000, 3_000));
    assert_eq!(app.funds("poor").await, (100, 0));
    // the decline is recorded, as a single Authorize records it, and its repeat answers it again
    assert_eq!(app.payment_statuses(declined).await, ["DECLINED"]);
    assert!(app.payment_statuses(tombstoned).await.is_empty());
    let again = app
        .authorize(declined, "poor", 500, "USD")
        .await
        .expect_err("declined before");
    assert_eq!(again.code(), Code::FailedPrecondition);
    // the batch's hold is a hold like any other
    assert_eq!(app.void(ok).await, "VOIDED");
    assert_eq!(app.funds("rich").await, (10_000, 1_000));
    app.stop().await;
}

#[tokio::test]
async fn orders_of_one_customer_are_decided_against_the_funds_the_earlier_ones_held() {
    let app = TestApp::spawn().await;
    app.given_account("c", 1_000, "USD").await;
    let orders: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let results = authorize_batch(
        &app,
        orders.iter().map(|o| item("acme", *o, "c", 400)).collect(),
    )
    .await;
    let approved: Vec<bool> = results
        .iter()
        .map(|r| {
            matches!(
                r.outcome,
                Some(pb::authorize_batch_result::Outcome::Authorized(_))
            )
        })
        .collect();
    assert_eq!(approved, [true, true, false]);
    assert_eq!(refused(&results[2]).2, pb::Refusal::Declined);
    assert_eq!(app.funds("c").await, (1_000, 800));
    app.stop().await;
}

#[tokio::test]
async fn tenants_of_one_batch_see_only_their_own_accounts() {
    let app = TestApp::spawn().await;
    app.given_account("c", 1_000, "USD").await;
    let globex = app.as_tenant("globex");
    let put = globex
        .send_json(
            http::Method::PUT,
            "/v1/accounts/c",
            &[],
            &serde_json::json!({"balance_cents": 50, "currency": "USD"}),
        )
        .await
        .expect("PUT globex account");
    assert_eq!(put.status, 200, "{}", put.text());

    let (ours, theirs, too_much) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let results = authorize_batch(
        &app,
        vec![
            item("acme", ours, "c", 600),
            item("globex", theirs, "c", 40),
            // more than globex's customer has, though acme's customer of that name could pay it
            item("globex", too_much, "c", 300),
        ],
    )
    .await;
    assert_eq!(authorized(&results[0]).amount_cents, 600);
    assert_eq!(authorized(&results[1]).amount_cents, 40);
    assert_eq!(refused(&results[2]).2, pb::Refusal::Declined);
    assert_eq!(app.funds("c").await, (1_000, 600));
    let theirs_now = globex.get("/v1/accounts/c").await.expect("GET").json();
    assert_eq!(theirs_now["held_cents"].as_i64(), Some(40));
    // acme sees no payment of globex's orders
    assert!(app.payment_statuses(theirs).await.is_empty());
    app.stop().await;
}
