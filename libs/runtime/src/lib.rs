//! The service shell every Longship service runs in. A service declares what it has ([`Service`]:
//! its settings, migrations, streams, and a `wire` that registers its API, gRPC services, consumers
//! and background tasks on a [`Shell`]); the runtime owns the rest, the same for every service: the
//! binary's `main` ([`service_main!`]), a service's declaration ([`service!`]), typed configuration from the environment ([`config`]),
//! telemetry, Postgres and NATS connections ([`db`], [`nats`]), the platform's and the libraries'
//! schemas applied before the service's migrations, the HTTP server with the platform routes and
//! middleware ([`http`]), the use cases' tenant transactions ([`TenantDb`]), the gRPC server with
//! the health service ([`grpc`]), readiness ([`Readiness`]), per-tenant limits on the public API
//! ([`tenant_limit`]), and a graceful drain that stops and joins everything it started
//! ([`App::run`]). Tests build a service on port 0 with [`App::build`].

mod admin;
pub mod config;
pub mod connections;
pub mod db;
mod entry;
pub mod grpc;
pub mod header_guard;
pub mod http;
mod messaging_config;
pub mod mtls;
pub mod nats;
pub mod openapi;
pub mod participant;
mod platform;
mod platform_metrics;
mod readiness;
mod secret;
mod service;
pub mod shutdown;
mod tenant_db;
pub mod tenant_limit;

pub use config::{CommonConfig, ConfigError, Env, ServiceDefaults};
pub use db::Migrations;
pub use entry::main;
pub use longship_identity::{ClientTls, GrpcAccess, Mtls, ServiceIdentity};
/// The allocator every service binary installs (`#[global_allocator] static ALLOC: Allocator =
/// Allocator;` in its `main.rs`): mimalloc, which costs the services markedly less CPU than glibc's
/// malloc under many small short-lived allocations (requests, rows, JSON, spans).
pub use mimalloc::MiMalloc as Allocator;
pub use platform::{Platform, StartError, migrate_with_retry};
pub use readiness::Readiness;
pub use secret::Secret;
pub use service::{App, Service, ServiceConfig, Shell, WireError, migrate};
pub use tenant_db::TenantDb;
pub use tokio_util::sync::CancellationToken;

/// What [`service!`] expands to refers to (not part of the API).
#[doc(hidden)]
pub mod __private {
    pub use longship_messaging::StreamSpec;
    pub use longship_sql::Schema;
    pub use sqlx::migrate::Migrator;
}

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

/// The two listeners of a service, bound before anything starts so tests can use port 0 and read
/// the real addresses.
#[derive(Debug)]
pub struct Listeners {
    /// HTTP listener.
    pub http: TcpListener,
    /// gRPC listener.
    pub grpc: TcpListener,
}

impl Listeners {
    /// Binds both addresses, each with a listen backlog of `backlog` connections.
    pub fn bind(http: SocketAddr, grpc: SocketAddr, backlog: u32) -> std::io::Result<Listeners> {
        let http = connections::bind(http, backlog)
            .map_err(|e| std::io::Error::new(e.kind(), format!("binding HTTP_ADDR {http}: {e}")))?;
        let grpc = connections::bind(grpc, backlog)
            .map_err(|e| std::io::Error::new(e.kind(), format!("binding GRPC_ADDR {grpc}: {e}")))?;
        Ok(Listeners { http, grpc })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }
}

/// Serves HTTP and gRPC within `limits` until `shutdown` is cancelled; then readiness turns to
/// draining, both servers stop accepting and finish in-flight requests within `drain_timeout`.
#[allow(clippy::too_many_arguments)] // reason: the one place the platform hands its parts to the servers
pub async fn serve(
    listeners: Listeners,
    http_router: axum::Router,
    grpc_routes: tonic::service::Routes,
    readiness: Readiness,
    mtls: Option<std::sync::Arc<Mtls>>,
    shutdown: CancellationToken,
    limits: connections::ConnectionLimits,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let http = connections::serve_http(listeners.http, http_router, limits.http, shutdown.clone());
    let grpc_routes = grpc::with_health(grpc_routes).await;
    let grpc = grpc::serve(
        listeners.grpc,
        grpc_routes,
        limits.grpc,
        mtls,
        shutdown.clone(),
    );
    let http = tokio::spawn(http);
    let grpc = tokio::spawn(grpc);
    shutdown.cancelled().await;
    readiness.set_draining();
    tracing::info!(
        timeout_secs = drain_timeout.as_secs(),
        "draining in-flight requests"
    );
    let drained = tokio::time::timeout(drain_timeout, async {
        let _ = http.await;
        let _ = grpc.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timeout reached; stopping with requests still in flight");
    }
    Ok(())
}
