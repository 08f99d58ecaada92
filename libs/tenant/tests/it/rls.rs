//! Row-level security against real Postgres: the transaction helper shows each tenant only its rows.

use longship_tenant::{TenantId, begin, transact};
use longship_testkit::TestDb;

const SETUP: &str = r#"
DO $$ BEGIN CREATE ROLE longship_rls_test NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE TABLE notes (id serial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notes
  USING (tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO longship_rls_test;
GRANT USAGE ON SEQUENCE notes_id_seq TO longship_rls_test;
INSERT INTO notes (tenant_id, body) VALUES ('acme', 'a1'), ('acme', 'a2'), ('globex', 'g1');
"#;

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid tenant")
}

async fn app_pool(db: &TestDb) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET ROLE longship_rls_test")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(db.connect_options())
        .await
        .expect("app pool")
}

#[tokio::test]
async fn each_tenant_sees_only_its_rows_and_none_without_a_tenant() {
    let db = TestDb::new().await;
    sqlx::raw_sql(SETUP)
        .execute(db.pool())
        .await
        .expect("setup");
    let pool = app_pool(&db).await;

    for (t, expected) in [
        ("acme", vec!["a1", "a2"]),
        ("globex", vec!["g1"]),
        ("initech", vec![]),
    ] {
        let mut tx = begin(&pool, &tenant(t)).await.expect("begin");
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM notes ORDER BY body")
            .fetch_all(&mut *tx)
            .await
            .expect("select");
        assert_eq!(bodies, expected, "tenant {t}");
        tx.commit().await.expect("commit");
    }

    // no tenant set: nothing visible, even with no WHERE clause at all
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 0);

    // the setting is transaction-local: a later transaction on the same pool sees nothing again
    {
        let mut tx = begin(&pool, &tenant("acme")).await.expect("begin");
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
            .fetch_one(&mut *tx)
            .await
            .expect("count");
        tx.commit().await.expect("commit");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 0);

    // writing another tenant's row is refused by the policy's WITH CHECK
    let mut tx = begin(&pool, &tenant("acme")).await.expect("begin");
    let err = sqlx::query("INSERT INTO notes (tenant_id, body) VALUES ('globex', 'sneaky')")
        .execute(&mut *tx)
        .await
        .expect_err("cross-tenant insert must fail");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    // updates cannot touch another tenant's rows either
    let mut tx = begin(&pool, &tenant("acme")).await.expect("begin");
    let updated = sqlx::query("UPDATE notes SET body = 'x' WHERE tenant_id = 'globex'")
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(updated, 0);
    tx.commit().await.expect("commit");

    pool.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn transact_commits_the_work_that_succeeds_and_rolls_back_the_work_that_fails() {
    let db = TestDb::new().await;
    sqlx::raw_sql(SETUP)
        .execute(db.pool())
        .await
        .expect("setup");
    let pool = app_pool(&db).await;
    let insert = async |conn: &mut sqlx::PgConnection, body: &str| {
        sqlx::query("INSERT INTO notes (tenant_id, body) VALUES ('acme', $1)")
            .bind(body)
            .execute(conn)
            .await
    };

    let kept = transact(&pool, &tenant("acme"), async |tx| insert(tx, "kept").await).await;
    assert_eq!(kept.expect("inserted").rows_affected(), 1);
    let failed: Result<(), sqlx::Error> = transact(&pool, &tenant("acme"), async |tx| {
        insert(tx, "dropped").await?;
        Err(sqlx::Error::Protocol("the work failed".into()))
    })
    .await;
    assert!(failed.is_err());
    // another tenant's row is refused by the policy: the error comes back, nothing is written
    let refused = transact(&pool, &tenant("globex"), async |tx| {
        insert(tx, "stolen").await
    })
    .await;
    assert!(refused.is_err());

    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT body FROM notes WHERE tenant_id = 'acme' ORDER BY body")
            .fetch_all(db.pool())
            .await
            .expect("select");
    assert_eq!(bodies, ["a1", "a2", "kept"]);
    let stolen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = 'stolen'")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(stolen, 0);
}
