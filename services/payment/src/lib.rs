//! The payment service: customer accounts whose funds are held for orders over gRPC (authorize),
//! released on compensation (void) and captured when the order is confirmed (an event).
//!
//! Reads top-down: [`config`] -> [`Payment`] (the wiring, below) -> `http` / `grpc` /
//! [`consumers`] (adapters) -> [`usecases`] (one transaction each) -> [`domain`] (rules, no I/O)
//! -> [`store`] (sqlx); [`events`] the payloads.

pub mod batch;
pub mod config;
pub mod consumers;
pub mod domain;
pub mod events;
mod grpc;
mod http;
pub mod metrics;
pub mod store;
pub mod usecases;

use std::sync::Arc;

use longship_messaging::StreamSpec;
use longship_proto::payment::v1::payment_service_server::PaymentServiceServer;
use longship_runtime::{GrpcAccess, Shell, WireError};
use utoipa::OpenApi;

pub use config::Config;

longship_runtime::service! {
    /// The payment service.
    pub struct Payment(Config = config::DEFAULTS) {
        migrations: "../../migrations/payment", streams: [STREAM], wire: wire,
    }
}

/// Wires payment: the funds use cases behind the API and the saga's gRPC commands (only the
/// order service may send them), and the capture on `order_confirmed`.
async fn wire(shell: &mut Shell, _config: Config) -> Result<(), WireError> {
    metrics::register();
    let funds = Arc::new(usecases::Funds::new(shell.tenant_db()));
    shell.api(http::routes(Arc::clone(&funds)), http::ApiDoc::openapi());
    let commands = PaymentServiceServer::new(grpc::PaymentGrpc(funds));
    // each command reads its tenant itself: from `x-tenant-id` (refused without it), or per item
    // in a batch
    shell.grpc(GrpcAccess::Services(&["order"]), commands);
    shell.consumer(consumers::ON_ORDER_CONFIRMED);
    Ok(())
}

/// The stream payment publishes to.
pub const STREAM: StreamSpec = StreamSpec::new("PAYMENTS", "payments");
