//! End-to-end tests of the order service with inventory and payment, all three started in-process
//! on port 0 against real Postgres (a database each) and NATS (one isolated prefix).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod admin;
mod api;
mod compat;
mod console;
mod database_loss;
mod docs_page;
mod faults;
mod harness;
mod hostile_headers;
mod identity;
mod invariants;
mod lifecycle;
mod metrics;
mod openapi;
mod saga;
mod saga_failures;
mod saga_tenants;
mod security_auth;
mod security_decoders;
mod security_input;
mod security_isolation;
mod security_limits;
mod security_rls;
mod trace;
