//! What a service's use cases run on: tenant-scoped transactions over the request pool, and the
//! outbox relay's wake for the commits that enqueued events.

use longship_errors::Error;
use longship_messaging::RelayWake;
use sqlx::postgres::PgRow;
use sqlx::{Encode, FromRow, PgConnection, PgPool, Postgres, Type};

use longship_tenant::{RowKey, TenantId, keyed_as};

/// The request pool and the outbox relay's wake, as a service's use cases use them. A use case is
/// one tenant transaction ([`TenantDb::transact`]; reading one row by its key is
/// [`TenantDb::find`]); one whose transaction may enqueue outbox events
/// runs it with [`TenantDb::transact_publishing`], which wakes the relay after the commit so the
/// events leave at once rather than at the relay's next poll. A use case that needs its own
/// transaction shape (a batch over several tenants, a lock taken with `BEGIN`) begins it on
/// [`TenantDb::pool`] and calls [`TenantDb::wake_relay`] after committing.
#[derive(Debug, Clone)]
pub struct TenantDb {
    pool: PgPool,
    relay: RelayWake,
}

impl TenantDb {
    /// The use cases' database: `pool` serves requests (row-level security applies), `relay`
    /// wakes the service's outbox relay ([`crate::Shell::tenant_db`] gives both).
    pub fn new(pool: PgPool, relay: RelayWake) -> TenantDb {
        TenantDb { pool, relay }
    }

    /// The request pool, for a transaction [`TenantDb::transact`] does not shape.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Wakes the outbox relay; call it after committing a transaction that may have enqueued
    /// events (several wakes before the relay runs count as one).
    pub fn wake_relay(&self) {
        self.relay.wake();
    }

    /// Runs `work` in one transaction of `tenant` ([`longship_tenant::transact`]): committed when
    /// `work` succeeds, rolled back when it fails.
    pub async fn transact<T, E: From<sqlx::Error>>(
        &self,
        tenant: &TenantId,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        longship_tenant::transact(&self.pool, tenant, work).await
    }

    /// Like [`TenantDb::transact`], for `work` that may enqueue outbox events: the relay is woken
    /// once the transaction has committed (not when it failed: nothing was enqueued).
    pub async fn transact_publishing<T, E: From<sqlx::Error>>(
        &self,
        tenant: &TenantId,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let value = self.transact(tenant, work).await?;
        self.wake_relay();
        Ok(value)
    }

    /// The tenant's row keyed by `key`, read by `sql` (a [`keyed_as`] statement: `$1` the tenant,
    /// `$2` the key) in one transaction of `tenant`, or the error `missing` makes when there is no
    /// such row. A key no row can hold ([`RowKey::storable`]) is missing without a query.
    pub async fn find<T, K>(
        &self,
        tenant: &TenantId,
        sql: &'static str,
        key: K,
        missing: impl FnOnce() -> Error + Send,
    ) -> Result<T, Error>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
        K: RowKey + for<'q> Encode<'q, Postgres> + Type<Postgres> + Send,
    {
        if !key.storable() {
            return Err(missing());
        }
        let find =
            async |tx: &mut PgConnection| keyed_as(sql, tenant, key).fetch_optional(tx).await;
        self.transact(tenant, find).await?.ok_or_else(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    async fn db() -> TenantDb {
        let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let pool = PgPool::connect(&url).await.expect(
            "Postgres at TEST_DATABASE_URL (default 127.0.0.1:5432): start it with `just up`",
        );
        TenantDb::new(pool, RelayWake::default())
    }

    #[tokio::test]
    async fn work_runs_in_one_transaction_of_the_tenant() {
        let db = db().await;
        let tenant = TenantId::parse("acme").expect("valid");
        let setting = async |tx: &mut PgConnection| {
            sqlx::query_scalar::<_, String>("SELECT current_setting('app.tenant_id')")
                .fetch_one(tx)
                .await
        };
        assert_eq!(db.transact(&tenant, setting).await.expect("ran"), "acme");
        let published = db.transact_publishing(&tenant, setting).await;
        assert_eq!(published.expect("ran"), "acme");

        let failing = async |tx: &mut PgConnection| {
            sqlx::query("SELECT 1 / 0").execute(tx).await?;
            Ok::<_, sqlx::Error>(())
        };
        assert!(db.transact_publishing(&tenant, failing).await.is_err());
    }

    #[tokio::test]
    async fn find_reads_the_tenants_row_by_its_key() {
        let db = db().await;
        let tenant = TenantId::parse("acme").expect("valid");
        // a row for every key but "nobody", of the transaction's tenant only
        const ROW: &str =
            "SELECT $2::text WHERE $1 = current_setting('app.tenant_id') AND $2 <> 'nobody'";
        let missing = || Error::not_found("test.not_found", "no such row");
        let found: (String,) = db.find(&tenant, ROW, "k-1", missing).await.expect("found");
        assert_eq!(found.0, "k-1");
        for key in ["nobody", "a\0b"] {
            // a NUL would be refused by Postgres (a 500): it is missing without a query
            let absent = db.find::<(String,), _>(&tenant, ROW, key, missing).await;
            assert_eq!(absent.expect_err(key).code(), "test.not_found");
        }
    }
}
