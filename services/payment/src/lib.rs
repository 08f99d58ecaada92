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
use longship_runtime::{ConfigError, Env, GrpcAccess, Service, ServiceDefaults, Shell, WireError};
use utoipa::OpenApi;

pub use config::Config;

/// The stream payment publishes to.
pub const STREAM: StreamSpec = StreamSpec {
    name: "PAYMENTS",
    subject_root: "payments",
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

/// The payment service.
#[derive(Debug)]
pub struct Payment;

impl Service for Payment {
    type Config = Config;
    const DEFAULTS: ServiceDefaults = config::DEFAULTS;
    const STREAMS: &'static [StreamSpec] = &[STREAM];

    fn migrations() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn config(env: &Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    async fn wire(shell: &mut Shell, _config: Config) -> Result<(), WireError> {
        metrics::register();
        let funds = Arc::new(usecases::Funds::new(shell.pool().clone(), shell.relay()));
        shell.api(http::routes(Arc::clone(&funds)), http::ApiDoc::openapi());
        // the saga's commands: only the order service may send them
        shell.grpc(
            GrpcAccess::Services(&["order"]),
            // each command reads its tenant itself: from `x-tenant-id` (refused without it), or
            // per item in a batch
            PaymentServiceServer::new(grpc::PaymentGrpc(funds)),
        );
        shell.consume(
            consumers::order_confirmed(),
            consumers::CaptureOnOrderConfirmed,
        );
        Ok(())
    }
}
