//! Integration tests of the inventory service: the real service in-process on port 0, with a fresh
//! Postgres database and an isolated NATS namespace per test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod batch;
mod batch_tenants;
mod compat;
mod confirmation;
mod dead_letters;
mod expiry;
mod grpc_connections;
mod helpers;
mod identity;
mod products;
mod reservations;
mod set_commit;
mod tenancy;
