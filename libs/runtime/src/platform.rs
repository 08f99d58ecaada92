//! Everything a service gets from the platform in one value: config, listeners, the Postgres pool,
//! NATS, readiness and the authenticator; then [`Platform::serve`] runs HTTP and gRPC together.

use std::sync::Arc;
use std::time::Duration;

use longship_messaging::{Naming, OutboxRelay};
use longship_tenant::Authenticator;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::{Migrations, PoolKind};
use crate::http::HttpOptions;
use crate::{CommonConfig, Listeners, Readiness};

/// A started (but not yet serving) service.
#[derive(Debug)]
pub struct Platform {
    /// The common configuration.
    pub config: CommonConfig,
    /// Bound listeners (addresses known even with port 0).
    pub listeners: Listeners,
    /// The request pool (runs as the non-owner application role).
    pub pool: PgPool,
    /// The pool of background work (runs as the worker role; sized apart so requests cannot
    /// starve the saga engine, the relay and the consumers).
    pub worker_pool: PgPool,
    /// The NATS client.
    pub nats: async_nats::Client,
    /// JetStream on the client.
    pub jetstream: async_nats::jetstream::Context,
    /// Readiness checks.
    pub readiness: Readiness,
    /// HTTP authentication.
    pub authenticator: Arc<Authenticator>,
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding a port failed.
    #[error("{0}")]
    Bind(#[from] std::io::Error),
    /// The database URL is unusable.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// NATS could not be reached.
    #[error("nats: {0}")]
    Nats(#[from] async_nats::ConnectError),
    /// Authentication is misconfigured.
    #[error("auth: {0}")]
    Auth(String),
    /// The service's TLS files are unusable (`GRPC_MTLS`).
    #[error("mTLS: {0}")]
    Tls(String),
    /// Shut down before start-up finished.
    #[error("shut down during start-up")]
    Cancelled,
    /// The service could not wire its parts.
    #[error("{0}")]
    Wire(String),
}

impl Platform {
    /// Binds the listeners, connects to Postgres and NATS, and applies `migrations` (retrying
    /// while the database is unreachable, until `shutdown`).
    pub async fn start(
        config: CommonConfig,
        migrations: &Migrations,
        shutdown: &CancellationToken,
    ) -> Result<Platform, StartError> {
        let listeners = Listeners::bind(
            config.http_addr,
            config.grpc_addr,
            config.connections.listen_backlog,
        )?;
        let pool = crate::db::connect_lazy_as(&config.database, PoolKind::Requests)?;
        let worker_pool = crate::db::connect_lazy_as(&config.database, PoolKind::Workers)?;
        let nats = crate::nats::connect(&config.nats, &config.service_name).await?;
        let jetstream = async_nats::jetstream::new(nats.clone());
        let readiness = Readiness::new(Some(pool.clone()), Some(nats.clone()));
        readiness.set_worker_pool(worker_pool.clone());
        let authenticator = Arc::new(Authenticator::new(&config.auth).map_err(StartError::Auth)?);
        // JWKS keys re-read every AUTH_JWKS_REFRESH_SECS until shutdown (returns at once without
        // a JWKS source)
        tokio::spawn(
            Arc::clone(&authenticator).keep_keys_fresh(shutdown.clone().cancelled_owned()),
        );
        migrate_with_retry(&config, migrations, shutdown).await?;
        crate::db::check_roles(&config.database)
            .await
            .map_err(|e| StartError::Database(sqlx::Error::Protocol(e)))?;
        readiness.set_migrated();
        Ok(Platform {
            config,
            listeners,
            pool,
            worker_pool,
            nats,
            jetstream,
            readiness,
            authenticator,
        })
    }

    /// The service's outbox relay, tuned by `OUTBOX_BATCH_SIZE` and `OUTBOX_LINGER_MS` (start it
    /// with [`OutboxRelay::run`]; wake it after commits that enqueue events).
    pub fn outbox_relay(&self, naming: &Naming) -> OutboxRelay {
        OutboxRelay::new(
            self.worker_pool.clone(),
            self.jetstream.clone(),
            naming.clone(),
            self.config.outbox.clone(),
        )
    }

    /// The service's `/v1` routes and its admin routes wrapped with the platform routes and
    /// middleware.
    pub fn http_router(
        &self,
        api: axum::Router,
        admin: axum::Router,
        openapi: utoipa::openapi::OpenApi,
    ) -> axum::Router {
        crate::http::router_with_admin(
            api,
            admin,
            HttpOptions {
                service_name: self.config.service_name.clone(),
                openapi,
                authenticator: Arc::clone(&self.authenticator),
                readiness: self.readiness.clone(),
                request_timeout: self.config.request_timeout,
                tenant_limits: self.config.tenant_limits(),
            },
        )
    }

    /// Serves until `shutdown`, then drains within the configured timeout and closes the pool.
    pub async fn serve(
        self,
        http_router: axum::Router,
        grpc_routes: tonic::service::Routes,
        mtls: Option<Arc<longship_identity::Mtls>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        tracing::info!(
            http = %self.listeners.http_addr()?,
            grpc = %self.listeners.grpc_addr()?,
            "serving"
        );
        let result = crate::serve(
            self.listeners,
            http_router,
            grpc_routes,
            self.readiness,
            mtls,
            shutdown,
            self.config.connections,
            self.config.shutdown_timeout,
        )
        .await;
        self.pool.close().await;
        self.worker_pool.close().await;
        result
    }
}

/// Applies migrations, retrying every second while the database is unreachable (so a pod that starts
/// before its database simply waits). Gives up only on `shutdown` or a migration that fails on a
/// reachable database.
pub async fn migrate_with_retry(
    config: &CommonConfig,
    migrations: &Migrations,
    shutdown: &CancellationToken,
) -> Result<(), StartError> {
    let mut logged = false;
    loop {
        match crate::db::migrate(&config.database, migrations).await {
            Ok(()) => return Ok(()),
            // a server that refuses connections for now (too many clients, starting up, shutting
            // down) is waited out like an unreachable one; any other database error is a real failure
            Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(e)))
                if !e.code().is_some_and(|c| {
                    ["08", "53", "57"].iter().any(|class| c.starts_with(class))
                }) =>
            {
                return Err(StartError::Database(sqlx::Error::Protocol(format!(
                    "migration failed: {e}"
                ))));
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "database not available for migrations; retrying every second");
                    logged = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return Err(StartError::Cancelled),
        }
    }
}
