//! A session terminated by the server (`pg_terminate_backend`, SQLSTATE 57P01) and the errors
//! on the broken connection afterwards are 503 `database.unavailable` with `Retry-After`, never 500.

use longship_errors::{Error, Kind};
use longship_testkit::TestDb;
use sqlx::Connection;

#[tokio::test]
async fn a_terminated_session_is_503_database_unavailable_with_retry_after() {
    let db = TestDb::new().await;
    let mut victim = sqlx::PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .expect("pid");
    // the session is killed by another one while it waits in a statement: 57P01
    let running = sqlx::query("SELECT pg_sleep(10)").execute(&mut victim);
    let killer = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(db.pool())
            .await
            .expect("terminate");
        assert!(killed);
    };
    let (result, ()) = tokio::join!(running, killer);
    let err = result.expect_err("terminated");
    let sqlstate = match &err {
        sqlx::Error::Database(e) => e.code().map(|c| c.into_owned()),
        _ => None,
    };
    let mapped = Error::from(err);
    assert_eq!(
        (mapped.kind(), mapped.code(), mapped.retry_after_secs()),
        (Kind::Unavailable, "database.unavailable", Some(1)),
        "SQLSTATE {sqlstate:?}: {}",
        mapped.source_chain()
    );
    assert_eq!(mapped.kind().http_status(), 503);

    // the broken connection's next use
    let err = sqlx::query("SELECT 1")
        .execute(&mut victim)
        .await
        .expect_err("connection is gone");
    let mapped = Error::from(err);
    assert_eq!(
        (mapped.kind(), mapped.code()),
        (Kind::Unavailable, "database.unavailable"),
        "{}",
        mapped.source_chain()
    );
    db.drop_db().await;
}
