//! The HTTP side of a service: its `/v1` API wrapped in the platform's middleware, plus the
//! platform routes every service serves (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::request::Parts;
use http::{HeaderName, StatusCode};
use longship_errors::{Error, PROBLEM_CONTENT_TYPE, ProblemDetails};
use longship_tenant::{Authenticator, Tenant, TenantId};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::Readiness;
use crate::tenant_limit::{TenantLimiter, TenantLimits, limit_tenant};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the platform wrapper needs to know about a service.
#[derive(Clone)]
pub struct HttpOptions {
    /// Service name (the `service` of `build_info`; its gRPC methods are `longship.<name>.*`).
    pub service_name: String,
    /// The service's OpenAPI document.
    pub openapi: utoipa::openapi::OpenApi,
    /// Verifies credentials for the `Tenant` extractor.
    pub authenticator: Arc<Authenticator>,
    /// Readiness checks for `/readyz`.
    pub readiness: Readiness,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Per-tenant concurrency and rate limits of the `/v1` routes (all zero: off).
    pub tenant_limits: TenantLimits,
}

/// Wraps `api` (the service's `/v1` routes) with the platform routes and middleware: request ids,
/// a trace span per request continuing the caller's `traceparent`, RED metrics, a timeout, a 64 KiB
/// body limit, compression, per-tenant limits, control characters in header values (400), panics and unknown routes answered as problem+json.
/// The OpenAPI document served gets the answers this middleware gives ([`crate::openapi`]), and
/// is titled `Longship <service>` unless it names a title.
pub fn router(api: Router, options: HttpOptions) -> Router {
    router_with_admin(api, Router::new(), options)
}

/// [`router`] with the admin API (`/admin/v1` routes: [`crate::Shell::admin`]) beside `api`: the same
/// middleware, but no per-tenant limits (an operator acts for no tenant) and its own
/// authentication (a JWT with an admin scope, checked by each route's `Admin` extractor).
pub fn router_with_admin(api: Router, admin: Router, options: HttpOptions) -> Router {
    let mut openapi = options.openapi;
    if openapi.info.title == options.service_name {
        // a document that names no title has its crate's (utoipa's default): the service's name
        openapi.info.title = format!("Longship {}", options.service_name);
    }
    crate::openapi::document_platform(&mut openapi);
    let openapi_json = Arc::new(serde_json::to_string(&openapi).unwrap_or_else(|_| "{}".into()));
    let api = if options.tenant_limits.enabled() {
        api.route_layer(axum::middleware::from_fn_with_state(
            TenantLimiter::new(options.tenant_limits),
            limit_tenant,
        ))
    } else {
        api
    };
    crate::platform_metrics::register(&options.service_name, &openapi);
    let readiness = options.readiness.clone();
    let scraped = options.readiness.clone();
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
            get(move || {
                crate::platform_metrics::record_dependencies(&scraped);
                async {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        longship_telemetry::render_metrics(),
                    )
                }
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
        .merge(docs_page());

    let timeout = options.request_timeout;
    Router::new()
        .merge(platform)
        .merge(api)
        .merge(admin)
        .fallback(|| async { Error::not_found("route.not_found", "no such route") })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(axum::middleware::from_fn(
            crate::header_guard::reject_invalid_header_values,
        ))
        .layer(axum::middleware::from_fn(longship_telemetry::http_metrics))
        .layer(options.authenticator.layer())
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| answer_within(timeout, request, next),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    |response: &Response, latency: Duration, span: &tracing::Span| {
                        longship_telemetry::spans::record_http_status(span, response.status());
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

/// Answers 504 problem+json (`service.timeout`) when the request is not done within `timeout`;
/// the handler's future is dropped, which rolls back any open transaction.
async fn answer_within(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::new(
            longship_errors::Kind::Timeout,
            longship_errors::Kind::Timeout.default_code(),
            "the request took too long",
        )
        .into_response(),
    }
}

/// 405 problem+json (axum adds the `Allow` header). The error kinds have no 405, so the document is
/// built here; rebuilt from the status by a client it reads as a not-found route.
fn method_not_allowed() -> Response {
    let error = Error::not_found(
        "route.method_not_allowed",
        "method not allowed on this route",
    );
    let mut problem = ProblemDetails::from_error(&error);
    problem.status = StatusCode::METHOD_NOT_ALLOWED.as_u16();
    problem.title = "Method not allowed".to_owned();
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(http::header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// Requests that get no span: probes and scrapes, which would otherwise be most of the traces.
const UNTRACED: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The SERVER span of one HTTP request ([`longship_telemetry::spans::http_server`]): continues the
/// caller's trace and has fields for the tenant and order that handlers fill in. Probes and
/// scrapes (`/healthz`, `/readyz`, `/metrics`) are not traced.
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    if UNTRACED.contains(&request.uri().path()) {
        return tracing::Span::none();
    }
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    longship_telemetry::spans::http_server(request, route, request_id)
}

/// Swagger UI at `/docs/` (`/docs` redirects there), served from the binary: its files come from
/// the `utoipa-swagger-ui-vendored` crate at build time, so the page loads nothing from another
/// origin and works in an air-gapped cluster. It renders the document of `/openapi.json`.
fn docs_page() -> Router {
    let config = utoipa_swagger_ui::Config::new(["/openapi.json"])
        // the default validator is an image from swagger.io: nothing leaves the origin
        .validator_url("none")
        .try_it_out_enabled(true);
    Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").config(config))
}

/// What every `/v1` handler starts from: the service's use cases (the routes' state, an `Arc`)
/// and the caller's tenant (the [`Tenant`] extractor: 400/401 problem+json without one). A handler
/// takes `Scoped(stock, tenant): Scoped<Stock>` and calls `stock.put_product(&tenant, ..)`.
pub struct Scoped<S>(pub Arc<S>, pub TenantId);

impl<S: Send + Sync> FromRequestParts<Arc<S>> for Scoped<S> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Error> {
        let Tenant(tenant) = Tenant::from_request_parts(parts, state).await?;
        Ok(Scoped(Arc::clone(state), tenant))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use longship_tenant::{AuthConfig, JwtAlgorithm};
    use tokio::sync::{Semaphore, mpsc};
    use tower::ServiceExt;

    use super::*;
    use crate::tenant_limit::TenantLimits;

    /// A service whose handler for tenant `a` waits for a permit of `gate` (so its requests stay in
    /// flight) and answers every tenant at once otherwise.
    fn app(
        limits: TenantLimits,
        gate: Arc<Semaphore>,
        entered: mpsc::UnboundedSender<()>,
    ) -> Router {
        let api = Router::new().route(
            "/v1/who",
            get(move |Tenant(tenant): Tenant| {
                let gate = Arc::clone(&gate);
                let entered = entered.clone();
                async move {
                    if tenant.as_str() == "a" {
                        let _ = entered.send(());
                        let _ = gate.acquire().await.map(|p| p.forget());
                    }
                    tenant.to_string()
                }
            }),
        );
        let authenticator = Authenticator::new(&AuthConfig {
            allow_tenant_header: true,
            algorithm: JwtAlgorithm::Hs256,
            secret: None,
            public_key_pem: None,
            ..AuthConfig::default()
        })
        .unwrap_or_else(|_| unreachable!());
        router(
            api,
            HttpOptions {
                service_name: "test".into(),
                openapi: utoipa::openapi::OpenApi::default(),
                authenticator: Arc::new(authenticator),
                readiness: crate::Readiness::new(None, None),
                request_timeout: Duration::from_secs(10),
                tenant_limits: limits,
            },
        )
    }

    fn who(tenant: Option<&str>) -> http::Request<Body> {
        let mut request = http::Request::get("/v1/who");
        if let Some(t) = tenant {
            request = request.header("x-tenant-id", t);
        }
        request
            .body(Body::empty())
            .unwrap_or_else(|_| unreachable!())
    }

    async fn call(app: &Router, request: http::Request<Body>) -> (u16, http::HeaderMap, String) {
        let response = app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|_| unreachable!());
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_tenant_over_its_concurrency_gets_429_problem_json_and_others_do_not() {
        let gate = Arc::new(Semaphore::new(0));
        let (entered_tx, mut entered) = mpsc::unbounded_channel();
        let limits = TenantLimits {
            concurrency: 2,
            ..TenantLimits::default()
        };
        let app = app(limits, Arc::clone(&gate), entered_tx);
        let held: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn({
                    let app = app.clone();
                    async move { call(&app, who(Some("a"))).await }
                })
            })
            .collect();
        for _ in 0..2 {
            entered.recv().await;
        }
        let (status, headers, body) = call(&app, who(Some("a"))).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(headers[http::header::RETRY_AFTER], "1");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(problem["code"], "request.rate_limited");
        assert_eq!(problem["status"], 429);
        // another tenant is served while a is at its limit
        assert_eq!(call(&app, who(Some("b"))).await.0, 200);
        // credentials failing pass through to the handler's own answer
        assert_eq!(call(&app, who(None)).await.0, 401);
        assert_eq!(call(&app, who(Some("Not Valid"))).await.0, 400);
        // once a's requests finish, a is admitted again
        gate.add_permits(2);
        for h in held {
            let (status, _, body) = h.await.unwrap_or_else(|_| unreachable!());
            assert_eq!((status, body.as_str()), (200, "a"));
        }
        gate.add_permits(1);
        assert_eq!(call(&app, who(Some("a"))).await.0, 200);
    }

    #[tokio::test]
    async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
        let (entered_tx, _entered) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(100));
        let limits = TenantLimits {
            rate_per_sec: 0.5,
            burst: 3,
            ..TenantLimits::default()
        };
        let app = app(limits, gate, entered_tx);
        for _ in 0..3 {
            assert_eq!(call(&app, who(Some("a"))).await.0, 200);
        }
        let (status, headers, _) = call(&app, who(Some("a"))).await;
        assert_eq!(status, 429);
        let retry: u64 = headers[http::header::RETRY_AFTER]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert_eq!(call(&app, who(Some("b"))).await.0, 200);
    }

    #[tokio::test]
    async fn a_request_past_the_timeout_is_504_problem_json() {
        let authenticator = Authenticator::new(&AuthConfig {
            allow_tenant_header: true,
            algorithm: JwtAlgorithm::Hs256,
            secret: None,
            public_key_pem: None,
            ..AuthConfig::default()
        })
        .unwrap_or_else(|_| unreachable!());
        let api = Router::new().route(
            "/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        let app = router(
            api,
            HttpOptions {
                service_name: "test".into(),
                openapi: utoipa::openapi::OpenApi::default(),
                authenticator: Arc::new(authenticator),
                readiness: crate::Readiness::new(None, None),
                request_timeout: Duration::from_millis(50),
                tenant_limits: TenantLimits::default(),
            },
        );
        let request = http::Request::get("/v1/slow")
            .body(Body::empty())
            .unwrap_or_else(|_| unreachable!());
        let (status, headers, body) = call(&app, request).await;
        assert_eq!(status, 504, "{body}");
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(problem["code"], "service.timeout");
    }

    #[tokio::test]
    async fn unknown_methods_are_405_problem_json_with_allow() {
        let (entered_tx, _entered) = mpsc::unbounded_channel();
        let app = app(
            TenantLimits::default(),
            Arc::new(Semaphore::new(1)),
            entered_tx,
        );
        let request = http::Request::delete("/v1/who")
            .body(Body::empty())
            .unwrap_or_else(|_| unreachable!());
        let (status, headers, body) = call(&app, request).await;
        assert_eq!(status, 405, "{body}");
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(
            headers[http::header::ALLOW]
                .to_str()
                .unwrap_or("")
                .contains("GET")
        );
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(problem["status"], 405);
        assert_eq!(problem["code"], "route.method_not_allowed");
    }
}
