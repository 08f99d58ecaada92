//! The NATS connection.

use std::time::Duration;

use crate::config::NatsConfig;

/// Connects to NATS, retrying in the background when the server is not up yet (the service starts
/// and reports not-ready meanwhile).
pub async fn connect(
    config: &NatsConfig,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                async_nats::Event::Connected => tracing::info!("nats connected"),
                other => tracing::debug!(event = %other, "nats event"),
            }
        })
        .connect(&config.url)
        .await
}
