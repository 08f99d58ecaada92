use longship_errors::{Error, Kind};
use longship_testkit::TestDb;

#[tokio::test]
async fn sqlx_errors_map_to_client_errors_without_internals() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL CONSTRAINT accounts_balance_non_negative CHECK (balance >= 0));
         CREATE TABLE orders (id text PRIMARY KEY, key text NOT NULL, CONSTRAINT orders_key_unique UNIQUE (key));
         INSERT INTO accounts VALUES ('a', 10); INSERT INTO orders VALUES ('o1', 'k1');",
    )
    .execute(db.pool())
    .await
    .expect("setup");

    // unique violation without a mapping: 409 resource.conflict
    let err = sqlx::query("INSERT INTO accounts VALUES ('a', 5)")
        .execute(db.pool())
        .await
        .expect_err("duplicate");
    let mapped = Error::from(err);
    assert_eq!(
        (mapped.kind(), mapped.code()),
        (Kind::Conflict, "resource.conflict")
    );
    assert_eq!(mapped.kind().http_status(), 409);
    assert!(!mapped.message().contains("accounts_pkey"));
    assert!(
        mapped.source_chain().contains("accounts_pkey"),
        "the log keeps the constraint name"
    );

    // a named constraint mapped to its own client error
    fn reused() -> Error {
        Error::unprocessable(
            "idempotency_key_reused",
            "the key was used with another body",
        )
    }
    let err = sqlx::query("INSERT INTO orders VALUES ('o2', 'k1')")
        .execute(db.pool())
        .await
        .expect_err("dup key");
    let mapped = Error::from_sqlx(err, &[("orders_key_unique", reused)]);
    assert_eq!(
        (mapped.kind(), mapped.code()),
        (Kind::Validation, "idempotency_key_reused")
    );

    // check violation: 422, no SQL in the message
    let err = sqlx::query("UPDATE accounts SET balance = -1")
        .execute(db.pool())
        .await
        .expect_err("check");
    let mapped = Error::from(err);
    assert_eq!(mapped.kind(), Kind::Validation);
    assert!(!mapped.message().contains("balance"));

    // row not found: 404
    let err = sqlx::query("SELECT id FROM accounts WHERE id = 'zzz'")
        .fetch_one(db.pool())
        .await
        .expect_err("none");
    assert_eq!(Error::from(err).kind(), Kind::NotFound);

    // a syntax error is a 500 whose public message says nothing about SQL
    let err = sqlx::query("SELEC broken")
        .execute(db.pool())
        .await
        .expect_err("syntax");
    let mapped = Error::from(err);
    assert_eq!(mapped.kind(), Kind::Internal);
    assert_eq!(mapped.message(), "internal error");
    let status: tonic::Status = mapped.into();
    assert!(!status.message().contains("SELEC"));

    // a closed pool: 503, retryable
    db.pool().close().await;
    let err = sqlx::query("SELECT 1")
        .execute(db.pool())
        .await
        .expect_err("closed");
    let mapped = Error::from(err);
    assert_eq!(mapped.kind(), Kind::Unavailable);
    assert!(mapped.kind().is_transient());
    db.drop_db().await;
}
