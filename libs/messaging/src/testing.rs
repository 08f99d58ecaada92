//! Helpers for tests of producers and consumers: publish an envelope the way a relay would, read a
//! stream's events back, and read a durable consumer's ack floor.

use async_nats::jetstream;

use crate::{EventEnvelope, Naming};

/// Why a test helper failed.
pub type TestingError = Box<dyn std::error::Error + Send + Sync>;

/// Publishes `envelope` on its subject with the relay's headers (`Nats-Msg-Id` = `msg_id`,
/// `Tenant-Id`, `Event-Type`) and waits for JetStream's ack. The stream must exist.
pub async fn publish_envelope(
    js: &jetstream::Context,
    naming: &Naming,
    envelope: &EventEnvelope,
    msg_id: &str,
) -> Result<(), TestingError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    headers.insert("Event-Type", envelope.event_type.as_str());
    longship_tenant::nats::inject(&mut headers, &envelope.tenant_id);
    let body = serde_json::to_vec(envelope)?;
    js.publish_with_headers(naming.subject(&envelope.event_type), headers, body.into())
        .await?
        .await?;
    Ok(())
}

/// The events of `event_type` in `stream` (unprefixed name), oldest first.
pub async fn stream_events(
    js: &jetstream::Context,
    naming: &Naming,
    stream: &str,
    event_type: &str,
) -> Result<Vec<EventEnvelope>, TestingError> {
    let mut stream = js.get_stream(naming.stream(stream)).await?;
    let last = stream.info().await?.state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            let envelope = EventEnvelope::decode(&message.payload)?;
            if envelope.event_type == event_type {
                out.push(envelope);
            }
        }
    }
    Ok(out)
}

/// How many of `stream`'s messages the durable consumer `durable` has acknowledged (its ack
/// floor); 0 while the consumer does not exist yet.
pub async fn ack_floor(
    js: &jetstream::Context,
    naming: &Naming,
    stream: &str,
    durable: &str,
) -> Result<u64, TestingError> {
    let stream = js.get_stream(naming.stream(stream)).await?;
    Ok(match stream.consumer_info(durable).await {
        Ok(info) => info.ack_floor.stream_sequence,
        Err(_) => 0,
    })
}
