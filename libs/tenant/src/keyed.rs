//! Statements about one row of a tenant: the row named by `(tenant, key)`, the tenant as `$1` and
//! the key as `$2` (a table's primary key, or another unique key such as a customer id), so a store
//! function states its SQL and what it fetches and nothing else:
//!
//! ```
//! # use longship_tenant::{TenantId, keyed_as};
//! # let tenant = TenantId::parse("acme").expect("valid");
//! let find = keyed_as::<(String, i64), _>(
//!     "SELECT sku, on_hand FROM products WHERE tenant_id = $1 AND sku = $2",
//!     &tenant,
//!     "sku-1",
//! );
//! // find.fetch_optional(conn).await
//! ```
//!
//! Further parameters bind from `$3` on, as on any sqlx query (`.bind(...)`). [`RowKey::storable`]
//! says whether a key can name a row at all, so that a lookup by one that cannot finds nothing
//! without a query.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::{Query, QueryAs};
use sqlx::{Encode, FromRow, Postgres, SqlSafeStr, Type};

use crate::TenantId;

/// A row key as `keyed` statements bind it: text or a UUID.
pub trait RowKey {
    /// Whether a row can hold this key. Text with a NUL cannot be stored, and Postgres refuses it
    /// as a parameter, so a lookup by such a key finds nothing without asking.
    fn storable(&self) -> bool;
}

impl RowKey for &str {
    fn storable(&self) -> bool {
        !self.contains('\0')
    }
}

impl RowKey for uuid::Uuid {
    fn storable(&self) -> bool {
        true
    }
}

/// The statement `sql` with `tenant` bound as `$1` and `key` as `$2`.
pub fn keyed<'q, K>(
    sql: impl SqlSafeStr,
    tenant: &'q TenantId,
    key: K,
) -> Query<'q, Postgres, PgArguments>
where
    K: Encode<'q, Postgres> + Type<Postgres> + 'q,
{
    sqlx::query(sql).bind(tenant.as_str()).bind(key)
}

/// The query `sql`, answering `T`s, with `tenant` bound as `$1` and `key` as `$2`.
pub fn keyed_as<'q, T, K>(
    sql: impl SqlSafeStr,
    tenant: &'q TenantId,
    key: K,
) -> QueryAs<'q, Postgres, T, PgArguments>
where
    T: for<'r> FromRow<'r, PgRow>,
    K: Encode<'q, Postgres> + Type<Postgres> + 'q,
{
    sqlx::query_as(sql).bind(tenant.as_str()).bind(key)
}
