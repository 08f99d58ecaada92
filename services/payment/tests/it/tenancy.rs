//! Tenant isolation: gRPC needs a tenant, tenants never see each other's money, and Postgres
//! row-level security hides every row from the app role without a tenant setting.

use longship_proto::payment::v1 as pb;
use longship_testkit::assert_status;
use longship_testkit::checks::assert_no_rows_visible;
use sqlx::Connection;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp, authorize_request, code};

#[tokio::test]
async fn grpc_calls_need_a_tenant_and_see_only_its_accounts() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;

    let request = || pb::GetAccountRequest {
        customer_id: "c-1".into(),
    };
    let anonymous = app.grpc().get_account(tonic::Request::new(request())).await;
    assert_eq!(
        anonymous.expect_err("no tenant").code(),
        Code::Unauthenticated
    );

    let ours = app
        .grpc()
        .get_account(app.request(request()))
        .await
        .expect("ours")
        .into_inner();
    assert_eq!(
        (ours.balance_cents, ours.held_cents, ours.available_cents),
        (1_000, 0, 1_000)
    );

    let theirs = app
        .grpc()
        .get_account(app.request_as("globex", request()))
        .await;
    assert_status(theirs, Code::NotFound, "payment.account_not_found");

    // another tenant cannot spend our customer's money: for them the account does not exist
    let authorize = authorize_request(Uuid::now_v7(), "c-1", 100, "USD");
    let theirs = app
        .grpc()
        .authorize(app.request_as("globex", authorize))
        .await;
    assert_eq!(code(&theirs.expect_err("declined")), "payment.declined");
    assert_eq!(app.funds("c-1").await, (1_000, 0));
    app.stop().await;
}

#[tokio::test]
async fn the_app_role_sees_no_rows_without_a_tenant_setting() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    app.authorize(Uuid::now_v7(), "c-1", 100, "USD")
        .await
        .expect("authorized");
    assert_eq!(app.void(Uuid::now_v7()).await, "TOMBSTONED");

    let mut conn = app.app_role_without_tenant("payments", 1).await;
    let tables = ["accounts", "payments", "payment_tombstones"];
    assert_no_rows_visible(&mut conn, &tables).await;
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
        .execute(&mut *tx)
        .await
        .expect("tenant");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(count, 1);
    let err = sqlx::query("INSERT INTO accounts (tenant_id, customer_id, currency, balance_cents) VALUES ('globex', 'x', 'USD', 1)")
        .execute(&mut *tx)
        .await
        .expect_err("cross-tenant insert");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    conn.close().await.expect("close");
    app.stop().await;
}

/// A pool that cannot switch to its role stops start-up naming the variable, instead of a service
/// that looks ready while every request (or every background task) fails.
#[tokio::test]
async fn a_role_the_pools_cannot_switch_to_stops_start_up_naming_the_variable() {
    use longship_runtime::{App, Env, ServiceConfig};
    let db = longship_testkit::TestDb::new().await;
    let nats = longship_testkit::TestNats::new().await;
    for variable in ["DATABASE_APP_ROLE", "DATABASE_WORKER_ROLE"] {
        let env = Env::from_pairs([
            ("DATABASE_URL", db.url()),
            ("NATS_URL", nats.url()),
            ("NATS_PREFIX", nats.prefix()),
            ("NATS_STREAM_REPLICAS", "1"),
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("GRPC_ADDR", "127.0.0.1:0"),
            ("AUTH_ALLOW_TENANT_HEADER", "true"),
            ("GRPC_MTLS", "off"),
            (variable, "longship_no_such_role"),
        ]);
        let config = ServiceConfig::<payment::Payment>::from_env(&env).expect("config");
        let shutdown = longship_runtime::CancellationToken::new();
        let err = App::<payment::Payment>::build(config, &shutdown)
            .await
            .expect_err("a role that does not exist");
        assert!(err.to_string().contains(variable), "{err}");
    }
    db.drop_db().await;
}

#[tokio::test]
async fn a_tenant_set_admits_the_rows_of_its_tenants_only() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 1_000, "USD").await;
    app.authorize(Uuid::now_v7(), "c-1", 100, "USD")
        .await
        .expect("authorized");
    assert_eq!(app.void(Uuid::now_v7()).await, "TOMBSTONED");
    app.given_account_of("globex", "c-1", 500).await;

    let mut conn = app.app_role_without_tenant("accounts", 2).await;
    longship_testkit::checks::assert_tenant_set_admits_only_its_tenants(
        &mut conn,
        &["accounts", "payments", "payment_tombstones"],
        longship_testkit::TEST_TENANT,
        "globex",
    )
    .await;
    conn.close().await.expect("close");
    app.stop().await;
}
