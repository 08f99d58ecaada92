//! Durable consumers' delivery settings from config (`NATS_CONSUMER_*`), applied to a consumer
//! that exists already where JetStream allows.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{FromConsumer, pull};

/// How the durable consumers are delivered to (`NATS_CONSUMER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// How long JetStream waits for an ack before it delivers again (`NATS_CONSUMER_ACK_WAIT_SECS`,
    /// 30 s). Longer than a handler's (or a batch's) transaction ever takes.
    pub ack_wait: Duration,
    /// Deliveries of a failing event before it is dead-lettered (`NATS_CONSUMER_MAX_DELIVER`, 5).
    /// The runner counts them; JetStream itself never gives up on a message.
    pub max_deliver: i64,
    /// Deliveries awaiting an ack at once per consumer (`NATS_CONSUMER_MAX_ACK_PENDING`; `None`:
    /// four times the consumer's concurrency).
    pub max_ack_pending: Option<i64>,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            max_ack_pending: None,
        }
    }
}

/// Gets the durable consumer `wanted` names, creating it if missing. An existing one keeps its
/// position, filter and deliver policy; its ack wait, max ack pending and max deliver are updated
/// when they differ from `wanted`'s (JetStream allows changing those).
pub(crate) async fn ensure(
    stream: &jetstream::stream::Stream,
    wanted: pull::Config,
) -> Result<jetstream::consumer::PullConsumer, async_nats::Error> {
    let name = wanted.durable_name.clone().unwrap_or_default();
    let config = match stream.consumer_info(&name).await {
        Ok(info) => info.config,
        Err(e) if not_found(&e) => return Ok(stream.create_consumer(wanted).await?),
        Err(e) => return Err(e.into()),
    };
    let same = config.ack_wait == wanted.ack_wait
        && config.max_ack_pending == wanted.max_ack_pending
        && config.max_deliver == wanted.max_deliver;
    if same {
        return stream.get_consumer(&name).await;
    }
    let mut updated = pull::Config::try_from_consumer_config(config.clone())?;
    updated.ack_wait = wanted.ack_wait;
    updated.max_ack_pending = wanted.max_ack_pending;
    updated.max_deliver = wanted.max_deliver;
    let consumer = stream.create_consumer(updated).await?;
    tracing::warn!(
        consumer = %name,
        ack_wait_secs = wanted.ack_wait.as_secs(),
        was_ack_wait_secs = config.ack_wait.as_secs(),
        max_ack_pending = wanted.max_ack_pending,
        was_max_ack_pending = config.max_ack_pending,
        "durable consumer settings updated to the configured ones"
    );
    Ok(consumer)
}

fn not_found(e: &jetstream::context::ConsumerInfoError) -> bool {
    use jetstream::context::ConsumerInfoErrorKind as Kind;
    match e.kind() {
        Kind::NotFound => true,
        Kind::JetStream(err) => err.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND,
        _ => false,
    }
}
