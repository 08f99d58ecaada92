//! The operations console: one web page (`GET /console`) whose HTML, CSS and JavaScript are
//! compiled into the binary, so it loads nothing from another origin and works air-gapped. It is
//! served with a strict Content-Security-Policy (`default-src 'self'`, no inline script or style).
//!
//! The page talks to the admin API (`/admin/v1/...`) of every service from one origin: its own
//! service's directly, the peers' through a narrow proxy, `/console/api/{service}/admin/v1/...`,
//! that forwards only admin routes, only GET/POST/DELETE, only to the peers configured in
//! [`ConsoleConfig`] (`CONSOLE_PEERS`). The proxy adds no authority of its own: the caller's
//! `Authorization` header is passed through and each peer checks the token itself. So no CORS is
//! needed and no service accepts cross-origin calls.

mod assets;
mod config;
mod proxy;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

pub use assets::CONTENT_SECURITY_POLICY;
pub use config::{ConsoleCode, ConsoleConfig, DEFAULT_PEER_TIMEOUT, DEFAULT_PEERS, Peer};

/// The routes of the console: the page (`/console`), its assets (`/console/assets/{name}`), the
/// list of services it shows (`/console/services.json`) and the proxy to the peers' admin APIs
/// (`/console/api/{service}/admin/v1/...`). Merge them into the service's router
/// (`Shell::routes`), which adds the platform's middleware (timeouts, body limit, tracing).
pub fn routes(config: ConsoleConfig) -> Router {
    let services = Arc::new(config.services_json());
    let proxy = proxy::Proxy::new(config.peers.clone(), config.peer_timeout);
    Router::new()
        .route("/console", get(assets::page))
        .route("/console/assets/{name}", get(assets::asset))
        .route(
            "/console/services.json",
            get(move || {
                let body = Arc::clone(&services);
                async move { assets::json(body.as_str()).into_response() }
            }),
        )
        .merge(proxy.routes())
}
