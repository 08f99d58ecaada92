//! The RED metrics of an HTTP server: `http_server_request_duration_seconds` and
//! `http_server_requests_total`, labelled with bounded values only.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::labels;
use crate::metrics_setup::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};

/// axum middleware (add it with `Router::layer`, so it sees the matched route):
/// `http_server_request_duration_seconds{method,route,status}` and
/// `http_server_requests_total{method,route,status}`. `route` is the matched path template (so ids
/// do not explode cardinality) or `unmatched`; `method` is one of the standard methods or `_OTHER`.
pub async fn http_metrics(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = labels::http_method(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| labels::UNMATCHED_ROUTE.to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::histogram!(HTTP_REQUEST_DURATION.name, &labels).record(start.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS.name, &labels).increment(1);
    response
}

/// Creates `http_server_requests_total{method,route,status}` at zero for each answer a service
/// documents, `(method, route template, status)`, so its error rates exist from start-up.
pub fn zero_http_requests<'a>(answers: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
    for (method, route, status) in answers {
        HTTP_REQUESTS.zero(&[
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_owned()),
        ]);
    }
}
