//! `/console/api/{service}/admin/v1/...`: the page's way to the peers' admin APIs on its own
//! origin. Only admin routes, only GET/POST/DELETE, only configured peers; the caller's token is
//! passed through untouched and checked by the peer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use longship_errors::Error;

use crate::config::{ConsoleCode, Peer};

/// The largest answer passed on (a page of dead letters with their payloads).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// The request headers passed to the peer; everything else (cookies included) stays behind.
const FORWARDED: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "traceparent",
    "tracestate",
    "x-request-id",
];
/// The answer headers passed back.
const RETURNED: &[&str] = &["content-type", "retry-after", "allow"];

/// The proxy's peers and its HTTP client.
#[derive(Clone)]
pub struct Proxy {
    peers: Arc<Vec<Peer>>,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Proxy {
    /// A proxy to `peers`.
    pub fn new(peers: Vec<Peer>, timeout: Duration) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Proxy {
            peers: Arc::new(peers),
            timeout,
            client,
        }
    }

    /// Its routes.
    pub fn routes(self) -> Router {
        Router::new()
            .route(
                "/console/api/{service}/{*path}",
                get(forward).post(forward).delete(forward),
            )
            .with_state(self)
    }
}

/// The peer path of a proxied request: `admin/v1/` and then letters, digits, `-`, `_` and single
/// slashes only (no dots, so no `..`; no percent-escapes, so nothing decodes into them).
fn admin_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("admin/v1/")?;
    let clean = !rest.is_empty()
        && !rest.starts_with('/')
        && !rest.contains("//")
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'));
    clean.then_some(path)
}

async fn forward(
    State(proxy): State<Proxy>,
    Path((service, path)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match forward_inner(&proxy, &service, &path, method, &uri, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn forward_inner(
    proxy: &Proxy,
    service: &str,
    path: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let peer = proxy
        .peers
        .iter()
        .find(|p| p.name == service)
        .ok_or_else(|| Error::coded(ConsoleCode::UnknownService, "no such service"))?;
    let path = admin_path(path).ok_or_else(|| {
        Error::coded(
            ConsoleCode::NotProxied,
            "only admin/v1/... routes are forwarded",
        )
    })?;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let target = format!("{}/{path}{query}", peer.url);
    let mut request = Request::builder().method(method).uri(&target);
    for name in FORWARDED {
        for value in headers.get_all(*name) {
            request = request.header(*name, value);
        }
    }
    let request = request.body(Full::new(body)).map_err(|e| {
        Error::coded(ConsoleCode::NotProxied, "not a forwardable request").with_source(e)
    })?;
    let answer = tokio::time::timeout(proxy.timeout, async {
        let response = proxy.client.request(request).await.map_err(|e| {
            tracing::warn!(peer = %peer.name, error = %e, "console proxy: peer unreachable");
            Error::coded(
                ConsoleCode::PeerUnavailable,
                format!("{} cannot be reached", peer.name),
            )
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                tracing::warn!(peer = %peer.name, error = %e, "console proxy: answer not read");
                Error::coded(
                    ConsoleCode::PeerUnavailable,
                    format!("{}'s answer could not be read", peer.name),
                )
            })?
            .to_bytes();
        Ok::<_, Error>((parts, body))
    })
    .await
    .map_err(|_| {
        Error::coded(
            ConsoleCode::PeerTimeout,
            format!("{} did not answer in time", peer.name),
        )
    })??;
    let (parts, body) = answer;
    let mut response = (parts.status, body).into_response();
    for name in RETURNED {
        if let Some(value) = parts.headers.get(*name) {
            response.headers_mut().insert(*name, value.clone());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_admin_paths_are_forwarded() {
        for ok in [
            "admin/v1/dead-letters",
            "admin/v1/dead-letters/0193f2b1-7c4e-7a51-9d2b-5e1f2a3b4c5d/redrive",
            "admin/v1/outbox",
            "admin/v1/audit",
        ] {
            assert_eq!(admin_path(ok), Some(ok));
        }
        for bad in [
            "v1/orders",
            "admin/v1/",
            "admin/v1/../../v1/orders",
            "admin/v1/x/..",
            "admin/v1/a%2f..",
            "admin/v1//x",
            "admin/v2/sagas",
            "metrics",
            "admin/v1/a.b",
        ] {
            assert_eq!(admin_path(bad), None, "{bad}");
        }
    }
}
