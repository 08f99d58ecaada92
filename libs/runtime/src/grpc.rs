//! The gRPC side of a service: tonic with the standard health service, a SERVER span and RED
//! metrics per call ([`longship_telemetry::GrpcServerLayer`]), and client channels whose calls get
//! CLIENT spans ([`balanced_channel`]).

use std::sync::OnceLock;
use std::time::Duration;

use longship_telemetry::labels::GrpcMethods;
use longship_telemetry::{GrpcClientTrace, GrpcClientTraceLayer, GrpcServerLayer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::connections::GrpcLimits;

/// The health check every service serves.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// A client channel whose calls are traced (a CLIENT span each, its context in `traceparent`).
pub type ClientChannel = GrpcClientTrace<tonic::transport::Channel>;

/// Adds the gRPC health service (reporting SERVING for the server as a whole) to `routes`.
pub async fn with_health(routes: Routes) -> Routes {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    routes.add_service(health)
}

/// The methods metrics and spans name: every method of the workspace's protos and the health
/// service's. Any other path a client sends is counted as `_OTHER`.
pub fn known_methods() -> GrpcMethods {
    static KNOWN: OnceLock<GrpcMethods> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            let health = [HEALTH_CHECK, "/grpc.health.v1.Health/Watch"].map(str::to_owned);
            GrpcMethods::new(longship_proto::grpc_methods().into_iter().chain(health))
        })
        .clone()
}

/// Serves `routes` on `listener` within `limits` until `shutdown` is cancelled, then lets
/// in-flight calls finish. Connections beyond the cap are closed at once
/// ([`crate::connections::capped`]); dead peers are found by HTTP/2 pings.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: GrpcLimits,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let incoming = crate::connections::capped(listener, limits.max_connections);
    let streams = u32::try_from(limits.concurrency_per_connection).unwrap_or(u32::MAX);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(streams)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .timeout(limits.call_timeout)
        .max_connection_age(limits.max_connection_age)
        .max_connection_age_grace(limits.call_timeout)
        .layer(GrpcServerLayer::new(known_methods()))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}

/// A lazily connecting client channel to `url` that spreads calls over every address the host name
/// resolves to, re-resolving every `refresh` (so replicas behind a Kubernetes headless Service, or
/// added by the HPA, all take calls). A literal IP address gets a plain channel. `configure` sets
/// timeouts and the like on each endpoint. Every call through it gets a CLIENT span.
pub fn balanced_channel(
    url: &str,
    refresh: Duration,
    configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint + Send + Sync + 'static,
) -> Result<ClientChannel, String> {
    use tower::Layer;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']).to_owned();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let channel = plain_balanced_channel(url, refresh, configure)?;
    Ok(GrpcClientTraceLayer::new(&host, port).layer(channel))
}

fn plain_balanced_channel(
    url: &str,
    refresh: Duration,
    configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint + Send + Sync + 'static,
) -> Result<tonic::transport::Channel, String> {
    use tonic::transport::{Channel, Endpoint};
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    if host.parse::<std::net::IpAddr>().is_ok() {
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url}: {e}"))?;
        return Ok(configure(endpoint).connect_lazy());
    }
    let (channel, changes) = Channel::balance_channel::<std::net::SocketAddr>(64);
    tokio::spawn(async move {
        let mut known = std::collections::HashSet::new();
        loop {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => {
                    let found: std::collections::HashSet<_> = found.collect();
                    for addr in found.difference(&known) {
                        let Ok(endpoint) = Endpoint::from_shared(format!("{scheme}://{addr}"))
                        else {
                            continue;
                        };
                        let change =
                            tonic::transport::channel::Change::Insert(*addr, configure(endpoint));
                        if changes.send(change).await.is_err() {
                            return; // the channel was dropped
                        }
                    }
                    for addr in known.difference(&found) {
                        if changes
                            .send(tonic::transport::channel::Change::Remove(*addr))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    known = found;
                }
                Err(e) => {
                    tracing::warn!(host = %host, error = %e, "resolving a gRPC peer failed; keeping known addresses")
                }
            }
            tokio::time::sleep(refresh).await;
        }
    });
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn health_server() -> (std::net::SocketAddr, CancellationToken) {
        health_server_within(crate::connections::ConnectionLimits::default().grpc).await
    }

    async fn health_server_within(limits: GrpcLimits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let routes = with_health(Routes::default()).await;
        tokio::spawn(serve(listener, routes, limits, shutdown.clone()));
        (addr, shutdown)
    }

    #[tokio::test]
    async fn a_connection_beyond_the_grpc_cap_is_closed_at_once_and_the_others_are_served() {
        let limits = GrpcLimits {
            max_connections: 1,
            ..crate::connections::ConnectionLimits::default().grpc
        };
        let (addr, shutdown) = health_server_within(limits).await;
        let first = balanced_channel(&format!("http://{addr}"), Duration::from_secs(15), |e| e)
            .expect("channel");
        check(first.clone())
            .await
            .expect("the first connection is served");
        let second = balanced_channel(&format!("http://{addr}"), Duration::from_secs(15), |e| e)
            .expect("channel");
        let started = std::time::Instant::now();
        let refused = tokio::time::timeout(Duration::from_secs(5), check(second)).await;
        let status = refused
            .expect("refused at once, not queued")
            .expect_err("over the cap");
        // closed by the server before the HTTP/2 handshake: the client reports it as one of these
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled
            ),
            "{status:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        check(first)
            .await
            .expect("the first connection is still served");
        shutdown.cancel();
    }

    async fn check(channel: ClientChannel) -> Result<(), tonic::Status> {
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        client
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ())
    }

    #[tokio::test]
    async fn a_host_name_is_resolved_and_calls_reach_its_addresses() {
        let (addr, shutdown) = health_server().await;
        let channel = balanced_channel(
            &format!("http://localhost:{}", addr.port()),
            Duration::from_millis(200),
            |e| e.timeout(Duration::from_secs(2)),
        )
        .expect("channel");
        // the first resolution happens in the background: retry briefly
        let mut last = None;
        for _ in 0..50 {
            match tokio::time::timeout(Duration::from_millis(500), check(channel.clone())).await {
                Ok(Ok(())) => {
                    shutdown.cancel();
                    return;
                }
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never reached the server through the balanced channel: {last:?}");
    }

    #[tokio::test]
    async fn an_ip_literal_gets_a_plain_channel_and_a_bad_url_is_refused() {
        let (addr, shutdown) = health_server().await;
        let channel = balanced_channel(&format!("http://{addr}"), Duration::from_secs(15), |e| e)
            .expect("channel");
        check(channel).await.expect("health");
        shutdown.cancel();
        assert!(balanced_channel("not a url", Duration::from_secs(1), |e| e).is_err());
    }
}
