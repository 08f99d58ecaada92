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
use longship_runtime::{GrpcAccess, Shell, WireError};
use utoipa::OpenApi;

pub use config::Config;

longship_runtime::service! {
    /// The inventory service.
    pub struct Inventory(Config = config::DEFAULTS) {
        migrations: "../../migrations/inventory", streams: [STREAM], wire: wire,
    }
}

/// Wires inventory: the stock use cases behind the API and the saga's gRPC commands (only the
/// order service may send them), the stock commit on `order_confirmed`, and the expiry sweep.
async fn wire(shell: &mut Shell, config: Config) -> Result<(), WireError> {
    metrics::register();
    let stock = Arc::new(usecases::Stock::new(
        shell.tenant_db(),
        config.reservation_ttl,
    ));
    shell.api(http::routes(Arc::clone(&stock)), http::ApiDoc::openapi());
    let commands = InventoryServiceServer::new(grpc::InventoryGrpc(stock));
    // each command reads its tenant itself: from `x-tenant-id` (refused without it), or per item
    // in a batch
    shell.grpc(GrpcAccess::Services(&["order"]), commands);
    shell.consumer(consumers::ON_ORDER_CONFIRMED);
    let sweeper = expiry::ExpirySweeper::new(
        shell.worker_pool().clone(),
        shell.relay(),
        config.sweep_interval,
    );
    let stop = shell.shutdown();
    shell.spawn("expiry sweep", sweeper.run(stop));
    Ok(())
}

/// The stream inventory publishes to.
pub const STREAM: StreamSpec = StreamSpec::new("INVENTORY", "inventory");
