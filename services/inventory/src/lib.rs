//! The inventory service: products and their stock, reserved all-or-nothing for orders over gRPC,
//! released on compensation or expiry, committed when the order is confirmed (an event).
//!
//! Reads top-down: [`config`] -> [`App`] (wiring) -> [`http`] / [`grpc`] / [`events`] (adapters)
//! -> [`domain`] (rules) -> [`store`] (sqlx).

pub mod config;
pub mod domain;
pub mod events;
pub mod expiry;
pub mod grpc;
pub mod http;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use longship_messaging::{
    ConsumerSpec, Naming, OutboxRelay, StreamSpec, ensure_streams_with_retry, run_consumer,
};
use longship_proto::inventory::v1::inventory_service_server::InventoryServiceServer;
use longship_runtime::{CancellationToken, Platform};
use utoipa::OpenApi;

pub use config::Config;

/// The inventory database's migrations, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

/// The stream inventory publishes to.
pub const STREAM: StreamSpec = StreamSpec {
    name: "INVENTORY",
    subject_root: "inventory",
};

/// A built (listening, migrated) but not yet serving inventory service.
#[derive(Debug)]
pub struct App {
    platform: Platform,
    naming: Naming,
    relay: OutboxRelay,
    reservation_ttl: Duration,
    sweep_interval: Duration,
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
            reservation_ttl: config.reservation_ttl,
            sweep_interval: config.sweep_interval,
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

    /// Serves HTTP and gRPC and runs the outbox relay, the `order_confirmed` consumer and the
    /// expiry sweep until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            platform,
            naming,
            relay,
            reservation_ttl,
            sweep_interval,
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
                // waiting stock commits share a transaction (one commit for all). Each locks its
                // reservation and then its products in sku order, so across a batch the product
                // rows are locked out of order; a batch that would wait on a lock (a Reserve
                // holding a product) gives way within its lock timeout and is handled event by
                // event, so it can never deadlock the saga's Reserve
                ConsumerSpec::new(
                    events::ORDER_CONFIRMED_CONSUMER,
                    "ORDERS",
                    events::ORDER_CONFIRMED,
                )
                .batched(32),
                Arc::new(events::CommitOnOrderConfirmed::waking(relay.waker())),
                shutdown.clone(),
            )),
            tokio::spawn(
                expiry::ExpirySweeper::new(pool.clone(), relay.clone(), sweep_interval)
                    .run(shutdown.clone()),
            ),
        ];
        let grpc = grpc::InventoryGrpc::new(pool.clone(), relay, reservation_ttl);
        let grpc_routes = tonic::service::Routes::new(InventoryServiceServer::with_interceptor(
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
