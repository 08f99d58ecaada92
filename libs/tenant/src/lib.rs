//! Tenant identity for every request and every piece of work: the validated [`TenantId`], how it is
//! authenticated over HTTP ([`Authenticator`], the [`Tenant`] axum extractor; admins by the [`Admin`]
//! extractor), carried over gRPC
//! ([`grpc`] interceptors, `x-tenant-id`) and NATS ([`nats`] header `Tenant-Id`), and how it reaches
//! Postgres row-level security ([`begin`] opens a transaction with `app.tenant_id` set; [`SCHEMA`]
//! creates the non-owner role the services run as, so that security applies to them), and the
//! statements about one row of a tenant ([`keyed`], [`keyed_as`]: `$1` the tenant, `$2` the
//! [`RowKey`]).

mod admin;
mod auth;
pub mod batch;
pub mod grpc;
mod id;
mod jwks;
mod keyed;
mod keys;
pub mod nats;
mod sql;

pub use admin::{
    Admin, AdminPrincipal, AdminScope, OPERATOR_SCOPE, TENANT_ADMIN_SCOPE, issue_dev_admin_token,
};
pub use auth::{
    AuthConfig, Authenticator, Claims, JwtAlgorithm, TENANT_HEADER, Tenant, issue_dev_token,
};
pub use id::{InvalidTenantId, TenantId};
pub use keyed::{RowKey, keyed, keyed_as};
pub use sql::{
    begin, begin_set, begin_set_then, begin_then, scope_cte, scope_to_tenant, set_tenant,
    set_tenant_set, tenant_set_literal, transact,
};

/// The role the services' connections run as (`longship_app`: owns no table, so row-level security
/// applies), created in every service database before anything else.
pub static SCHEMA: longship_sql::Schema = longship_sql::Schema::new("tenant", &MIGRATOR);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
