//! The NATS connection.

use std::time::Duration;

use crate::config::NatsConfig;

/// Connects to NATS, retrying in the background when the server is not up yet (the service starts
/// and reports not-ready meanwhile). `NATS_URL` may list several servers, comma-separated (the
/// nodes of a cluster): the client connects to one and moves to another when it fails.
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
        .connect(servers(&config.url))
        .await
}

/// The servers of a `NATS_URL`: one URL, or several separated by commas.
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use async_nats::ToServerAddrs;

    use super::servers;

    #[test]
    fn a_comma_separated_url_names_every_server() {
        assert_eq!(servers("nats://a:4222"), ["nats://a:4222"]);
        let cluster = servers("nats://a:4222, nats://b:4223,nats://c:4224,");
        assert_eq!(cluster, ["nats://a:4222", "nats://b:4223", "nats://c:4224"]);
        let parsed: Vec<_> = cluster
            .to_server_addrs()
            .expect("three server addresses")
            .collect();
        assert_eq!(parsed.len(), 3);
        assert!(servers("nats://a:4222,::bad::").to_server_addrs().is_err());
    }
}
