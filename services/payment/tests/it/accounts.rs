//! `PUT` / `GET /v1/accounts/{customer_id}` and `GET /v1/payments`: upsert, validation, tenancy and
//! the platform's error shapes.

use http::Method;
use longship_testkit::TEST_TENANT;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp};

#[tokio::test]
async fn put_then_get_returns_the_account() {
    let app = TestApp::spawn().await;
    let created = app.put_account("c-1", 10_000, "USD").await;
    assert_eq!(created.status, 200, "{}", created.text());
    let expected = json!({"customer_id": "c-1", "currency": "USD", "balance_cents": 10_000, "held_cents": 0, "available_cents": 10_000});
    assert_eq!(created.json(), expected);
    let read = app.http.get("/v1/accounts/c-1").await.expect("GET");
    assert_eq!(read.json(), expected);

    app.given_account("c-1", 500, "EUR").await;
    assert_eq!(app.funds("c-1").await, (500, 0));
    app.stop().await;
}

#[tokio::test]
async fn invalid_fields_are_listed_in_a_422() {
    let app = TestApp::spawn().await;
    let long_id = "c".repeat(65);
    let body = json!({"balance_cents": -1, "currency": "usd"});
    let response = app
        .http
        .send_json(Method::PUT, &format!("/v1/accounts/{long_id}"), &[], &body)
        .await
        .expect("PUT");
    let fields = response.invalid_fields();
    assert_eq!(fields, ["customer_id", "balance_cents", "currency"]);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_other_tenants_accounts_are_404_and_bad_requests_are_refused() {
    let app = TestApp::spawn().await;
    let not_found = "payment.account_not_found";
    app.assert_not_found_for(TEST_TENANT, "/v1/accounts/nobody", not_found)
        .await;
    // a NUL cannot be stored (nor sent to Postgres): no such account either
    app.assert_not_found_for(TEST_TENANT, "/v1/accounts/a%00b", not_found)
        .await;
    app.given_account("c-1", 100, "USD").await;
    app.assert_not_found_for("globex", "/v1/accounts/c-1", not_found)
        .await;

    let wrong_shape = json!({"balance_cents": "lots"});
    app.assert_rejects_bad_requests("/v1/accounts/c-1", &wrong_shape)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn holds_stay_covered_by_the_balance_and_pin_the_currency() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    app.authorize(Uuid::now_v7(), "c-1", 600, "USD")
        .await
        .expect("authorized");

    let below = app.put_account("c-1", 599, "USD").await;
    assert_eq!(below.status, 409, "{}", below.text());
    assert_eq!(below.json()["code"], "payment.balance_below_held");
    let currency = app.put_account("c-1", 1_000, "EUR").await;
    assert_eq!(currency.status, 409);
    assert_eq!(currency.json()["code"], "payment.currency_change_with_hold");

    app.given_account("c-1", 600, "USD").await;
    assert_eq!(app.funds("c-1").await, (600, 600));
    app.stop().await;
}

#[tokio::test]
async fn payments_are_listed_by_order_for_the_tenant_only() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    let order = Uuid::now_v7();
    let payment = app
        .authorize(order, "c-1", 250, "USD")
        .await
        .expect("authorized");

    let response = app
        .http
        .get(&format!("/v1/payments?order_id={order}"))
        .await
        .expect("GET");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        json!({"items": [{
            "id": payment.id, "order_id": order, "customer_id": "c-1",
            "amount_cents": 250, "currency": "USD", "status": "AUTHORIZED"
        }]})
    );
    let theirs = app
        .as_tenant("globex")
        .get(&format!("/v1/payments?order_id={order}"))
        .await
        .expect("GET");
    assert_eq!(theirs.status, 200);
    assert_eq!(theirs.json(), json!({"items": []}));
    assert_eq!(
        app.payment_statuses(Uuid::now_v7()).await,
        Vec::<String>::new()
    );

    for bad in ["/v1/payments?order_id=not-a-uuid", "/v1/payments"] {
        let response = app.http.get(bad).await.expect("GET");
        assert_eq!(response.status, 400, "{bad}");
        assert_eq!(response.json()["code"], "request.invalid_query");
    }

    let doc = app.http.get("/openapi.json").await.expect("GET").json();
    for path in ["/v1/accounts/{customer_id}", "/v1/payments"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    assert!(doc["paths"]["/v1/payments"]["get"]["parameters"][0]["name"] == "order_id");
    app.stop().await;
}
