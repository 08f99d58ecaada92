//! The gRPC side of a service: tonic with the standard health service, per-call trace spans that
//! continue the caller's `traceparent`, and request metrics.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower_http::trace::TraceLayer;

/// Adds the gRPC health service (reporting SERVING for the server as a whole) to `routes`.
pub async fn with_health(routes: Routes) -> Routes {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    routes.add_service(health)
}

/// The span of one gRPC call.
pub fn call_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc.request",
        rpc = %request.uri().path(),
        tenant_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    longship_telemetry::propagation::set_parent(
        &span,
        longship_telemetry::propagation::context_from_http(request.headers()),
    );
    longship_telemetry::record_trace_id(&span);
    span
}

/// Serves `routes` on `listener` until `shutdown` is cancelled, then lets in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(TraceLayer::new_for_grpc().make_span_with(call_span))
        .layer(longship_telemetry::GrpcMetricsLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}
