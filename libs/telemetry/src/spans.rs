//! The spans of the platform's hops, with their OpenTelemetry kinds and semantic-convention
//! attribute names, so every service's traces read the same in any trace UI:
//!
//! | span | kind | name | attributes |
//! |---|---|---|---|
//! | [`http_server`] | SERVER | `POST /v1/orders` (method and route) | `http.request.method`, `http.route`, `url.path`, `url.scheme`, `http.response.status_code` |
//! | [`grpc_server`] | SERVER | `longship.inventory.v1.InventoryService/Reserve` | `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code` |
//! | [`grpc_client`] | CLIENT | as the server's | the server's plus `server.address`, `server.port` |
//! | [`message_producer`] | PRODUCER | `send orders.v1.order_confirmed` | `messaging.system`, `messaging.destination.name`, `messaging.operation.type` (`send`), `messaging.message.id` |
//! | [`message_consumer`] | CONSUMER | `process orders.v1.order_confirmed` | the same with `process`, plus `messaging.consumer.group.name` |
//!
//! Each also has the platform's own fields (`trace_id`, and `tenant_id`, `order_id` or `event_id`
//! where they apply), which the JSON log lines inside carry. Method names and routes come from
//! [`crate::labels`], so an invented method or path cannot make up span names either.

use tracing::field::Empty;

use crate::labels;

/// `otel.status_code` of a failed span.
const ERROR: &str = "ERROR";

/// The SERVER span of one HTTP request, continuing the caller's `traceparent`. `route` is the
/// matched route template (`None`: no route matched).
pub fn http_server<B>(
    request: &http::Request<B>,
    route: Option<&str>,
    request_id: &str,
) -> tracing::Span {
    let method = labels::http_method(request.method());
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        otel.name = %name,
        otel.status_code = Empty,
        http.request.method = method,
        http.request.method_original = Empty,
        http.route = route,
        http.response.status_code = Empty,
        url.path = %request.uri().path(),
        url.scheme = "http",
        request_id = %request_id,
        tenant_id = Empty,
        order_id = Empty,
        trace_id = Empty,
    );
    if method == labels::OTHER {
        span.record("http.request.method_original", request.method().as_str());
    }
    start(
        &span,
        crate::propagation::context_from_http(request.headers()),
    )
}

/// Records the answer's status on an [`http_server`] span (a 5xx marks the span failed).
pub fn record_http_status(span: &tracing::Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", ERROR);
    }
}

/// The `rpc.*` fields shared by gRPC server and client spans: `(name, service, method)`, with
/// unknown methods as [`labels::OTHER`].
fn rpc_names<'a>(path: &'a str, known: &labels::GrpcMethods) -> (&'a str, &'a str, &'a str) {
    match labels::split_grpc_path(known.label(path)) {
        Some((service, method)) => (&path[1..], service, method),
        None => (labels::OTHER, labels::OTHER, labels::OTHER),
    }
}

/// The SERVER span of one gRPC call, continuing the caller's `traceparent`.
pub fn grpc_server<B>(request: &http::Request<B>, known: &labels::GrpcMethods) -> tracing::Span {
    let (name, service, method) = rpc_names(request.uri().path(), known);
    let span = tracing::info_span!(
        "grpc.request",
        otel.kind = "server",
        otel.name = name,
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        tenant_id = Empty,
        order_id = Empty,
        trace_id = Empty,
    );
    start(
        &span,
        crate::propagation::context_from_http(request.headers()),
    )
}

/// The CLIENT span of one outgoing gRPC call of `path` to `server` (host and port), a child of the
/// current span (the caller injects its context into the request:
/// [`crate::propagation::inject_http_from`]).
pub fn grpc_client(path: &str, server: (&str, u16)) -> tracing::Span {
    // a client calls only methods of its generated stubs: the path is bounded by the code
    let (service, method) = labels::split_grpc_path(path).unwrap_or((labels::OTHER, labels::OTHER));
    let span = tracing::info_span!(
        "grpc.client",
        otel.kind = "client",
        otel.name = path.strip_prefix('/').unwrap_or(path),
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        server.address = server.0,
        server.port = server.1,
        trace_id = Empty,
    );
    crate::record_trace_id(&span);
    span
}

/// Records a gRPC status on a [`grpc_server`] or [`grpc_client`] span (anything but OK marks a
/// client span failed; a server span is failed by the codes OpenTelemetry counts as server errors).
pub fn record_grpc_status(span: &tracing::Span, code: i32, client: bool) {
    span.record("rpc.grpc.status_code", code);
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
    let server_error = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
    if (client && code != 0) || server_error {
        span.record("otel.status_code", ERROR);
    }
}

/// Marks a span failed (the call or publish did not complete).
pub fn record_failure(span: &tracing::Span) {
    span.record("otel.status_code", ERROR);
}

/// The PRODUCER span of publishing one event to `subject`, a child of `parent` (the context stored
/// with the outbox row, i.e. of the work that wrote the event). Its own context is what the
/// message's `traceparent` carries ([`crate::propagation::traceparent_of`]).
pub fn message_producer(
    subject: &str,
    message_id: &str,
    tenant_id: &str,
    parent: opentelemetry::Context,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "event.publish",
        otel.kind = "producer",
        otel.name = %format_args!("send {subject}"),
        otel.status_code = Empty,
        messaging.system = "nats",
        messaging.destination.name = %subject,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.message.id = %message_id,
        tenant_id = %tenant_id,
        trace_id = Empty,
    );
    start(&span, parent)
}

/// The CONSUMER span of handling one delivered message, a child of the producer span whose
/// context the message's headers carry.
pub fn message_consumer(
    subject: &str,
    consumer: &str,
    message_id: &str,
    delivered: i64,
    headers: Option<&async_nats::HeaderMap>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "event.handle",
        otel.kind = "consumer",
        otel.name = %format_args!("process {subject}"),
        otel.status_code = Empty,
        messaging.system = "nats",
        messaging.destination.name = %subject,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.consumer.group.name = %consumer,
        messaging.message.id = %message_id,
        consumer = %consumer,
        delivered,
        tenant_id = Empty,
        event_id = Empty,
        trace_id = Empty,
    );
    start(&span, crate::propagation::context_from_nats(headers))
}

/// Sets `span`'s remote parent (when valid) and records its trace id; in that order, as the
/// parent can only be set before the span starts.
fn start(span: &tracing::Span, parent: opentelemetry::Context) -> tracing::Span {
    crate::propagation::set_parent(span, parent);
    crate::record_trace_id(span);
    span.clone()
}
