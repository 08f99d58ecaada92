//! A consumer's settings: which stream and events, deliveries, concurrency and batching.

use std::time::Duration;

use crate::durable::ConsumerSettings;
use crate::start::ConsumerStart;

/// A consumer's settings.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name, unique per consuming service and purpose (e.g. `inventory-order-events`).
    pub durable_name: String,
    /// Stream to read (unprefixed, e.g. `ORDERS`).
    pub stream: String,
    /// Event type filter (unprefixed subject, may end in `>`).
    pub filter: String,
    /// Deliveries before a failing message goes to the dead-letter subject.
    pub max_deliver: i64,
    /// Messages handled concurrently.
    pub concurrency: usize,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries awaiting an ack at once (`None`: four times `concurrency`).
    pub max_ack_pending: Option<i64>,
    /// Events handled in one transaction when several are waiting (1: a transaction each). See
    /// [`ConsumerSpec::batched`].
    pub batch_size: usize,
    /// How long a batch's transaction waits for a row lock before it gives way (rolls back and
    /// handles its events one by one). See [`ConsumerSpec::batched`].
    pub batch_lock_timeout: Duration,
    /// Whether a batch's events are claimed in one statement and handed to the handler at once
    /// ([`EventHandler::handle_set`](crate::EventHandler::handle_set)). See
    /// [`ConsumerSpec::set_based`].
    pub set_based: bool,
    /// Where a durable consumer that does not exist yet starts reading its stream (`None`: the
    /// service's `CONSUMER_START_POSITION`). An existing consumer keeps its position.
    pub start: Option<ConsumerStart>,
}

impl ConsumerSpec {
    /// A spec with the default [`ConsumerSettings`] (5 deliveries, 30 s ack wait, four times the
    /// concurrency awaiting acks) and 32 in flight.
    pub fn new(durable_name: &str, stream: &str, filter: &str) -> ConsumerSpec {
        let settings = ConsumerSettings::default();
        ConsumerSpec {
            durable_name: durable_name.to_owned(),
            stream: stream.to_owned(),
            filter: filter.to_owned(),
            max_deliver: settings.max_deliver,
            concurrency: 32,
            ack_wait: settings.ack_wait,
            max_ack_pending: settings.max_ack_pending,
            batch_size: 1,
            batch_lock_timeout: Duration::from_millis(25),
            set_based: false,
            start: None,
        }
    }

    /// Takes its delivery settings (ack wait, max deliver, max ack pending) from `settings`:
    /// the service shell applies the configured ones (`NATS_CONSUMER_*`) to every consumer.
    pub fn with_settings(mut self, settings: &ConsumerSettings) -> ConsumerSpec {
        self.ack_wait = settings.ack_wait;
        self.max_deliver = settings.max_deliver;
        self.max_ack_pending = settings.max_ack_pending;
        self
    }

    /// Handles up to `size` waiting events in one transaction: one `BEGIN`, one inbox row and the
    /// handler's statements per event, one `COMMIT` (one WAL flush) for all of them, then the
    /// acks. Batches run one at a time per consumer (messages that arrive meanwhile make the next
    /// batch bigger, so the batch size follows the load). If anything in a batch fails, it is
    /// rolled back and its events are handled one by one, with the usual retries and dead
    /// letters, so one bad event never holds back the others.
    ///
    /// A batch never waits long for a lock: its transaction runs with a short `lock_timeout`
    /// ([`ConsumerSpec::batch_lock_timeout`], 25 ms by default), and a batch that would wait
    /// longer rolls back and handles its events one by one, each in its own transaction without
    /// that limit. So a handler that locks several rows per event may be batched although the
    /// events of a batch lock their rows out of any global order: if a batch and another
    /// transaction ever wait on each other, the batch gives way within the timeout (long before
    /// Postgres' deadlock detector would pick a victim, which could be the other transaction).
    /// Contention only costs throughput (a batch handled one by one), never an event.
    pub fn batched(mut self, size: usize) -> ConsumerSpec {
        self.batch_size = size.max(1);
        self
    }

    /// Handles a batch's events as a set (with [`ConsumerSpec::batched`]; a consumer that is not
    /// batched handles its events one by one whatever this says): one statement claims the inbox
    /// rows of all of them and scopes the transaction to the batch's tenants (`app.tenant_ids`,
    /// see `longship_tenant::begin_set`), then the handler gets the newly claimed events at once
    /// ([`EventHandler::handle_set`](crate::EventHandler::handle_set), for typed consumers
    /// [`Consumer::consume_many`](crate::Consumer::consume_many)), so it can serve them with a
    /// few set-based statements whatever their number and tenants. Events already in the inbox
    /// (redeliveries) are not passed on; events of other types are claimed and skipped. Failures
    /// go as for any batch: the batch rolls back and its events are handled one by one, each in a
    /// transaction of its own tenant (the single-event path, which is also the dead letters'
    /// redrive).
    ///
    /// Row-level security then admits the rows of every tenant of the batch, so a handler of sets
    /// must key each event's rows by that event's own tenant (join on `(tenant_id, ...)` pairs);
    /// the default `handle_set` handles the events one by one, each with the transaction scoped
    /// back to its own tenant.
    pub fn set_based(mut self) -> ConsumerSpec {
        self.set_based = true;
        self
    }

    /// Sets how long a batch waits for a row lock before it gives way (see
    /// [`ConsumerSpec::batched`]); at least 1 ms.
    pub fn batch_lock_timeout(mut self, timeout: Duration) -> ConsumerSpec {
        self.batch_lock_timeout = timeout.max(Duration::from_millis(1));
        self
    }
}
