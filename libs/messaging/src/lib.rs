//! The event backbone: a state change and the event announcing it never disagree.
//!
//! - [`EventEnvelope`]: id (UUID v7), type (`<service>.v1.<event>`), tenant, time, schema version,
//!   JSON payload; on NATS also as headers (`Nats-Msg-Id` = id, `Tenant-Id`, `traceparent`, ...).
//! - [`Naming`] and [`ensure_stream`]: one JetStream stream per producing service, with an optional
//!   prefix so environments and tests can share a server, stored and bounded by
//!   [`StreamSettings`] (replicas, storage, age and size limits, duplicate window): created when
//!   missing, updated where JetStream allows when they differ, refused naming the setting where
//!   it does not.
//! - [`outbox::enqueue`] writes an event in the caller's transaction ([`outbox::OutboxRow`] writes it
//!   inside a statement of the caller's own, saving a round trip); [`outbox::OutboxRelay`] publishes
//!   committed rows, waits for JetStream's ack and marks them sent; a [`RelayWake`] wakes it after a
//!   commit.
//! - [`schemas`]: a producer's [`PublishedSchema`]s (JSON Schemas generated from the payload
//!   types, kept in `schemas/events/`), the [`EventContract`] of an event its consumers share (name,
//!   stream, schema versions), and [`ConsumedPayload`]: a consumer's view of a contract's event,
//!   older payloads upcast ([`EventEnvelope::read`]).
//! - [`SCHEMA`]: the `outbox` and `inbox` tables, owned by this library.
//! - [`consumer::run_consumer`]: durable pull consumers with explicit ack whose handler runs in a
//!   tenant-scoped transaction together with the `inbox` row, so redeliveries are no-ops; failures
//!   are retried with backoff and poison messages go to a dead-letter subject. A consumer may
//!   handle the events waiting together in one transaction ([`ConsumerSpec::batched`]), and serve
//!   them as a set: one inbox statement for the batch, the newly claimed events handed over at
//!   once ([`ConsumerSpec::set_based`], [`Consumer::consume_many`]); a [`SetConsumer`] is a value
//!   that says only its durable name, its key, its one set statement and its report, and serves
//!   batches and single events alike.
//!
//! # Delivery guarantees
//!
//! **Order.** A relay claims rows in insertion order and marks only an acknowledged prefix of each
//! batch sent, so with one relay and a healthy connection the stream holds events in insertion
//! order. Two things can reorder: several replicas relaying at once (each claims different rows),
//! and a connection that drops mid-batch (the client resends the unsent tail after reconnecting,
//! after the next batch may already have gone out). Nothing is lost or duplicated either way.
//! Consumers must therefore not depend on the order of events; Longship's own consumers don't
//! (each event is handled on its own, idempotently).
//!
//! Publishing is **at least once**: a row's mark as sent commits only after JetStream acknowledged it
//! (the relay claims and marks a batch in one statement, publishes, and unmarks what was not
//! acknowledged before it commits), so a
//! crash between ack and mark publishes it again, and JetStream drops that duplicate by
//! `Nats-Msg-Id` within the stream's duplicate window (2 minutes by default). The mark is committed
//! asynchronously (`synchronous_commit = off` for the relay's transaction only): a Postgres crash
//! can lose the marks of the last ~0.2 s, which only republishes those rows (dropped as above, and
//! by the consumers' inboxes after that); the event rows themselves were committed durably by the
//! transactions that wrote them. Handling is **effectively once**
//! per consumer: the handler's writes and the `inbox` row commit in one transaction, so a redelivered
//! event is acknowledged without running the handler again. What a handler must do: write only
//! through the transaction it is given (side effects outside Postgres — calling another service,
//! sending mail — must themselves be idempotent, keyed by the event id), and return an error rather
//! than panic. nats-server 2.9 acknowledges before fsync: a killed process loses nothing, a machine
//! crash can lose the last sync interval of the stream (the outbox row is already marked sent then).

pub mod consumer;
pub mod dead_letter;
mod durable;
mod envelope;
mod handler_error;
mod inbox;
mod metric_families;
mod naming;
pub mod outbox;
mod producer;
pub mod schemas;
mod set_consumer;
mod set_items;
mod spec;
mod start;
mod streams;
pub mod testing;
mod typed;

pub use consumer::{ClaimedEvent, ConsumerContext, ConsumerSpec, EventHandler, run_consumer};
pub use durable::ConsumerSettings;
pub use envelope::{DecodeError, EventEnvelope, NewEvent};
pub use handler_error::HandlerError;
pub use metric_families::METRIC_FAMILIES;
pub use naming::{Naming, StreamSpec};
pub use outbox::{
    EnqueueError, OutboxError, OutboxRelay, OutboxRow, RelayConfig, RelayWake, enqueue,
};
pub use schemas::{ConsumedPayload, EventContract, PayloadError, PublishedSchema};
pub use set_consumer::{SET_BATCH, SetConsumer, SetStatement};
pub use set_items::{EventColumns, SetItem, SetTransition, fetch_per_item, first_of_each};
pub use start::ConsumerStart;
pub use streams::{
    DEAD_LETTER_MIN_AGE, StreamError, StreamSettings, ensure_dead_letter_stream, ensure_stream,
    ensure_streams_with_retry,
};
pub use typed::{Consumer, Delivered};

/// The tables this library needs in every service database that uses it (`outbox`, `inbox`),
/// applied by the runtime before the service's own migrations.
pub static SCHEMA: longship_sql::Schema = longship_sql::Schema::new("messaging", &MIGRATOR);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
