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

/// Runs `work` in a transaction begun with [`begin`] for `tenant`, and commits it when `work`
/// succeeds; when `work` fails, the transaction is rolled back (dropped) and its error returned.
pub async fn transact<T, E: From<sqlx::Error>>(
    pool: &PgPool,
    tenant: &TenantId,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E> {
    let mut tx = begin(pool, tenant).await?;
    let value = work(&mut tx).await?;
    tx.commit().await?;
    Ok(value)
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

/// Begins a transaction that may work on the rows of every tenant in `tenants` (and only those):
/// `app.tenant_ids` is set to them, which each tenant table's `tenant_set` policy admits
/// (`libs/tenant/migrations/0003_tenant_set.sql`). For set-based statements serving the items of
/// several tenants at once: every such statement must key each item's rows by the item's own
/// tenant (`WHERE t.tenant_id = u.tenant_id AND ...` over the items), since row-level security
/// then only keeps the transaction inside the set, not an item inside its tenant.
///
/// `BEGIN` and the setting travel in one message, as in [`begin`]. An empty set admits nothing.
pub async fn begin_set(
    pool: &PgPool,
    tenants: &[TenantId],
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(begin_set_statement(tenants)))
        .await
}

/// Like [`begin_set`], with `then` (further statements, e.g. taking locks) in the same round
/// trip. As for [`begin_then`], build `then` only from values that cannot end a literal.
pub async fn begin_set_then(
    pool: &PgPool,
    tenants: &[TenantId],
    then: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(format!(
        "{}; {then}",
        begin_set_statement(tenants)
    )))
    .await
}

/// Sets `app.tenant_ids` (see [`begin_set`]) for the rest of the current transaction on `conn`.
pub async fn set_tenant_set(
    conn: &mut PgConnection,
    tenants: &[TenantId],
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.tenant_ids', $1, true)")
        .bind(tenant_set_literal(tenants))
        .execute(conn)
        .await?;
    Ok(())
}

/// `tenants` as a Postgres text array literal (`{acme,globex}`), what `app.tenant_ids` holds: a
/// [`TenantId`] admits only `[a-z0-9-]`, so no element needs quoting.
pub fn tenant_set_literal(tenants: &[TenantId]) -> String {
    let mut literal = String::from("{");
    for (i, tenant) in tenants.iter().enumerate() {
        debug_assert!(safe_literal(tenant));
        if i > 0 {
            literal.push(',');
        }
        literal.push_str(tenant.as_str());
    }
    literal.push('}');
    literal
}

fn begin_set_statement(tenants: &[TenantId]) -> String {
    format!(
        "BEGIN; SELECT set_config('app.tenant_ids', '{}', true)",
        tenant_set_literal(tenants)
    )
}

fn safe_literal(tenant: &TenantId) -> bool {
    tenant
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn begin_statement(tenant: &TenantId) -> String {
    debug_assert!(safe_literal(tenant));
    format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
        tenant.as_str()
    )
}

/// A common table expression `scope` that sets `app.tenant_id` to the bound `tenant` (a
/// placeholder such as `$1`) for the rest of the transaction and yields it as `scope.tenant_id`:
/// `WITH {scope_cte}, x AS (INSERT INTO t (tenant_id, ...) SELECT scope.tenant_id, ... FROM scope)`.
/// A statement that starts this way is tenant-scoped on its own, so a unit of work that is one
/// statement can run outside an explicit transaction (its own implicit one): the setting is made
/// before any row is read or written (the rows come from `scope`), and row-level security checks
/// every row written after it. Materialised, so it runs once whatever reads it.
pub fn scope_cte(tenant: impl std::fmt::Display) -> String {
    format!(
        "scope AS MATERIALIZED (SELECT set_config('app.tenant_id', {tenant}, true) AS tenant_id)"
    )
}

/// Scopes the rest of the current transaction on `conn` to `tenant` alone: `app.tenant_id` set
/// to it and the tenant set (`app.tenant_ids`, see [`begin_set`]) emptied, in one statement.
/// For work written for one tenant's transaction that runs inside a set's transaction.
pub async fn scope_to_tenant(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('app.tenant_id', $1, true), set_config('app.tenant_ids', '{}', true)",
    )
    .bind(tenant.as_str())
    .execute(conn)
    .await?;
    Ok(())
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

    #[test]
    fn a_tenant_set_is_an_array_literal() {
        let tenants: Vec<TenantId> = ["acme", "globex-2"]
            .into_iter()
            .map(|t| TenantId::parse(t).expect("valid"))
            .collect();
        assert_eq!(tenant_set_literal(&tenants), "{acme,globex-2}");
        assert_eq!(tenant_set_literal(&[]), "{}");
        assert_eq!(
            begin_set_statement(&tenants),
            "BEGIN; SELECT set_config('app.tenant_ids', '{acme,globex-2}', true)"
        );
    }
}
