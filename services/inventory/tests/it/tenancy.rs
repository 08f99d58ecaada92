//! Tenant isolation: gRPC needs a tenant, tenants never see each other's stock, and Postgres
//! row-level security hides every row from the app role without a tenant setting.

use longship_testkit::assert_status;
use longship_testkit::checks::assert_no_rows_visible;
use sqlx::Connection;
use tonic::Code;
use uuid::Uuid;

use longship_proto::inventory::v1 as pb;

use crate::helpers::{InventoryApp, TestApp, code, reserve_request};

#[tokio::test]
async fn grpc_calls_need_a_tenant_and_see_only_its_products() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;

    let anonymous = app
        .grpc()
        .get_product(tonic::Request::new(pb::GetProductRequest {
            sku: "A".into(),
        }))
        .await;
    assert_eq!(
        anonymous.expect_err("no tenant").code(),
        Code::Unauthenticated
    );

    let ours = app
        .grpc()
        .get_product(app.request(pb::GetProductRequest { sku: "A".into() }))
        .await
        .expect("ours");
    let product = ours.into_inner();
    assert_eq!(
        (product.on_hand, product.reserved, product.available),
        (10, 0, 10)
    );

    let theirs = app
        .grpc()
        .get_product(app.request_as("globex", pb::GetProductRequest { sku: "A".into() }))
        .await;
    assert_status(theirs, Code::NotFound, "inventory.product_not_found");

    let reserve = reserve_request(Uuid::now_v7(), "USD", &[("A", 1)]);
    let theirs = app.grpc().reserve(app.request_as("globex", reserve)).await;
    assert_eq!(
        code(&theirs.expect_err("not theirs")),
        "inventory.unknown_sku"
    );
    assert_eq!(app.stock("A").await, (10, 0));
    app.stop().await;
}

#[tokio::test]
async fn the_app_role_sees_no_rows_without_a_tenant_setting() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.reserve(Uuid::now_v7(), "USD", &[("A", 1)])
        .await
        .expect("reserved");

    let mut conn = app.app_role_without_tenant("products", 1).await;
    assert_no_rows_visible(&mut conn, &["products", "reservations"]).await;
    // the sweep's function works for the app role and returns keys only of due reservations
    let due: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT tenant_id, order_id FROM expired_reservations(10)")
            .fetch_all(&mut conn)
            .await
            .expect("fn");
    assert!(due.is_empty());
    // and the app role cannot write another tenant's rows
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', 'globex', true)")
        .execute(&mut *tx)
        .await
        .expect("tenant");
    let updated = sqlx::query("UPDATE products SET on_hand = 0")
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(updated, 0);
    tx.rollback().await.expect("rollback");
    conn.close().await.expect("close");
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_set_admits_the_rows_of_its_tenants_only() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.reserve(Uuid::now_v7(), "USD", &[("A", 1)])
        .await
        .expect("reserved");
    app.given_product_of("globex", "A", 100, 5).await;

    let mut conn = app.app_role_without_tenant("products", 2).await;
    longship_testkit::checks::assert_tenant_set_admits_only_its_tenants(
        &mut conn,
        &["products", "reservations"],
        longship_testkit::TEST_TENANT,
        "globex",
    )
    .await;
    conn.close().await.expect("close");
    app.stop().await;
}

#[tokio::test]
async fn scoping_a_set_transaction_to_one_tenant_admits_that_tenant_only() {
    let app = TestApp::spawn().await;
    app.given_product("A", 100, "USD", 10).await;
    app.given_product_of("globex", "A", 100, 5).await;
    let tenants = [longship_testkit::TEST_TENANT, "globex"]
        .map(|t| longship_tenant::TenantId::parse(t).expect("tenant"));

    let mut conn = app.app_role_without_tenant("products", 2).await;
    let mut tx = conn.begin().await.expect("begin");
    longship_tenant::set_tenant_set(&mut tx, &tenants)
        .await
        .expect("set");
    let seen: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM products ORDER BY 1")
        .fetch_all(&mut *tx)
        .await
        .expect("rows");
    assert_eq!(seen, [longship_testkit::TEST_TENANT, "globex"]);
    // what a local step's default run_many does before each saga's single-tenant run
    longship_tenant::scope_to_tenant(&mut tx, &tenants[1])
        .await
        .expect("scope");
    let seen: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM products")
        .fetch_all(&mut *tx)
        .await
        .expect("rows");
    assert_eq!(seen, ["globex"]);
    let touched = sqlx::query("UPDATE products SET on_hand = on_hand")
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(touched, 1, "the other tenant of the set is out of reach");
    tx.rollback().await.expect("rollback");
    conn.close().await.expect("close");
    app.stop().await;
}
