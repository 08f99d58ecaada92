//! Bad input and tenancy at the HTTP boundary.

use std::time::Duration;

use crate::harness::{Platform, order_body};

#[tokio::test]
async fn bad_input_gets_problem_json_never_a_500() {
    let p = Platform::start().await;
    malformed_bodies_are_refused(&p).await;
    invalid_fields_are_named(&p).await;
    bad_ids_and_query_parameters_are_refused(&p).await;
    let anonymous = longship_testkit::HttpClient::new(format!("http://{}", p.order.http));
    credentials_are_checked(&anonymous).await;
    platform_endpoints_are_served(&anonymous).await;
    p.stop().await;
}

/// Broken JSON 400, wrong content type 415, an oversized body 413.
async fn malformed_bodies_are_refused(p: &Platform) {
    let orders = p.orders("acme");
    let post = |body: &'static [u8], ct: &'static str| {
        let orders = orders.clone();
        async move {
            orders
                .send(
                    http::Method::POST,
                    "/v1/orders",
                    &[("content-type", ct)],
                    Some(bytes::Bytes::from_static(body)),
                )
                .await
                .expect("post")
        }
    };
    let r = post(b"{\"customer_id\":", "application/json").await;
    assert_eq!(
        (r.status.as_u16(), r.header("content-type").as_deref()),
        (400, Some("application/problem+json"))
    );
    let r = post(b"{}", "text/plain").await;
    assert_eq!(r.status, 415);
    let big = format!("{{\"customer_id\":\"{}\"}}", "x".repeat(70 * 1024));
    let r = orders
        .send(
            http::Method::POST,
            "/v1/orders",
            &[("content-type", "application/json")],
            Some(big.into()),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 413);
}

/// A body that parses but breaks the rules: 422 naming each field; a bad idempotency key 400.
async fn invalid_fields_are_named(p: &Platform) {
    let r = p
        .place(
            "acme",
            order_body("", "usd", &[("bad sku", 0), ("bad sku", 1)]),
            None,
        )
        .await;
    let fields = r.invalid_fields();
    for f in [
        "customer_id",
        "currency",
        "items[0].sku",
        "items[0].quantity",
    ] {
        assert!(
            fields.iter().any(|field| field == f),
            "{f} not in {fields:?}"
        );
    }
    let r = p
        .place(
            "acme",
            serde_json::json!({"customer_id":"c","currency":"USD","items":[]}),
            None,
        )
        .await;
    assert_eq!(r.status, 422);
    let r = p
        .place(
            "acme",
            order_body("c", "USD", &[("S", 1)]),
            Some("tab\tkey"),
        )
        .await;
    assert_eq!(r.status, 400);
}

/// Malformed ids and query parameters 400; an unknown order 404 with its code.
async fn bad_ids_and_query_parameters_are_refused(p: &Platform) {
    let orders = p.orders("acme");
    let r = orders.get("/v1/orders/not-a-uuid").await.expect("get");
    assert_eq!(r.status, 400);
    let r = orders
        .get("/v1/orders/0190f0a0-0000-7000-8000-000000000000")
        .await
        .expect("get");
    assert_eq!(
        (r.status.as_u16(), r.json()["code"].as_str()),
        (404, Some("order.not_found"))
    );
    let r = orders.get("/v1/orders?limit=0").await.expect("list");
    assert_eq!(r.status, 400);
    let r = orders
        .get("/v1/orders?status=WHATEVER")
        .await
        .expect("list");
    assert_eq!(r.status, 400);
    let r = orders.get("/v1/orders?cursor=garbage").await.expect("list");
    assert_eq!(r.status, 400);
}

/// No credentials 401, a malformed tenant 400, a bad token 401, a good one 200.
async fn credentials_are_checked(anonymous: &longship_testkit::HttpClient) {
    assert_eq!(anonymous.get("/v1/orders").await.expect("get").status, 401);
    assert_eq!(
        anonymous
            .with_header("x-tenant-id", "Not_Valid")
            .get("/v1/orders")
            .await
            .expect("get")
            .status,
        400
    );
    assert_eq!(
        anonymous
            .with_header("authorization", "Bearer nope")
            .get("/v1/orders")
            .await
            .expect("get")
            .status,
        401
    );
    let token = longship_tenant::issue_dev_token(
        longship_testkit::TEST_JWT_SECRET,
        &longship_tenant::TenantId::parse("acme").expect("t"),
        60,
    )
    .expect("token");
    assert_eq!(
        anonymous
            .with_header("authorization", &format!("Bearer {token}"))
            .get("/v1/orders")
            .await
            .expect("get")
            .status,
        200
    );
}

/// An unknown route 404; health, readiness, metrics, the OpenAPI document and the docs page.
async fn platform_endpoints_are_served(anonymous: &longship_testkit::HttpClient) {
    assert_eq!(anonymous.get("/v2/nothing").await.expect("get").status, 404);
    assert_eq!(anonymous.get("/healthz").await.expect("get").status, 200);
    assert_eq!(anonymous.get("/readyz").await.expect("get").status, 200);
    let metrics = anonymous.get("/metrics").await.expect("get").text();
    assert!(
        metrics.contains("http_server_request_duration_seconds"),
        "{metrics}"
    );
    let openapi = anonymous.get("/openapi.json").await.expect("get").json();
    assert!(openapi["paths"]["/v1/orders"]["post"].is_object());
    // the docs page lives at /docs/ (its assets are relative to it); /docs leads there
    let docs = anonymous.get("/docs").await.expect("get");
    assert_eq!(docs.status, 303);
    assert_eq!(docs.header("location").as_deref(), Some("/docs/"));
    let page = anonymous.get("/docs/").await.expect("get");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("swagger-ui"), "{}", page.text());
}

#[tokio::test]
async fn another_tenant_cannot_read_list_or_affect_anything() {
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-A", 100, "USD", 5).await;
    p.seed_account("acme", "c-a", 10_000, "USD").await;
    let r = p
        .place("acme", order_body("c-a", "USD", &[("SKU-A", 1)]), Some("k"))
        .await;
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.wait_final("acme", &id, Duration::from_secs(15)).await["status"],
        "CONFIRMED"
    );

    let b = "globex";
    let r = p
        .orders(b)
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("get");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("c-a"));
    let list = p.orders(b).get("/v1/orders").await.expect("list").json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        p.inventory(b)
            .get("/v1/products/SKU-A")
            .await
            .expect("get")
            .status,
        404
    );
    assert_eq!(
        p.payments(b)
            .get("/v1/accounts/c-a")
            .await
            .expect("get")
            .status,
        404
    );
    let payments = p
        .payments(b)
        .get(&format!("/v1/payments?order_id={id}"))
        .await
        .expect("get")
        .json();
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(0));

    // B's order for a sku only A has is refused as unknown, and A's stock is untouched
    p.seed_account(b, "c-a", 10_000, "USD").await;
    let r = p
        .place(b, order_body("c-a", "USD", &[("SKU-A", 1)]), Some("k"))
        .await;
    let theirs = r.json()["id"].as_str().expect("id").to_owned();
    assert_ne!(theirs, id);
    let order = p.wait_final(b, &theirs, Duration::from_secs(15)).await;
    assert_eq!(order["failure_reason"], "unknown_sku");
    p.eventually(
        "A's stock only moved for A's order",
        Duration::from_secs(10),
        || async { p.product("acme", "SKU-A").await["on_hand"] == 4 },
    )
    .await;

    // row-level security alone: the app role without a tenant setting sees no rows at all
    for (db, table) in [
        (&p.orders_db, "orders"),
        (&p.inventory_db, "products"),
        (&p.payments_db, "accounts"),
    ] {
        let mut conn = db.pool().acquire().await.expect("conn");
        sqlx::query("SET ROLE longship_app")
            .execute(&mut *conn)
            .await
            .expect("set role");
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *conn)
                .await
                .expect("count");
        assert_eq!(n, 0, "{table} visible without a tenant");
        sqlx::query("SELECT set_config('app.tenant_id', 'globex', false)")
            .execute(&mut *conn)
            .await
            .expect("set");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = 'acme'"
        )))
        .fetch_one(&mut *conn)
        .await
        .expect("count");
        assert_eq!(n, 0, "{table}: acme rows visible to globex");
        sqlx::query("RESET ROLE")
            .execute(&mut *conn)
            .await
            .expect("reset");
        sqlx::query("RESET app.tenant_id")
            .execute(&mut *conn)
            .await
            .expect("reset");
    }
    p.stop().await;
}
