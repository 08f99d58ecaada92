//! The order service: the public order API and the place-order saga that reserves stock, authorizes
//! payment and confirms the order, or undoes what it did.
//!
//! Reads top-down: [`config`] -> [`App`] (wiring) -> `http` / `grpc` (adapters) -> `app` (use cases)
//! -> `domain` (rules, no I/O) -> `store` (sqlx); `saga` defines the saga, `events` its events.

pub mod app;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod saga;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use longship_messaging::{Naming, StreamSpec, ensure_streams_with_retry};
use longship_proto::order::v1::order_service_server::OrderServiceServer;
use longship_runtime::{CancellationToken, Platform};
use longship_saga::{EngineConfig, SagaEngine};
use utoipa::OpenApi;

pub use config::Config;

/// The service's migrations (`migrations/order`), embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/order");

/// The stream the order service produces.
pub const STREAM: StreamSpec = StreamSpec {
    name: "ORDERS",
    subject_root: "orders",
};

/// A built order service: listeners bound, database migrated, not yet serving.
pub struct App {
    platform: Platform,
    state: app::SharedState,
    naming: Naming,
}

impl App {
    /// Builds the service (binds ports, migrates, prepares NATS streams).
    pub async fn build(config: Config, shutdown: &CancellationToken) -> anyhow::Result<App> {
        let platform = Platform::start(config.common.clone(), &MIGRATOR, shutdown).await?;
        let naming = Naming::new(&config.common.nats.prefix);
        let relay = platform.outbox_relay(&naming);
        let participants = saga::Participants::connect_lazy(
            &config.inventory_url,
            &config.payment_url,
            config.step_timeout,
        )
        .map_err(|e| anyhow::anyhow!("INVENTORY_GRPC_URL / PAYMENT_GRPC_URL: {e}"))?;
        let engine_config = EngineConfig {
            deadline: config.saga_deadline,
            lease: config.saga_lease,
            step_timeout: config.step_timeout,
            concurrency: config.saga_concurrency,
            ..EngineConfig::default()
        };
        let sagas = SagaEngine::new(
            platform.pool.clone(),
            saga::PlaceOrderSaga::new(participants, relay.waker()),
            engine_config,
            shutdown.clone(),
        );
        let state = Arc::new(app::AppState {
            pool: platform.pool.clone(),
            sagas,
            relay,
        });
        Ok(App {
            platform,
            state,
            naming,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.platform.listeners.http_addr()
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.platform.listeners.grpc_addr()
    }

    /// Serves until `shutdown`, with the saga workers and the outbox relay in the background.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let js = self.platform.jetstream.clone();
        let naming = self.naming.clone();
        // streams are created in the background so the service starts (not ready) while NATS is down
        let streams = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { ensure_streams_with_retry(&js, &naming, STREAM, &shutdown).await }
        });
        let relay = tokio::spawn(self.state.relay.clone().run(shutdown.clone()));
        let sagas = self.state.sagas.clone();
        let workers = tokio::spawn(async move { sagas.run().await });
        let router = self.platform.http_router(
            http::routes(Arc::clone(&self.state)),
            http::ApiDoc::openapi(),
        );
        let grpc = tonic::service::Routes::new(OrderServiceServer::with_interceptor(
            grpc::OrderGrpc(Arc::clone(&self.state)),
            longship_tenant::grpc::require_tenant,
        ));
        self.platform.serve(router, grpc, shutdown).await?;
        streams.abort();
        let _ = workers.await;
        let _ = relay.await;
        Ok(())
    }
}

/// Builds and runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    App::build(config, &shutdown).await?.run(shutdown).await
}

/// Applies the migrations and returns (`order migrate`, for Kubernetes init containers and jobs).
pub async fn migrate(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<()> {
    longship_runtime::migrate_with_retry(&config.common, &MIGRATOR, shutdown).await?;
    tracing::info!("migrations applied");
    Ok(())
}
