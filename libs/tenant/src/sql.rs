//! Tenant-scoped Postgres transactions for row-level security.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::TenantId;

/// Begins a transaction whose `app.tenant_id` setting is `tenant`, so row-level security policies
/// written against `current_setting('app.tenant_id', true)` show and accept only that tenant's rows.
/// The setting is transaction-local: it cannot leak to the pooled connection's next user.
///
/// `BEGIN` and the setting travel in one simple-protocol message, so a tenant transaction costs one
/// round trip before its first statement instead of two. The tenant id is inlined as a literal:
/// [`TenantId`] admits only `[a-z0-9-]`, so it can never end the literal.
pub async fn begin(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(begin_statement(tenant)))
        .await
}

/// Like [`begin`], with `then` (further statements, e.g. taking a lock) in the same round trip.
/// `then` is sent as it is: build it only from values that cannot end a literal (ids checked by
/// their types), never from request text.
pub async fn begin_then(
    pool: &PgPool,
    tenant: &TenantId,
    then: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(format!(
        "{}; {then}",
        begin_statement(tenant)
    )))
    .await
}

fn begin_statement(tenant: &TenantId) -> String {
    debug_assert!(
        tenant
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    );
    format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
        tenant.as_str()
    )
}

/// Sets `app.tenant_id` for the rest of the current transaction on `conn`.
pub async fn set_tenant(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_statement_sets_the_tenant_locally() {
        let tenant = TenantId::parse("acme-2").expect("valid");
        assert_eq!(
            begin_statement(&tenant),
            "BEGIN; SELECT set_config('app.tenant_id', 'acme-2', true)"
        );
    }
}
