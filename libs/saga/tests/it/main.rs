//! Saga engine tests against real Postgres: a scripted saga whose participants record every call,
//! so tests can assert order, idempotency keys, history, operators' actions, versions and
//! concurrency.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod batching;
mod engine;
mod fairness;
mod harness;
mod history;
mod operators;
mod versions;
