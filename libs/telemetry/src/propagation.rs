//! W3C trace context (`traceparent`, `tracestate`) across HTTP headers, gRPC metadata and NATS headers.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HttpHeaders<'a>(&'a http::HeaderMap);
struct HttpHeadersMut<'a>(&'a mut http::HeaderMap);
struct NatsHeaders<'a>(&'a async_nats::HeaderMap);
struct NatsHeadersMut<'a>(&'a mut async_nats::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

impl Injector for HttpHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

impl Injector for NatsHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

fn extract(extractor: &dyn Extractor) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(extractor))
}

fn inject(context: &opentelemetry::Context, injector: &mut dyn Injector) {
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(context, injector));
}

/// The remote parent context carried by HTTP (or gRPC, which uses HTTP/2 headers) request headers.
pub fn context_from_http(headers: &http::HeaderMap) -> opentelemetry::Context {
    extract(&HttpHeaders(headers))
}

/// Writes the current span's context into HTTP headers.
pub fn inject_http(headers: &mut http::HeaderMap) {
    inject_http_from(&tracing::Span::current(), headers);
}

/// Writes `span`'s context into HTTP (or gRPC) headers, replacing any `traceparent` there.
pub fn inject_http_from(span: &tracing::Span, headers: &mut http::HeaderMap) {
    inject(&span.context(), &mut HttpHeadersMut(headers));
}

/// `span`'s `traceparent`, e.g. for a message that `span` sends.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut headers = http::HeaderMap::new();
    inject_http_from(span, &mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Writes the current span's context into gRPC request metadata.
pub fn inject_grpc<T>(request: &mut tonic::Request<T>) {
    let mut headers = http::HeaderMap::new();
    inject_http(&mut headers);
    for (name, value) in &headers {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_bytes()),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
}

/// A tonic client interceptor that adds the current trace context to every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_grpc(&mut request);
        Ok(request)
    }
}

/// Writes the current span's context into NATS headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    inject(
        &tracing::Span::current().context(),
        &mut NatsHeadersMut(headers),
    );
}

/// Writes a serialised `traceparent` (as stored with an outbox row) into NATS headers.
pub fn inject_nats_traceparent(headers: &mut async_nats::HeaderMap, traceparent: &str) {
    headers.insert("traceparent", traceparent);
}

/// The current span's `traceparent`, for storing with work that continues later (outbox rows, sagas).
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The remote parent context carried by NATS headers.
pub fn context_from_nats(headers: Option<&async_nats::HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(h) => extract(&NatsHeaders(h)),
        None => opentelemetry::Context::new(),
    }
}

/// The context a stored `traceparent` names.
pub fn context_from_traceparent(traceparent: &str) -> opentelemetry::Context {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
    }
    context_from_http(&headers)
}

/// Makes `span` a child of `parent` (a remote context) when the context is valid.
pub fn set_parent(span: &tracing::Span, parent: opentelemetry::Context) {
    use opentelemetry::trace::TraceContextExt;
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    fn trace_id_of(context: &opentelemetry::Context) -> String {
        context.span().span_context().trace_id().to_string()
    }

    #[test]
    fn trace_context_survives_http_grpc_and_nats_hops() {
        crate::init_for_tests();
        let root = tracing::info_span!("root");
        let _enter = root.enter();
        let origin = crate::current_trace_id().expect("a trace id");

        // HTTP hop
        let mut http_headers = http::HeaderMap::new();
        inject_http(&mut http_headers);
        let after_http = context_from_http(&http_headers);
        assert_eq!(trace_id_of(&after_http), origin);

        // continue in a child span on the "server", then a gRPC hop
        let server = tracing::info_span!("server");
        set_parent(&server, after_http);
        let _server = server.enter();
        let mut request = tonic::Request::new(());
        inject_grpc(&mut request);
        let grpc_headers = request.metadata().clone().into_headers();
        let after_grpc = context_from_http(&grpc_headers);
        assert_eq!(trace_id_of(&after_grpc), origin);

        // and a NATS hop from a span parented on the gRPC context
        let consumer = tracing::info_span!("grpc-server");
        set_parent(&consumer, after_grpc);
        let _consumer = consumer.enter();
        let mut nats_headers = async_nats::HeaderMap::new();
        inject_nats(&mut nats_headers);
        let after_nats = context_from_nats(Some(&nats_headers));
        assert_eq!(trace_id_of(&after_nats), origin);

        // stored traceparent (outbox) round trip
        let stored = current_traceparent().expect("traceparent");
        assert!(stored.starts_with("00-"));
        assert_eq!(trace_id_of(&context_from_traceparent(&stored)), origin);
    }

    #[test]
    fn garbage_traceparent_gives_an_invalid_context() {
        crate::init_for_tests();
        let context = context_from_traceparent("00-zzzz-not-a-trace");
        assert!(!context.span().span_context().is_valid());
        assert!(!context_from_nats(None).span().span_context().is_valid());
    }
}
