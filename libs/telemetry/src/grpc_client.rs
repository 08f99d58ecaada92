//! The tower layer of a gRPC client channel: a CLIENT span per call, child of the caller's span,
//! whose context travels in the request's `traceparent` (so the server's span is its child).

use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Instrument;

/// Traces every call made through the channel it wraps.
#[derive(Debug, Clone)]
pub struct GrpcClientTraceLayer {
    server: Arc<(String, u16)>,
}

impl GrpcClientTraceLayer {
    /// A layer for a channel to `host`:`port` (the spans' `server.address` and `server.port`).
    pub fn new(host: &str, port: u16) -> GrpcClientTraceLayer {
        GrpcClientTraceLayer {
            server: Arc::new((host.to_owned(), port)),
        }
    }
}

impl<S> tower::Layer<S> for GrpcClientTraceLayer {
    type Service = GrpcClientTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientTrace {
            inner,
            server: Arc::clone(&self.server),
        }
    }
}

/// A gRPC client channel whose calls are traced ([`GrpcClientTraceLayer`]).
#[derive(Debug, Clone)]
pub struct GrpcClientTrace<S> {
    inner: S,
    server: Arc<(String, u16)>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcClientTrace<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let span = crate::spans::grpc_client(request.uri().path(), (&self.server.0, self.server.1));
        crate::propagation::inject_http_from(&span, request.headers_mut());
        let future = self.inner.call(request);
        let call_span = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                match &result {
                    Ok(response) => crate::spans::record_grpc_status(
                        &call_span,
                        crate::grpc_server::grpc_status_in_headers(response.headers()),
                        true,
                    ),
                    Err(_) => crate::spans::record_failure(&call_span),
                }
                result
            }
            .instrument(span),
        )
    }
}
