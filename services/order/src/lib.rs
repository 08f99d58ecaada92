//! The order service: the public order API and the place-order saga that reserves stock, authorizes
//! payment and confirms the order, or undoes what it did.
//!
//! Reads top-down: [`config`] -> [`Order`] (the wiring, below) -> `http` / `grpc` (adapters) ->
//! [`usecases`] (one transaction each) -> [`domain`] (rules, no I/O) -> `store` (sqlx). [`saga`]
//! is the place-order saga and [`participants`] its gRPC calls, [`steps`] the steps of generated
//! participants; [`events`] the payloads it publishes; [`api`] the views both adapters render.

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
mod grpc;
mod http;
pub mod metrics;
pub mod participants;
pub mod saga;
pub mod steps;
mod store;
pub mod usecases;

use std::sync::Arc;

use longship_messaging::StreamSpec;
use longship_proto::order::v1::order_service_server::OrderServiceServer;
use longship_runtime::{GrpcAccess, Shell, WireError};
use longship_saga::{SagaDefinition, SagaEngine, SagaVersions};
use utoipa::OpenApi;

pub use config::Config;

longship_runtime::service! {
    /// The order service.
    pub struct Order(Config = config::DEFAULTS) {
        migrations: "../../migrations/order", streams: [STREAM],
        schemas: [&longship_saga::SCHEMA], wire: wire,
    }
}

/// Wires the order service: the saga's participants and engine, the orders use cases behind the
/// API and the public gRPC service, the operators' saga routes and the console.
async fn wire(shell: &mut Shell, config: Config) -> Result<(), WireError> {
    metrics::register();
    let participants = participants::Participants::connect_lazy(
        &config.inventory_url,
        &config.payment_url,
        config.step_timeout,
        |peer| shell.grpc_client_tls(peer),
    )?
    .with_peers(&config.saga_peers, config.step_timeout, |peer| {
        shell.grpc_client_tls(peer)
    })?;
    let definitions: Vec<Arc<dyn SagaDefinition<Data = saga::PlaceOrderData>>> =
        vec![Arc::new(saga::place_order_v1(participants))];
    let mut versions = SagaVersions::new(definitions)?;
    if let Some(version) = config.saga_start_version {
        versions = versions.start_on(version)?;
    }
    // the engine claims and runs sagas on the worker pool; requests only insert them
    let sagas = SagaEngine::new(
        shell.worker_pool().clone(),
        versions,
        config.engine(),
        shell.relay(),
        shell.shutdown(),
    );
    let orders = Arc::new(usecases::Orders::new(shell.tenant_db(), sagas.clone()));
    shell.api(http::routes(Arc::clone(&orders)), http::ApiDoc::openapi());
    // the operators' saga routes (the platform's admin API has the rest)
    shell.admin(
        longship_saga::admin_routes(longship_saga::admin::SagaAdmin::new(
            shell.worker_pool().clone(),
        )),
        longship_saga::AdminApiDoc::openapi(),
    );
    // reachable from outside the platform: the tenant's JWT, as over HTTP
    let api = OrderServiceServer::new(grpc::OrderGrpc(orders));
    shell.tenant_grpc(GrpcAccess::Tenants, api);
    shell.routes(longship_console::routes(config.console));
    shell.spawn("saga workers", async move { sagas.run().await });
    Ok(())
}

/// The stream the order service produces.
pub const STREAM: StreamSpec = longship_contracts::ORDERS;
