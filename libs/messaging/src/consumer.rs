//! Durable pull consumers whose handlers run exactly once per event and consumer, with retries and
//! dead letters.

pub use crate::handler_error::HandlerError;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metric_families::{
    CONSUMER_BATCH_FALLBACKS, CONSUMER_BATCH_SIZE, CONSUMER_DEAD_LETTERS, CONSUMER_DUPLICATES,
    CONSUMER_HANDLED, CONSUMER_RETRIES, DEAD_LETTERS_WAITING,
};
pub use crate::spec::ConsumerSpec;
use crate::{EventEnvelope, Naming, RelayWake};
pub use set::ClaimedEvent;

mod set;

/// Handles one event inside a transaction scoped to the event's tenant. Write only through `tx`;
/// events it enqueues there are published as soon as the transaction commits (the runner wakes the
/// service's relay after every commit that handled an event).
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Handles `event`. Events of types this handler does not care about should return `Ok(())`.
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), HandlerError>;

    /// Handles the newly claimed events of a set-based batch at once ([`ConsumerSpec::set_based`]),
    /// in batch order, in one transaction that admits the rows of every tenant of the batch: key
    /// each event's rows by its own event's tenant. The default handles them one by one with
    /// [`EventHandler::handle`], the transaction scoped back to each event's own tenant in turn
    /// (one statement more per event).
    async fn handle_set(
        &self,
        tx: &mut PgConnection,
        events: &[ClaimedEvent<'_>],
    ) -> Result<(), HandlerError> {
        for event in events {
            let envelope = event.envelope;
            async {
                longship_tenant::scope_to_tenant(&mut *tx, &envelope.tenant_id).await?;
                self.handle(&mut *tx, envelope).await
            }
            .instrument(event.span.clone())
            .await?;
        }
        Ok(())
    }
}

/// What the consumers of one service share: its database, JetStream, its names, and its outbox
/// relay, woken after every commit that handled an event.
#[derive(Debug, Clone)]
pub struct ConsumerContext {
    /// The service's pool.
    pub pool: PgPool,
    /// JetStream (consuming, and publishing dead letters).
    pub js: jetstream::Context,
    /// Stream and subject names.
    pub naming: Naming,
    /// The service's relay.
    pub relay: RelayWake,
}

/// Runs the consumer until `shutdown`, reconnecting after errors. Creates the durable consumer if
/// missing; the stream must exist (the producer creates it), and is waited for.
pub async fn run_consumer(
    context: ConsumerContext,
    spec: ConsumerSpec,
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
) {
    crate::metric_families::zero_consumer(&spec.durable_name, spec.batch_size > 1);
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = consume(&context, &spec, &handler, &shutdown);
        tokio::select! {
            result = attempt => match result {
                Ok(()) => return,
                Err(e) => tracing::warn!(consumer = %spec.durable_name, error = %e, "consumer stopped; retrying"),
            },
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn consume(
    context: &ConsumerContext,
    spec: &ConsumerSpec,
    handler: &Arc<dyn EventHandler>,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (js, naming) = (&context.js, &context.naming);
    let stream = js.get_stream(naming.stream(&spec.stream)).await?;
    let consumer = crate::durable::ensure(
        &stream,
        jetstream::consumer::pull::Config {
            durable_name: Some(naming.consumer(&spec.durable_name)),
            filter_subject: naming.subject(&spec.filter),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            // the runner dead-letters by itself at spec.max_deliver; the server never gives up
            max_deliver: -1,
            max_ack_pending: spec
                .max_ack_pending
                .unwrap_or((spec.concurrency * 4) as i64),
            deliver_policy: spec.start.unwrap_or_default().policy(),
            ..Default::default()
        },
    )
    .await?;
    let messages = consumer.messages().await?;
    let c = Consumer {
        pool: &context.pool,
        js,
        spec,
        handler,
        relay: &context.relay,
        dead_letter: naming.dead_letter_subject(&spec.durable_name),
    };
    let shutdown_stream = messages.take_until(shutdown.clone().cancelled_owned());
    if spec.batch_size > 1 {
        shutdown_stream
            .ready_chunks(spec.batch_size)
            .for_each(|chunk| c.handle_chunk(chunk))
            .await;
    } else {
        shutdown_stream
            .for_each_concurrent(spec.concurrency, |message| async {
                match message {
                    Ok(message) => c.handle_one(message).await,
                    Err(e) => tracing::warn!(consumer = %spec.durable_name, error = %e, "message stream error"),
                }
            })
            .await;
    }
    if shutdown.is_cancelled() {
        Ok(())
    } else {
        Err("message stream ended".into())
    }
}

/// What handling a message needs: the database, JetStream (for dead letters), the consumer's
/// settings and handler.
struct Consumer<'a> {
    pool: &'a PgPool,
    js: &'a jetstream::Context,
    spec: &'a ConsumerSpec,
    handler: &'a Arc<dyn EventHandler>,
    relay: &'a RelayWake,
    dead_letter: String,
}

impl Consumer<'_> {
    async fn handle_one(&self, message: jetstream::Message) {
        let spec = self.spec;
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let span = event_span(spec, &message, delivered);
        async {
            let envelope = match EventEnvelope::decode(&message.payload) {
                Ok(e) => e,
                Err(e) => {
                    // undecodable bytes never become decodable: dead-letter at once
                    self.dead_letter_and_term(&message, &e.to_string()).await;
                    return;
                }
            };
            let span = tracing::Span::current();
            span.record("tenant_id", envelope.tenant_id.as_str());
            span.record("event_id", envelope.id.to_string());
            let handled = self.handle_in_tx(&envelope).await;
            if handled.is_err() {
                longship_telemetry::spans::record_failure(&span);
            }
            match handled {
                Ok(outcome) => {
                    if outcome == Outcome::Duplicate {
                        metrics::counter!(CONSUMER_DUPLICATES.name, "consumer" => spec.durable_name.clone()).increment(1);
                    }
                    metrics::counter!(CONSUMER_HANDLED.name, "consumer" => spec.durable_name.clone()).increment(1);
                    if let Err(e) = message.ack().await {
                        tracing::warn!(error = %e, "ack failed; the inbox makes the redelivery a no-op");
                    }
                }
                // the database was unreachable: that says nothing about the message, so it is retried
                // for as long as the outage lasts and never dead-lettered for it
                Err(Failure::Unavailable(e)) => {
                    metrics::counter!(CONSUMER_RETRIES.name, "consumer" => spec.durable_name.clone()).increment(1);
                    let delay = retry_delay(delivered).min(UNAVAILABLE_RETRY_MAX);
                    tracing::warn!(error = %e, delivered, retry_in_ms = delay.as_millis() as u64, "database unavailable; will retry");
                    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                }
                Err(Failure::Handler(e)) if delivered >= spec.max_deliver => {
                    self.dead_letter_and_term(&message, &e.0).await;
                }
                Err(Failure::Handler(e)) => {
                    metrics::counter!(CONSUMER_RETRIES.name, "consumer" => spec.durable_name.clone()).increment(1);
                    let delay = retry_delay(delivered);
                    tracing::warn!(error = %e.0, delivered, retry_in_ms = delay.as_millis() as u64, "handler failed; will retry");
                    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Handles the events that were waiting together (see [`ConsumerSpec::batched`]).
    async fn handle_chunk(
        &self,
        chunk: Vec<
            Result<jetstream::Message, async_nats::jetstream::consumer::pull::MessagesError>,
        >,
    ) {
        let spec = self.spec;
        let mut messages = Vec::with_capacity(chunk.len());
        for message in chunk {
            match message {
                Ok(m) => messages.push(m),
                Err(e) => {
                    tracing::warn!(consumer = %spec.durable_name, error = %e, "message stream error")
                }
            }
        }
        // a chunk of one goes the same way: it too waits no longer than the batch lock timeout
        let mut batch = Vec::with_capacity(messages.len());
        for message in messages {
            match EventEnvelope::decode(&message.payload) {
                Ok(envelope) => batch.push((message, envelope)),
                // handled alone: it is dead-lettered at once
                Err(_) => self.handle_one(message).await,
            }
        }
        if batch.is_empty() {
            return;
        }
        let handled = if spec.set_based {
            self.handle_set_in_tx(&batch).await
        } else {
            self.handle_batch_in_tx(&batch).await
        };
        match handled {
            Ok(outcomes) => {
                metrics::histogram!(CONSUMER_BATCH_SIZE.name, "consumer" => spec.durable_name.clone())
                    .record(batch.len() as f64);
                for ((message, _), outcome) in batch.iter().zip(outcomes) {
                    if outcome == Outcome::Duplicate {
                        metrics::counter!(CONSUMER_DUPLICATES.name, "consumer" => spec.durable_name.clone()).increment(1);
                    }
                    metrics::counter!(CONSUMER_HANDLED.name, "consumer" => spec.durable_name.clone()).increment(1);
                    if let Err(e) = message.ack().await {
                        tracing::warn!(error = %e, "ack failed; the inbox makes the redelivery a no-op");
                    }
                }
            }
            Err(e) => {
                metrics::counter!(CONSUMER_BATCH_FALLBACKS.name, "consumer" => spec.durable_name.clone())
                    .increment(1);
                tracing::info!(consumer = %spec.durable_name, events = batch.len(), error = %e, "batch rolled back; handling its events one by one");
                for (message, _) in batch {
                    self.handle_one(message).await;
                }
            }
        }
    }

    /// One transaction for the whole batch: per event, its tenant and its inbox row in one statement,
    /// then the handler; one commit.
    async fn handle_batch_in_tx(
        &self,
        batch: &[(jetstream::Message, EventEnvelope)],
    ) -> Result<Vec<Outcome>, HandlerError> {
        let (spec, handler) = (self.spec, self.handler);
        // the limit travels with BEGIN (one round trip) and ends with the transaction
        let begin = format!(
            "BEGIN; SET LOCAL lock_timeout = '{}ms'",
            spec.batch_lock_timeout.as_millis().max(1)
        );
        let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut handled = false;
        for (message, envelope) in batch {
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            let span = event_span(spec, message, delivered);
            span.record("tenant_id", envelope.tenant_id.as_str());
            span.record("event_id", envelope.id.to_string());
            let outcome = async {
                if !self.claim(&mut tx, envelope).await? {
                    return Ok(Outcome::Duplicate);
                }
                handler.handle(&mut tx, envelope).await?;
                Ok::<_, HandlerError>(Outcome::Handled)
            }
            .instrument(span)
            .await?;
            handled |= outcome == Outcome::Handled;
            outcomes.push(outcome);
        }
        tx.commit().await?;
        if handled {
            self.relay.wake();
        }
        Ok(outcomes)
    }

    async fn claim(
        &self,
        tx: &mut PgConnection,
        envelope: &EventEnvelope,
    ) -> Result<bool, sqlx::Error> {
        crate::inbox::claim(tx, &self.spec.durable_name, envelope).await
    }

    async fn handle_in_tx(&self, envelope: &EventEnvelope) -> Result<Outcome, Failure> {
        let handler = self.handler;
        let mut tx = self.pool.begin().await?;
        if !self.claim(&mut tx, envelope).await? {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        if let Err(e) = handler.handle(&mut tx, envelope).await {
            // a handler whose queries failed because the connection broke (a database restart, a
            // reset) leaves a transaction that cannot even be rolled back: blame the connection
            return match tx.rollback().await {
                Err(lost) if unavailable(&lost) => Err(Failure::Unavailable(format!(
                    "{} (connection lost: {lost})",
                    e.0
                ))),
                _ => Err(Failure::Handler(e)),
            };
        }
        tx.commit().await?;
        self.relay.wake();
        Ok(Outcome::Handled)
    }

    /// Gives up on `message`: stores it in the `dead_letter` table (where the admin API lists,
    /// redrives and discards it), copies it to the dead-letter subject (an archive for subscribers
    /// and tools; nothing is replayed from there), then terminates the delivery. If the table
    /// cannot be written, the message is left for redelivery.
    async fn dead_letter_and_term(&self, message: &jetstream::Message, error: &str) {
        let (spec, dead_letter) = (self.spec, self.dead_letter.as_str());
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let stored = crate::dead_letter::store(
            self.pool,
            &crate::dead_letter::NewDeadLetter {
                consumer: &spec.durable_name,
                subject: message.subject.as_str(),
                deliveries: delivered,
                error,
                payload: &message.payload,
                headers: headers_json(message.headers.as_ref()),
            },
        )
        .await;
        if let Err(e) = stored {
            tracing::error!(consumer = %spec.durable_name, error = %e, "storing a dead letter failed; leaving the message for redelivery");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            return;
        }
        self.publish_dead_letter(message, error).await;
        metrics::counter!(CONSUMER_DEAD_LETTERS.name, "consumer" => spec.durable_name.clone())
            .increment(1);
        metrics::gauge!(DEAD_LETTERS_WAITING.name, "consumer" => spec.durable_name.clone())
            .increment(1.0);
        tracing::error!(
            consumer = %spec.durable_name,
            subject = %message.subject,
            dead_letter_subject = %dead_letter,
            reason = %truncate(error, 512),
            "message dead-lettered"
        );
        let _ = message.ack_with(AckKind::Term).await;
    }

    /// Copies a dead letter to the dead-letter subject (best effort: the table holds it already).
    async fn publish_dead_letter(&self, message: &jetstream::Message, error: &str) {
        let (js, spec) = (self.js, self.spec);
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert("Dead-Letter-Reason", truncate(error, 512).as_str());
        headers.insert("Dead-Letter-Consumer", spec.durable_name.as_str());
        headers.insert("Original-Subject", message.subject.as_str());
        // a new Nats-Msg-Id so the dead-letter stream's dedupe does not drop it as the original
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("dl-{}-{}", spec.durable_name, uuid::Uuid::now_v7()).as_str(),
        );
        let published = match js
            .publish_with_headers(self.dead_letter.clone(), headers, message.payload.clone())
            .await
        {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if !published {
            tracing::warn!(consumer = %spec.durable_name, "copying a dead letter to the dead-letter subject failed; it is kept in the dead_letter table");
        }
    }
}

/// A message's headers as JSON (name -> list of values), as the `dead_letter` table keeps them.
fn headers_json(headers: Option<&async_nats::HeaderMap>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, values) in headers.into_iter().flat_map(|h| h.iter()) {
        let values: Vec<serde_json::Value> = values
            .iter()
            .map(|v| serde_json::Value::String(v.as_str().to_owned()))
            .collect();
        map.insert(name.to_string(), serde_json::Value::Array(values));
    }
    serde_json::Value::Object(map)
}

/// The CONSUMER span of one event's handling, a child of the producer span whose context the
/// message carries (`traceparent`).
fn event_span(spec: &ConsumerSpec, message: &jetstream::Message, delivered: i64) -> tracing::Span {
    let message_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str())
        .unwrap_or("");
    longship_telemetry::spans::message_consumer(
        message.subject.as_str(),
        &spec.durable_name,
        message_id,
        delivered,
        message.headers.as_ref(),
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Handled,
    Duplicate,
}

/// Why handling an event failed.
#[derive(Debug)]
enum Failure {
    /// Postgres could not be reached or the connection broke (also under the handler): the event
    /// is not at fault, so the failure never counts towards dead-lettering.
    Unavailable(String),
    /// The handler (or its transaction) failed on a working connection: counts towards
    /// `max_deliver`.
    Handler(HandlerError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        if unavailable(&e) {
            Failure::Unavailable(e.to_string())
        } else {
            Failure::Handler(e.into())
        }
    }
}

/// The longest wait between deliveries while the database is unavailable (so an outage ends in
/// seconds, not in a long backoff).
const UNAVAILABLE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Errors that mean "the database is unreachable right now", not "this event cannot be handled":
/// I/O, TLS, pool and protocol failures, and the server's connection-exception (08),
/// insufficient-resources (53), operator-intervention (57, e.g. shutting down or starting up)
/// and transaction-rollback (40, serialization failures and deadlocks) classes.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            ["08", "53", "57", "40"]
                .iter()
                .any(|class| c.starts_with(class))
        }),
        _ => false,
    }
}

fn retry_delay(delivered: i64) -> Duration {
    let exp = delivered.clamp(1, 10) as u32;
    let base = Duration::from_millis(100) * 2u32.pow(exp - 1);
    let jitter = rand::random::<u64>() % 100;
    (base + Duration::from_millis(jitter)).min(Duration::from_secs(30))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
