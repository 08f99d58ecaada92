//! Set-based captures: a batch of `order_confirmed` events of several tenants is captured with
//! one statement (`store::capture_many`) that keys every order's rows by its own tenant, with the
//! outcomes of a one-by-one capture.

use longship_proto::payment::v1 as pb;
use longship_testkit::batches::{outbox_events, set_item, tenant};
use payment::events::{PAYMENT_CAPTURED, PaymentEvent};
use payment::store::{self, Capture, Payment};
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp};

/// Authorizes `amount` for `order` of `tenant`, paid by `customer`.
async fn authorize_as(app: &TestApp, tenant: &str, order: Uuid, customer: &str, amount: i64) {
    let request = pb::AuthorizeRequest {
        order_id: order.to_string(),
        idempotency_key: format!("{order}:authorize"),
        customer_id: customer.into(),
        amount_cents: amount,
        currency: "USD".into(),
    };
    app.grpc()
        .authorize(app.request_as(tenant, request))
        .await
        .expect("authorized");
}

/// `(balance_cents, held_cents)` of `tenant`'s `customer`, read as the owner.
async fn funds_of(app: &TestApp, tenant: &str, customer: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT balance_cents, held_cents FROM accounts WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_one(app.db.pool())
    .await
    .expect("funds")
}

fn captured(outcome: &Capture) -> &Payment {
    match outcome {
        Capture::Captured(p) | Capture::AlreadyCaptured(p) => p,
        Capture::NotCapturable(p) => panic!("not captured: {p:?}"),
    }
}

#[tokio::test]
async fn one_statement_captures_each_tenants_own_payments_of_a_shared_customer_id_with_the_one_by_one_outcomes()
 {
    let app = TestApp::spawn().await;
    app.given_account_of("acme", "c-1", 1_000).await;
    app.given_account_of("globex", "c-1", 5_000).await;
    let (acme_1, acme_2, globex_1) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    authorize_as(&app, "acme", acme_1, "c-1", 300).await;
    authorize_as(&app, "acme", acme_2, "c-1", 200).await;
    authorize_as(&app, "globex", globex_1, "c-1", 700).await;
    let voided = Uuid::now_v7();
    authorize_as(&app, "acme", voided, "c-1", 100).await;
    assert_eq!(app.void(voided).await, "VOIDED");

    // as the service's role, under the batch's tenant set
    let mut tx = longship_tenant::begin_set(&app.pool, &[tenant("acme"), tenant("globex")])
        .await
        .expect("begin");
    let outcomes = store::capture_many(
        &mut tx,
        &[
            set_item("acme", acme_1),
            set_item("globex", globex_1),
            set_item("acme", acme_2),
            set_item("acme", acme_1),
            set_item("acme", voided),
            set_item("globex", Uuid::now_v7()),
            // acme's order under globex's name: globex has no such payment
            set_item("globex", acme_1),
        ],
    )
    .await
    .expect("capture_many");
    tx.commit().await.expect("commit");

    assert!(matches!(outcomes[0], Capture::Captured(_)), "{outcomes:?}");
    assert!(matches!(outcomes[1], Capture::Captured(_)), "{outcomes:?}");
    assert!(matches!(outcomes[2], Capture::Captured(_)), "{outcomes:?}");
    assert!(
        matches!(outcomes[3], Capture::AlreadyCaptured(_)),
        "{outcomes:?}"
    );
    match &outcomes[4] {
        Capture::NotCapturable(Some(p)) => assert_eq!(p.status, "VOIDED"),
        other => panic!("the voided payment: {other:?}"),
    }
    assert_eq!(outcomes[5], Capture::NotCapturable(None));
    assert_eq!(outcomes[6], Capture::NotCapturable(None));
    for (outcome, (order, amount)) in
        outcomes
            .iter()
            .zip([(acme_1, 300), (globex_1, 700), (acme_2, 200), (acme_1, 300)])
    {
        let payment = captured(outcome);
        assert_eq!((payment.order_id, payment.amount_cents), (order, amount));
        assert_eq!(payment.status, "CAPTURED");
    }
    assert_eq!(
        funds_of(&app, "acme", "c-1").await,
        (500, 0),
        "acme's own money left"
    );
    assert_eq!(
        funds_of(&app, "globex", "c-1").await,
        (4_300, 0),
        "globex's own money left"
    );

    let events = outbox_events(app.db.pool(), PAYMENT_CAPTURED).await;
    assert_eq!(events.len(), 3, "one event per capture");
    for (outcome, owner) in outcomes[..3].iter().zip(["acme", "globex", "acme"]) {
        let payment = captured(outcome);
        let (event_tenant, payload) = events
            .iter()
            .find(|(_, p)| p["order_id"] == payment.order_id.to_string())
            .expect("its event");
        assert_eq!(event_tenant, owner);
        let event: PaymentEvent = serde_json::from_value(payload.clone()).expect("a PaymentEvent");
        assert_eq!(
            event,
            PaymentEvent {
                payment_id: payment.id,
                order_id: payment.order_id,
                customer_id: "c-1".into(),
                amount_cents: payment.amount_cents,
                currency: "USD".into(),
                reason: None,
            }
        );
        assert!(payload.get("reason").is_none(), "{payload}");
    }
    app.stop().await;
}
