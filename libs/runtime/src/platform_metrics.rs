//! The platform's metric families: described and created at zero when a service builds its HTTP
//! router (so `/metrics` has every family with its help text from the first scrape), and the
//! gauges of its dependencies (database pool, NATS) and build, read at each scrape.

use longship_telemetry::MetricFamily;
use utoipa::openapi::OpenApi;

use crate::Readiness;

/// Connections the pool holds (idle and in use).
pub const DB_POOL_SIZE: MetricFamily = MetricFamily::gauge(
    "db_pool_size",
    "Connections a Postgres pool holds, idle and in use, by pool (requests, workers)",
);
/// Idle connections.
pub const DB_POOL_IDLE: MetricFamily = MetricFamily::gauge(
    "db_pool_idle",
    "Idle connections of a Postgres pool, by pool",
);
/// The pool's ceiling.
pub const DB_POOL_MAX: MetricFamily = MetricFamily::gauge(
    "db_pool_max",
    "The most connections a Postgres pool opens, by pool (DATABASE_MAX_CONNECTIONS for requests, DATABASE_WORKER_MAX_CONNECTIONS for workers)",
);
/// NATS connection state.
pub const NATS_CONNECTED: MetricFamily = MetricFamily::gauge(
    "nats_connected",
    "1 while the NATS connection is up, 0 while it is down or reconnecting",
);
/// The build, as labels.
pub const BUILD_INFO: MetricFamily = MetricFamily::gauge(
    "build_info",
    "Always 1; the labels name the service and its version",
);
/// Connections refused by the connection caps.
pub const CONNECTIONS_REFUSED: MetricFamily = MetricFamily::counter(
    "connections_refused_total",
    "Connections refused because the server had HTTP_MAX_CONNECTIONS or GRPC_MAX_CONNECTIONS open, by server (http, grpc)",
);
/// gRPC connections closed before their HTTP/2 preface.
pub const GRPC_CONNECTIONS_DROPPED: MetricFamily = MetricFamily::counter(
    "grpc_connections_dropped_total",
    "gRPC connections closed before serving, by reason (timeout: no TLS handshake and HTTP/2 preface within GRPC_HANDSHAKE_TIMEOUT_SECS; not_http2: other bytes first)",
);
/// Requests refused by the per-tenant limits.
pub const TENANT_REJECTIONS: MetricFamily = MetricFamily::counter(
    "http_tenant_rejections_total",
    "/v1 requests refused with 429 by the per-tenant limits, by reason (concurrency, rate)",
);

/// The families this crate records.
pub const FAMILIES: &[MetricFamily] = &[
    DB_POOL_SIZE,
    DB_POOL_IDLE,
    DB_POOL_MAX,
    CONNECTIONS_REFUSED,
    GRPC_CONNECTIONS_DROPPED,
    NATS_CONNECTED,
    BUILD_INFO,
    TENANT_REJECTIONS,
];

/// The routes every service serves besides its API, with the answers they give.
const PLATFORM_ANSWERS: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "200"),
    ("GET", "/readyz", "200"),
    ("GET", "/readyz", "503"),
    ("GET", "/metrics", "200"),
    ("GET", "/openapi.json", "200"),
    ("GET", "/docs", "303"),
    ("GET", "/docs/", "200"),
    ("GET", "/docs/{*rest}", "200"),
    ("GET", "/docs/{*rest}", "404"),
];

/// Describes the platform's families and creates their series at zero: the HTTP answers
/// `openapi` documents (method, route, status) and the platform routes' answers, every gRPC method
/// of the service (`longship.<service>.*`) and the health check with every status code, the tenant
/// limits' reasons, and `build_info`.
pub(crate) fn register(service_name: &str, openapi: &OpenApi) {
    longship_telemetry::describe(longship_telemetry::FAMILIES);
    longship_telemetry::describe(FAMILIES);
    longship_telemetry::describe(longship_messaging::METRIC_FAMILIES);
    let documented = documented_answers(openapi);
    longship_telemetry::zero_http_requests(
        documented
            .iter()
            .map(|(m, r, s)| (m.as_str(), r.as_str(), s.as_str()))
            .chain(PLATFORM_ANSWERS.iter().copied()),
    );
    let package = format!("/longship.{}.", service_name.replace('-', "_"));
    let methods = crate::grpc::known_methods();
    longship_telemetry::zero_grpc_handled(
        methods
            .paths()
            .into_iter()
            .filter(|m| m.starts_with(&package) || *m == crate::grpc::HEALTH_CHECK),
    );
    for server in ["http", "grpc"] {
        CONNECTIONS_REFUSED.zero(&[("server", server.to_owned())]);
    }
    for reason in ["timeout", "not_http2"] {
        GRPC_CONNECTIONS_DROPPED.zero(&[("reason", reason.to_owned())]);
    }
    for reason in ["concurrency", "rate"] {
        TENANT_REJECTIONS.zero(&[("reason", reason.to_owned())]);
    }
    metrics::gauge!(
        BUILD_INFO.name,
        "service" => service_name.to_owned(),
        "version" => env!("CARGO_PKG_VERSION"),
    )
    .set(1.0);
}

/// `(METHOD, route, status)` of every response `openapi` documents (statuses such as `4XX` or
/// `default` name no single status and are left out).
fn documented_answers(openapi: &OpenApi) -> Vec<(String, String, String)> {
    let mut answers = Vec::new();
    for (route, item) in &openapi.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
            ("HEAD", &item.head),
            ("OPTIONS", &item.options),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            for status in operation.responses.responses.keys() {
                if status.parse::<u16>().is_ok() {
                    answers.push((method.to_owned(), route.clone(), status.clone()));
                }
            }
        }
    }
    answers
}

/// Sets the dependency gauges from the pool and the NATS client (read just before a scrape).
pub(crate) fn record_dependencies(readiness: &Readiness) {
    for (name, pool) in [
        ("requests", readiness.pool()),
        ("workers", readiness.worker_pool()),
    ] {
        let Some(pool) = pool else { continue };
        metrics::gauge!(DB_POOL_SIZE.name, "pool" => name).set(f64::from(pool.size()));
        metrics::gauge!(DB_POOL_IDLE.name, "pool" => name).set(pool.num_idle() as f64);
        metrics::gauge!(DB_POOL_MAX.name, "pool" => name)
            .set(f64::from(pool.options().get_max_connections()));
    }
    if let Some(nats) = readiness.nats() {
        let connected = matches!(
            nats.connection_state(),
            async_nats::connection::State::Connected
        );
        metrics::gauge!(NATS_CONNECTED.name).set(if connected { 1.0 } else { 0.0 });
    }
}
