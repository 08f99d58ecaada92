//! Integration tests of the tenant library: authentication attacks and row-level security on real Postgres.

mod auth;
mod rls;
