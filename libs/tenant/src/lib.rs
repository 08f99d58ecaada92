//! Tenant identity for every request and every piece of work: the validated [`TenantId`], how it is
//! authenticated over HTTP ([`Authenticator`], the [`Tenant`] axum extractor; admins by the [`Admin`]
//! extractor), carried over gRPC
//! ([`grpc`] interceptors, `x-tenant-id`) and NATS ([`nats`] header `Tenant-Id`), and how it reaches
//! Postgres row-level security ([`begin`] opens a transaction with `app.tenant_id` set).

mod admin;
mod auth;
pub mod grpc;
mod id;
pub mod nats;
mod sql;

pub use admin::{
    Admin, AdminPrincipal, AdminScope, OPERATOR_SCOPE, TENANT_ADMIN_SCOPE, issue_dev_admin_token,
};
pub use auth::{
    AuthConfig, Authenticator, Claims, JwtAlgorithm, TENANT_HEADER, Tenant, issue_dev_token,
};
pub use id::{InvalidTenantId, TenantId};
pub use sql::{begin, begin_then, set_tenant};
