//! The metric families of the outbox relay and the consumers, with their help text. The relay
//! creates its series at zero when it is built, each consumer its own (labelled with its durable
//! name) when it starts, so a first dead letter or a first failure shows as an increase.

use longship_telemetry::MetricFamily;

/// Events the relay published.
pub const OUTBOX_PUBLISHED: MetricFamily = MetricFamily::counter(
    "outbox_published_total",
    "Events the outbox relay published and JetStream acknowledged",
);
/// Relay batches that failed.
pub const OUTBOX_PUBLISH_FAILURES: MetricFamily = MetricFamily::counter(
    "outbox_publish_failures_total",
    "Outbox relay batches that failed (NATS or Postgres unavailable, acks missing); retried",
);
/// Unpublished rows.
pub const OUTBOX_BACKLOG: MetricFamily = MetricFamily::gauge(
    "outbox_backlog",
    "Outbox rows not yet published (sampled about once a second by the relay)",
);
/// Age of the oldest unpublished row.
pub const OUTBOX_OLDEST_AGE: MetricFamily = MetricFamily::gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox row in seconds (0 when none is waiting)",
);
/// Dead letters waiting for a redrive or a discard.
pub const DEAD_LETTERS_WAITING: MetricFamily = MetricFamily::gauge(
    "dead_letters_waiting",
    "Dead letters kept in the service's dead_letter table, waiting for a redrive or a discard, by consumer",
);
/// Events a consumer acknowledged.
pub const CONSUMER_HANDLED: MetricFamily = MetricFamily::counter(
    "consumer_handled_total",
    "Events a consumer acknowledged after handling them, including duplicates, by consumer",
);
/// Redeliveries the inbox made no-ops.
pub const CONSUMER_DUPLICATES: MetricFamily = MetricFamily::counter(
    "consumer_duplicates_total",
    "Redelivered events the inbox turned into no-ops, by consumer",
);
/// Handler failures that will be retried.
pub const CONSUMER_RETRIES: MetricFamily = MetricFamily::counter(
    "consumer_retries_total",
    "Handler failures (or database outages) that will be retried, by consumer",
);
/// Messages given up on.
pub const CONSUMER_DEAD_LETTERS: MetricFamily = MetricFamily::counter(
    "consumer_dead_letters_total",
    "Messages given up on (kept in the dead_letter table, copied to the dead-letter subject), by consumer",
);
/// Events per batch transaction.
pub const CONSUMER_BATCH_SIZE: MetricFamily = MetricFamily::histogram(
    "consumer_batch_size",
    "Events committed together in one transaction by a batched consumer, by consumer",
);
/// Batches handled one by one after a rollback.
pub const CONSUMER_BATCH_FALLBACKS: MetricFamily = MetricFamily::counter(
    "consumer_batch_fallbacks_total",
    "Batches rolled back and handled one event at a time (a failing event or a lock held too long), by consumer",
);

/// Every family of this crate.
pub const METRIC_FAMILIES: &[MetricFamily] = &[
    OUTBOX_PUBLISHED,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    CONSUMER_HANDLED,
    CONSUMER_DUPLICATES,
    CONSUMER_RETRIES,
    CONSUMER_DEAD_LETTERS,
    DEAD_LETTERS_WAITING,
    CONSUMER_BATCH_SIZE,
    CONSUMER_BATCH_FALLBACKS,
];

/// Describes the relay's families and creates them at zero.
pub(crate) fn zero_relay() {
    longship_telemetry::describe(METRIC_FAMILIES);
    for family in [
        OUTBOX_PUBLISHED,
        OUTBOX_PUBLISH_FAILURES,
        OUTBOX_BACKLOG,
        OUTBOX_OLDEST_AGE,
    ] {
        family.zero(&[]);
    }
}

/// Describes the consumers' families and creates the series of `consumer` at zero (the batch
/// families only for a batched consumer).
pub(crate) fn zero_consumer(consumer: &str, batched: bool) {
    longship_telemetry::describe(METRIC_FAMILIES);
    let labels = [("consumer", consumer.to_owned())];
    for family in [
        CONSUMER_HANDLED,
        CONSUMER_DUPLICATES,
        CONSUMER_RETRIES,
        CONSUMER_DEAD_LETTERS,
        DEAD_LETTERS_WAITING,
    ] {
        family.zero(&labels);
    }
    if batched {
        CONSUMER_BATCH_SIZE.zero(&labels);
        CONSUMER_BATCH_FALLBACKS.zero(&labels);
    }
}
