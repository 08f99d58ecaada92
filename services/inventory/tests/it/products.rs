//! `PUT` / `GET /v1/products/{sku}`: upsert, validation, tenancy and the platform's error shapes.

use http::Method;
use longship_testkit::TEST_TENANT;
use serde_json::json;

use crate::helpers::{InventoryApp, TestApp};

#[tokio::test]
async fn put_then_get_returns_the_product_with_its_stock() {
    let app = TestApp::spawn().await;
    let created = app.put_product("SKU-1", 1250, "USD", 10).await;
    assert_eq!(created.status, 200, "{}", created.text());
    let expected = json!({
        "sku": "SKU-1", "name": "Product SKU-1", "price_cents": 1250, "currency": "USD",
        "on_hand": 10, "reserved": 0, "available": 10
    });
    assert_eq!(created.json(), expected);
    assert_eq!(app.product("SKU-1").await, expected);

    // an upsert replaces the fields and sets on_hand
    let body = json!({"name": "Renamed", "price_cents": 999, "currency": "EUR", "on_hand": 3});
    let updated = app
        .http
        .send_json(Method::PUT, "/v1/products/SKU-1", &[], &body)
        .await
        .expect("PUT");
    assert_eq!(updated.status, 200);
    let product = app.product("SKU-1").await;
    assert_eq!(
        (product["name"].as_str(), product["price_cents"].as_i64()),
        (Some("Renamed"), Some(999))
    );
    assert_eq!(
        (product["currency"].as_str(), product["on_hand"].as_i64()),
        (Some("EUR"), Some(3))
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_fields_are_listed_in_a_422() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "", "price_cents": -1, "currency": "usd", "on_hand": -2});
    let response = app
        .http
        .send_json(Method::PUT, "/v1/products/bad%20sku", &[], &body)
        .await
        .expect("PUT");
    assert_eq!(
        response.invalid_fields(),
        ["sku", "name", "price_cents", "currency", "on_hand"]
    );

    // a price of 0 is refused at PUT (an order of it could never be paid: Authorize takes at least
    // one minor unit); it is a field error, not a 500 from the table's CHECK
    let response = app.put_product("FREE", 0, "USD", 1).await;
    assert_eq!(response.status, 422, "{}", response.text());
    let problem = response.json();
    assert_eq!(
        (
            problem["code"].as_str(),
            problem["errors"][0]["field"].as_str(),
            problem["errors"][0]["code"].as_str()
        ),
        (Some("request.invalid"), Some("price_cents"), Some("range")),
        "{problem}"
    );
    assert_eq!(
        app.http.get("/v1/products/FREE").await.expect("GET").status,
        404
    );

    let too_long = "x".repeat(65);
    let response = app.put_product(&too_long, 1, "USD", 1).await;
    assert_eq!(response.status, 422);
    assert_eq!(response.json()["errors"][0]["field"], "sku");
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_other_tenants_products_are_404() {
    let app = TestApp::spawn().await;
    let not_found = "inventory.product_not_found";
    app.assert_not_found_for(TEST_TENANT, "/v1/products/NOPE", not_found)
        .await;
    // a NUL cannot be stored (nor sent to Postgres): no such product either
    app.assert_not_found_for(TEST_TENANT, "/v1/products/a%00b", not_found)
        .await;
    app.given_product("SKU-1", 100, "USD", 5).await;
    app.assert_not_found_for("globex", "/v1/products/SKU-1", not_found)
        .await;

    // the other tenant may have its own SKU-1 without touching ours
    let body = json!({"name": "Theirs", "price_cents": 1, "currency": "EUR", "on_hand": 1});
    let theirs = app
        .as_tenant("globex")
        .send_json(Method::PUT, "/v1/products/SKU-1", &[], &body)
        .await
        .expect("PUT");
    assert_eq!(theirs.status, 200);
    assert_eq!(app.product("SKU-1").await["name"], "Product SKU-1");
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_missing_credentials() {
    let app = TestApp::spawn().await;
    // a body of the wrong shape is 422
    let wrong_shape = json!({"name": "x", "price_cents": "ten"});
    app.assert_rejects_bad_requests("/v1/products/SKU-1", &wrong_shape)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn openapi_documents_both_operations_with_problem_responses() {
    let app = TestApp::spawn().await;
    let doc = app.http.get("/openapi.json").await.expect("GET").json();
    let path = &doc["paths"]["/v1/products/{sku}"];
    assert!(path["put"].is_object() && path["get"].is_object(), "{doc}");
    assert!(
        path["get"]["responses"]["404"]["content"]["application/problem+json"].is_object(),
        "{doc}"
    );
    assert!(doc["components"]["schemas"]["ProblemDetails"].is_object());
    let ready = app.http.get("/readyz").await.expect("GET");
    assert_eq!(ready.status, 200, "{}", ready.text());
    app.stop().await;
}
