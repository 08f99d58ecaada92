//! The inventory service: products and their stock, reserved all-or-nothing for orders over gRPC,
//! released on compensation or expiry, committed when the order is confirmed (an event).
//!
//! Reads top-down: [`config`] -> [`Inventory`] (the wiring, below) -> `http` / `grpc` /
//! [`consumers`] (adapters) -> [`usecases`] (one transaction each) -> [`domain`] (rules, no I/O)
//! -> [`store`] (sqlx); [`expiry`] is the background sweep, [`events`] the payloads.

pub mod batch;
pub mod config;
pub mod consumers;
pub mod domain;
pub mod events;
pub mod expiry;
mod grpc;
mod http;
pub mod metrics;
pub mod store;
pub mod usecases;

use std::sync::Arc;

use longship_messaging::StreamSpec;
use longship_proto::inventory::v1::inventory_service_server::InventoryServiceServer;
use longship_runtime::{ConfigError, Env, GrpcAccess, Service, ServiceDefaults, Shell, WireError};
use utoipa::OpenApi;

pub use config::Config;

/// The stream inventory publishes to.
pub const STREAM: StreamSpec = StreamSpec {
    name: "INVENTORY",
    subject_root: "inventory",
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

/// The inventory service.
#[derive(Debug)]
pub struct Inventory;

impl Service for Inventory {
    type Config = Config;
    const DEFAULTS: ServiceDefaults = config::DEFAULTS;
    const STREAMS: &'static [StreamSpec] = &[STREAM];

    fn migrations() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn config(env: &Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    async fn wire(shell: &mut Shell, config: Config) -> Result<(), WireError> {
        metrics::register();
        let stock = Arc::new(usecases::Stock::new(
            shell.pool().clone(),
            shell.relay(),
            config.reservation_ttl,
        ));
        shell.api(http::routes(Arc::clone(&stock)), http::ApiDoc::openapi());
        // the saga's commands: only the order service may send them
        shell.grpc(
            GrpcAccess::Services(&["order"]),
            // each command reads its tenant itself: from `x-tenant-id` (refused without it), or
            // per item in a batch
            InventoryServiceServer::new(grpc::InventoryGrpc(stock)),
        );
        shell.consume(
            consumers::order_confirmed(),
            consumers::CommitOnOrderConfirmed,
        );
        let sweeper = expiry::ExpirySweeper::new(
            shell.worker_pool().clone(),
            shell.relay(),
            config.sweep_interval,
        );
        let stop = shell.shutdown();
        shell.spawn("expiry sweep", sweeper.run(stop));
        Ok(())
    }
}
