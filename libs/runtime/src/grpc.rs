//! The gRPC side of a service: tonic with the standard health service, a SERVER span and RED
//! metrics per call ([`longship_telemetry::GrpcServerLayer`]), and client channels whose calls get
//! CLIENT spans ([`balanced_channel`]); with mTLS on, both sides are mutual TLS with the
//! service's certificate (longship-identity).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use longship_identity::{ClientTls, Mtls};
use longship_telemetry::labels::GrpcMethods;
use longship_telemetry::{GrpcClientTrace, GrpcClientTraceLayer, GrpcServerLayer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::connections::GrpcLimits;

/// What a unary gRPC method answers: its message, or a status. (`async fn get_item(&self, request:
/// Request<pb::GetItemRequest>) -> Rpc<pb::Item>`.)
pub type Rpc<T> = Result<tonic::Response<T>, tonic::Status>;

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
/// in-flight calls finish. Connections beyond the cap are closed at once, and so are connections
/// without a TLS handshake and HTTP/2 preface within the handshake timeout; dead peers are found
/// by HTTP/2 pings and TCP keepalive. With `mtls`, every connection is TLS with this service's (reloaded) certificate
/// and the peer's identity is on each request ([`longship_identity::PeerInfo`]).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: GrpcLimits,
    mtls: Option<Arc<Mtls>>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let accept = longship_identity::AcceptLimits {
        max_connections: limits.max_connections,
        handshake_timeout: limits.handshake_timeout,
        tcp_keepalive: Some(limits.tcp_keepalive),
    };
    let incoming = longship_identity::incoming(
        listener,
        mtls,
        accept,
        crate::connections::count_grpc_drop,
        shutdown.clone(),
    );
    let streams = u32::try_from(limits.concurrency_per_connection).unwrap_or(u32::MAX);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
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
/// added by the HPA, all take calls). Without `tls` a literal IP address gets a plain channel. With
/// `tls` every connection is mutual TLS (whatever the URL's scheme) to the service
/// [`ClientTls::peer`] names, and the endpoints are rebuilt when the certificate files are
/// reloaded, so new connections present the new certificate. `configure` sets timeouts and the
/// like on each endpoint. Every call through it gets a CLIENT span.
pub fn balanced_channel(
    url: &str,
    refresh: Duration,
    tls: Option<ClientTls>,
    configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint + Send + Sync + 'static,
) -> Result<ClientChannel, String> {
    use tower::Layer;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']).to_owned();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let channel = plain_balanced_channel(url, refresh, tls, configure)?;
    Ok(GrpcClientTraceLayer::new(&host, port).layer(channel))
}

/// One endpoint per address: `scheme://addr`, configured, with TLS when `tls` is set.
fn endpoint(
    addr: std::net::SocketAddr,
    tls: Option<&ClientTls>,
    configure: &(impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint + ?Sized),
) -> Option<tonic::transport::Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}")).ok()?;
    let endpoint = configure(endpoint);
    match tls {
        None => Some(endpoint),
        Some(tls) => match tls.configure(endpoint) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(error = %e, peer = tls.peer(), "configuring TLS for a gRPC peer failed");
                None
            }
        },
    }
}

fn plain_balanced_channel(
    url: &str,
    refresh: Duration,
    tls: Option<ClientTls>,
    configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint + Send + Sync + 'static,
) -> Result<tonic::transport::Channel, String> {
    use tonic::transport::channel::Change;
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
    if tls.is_none() && host.parse::<std::net::IpAddr>().is_ok() {
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url}: {e}"))?;
        return Ok(configure(endpoint).connect_lazy());
    }
    let (channel, changes) = Channel::balance_channel::<std::net::SocketAddr>(64);
    let mut reloaded = tls.as_ref().map(ClientTls::subscribe);
    tokio::spawn(async move {
        let mut known = std::collections::HashSet::new();
        loop {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => {
                    let found: std::collections::HashSet<_> = found.collect();
                    for addr in found.difference(&known) {
                        let Some(endpoint) = endpoint(*addr, tls.as_ref(), &configure) else {
                            continue;
                        };
                        if changes.send(Change::Insert(*addr, endpoint)).await.is_err() {
                            return; // the channel was dropped
                        }
                    }
                    for addr in known.difference(&found) {
                        if changes.send(Change::Remove(*addr)).await.is_err() {
                            return;
                        }
                    }
                    known = found;
                }
                Err(e) => {
                    tracing::warn!(host = %host, error = %e, "resolving a gRPC peer failed; keeping known addresses")
                }
            }
            let rotated = async {
                match reloaded.as_mut() {
                    Some(r) => r.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(refresh) => {}
                true = rotated => {
                    // the certificate files changed: replace every endpoint, so that new
                    // connections present the new certificate (calls in flight finish on theirs)
                    for addr in &known {
                        let Some(endpoint) = endpoint(*addr, tls.as_ref(), &configure) else {
                            continue;
                        };
                        if changes.send(Change::Insert(*addr, endpoint)).await.is_err() {
                            return;
                        }
                    }
                }
            }
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
        tokio::spawn(serve(listener, routes, limits, None, shutdown.clone()));
        (addr, shutdown)
    }

    #[tokio::test]
    async fn a_connection_beyond_the_grpc_cap_is_closed_at_once_and_the_others_are_served() {
        let limits = GrpcLimits {
            max_connections: 1,
            ..crate::connections::ConnectionLimits::default().grpc
        };
        let (addr, shutdown) = health_server_within(limits).await;
        let first = balanced_channel(
            &format!("http://{addr}"),
            Duration::from_secs(15),
            None,
            |e| e,
        )
        .expect("channel");
        check(first.clone())
            .await
            .expect("the first connection is served");
        let second = balanced_channel(
            &format!("http://{addr}"),
            Duration::from_secs(15),
            None,
            |e| e,
        )
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
            None,
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
        let channel = balanced_channel(
            &format!("http://{addr}"),
            Duration::from_secs(15),
            None,
            |e| e,
        )
        .expect("channel");
        check(channel).await.expect("health");
        shutdown.cancel();
        assert!(balanced_channel("not a url", Duration::from_secs(1), None, |e| e).is_err());
    }

    /// A rotated client certificate reaches new connections of a balanced channel: its files are
    /// rewritten with another service's certificate, and the guarded server then refuses the
    /// calls that presented the new one.
    #[tokio::test]
    async fn a_balanced_channel_presents_a_rotated_certificate_on_new_connections() {
        use longship_identity::pki::DevPki;
        use longship_identity::{Authorizer, GrpcAccess, MtlsConfig};
        let dir =
            std::env::temp_dir().join(format!("longship-runtime-rotation-{}", std::process::id()));
        let pki = DevPki::open_or_create(&dir, "test").expect("pki");
        let load = |files| {
            Mtls::load(&MtlsConfig {
                files,
                reload_interval: Duration::from_millis(100),
            })
            .expect("loads")
        };
        let server_tls = load(pki.issue("inventory", 1).expect("cert"));
        let client_files = pki.issue("order", 1).expect("cert");
        let client_tls = load(client_files.clone());
        let auth = longship_tenant::Authenticator::new(&longship_tenant::AuthConfig {
            allow_tenant_header: true,
            algorithm: longship_tenant::JwtAlgorithm::Hs256,
            secret: None,
            public_key_pem: None,
            ..Default::default()
        })
        .expect("authenticator");
        let authorizer = Authorizer::new(Some(Arc::clone(&server_tls)), Arc::new(auth));
        let (_, health) = tonic_health::server::health_reporter();
        let routes = Routes::new(authorizer.guard(GrpcAccess::Services(&["order"]), health));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            routes,
            crate::connections::ConnectionLimits::default().grpc,
            Some(server_tls),
            shutdown.clone(),
        ));
        tokio::spawn(Arc::clone(&client_tls).watch(shutdown.clone()));
        let channel = balanced_channel(
            &format!("http://{addr}"),
            Duration::from_secs(60),
            Some(ClientTls::new(Arc::clone(&client_tls), "inventory")),
            |e| e.timeout(Duration::from_secs(2)),
        )
        .expect("channel");
        let mut last = None;
        for _ in 0..100 {
            match check(channel.clone()).await {
                Ok(()) => break,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check(channel.clone())
            .await
            .unwrap_or_else(|e| panic!("order is served: {e:?} {last:?}"));
        // the files now hold payment's certificate (the watcher reloads them)
        pki.issue_to("payment", 1, &client_files).expect("rotated");
        let mut denied = None;
        for _ in 0..100 {
            if let Err(status) = check(channel.clone()).await
                && status.code() == tonic::Code::PermissionDenied
            {
                denied = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        let _ = std::fs::remove_dir_all(&dir);
        let denied = denied.expect("new connections present the rotated certificate");
        assert!(denied.message().contains("/payment"), "{denied:?}");
    }
}
