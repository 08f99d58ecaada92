//! The relay's publish of one event under its PRODUCER span: the span is a child of the context
//! stored with the outbox row (the work that wrote the event), and its own context is what the
//! message's `traceparent` header carries, so each consumer's span is a child of the publish.

use async_nats::jetstream;
use tracing::Instrument;

/// What identifies the event on the span.
pub(crate) struct Traced<'a> {
    /// The event id (`messaging.message.id`).
    pub id: &'a str,
    /// Its tenant.
    pub tenant_id: &'a str,
    /// The `traceparent` stored with the outbox row, if any.
    pub stored: Option<&'a str>,
}

/// Sends one message (without awaiting its ack) inside its PRODUCER span; returns the span too,
/// which the caller keeps open until the ack arrives and marks failed when none does.
pub(crate) async fn send(
    js: &jetstream::Context,
    subject: String,
    mut headers: async_nats::HeaderMap,
    body: bytes::Bytes,
    event: Traced<'_>,
) -> (
    Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError>,
    tracing::Span,
) {
    let parent = event
        .stored
        .map(longship_telemetry::propagation::context_from_traceparent)
        .unwrap_or_default();
    let span =
        longship_telemetry::spans::message_producer(&subject, event.id, event.tenant_id, parent);
    // the stored context goes out when spans are filtered out (the trace still continues)
    let traceparent = longship_telemetry::propagation::traceparent_of(&span)
        .or_else(|| event.stored.map(str::to_owned));
    if let Some(traceparent) = traceparent {
        longship_telemetry::propagation::inject_nats_traceparent(&mut headers, &traceparent);
    }
    let message = jetstream::message::PublishMessage::build()
        .headers(headers)
        .payload(body);
    let sent = js
        .send_publish(subject, message)
        .instrument(span.clone())
        .await;
    if let Err(e) = &sent {
        longship_telemetry::spans::record_failure(&span);
        tracing::warn!(parent: &span, error = %e, "outbox send failed");
    }
    (sent, span)
}
