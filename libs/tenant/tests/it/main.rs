//! Integration tests of the tenant library: authentication attacks and row-level security on real Postgres.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod admin;
mod auth;
mod keys;
mod rls;
