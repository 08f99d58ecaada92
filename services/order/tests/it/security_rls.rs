//! Row-level security on the platform's own tables (`saga`, `saga_history`, `outbox`, `inbox`),
//! checked after tenant A's order went through the whole platform: the request role
//! (`longship_app`) sees and writes only the tenant its transaction set; the worker role
//! (`longship_worker`: the saga engine, relays, consumers) sees every tenant's rows.

use longship_testkit::TestDb;
use longship_testkit::checks::assert_tenant_set_admits_only_its_tenants;

use crate::harness::Platform;

/// Under the request role: no tenant set sees no row, B's setting neither sees nor changes A's
/// rows nor writes one in A's name, A's setting sees A's rows (so the check is not vacuous).
/// Under the worker role: every row, with no tenant set.
pub async fn rls_covers_the_platform_tables(p: &Platform, a: &str, b: &str) {
    let tables = [
        (&p.orders_db, "saga"),
        (&p.orders_db, "saga_history"),
        (&p.orders_db, "outbox"),
        (&p.inventory_db, "outbox"),
        (&p.inventory_db, "inbox"),
        (&p.payments_db, "outbox"),
        (&p.payments_db, "inbox"),
    ];
    for (db, table) in tables {
        let all: i64 = count(db, None, None, &format!("SELECT count(*) FROM {table}")).await;
        let of_a = format!("SELECT count(*) FROM {table} WHERE tenant_id = '{a}'");
        let not_b = format!("SELECT count(*) FROM {table} WHERE tenant_id <> '{b}'");
        let any = format!("SELECT count(*) FROM {table}");
        assert!(
            count(db, Some("longship_app"), Some(a), &of_a).await > 0,
            "{table}: A has no rows, the check proves nothing"
        );
        assert_eq!(
            count(db, Some("longship_app"), None, &any).await,
            0,
            "{table}: rows visible without a tenant"
        );
        assert_eq!(
            count(db, Some("longship_app"), Some(b), &not_b).await,
            0,
            "{table}: other tenants' rows visible to B"
        );
        assert_eq!(
            count(db, Some("longship_worker"), None, &any).await,
            all,
            "{table}: the worker role does not see every row"
        );
        let changed = format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = '{a}'");
        let deleted = format!("DELETE FROM {table} WHERE tenant_id = '{a}'");
        for statement in [changed, deleted] {
            let n = execute(db, "longship_app", Some(b), &statement)
                .await
                .expect(&statement);
            assert_eq!(n, 0, "{table}: B changed A's rows: {statement}");
        }
    }
    // a tenant set (the batch paths) admits its tenants' outbox and inbox rows and no other's
    for (db, table) in [
        (&p.orders_db, "outbox"),
        (&p.inventory_db, "inbox"),
        (&p.payments_db, "outbox"),
    ] {
        let mut conn = db.app_role_connection().await;
        assert_tenant_set_admits_only_its_tenants(&mut conn, &[table], a, b).await;
    }
    let saga_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM saga WHERE tenant_id = $1 LIMIT 1")
            .bind(a)
            .fetch_one(p.orders_db.pool())
            .await
            .expect("A's saga");
    let forged = [
        (
            &p.orders_db,
            format!(
                "INSERT INTO saga_history (saga_id, tenant_id, state, actor) VALUES ('{saga_id}', '{a}', 'FORGED', 'b')"
            ),
        ),
        (
            &p.orders_db,
            format!(
                "INSERT INTO outbox (id, tenant_id, event_type, payload) VALUES (gen_random_uuid(), '{a}', 'forged', '{{}}')"
            ),
        ),
        (
            &p.payments_db,
            format!(
                "INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('forged', gen_random_uuid(), '{a}')"
            ),
        ),
    ];
    for (db, statement) in forged {
        let err = execute(db, "longship_app", Some(b), &statement)
            .await
            .expect_err("B wrote a row in A's name");
        assert!(err.contains("row-level security"), "{statement}: {err}");
    }
    // the worker role writes across tenants (what the engine and the consumers do)
    let n = execute(
        &p.payments_db,
        "longship_worker",
        None,
        &format!(
            "INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('worker-check', gen_random_uuid(), '{a}')"
        ),
    )
    .await
    .expect("worker insert");
    assert_eq!(n, 1);
}

/// `sql`'s single number, run as `role` (or the owner) with `tenant` set (or none).
async fn count(db: &TestDb, role: Option<&str>, tenant: Option<&str>, sql: &str) -> i64 {
    let mut tx = db.pool().begin().await.expect("begin");
    if let Some(role) = role {
        set(&mut tx, role, tenant).await;
    }
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *tx)
        .await
        .expect(sql);
    let _ = tx.rollback().await;
    n
}

/// Runs `sql` as `role` with `tenant` set (or none), rolled back; the rows it touched or the error.
async fn execute(db: &TestDb, role: &str, tenant: Option<&str>, sql: &str) -> Result<u64, String> {
    let mut tx = db.pool().begin().await.expect("begin");
    set(&mut tx, role, tenant).await;
    let result = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| e.to_string());
    let _ = tx.rollback().await;
    result
}

async fn set(tx: &mut sqlx::PgConnection, role: &str, tenant: Option<&str>) {
    sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
        .execute(&mut *tx)
        .await
        .expect("role");
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .expect("tenant");
    }
}
