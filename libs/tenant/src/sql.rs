//! Tenant-scoped Postgres transactions for row-level security.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::TenantId;

/// Begins a transaction whose `app.tenant_id` setting is `tenant`, so row-level security policies
/// written against `current_setting('app.tenant_id', true)` show and accept only that tenant's rows.
/// The setting is transaction-local: it cannot leak to the pooled connection's next user.
pub async fn begin(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_tenant(&mut tx, tenant).await?;
    Ok(tx)
}

/// Sets `app.tenant_id` for the rest of the current transaction on `conn`.
pub async fn set_tenant(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.as_str())
        .execute(conn)
        .await?;
    Ok(())
}
