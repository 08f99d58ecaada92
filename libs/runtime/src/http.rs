//! The HTTP side of a service: its `/v1` API wrapped in the platform's middleware, plus the
//! platform routes every service serves (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, StatusCode};
use longship_errors::Error;
use longship_tenant::Authenticator;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::Readiness;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the platform wrapper needs to know about a service.
#[derive(Clone)]
pub struct HttpOptions {
    /// Service name (docs page title).
    pub service_name: String,
    /// The service's OpenAPI document.
    pub openapi: utoipa::openapi::OpenApi,
    /// Verifies credentials for the `Tenant` extractor.
    pub authenticator: Arc<Authenticator>,
    /// Readiness checks for `/readyz`.
    pub readiness: Readiness,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// Wraps `api` (the service's `/v1` routes) with the platform routes and middleware: request ids,
/// a trace span per request continuing the caller's `traceparent`, RED metrics, a timeout, a 64 KiB
/// body limit, compression, panics and unknown routes answered as problem+json.
pub fn router(api: Router, options: HttpOptions) -> Router {
    let openapi_json =
        Arc::new(serde_json::to_string(&options.openapi).unwrap_or_else(|_| "{}".into()));
    let docs = Arc::new(docs_page(&options.service_name));
    let readiness = options.readiness.clone();
    let platform = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let report = readiness.check().await;
                    let status = if report.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, axum::Json(report))
                }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    longship_telemetry::metrics_handle().render(),
                )
            }),
        )
        .route(
            "/openapi.json",
            get(move || {
                let body = Arc::clone(&openapi_json);
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "application/json")],
                        body.as_str().to_owned(),
                    )
                }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = Arc::clone(&docs);
                async move { Html(page.as_str().to_owned()) }
            }),
        );

    let timeout = options.request_timeout;
    Router::new()
        .merge(platform)
        .merge(api)
        .fallback(|| async { Error::not_found("route.not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Error::new(
                longship_errors::Kind::NotFound,
                "route.method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn(longship_telemetry::http_metrics))
        .layer(options.authenticator.layer())
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    |response: &Response, latency: Duration, span: &tracing::Span| {
                        span.record("status", response.status().as_u16());
                        tracing::debug!(
                            latency_ms = latency.as_millis() as u64,
                            "request finished"
                        );
                    },
                ),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                Error::internal(std::io::Error::other("handler panicked")).into_response()
            },
        ))
}

/// The span of one HTTP request: continues the caller's trace and has fields for the tenant and
/// order that handlers fill in.
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        status = tracing::field::Empty,
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

fn docs_page(service: &str) -> String {
    // Swagger UI is loaded by the browser from a CDN: nothing is downloaded at build time.
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Longship {service} API</title>
  <link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <noscript>This page needs JavaScript; the raw document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js" crossorigin></script>
  <script>
    window.ui = SwaggerUIBundle({{ url: "/openapi.json", dom_id: "#swagger-ui" }});
  </script>
</body>
</html>"##
    )
}
