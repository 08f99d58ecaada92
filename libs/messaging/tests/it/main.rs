//! Integration tests of the event backbone against real Postgres and NATS JetStream (through
//! `longship_testkit`): a fresh database with the outbox/inbox schema and a fresh NATS namespace
//! per test.
//!
//! - [`relay`]: what the outbox relay publishes, with which headers, with two relays at once,
//!   across a NATS outage and cut connections (simulated with `longship_testkit::FaultProxy`), and
//!   that an unpublishable event is refused before it can block the outbox.
//! - [`consumer`]: deduplication, retries, dead letters, tenant scope and trace continuation.
//! - [`sets`]: set-based consumers: one claim per batch, the new events handed over at once, a
//!   bad payload falling back and dead-lettered alone, the default scoping each event to its tenant.
//! - [`streams`]: stream and consumer settings from config: created as configured, updated where
//!   JetStream allows, refused naming the setting where it does not (storage; replicas a single
//!   server cannot hold).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

mod consumer;
mod helpers;
mod relay;
mod sets;
mod streams;
