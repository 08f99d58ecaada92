//! The payment service: customer accounts whose funds are held for orders over gRPC (authorize),
//! released on compensation (void) and captured when the order is confirmed (an event).
//!
//! Reads top-down: [`config`] -> [`App`] (wiring) -> [`http`] / [`grpc`] / [`events`] (adapters)
//! -> [`domain`] (rules) -> [`store`] (sqlx).

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use longship_messaging::{
    ConsumerSpec, Naming, OutboxRelay, StreamSpec, ensure_streams_with_retry, run_consumer,
};
use longship_proto::payment::v1::payment_service_server::PaymentServiceServer;
use longship_runtime::{CancellationToken, Platform};
use utoipa::OpenApi;

pub use config::Config;

/// The payments database's migrations, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

/// The stream payment publishes to.
pub const STREAM: StreamSpec = StreamSpec {
    name: "PAYMENTS",
    subject_root: "payments",
};

/// A built (listening, migrated) but not yet serving payment service.
#[derive(Debug)]
pub struct App {
    platform: Platform,
    naming: Naming,
    relay: OutboxRelay,
}

impl App {
    /// Binds the listeners, connects, migrates and makes sure the service's streams exist.
    pub async fn build(config: Config, shutdown: &CancellationToken) -> anyhow::Result<App> {
        let platform = Platform::start(config.common, &MIGRATOR, shutdown).await?;
        let naming = Naming::new(&platform.config.nats.prefix);
        let relay = platform.outbox_relay(&naming);
        Ok(App {
            platform,
            naming,
            relay,
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

    /// Serves HTTP and gRPC and runs the outbox relay and the `order_confirmed` consumer until
    /// `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            platform,
            naming,
            relay,
        } = self;
        let pool = platform.pool.clone();
        let background = [
            tokio::spawn({
                let (js, naming, shutdown) =
                    (platform.jetstream.clone(), naming.clone(), shutdown.clone());
                async move { ensure_streams_with_retry(&js, &naming, STREAM, &shutdown).await }
            }),
            tokio::spawn(relay.clone().run(shutdown.clone())),
            tokio::spawn(run_consumer(
                pool.clone(),
                platform.jetstream.clone(),
                naming,
                // waiting captures share a transaction (one commit for all); a batch that would
                // wait on a lock (an Authorize on the same account, another replica's batch)
                // gives way and is handled event by event
                ConsumerSpec::new(
                    events::ORDER_CONFIRMED_CONSUMER,
                    "ORDERS",
                    events::ORDER_CONFIRMED,
                )
                .batched(32),
                Arc::new(events::CaptureOnOrderConfirmed::waking(relay.waker())),
                shutdown.clone(),
            )),
        ];
        let grpc = grpc::PaymentGrpc::new(pool.clone(), relay);
        let grpc_routes = tonic::service::Routes::new(PaymentServiceServer::with_interceptor(
            grpc,
            longship_tenant::grpc::require_tenant,
        ));
        let router = platform.http_router(http::routes(pool), http::ApiDoc::openapi());
        let served = platform.serve(router, grpc_routes, shutdown.clone()).await;
        shutdown.cancel();
        for task in background {
            let _ = task.await;
        }
        served?;
        Ok(())
    }
}

/// Builds and runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    App::build(config, &shutdown).await?.run(shutdown).await
}

/// Applies the migrations and returns (`<service> migrate`), retrying while the database is
/// unreachable.
pub async fn migrate(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<()> {
    longship_runtime::migrate_with_retry(&config.common, &MIGRATOR, shutdown).await?;
    tracing::info!("migrations applied");
    Ok(())
}
