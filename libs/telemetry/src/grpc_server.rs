//! The tower layer of a tonic server: a SERVER span per call (continuing the caller's
//! `traceparent`) and the RED metrics `grpc_server_handling_seconds` and
//! `grpc_server_handled_total`, with unknown methods counted as one `_OTHER`.

use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument;

use crate::labels::{self, GrpcMethods};
use crate::metrics_setup::{GRPC_HANDLED, GRPC_HANDLING};

/// The gRPC status of a response whose status travels in its headers (a trailers-only answer, as
/// tonic sends every error); a response without one is a success whose status follows in the
/// trailers (the unary and streamed answers of a method that succeeded).
pub fn grpc_status_in_headers(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(0)
}

/// Traces and counts every call of a tonic server; `methods` are the methods counted by name.
#[derive(Debug, Clone, Default)]
pub struct GrpcServerLayer {
    methods: GrpcMethods,
}

impl GrpcServerLayer {
    /// A layer that counts `methods` by name and every other path as `_OTHER`.
    pub fn new(methods: GrpcMethods) -> GrpcServerLayer {
        GrpcServerLayer { methods }
    }
}

impl<S> tower::Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The service of [`GrpcServerLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServer<S> {
    inner: S,
    methods: GrpcMethods,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcServer<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = self.methods.label(request.uri().path()).to_owned();
        let span = crate::spans::grpc_server(&request, &self.methods);
        let start = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let call_span = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => {
                        labels::grpc_code_name(grpc_status_in_headers(response.headers()))
                    }
                    Err(_) => "Transport",
                };
                match &result {
                    Ok(response) => crate::spans::record_grpc_status(
                        &call_span,
                        grpc_status_in_headers(response.headers()),
                        false,
                    ),
                    Err(_) => crate::spans::record_failure(&call_span),
                }
                let labels = [("method", method), ("code", code.to_owned())];
                metrics::histogram!(GRPC_HANDLING.name, &labels)
                    .record(start.elapsed().as_secs_f64());
                metrics::counter!(GRPC_HANDLED.name, &labels).increment(1);
                result
            }
            .instrument(span),
        )
    }
}

/// Creates `grpc_server_handled_total{method,code}` at zero for each of `methods` and every status
/// code, so error rates exist from start-up.
pub fn zero_grpc_handled<'a>(methods: impl IntoIterator<Item = &'a str>) {
    for method in methods {
        for code in labels::grpc_code_names() {
            GRPC_HANDLED.zero(&[("method", method.to_owned()), ("code", code)]);
        }
    }
}
