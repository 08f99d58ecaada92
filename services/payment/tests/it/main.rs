//! Integration tests of the payment service: the real service in-process on port 0, with a fresh
//! Postgres database and an isolated NATS namespace per test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod accounts;
mod authorize;
mod batch;
mod batch_tenants;
mod capture;
mod compat;
mod helpers;
mod identity;
mod set_capture;
mod tenancy;
mod void;
