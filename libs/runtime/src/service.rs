//! The service shell: a service declares what it has ([`Service`]); the runtime owns everything
//! else, identically for every service: `main` ([`crate::service_main!`]), telemetry, the `migrate`
//! subcommand, building on port 0 for tests ([`App::build`]), serving, readiness, and a graceful
//! drain that stops and joins every task it started ([`App::run`]).

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use longship_identity::{Authorizer, ClientTls, GrpcAccess, Mtls, MtlsConfig};
use longship_messaging::{
    Consumer, ConsumerContext, ConsumerSpec, ConsumerStart, EventHandler, Naming, OutboxRelay,
    RelayWake, StreamSpec,
};
use longship_sql::Schema;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::Migrations;
use crate::platform::{Platform, StartError};
use crate::{CommonConfig, ConfigError, Env, ServiceDefaults, TenantDb};

/// A Longship service: its name and defaults, its own settings, its schema, its streams, and how
/// its parts are wired. The runtime does the rest.
pub trait Service: Send + Sync + 'static {
    /// The service's own settings (besides [`CommonConfig`], which every service has).
    type Config: std::fmt::Debug + Clone + Send + Sync + 'static;

    /// Name, default ports and database (ARCHITECTURE.md section 3).
    const DEFAULTS: ServiceDefaults;

    /// The streams the service produces (created at start-up, with retries while NATS is down).
    const STREAMS: &'static [StreamSpec];

    /// The service's own migrations (`sqlx::migrate!("../../migrations/<name>")`).
    fn migrations() -> &'static sqlx::migrate::Migrator;

    /// Library schemas the service needs besides the platform's (the application role, the outbox
    /// and inbox, which every service has), e.g. `&[&longship_saga::SCHEMA]`.
    fn schemas() -> &'static [&'static Schema] {
        &[]
    }

    /// Reads the service's own settings; the error names the variable at fault.
    fn config(env: &Env) -> Result<Self::Config, ConfigError>;

    /// Wires the service's parts into `shell`: its API and its OpenAPI, its gRPC services, its
    /// consumers, its background tasks.
    fn wire(
        shell: &mut Shell,
        config: Self::Config,
    ) -> impl Future<Output = Result<(), WireError>> + Send;
}

/// Why a service could not wire its parts (e.g. a peer URL that does not parse).
pub type WireError = Box<dyn std::error::Error + Send + Sync>;

/// A service's whole configuration: the common settings and its own.
pub struct ServiceConfig<S: Service> {
    /// Ports, database, NATS, auth, telemetry, timeouts.
    pub common: CommonConfig,
    /// The service's own settings.
    pub service: S::Config,
    /// Service identity on the gRPC plane (`GRPC_MTLS`, `TLS_*`): `None` only when turned off.
    pub mtls: Option<MtlsConfig>,
    /// `CONSUMER_START_POSITION` (`all` or `new`): where this service's durable consumers start
    /// when they do not exist yet (a spec may say otherwise).
    pub consumer_start: ConsumerStart,
}

impl<S: Service> Clone for ServiceConfig<S> {
    fn clone(&self) -> Self {
        ServiceConfig {
            common: self.common.clone(),
            service: self.service.clone(),
            mtls: self.mtls.clone(),
            consumer_start: self.consumer_start,
        }
    }
}

impl<S: Service> std::fmt::Debug for ServiceConfig<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("common", &self.common)
            .field("service", &self.service)
            .field("mtls", &self.mtls)
            .field("consumer_start", &self.consumer_start)
            .finish()
    }
}

impl<S: Service> ServiceConfig<S> {
    /// Reads both from `env`.
    pub fn from_env(env: &Env) -> Result<ServiceConfig<S>, ConfigError> {
        Ok(ServiceConfig {
            common: CommonConfig::from_env(env, S::DEFAULTS)?,
            service: S::config(env)?,
            mtls: crate::mtls::mtls(env)?,
            consumer_start: env.parse_or("CONSUMER_START_POSITION", ConsumerStart::All)?,
        })
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a service wires its parts into: the platform's connections and the service's parts.
pub struct Shell {
    platform: Platform,
    naming: Naming,
    relay: OutboxRelay,
    shutdown: CancellationToken,
    api: Option<(axum::Router, utoipa::openapi::OpenApi)>,
    routes: axum::Router,
    admin: (axum::Router, utoipa::openapi::OpenApi),
    grpc: tonic::service::RoutesBuilder,
    mtls: Option<Arc<Mtls>>,
    consumer_start: ConsumerStart,
    authorizer: Authorizer,
    consumers: Vec<(ConsumerSpec, Arc<dyn EventHandler>)>,
    tasks: Vec<(&'static str, Task)>,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("service", &self.platform.config.service_name)
            .field("consumers", &self.consumers.len())
            .field(
                "tasks",
                &self.tasks.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Shell {
    /// The pool that serves requests (its connections run as the application role: row-level
    /// security applies). Give it to the API's and the gRPC services' use cases only.
    pub fn pool(&self) -> &PgPool {
        &self.platform.pool
    }

    /// The pool of background work: saga engines, sweeps and other tasks (the runtime gives it to
    /// the outbox relay and the consumers itself). Its connections run as the worker role, which
    /// crosses tenants on the platform's queue tables (saga, outbox, inbox) and is bound by the
    /// tenant policies everywhere else. Sized apart, so a burst of requests cannot starve it.
    pub fn worker_pool(&self) -> &PgPool {
        &self.platform.worker_pool
    }

    /// Wakes the service's outbox relay; call it after a commit that enqueued events (the saga
    /// engine and the consumers are given it once and call it themselves).
    pub fn relay(&self) -> RelayWake {
        self.relay.waker()
    }

    /// What the use cases behind the API and the gRPC services run on: the request [`Shell::pool`]
    /// and the [`Shell::relay`] waker, as one [`TenantDb`].
    pub fn tenant_db(&self) -> TenantDb {
        TenantDb::new(self.pool().clone(), self.relay())
    }

    /// Stream and subject names (with the environment's prefix).
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// JetStream.
    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.platform.jetstream
    }

    /// The settings every service has.
    pub fn common(&self) -> &CommonConfig {
        &self.platform.config
    }

    /// Cancelled when the service drains: background work stops at its next safe point.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The service's public API (`/v1` routes, authenticated per tenant, with per-tenant limits)
    /// and its OpenAPI document (served at `/openapi.json` and `/docs`).
    pub fn api(&mut self, router: axum::Router, openapi: utoipa::openapi::OpenApi) {
        self.api = Some((router, openapi));
    }

    /// Other HTTP routes (e.g. an operations page), served beside the API with the platform's
    /// middleware.
    pub fn routes(&mut self, router: axum::Router) {
        self.routes = std::mem::take(&mut self.routes).merge(router);
    }

    /// Admin routes of the service's own (e.g. the order service's sagas), under `/admin/v1`, with
    /// their OpenAPI document: served beside the platform's admin API (dead letters, outbox,
    /// audit), which every service has, with the platform's middleware but not the per-tenant
    /// limits. Their handlers authenticate with `longship_tenant::Admin`.
    ///
    /// # Panics
    /// When a route is not under `/admin/v1/` (a wiring bug, caught at start-up by any test).
    pub fn admin(&mut self, router: axum::Router, openapi: utoipa::openapi::OpenApi) {
        #[allow(clippy::panic)]
        // reason: a wiring bug, found by the first test that starts the service
        for path in openapi.paths.paths.keys() {
            if !path.starts_with("/admin/v1/") {
                panic!("admin route {path} is not under /admin/v1/");
            }
        }
        let (routes, doc) = std::mem::take(&mut self.admin);
        self.admin = (routes.merge(router), doc.merge_from(openapi));
    }

    /// A gRPC service and who may call it (served beside the standard health service, which
    /// any TLS client may call). Every call is authorized by `access` before the service (and its
    /// tenant interceptor) sees it: the caller's certificate identity for platform services, the
    /// tenant's JWT for services reachable from outside.
    pub fn grpc<S>(&mut self, access: GrpcAccess, service: S)
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.grpc
            .add_service(self.authorizer.guard(access, service));
    }

    /// A tenant-scoped gRPC service: [`Shell::grpc`] behind the tenant interceptor, which refuses
    /// calls without a valid `x-tenant-id` and hands the handlers the caller's tenant.
    pub fn tenant_grpc<S>(&mut self, access: GrpcAccess, service: S)
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let intercepted = tonic::service::interceptor::InterceptedService::new(
            service,
            longship_tenant::grpc::require_tenant,
        );
        self.grpc(access, intercepted);
    }

    /// How this service reaches the platform service `peer` over gRPC (`None` with
    /// `GRPC_MTLS=off`): pass it to [`crate::grpc::balanced_channel`].
    pub fn grpc_client_tls(&self, peer: &str) -> Option<ClientTls> {
        self.mtls
            .as_ref()
            .map(|mtls| ClientTls::new(Arc::clone(mtls), peer))
    }

    /// A durable consumer: its handler runs in a tenant-scoped transaction with the inbox row, and
    /// the relay is woken after each commit. Its delivery settings (ack wait, max deliver, max ack
    /// pending) are the configured ones (`NATS_CONSUMER_*`), the same for every consumer.
    pub fn consume(&mut self, spec: ConsumerSpec, handler: impl EventHandler) {
        let mut spec = spec.with_settings(&self.platform.config.nats.consumers);
        spec.start.get_or_insert(self.consumer_start);
        self.consumers.push((spec, Arc::new(handler)));
    }

    /// A [`Consumer`] of one event type: its spec (name, subject, batching), with the configured
    /// delivery settings as for [`Shell::consume`].
    pub fn consumer(&mut self, consumer: impl Consumer) {
        let spec = consumer.spec();
        self.consume(spec, consumer);
    }

    /// A background task (a sweep, a saga engine's workers), run until [`Shell::shutdown`] is
    /// cancelled and joined when the service drains.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name, Box::pin(task)));
    }
}

/// A built service: listening, migrated, wired, not yet serving.
pub struct App<S: Service> {
    shell: Shell,
    service: PhantomData<S>,
}

impl<S: Service> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("shell", &self.shell).finish()
    }
}

/// The platform's own schemas, applied before any library's and the service's.
pub(crate) const PLATFORM_SCHEMAS: &[&Schema] = &[
    &longship_tenant::SCHEMA,
    &longship_messaging::SCHEMA,
    &longship_admin::SCHEMA,
];

impl<S: Service> App<S> {
    /// Binds the listeners (port 0 works), connects Postgres and NATS, applies the platform's,
    /// the libraries' and the service's migrations, and wires the service. `shutdown` stops
    /// start-up, and later the service.
    pub async fn build(
        config: ServiceConfig<S>,
        shutdown: &CancellationToken,
    ) -> Result<App<S>, StartError> {
        let migrations = Migrations {
            schemas: PLATFORM_SCHEMAS
                .iter()
                .chain(S::schemas())
                .copied()
                .collect(),
            service: S::migrations(),
        };
        let mtls = match &config.mtls {
            Some(c) => Some(Mtls::load(c).map_err(StartError::Tls)?),
            None => {
                tracing::warn!(
                    "GRPC_MTLS=off: gRPC connections are plaintext and callers are not authenticated; \
                     anyone who reaches the gRPC port can act for any tenant (development only)"
                );
                None
            }
        };
        let platform = Platform::start(config.common, &migrations, shutdown).await?;
        let authorizer = Authorizer::new(mtls.clone(), Arc::clone(&platform.authenticator));
        let naming = Naming::new(&platform.config.nats.prefix);
        let relay = platform.outbox_relay(&naming);
        let mut shell = Shell {
            platform,
            naming,
            relay,
            // its own token: a start-up failure found while serving (streams JetStream refuses)
            // stops this service without cancelling the caller's token
            shutdown: shutdown.child_token(),
            api: None,
            routes: axum::Router::new(),
            admin: Default::default(),
            grpc: tonic::service::RoutesBuilder::default(),
            mtls,
            consumer_start: config.consumer_start,
            authorizer,
            consumers: Vec::new(),
            tasks: Vec::new(),
        };
        S::wire(&mut shell, config.service)
            .await
            .map_err(|e| StartError::Wire(e.to_string()))?;
        Ok(App {
            shell,
            service: PhantomData,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.shell.platform.listeners.http_addr()
    }

    /// The request pool and the worker pool (tests hold connections of one to show the other
    /// keeps working).
    pub fn pools(&self) -> (PgPool, PgPool) {
        (
            self.shell.platform.pool.clone(),
            self.shell.platform.worker_pool.clone(),
        )
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.shell.platform.listeners.grpc_addr()
    }

    /// Serves HTTP and gRPC and runs the relay, the consumers and the background tasks until the
    /// shutdown token is cancelled; then drains in-flight requests, stops every task and joins
    /// them, all within `SHUTDOWN_TIMEOUT_SECS` (tasks still running then are aborted).
    pub async fn run(self) -> std::io::Result<()> {
        let Shell {
            platform,
            naming,
            relay,
            shutdown,
            api,
            routes,
            admin,
            grpc,
            mtls,
            authorizer: _,
            consumer_start: _,
            consumers,
            tasks,
        } = self.shell;
        let mut running = tokio::task::JoinSet::new();
        let refused = Arc::new(std::sync::OnceLock::new());
        running.spawn(ensure_streams(
            S::STREAMS,
            &platform,
            naming.clone(),
            shutdown.clone(),
            Arc::clone(&refused),
        ));
        running.spawn({
            let stop = shutdown.clone();
            let relay = relay.clone();
            async move {
                relay.run(stop).await;
                "outbox relay"
            }
        });
        // operators act across tenants: the admin API runs as the worker role (the platform's
        // tables give it a cross-tenant policy; a redrive's handler is held to its event's tenant)
        let admin_state = crate::admin::AdminState {
            pool: platform.worker_pool.clone(),
            js: platform.jetstream.clone(),
            naming: naming.clone(),
            relay: relay.waker(),
            consumers: Arc::new(consumers.clone()),
        };
        running.spawn({
            let (state, stop) = (admin_state.clone(), shutdown.clone());
            async move {
                crate::admin::refresh_gauges(state, stop).await;
                "admin gauges"
            }
        });
        if let Some(mtls) = &mtls {
            let (mtls, stop) = (Arc::clone(mtls), shutdown.clone());
            running.spawn(async move {
                mtls.watch(stop).await;
                "certificate reload"
            });
        }
        let context = ConsumerContext {
            pool: platform.worker_pool.clone(),
            js: platform.jetstream.clone(),
            naming,
            relay: relay.waker(),
        };
        for (spec, handler) in consumers {
            let (context, stop) = (context.clone(), shutdown.clone());
            running.spawn(async move {
                longship_messaging::run_consumer(context, spec, handler, stop).await;
                "consumer"
            });
        }
        for (name, task) in tasks {
            running.spawn(async move {
                task.await;
                name
            });
        }
        let (api, openapi) = api.unwrap_or_else(|| (axum::Router::new(), Default::default()));
        let (admin_routes, admin_doc) = admin;
        let openapi = openapi
            .merge_from(admin_doc)
            .merge_from(<crate::admin::AdminApiDoc as utoipa::OpenApi>::openapi());
        let admin_routes = admin_routes.merge(crate::admin::routes(admin_state));
        let router = platform.http_router(api.merge(routes), admin_routes, openapi);
        let timeout = platform.config.shutdown_timeout;
        let signalled = tokio::spawn({
            let stop = shutdown.clone();
            async move {
                stop.cancelled().await;
                tokio::time::Instant::now()
            }
        });
        let served = platform
            .serve(router, grpc.routes(), mtls, shutdown.clone())
            .await;
        // the servers have drained (or run out of time); the background tasks were told to stop
        // at the same moment: join them within what is left of the timeout
        shutdown.cancel();
        let since = signalled.await.map(|at| at.elapsed()).unwrap_or_default();
        join_within(
            running,
            timeout
                .saturating_sub(since)
                .max(Duration::from_millis(100)),
        )
        .await;
        match refused.get() {
            Some(reason) => Err(std::io::Error::other(format!(
                "JetStream refused the stream settings: {reason}"
            ))),
            None => served,
        }
    }
}

/// Creates or checks the service's streams and the dead-letter stream with the configured
/// settings (`NATS_STREAM_*`), retrying while JetStream is unavailable; readiness waits for them.
/// When JetStream refuses the settings, the reason goes into `refused` and the service stops.
fn ensure_streams(
    streams: &'static [StreamSpec],
    platform: &Platform,
    naming: Naming,
    stop: CancellationToken,
    refused: Arc<std::sync::OnceLock<String>>,
) -> impl Future<Output = &'static str> + Send + 'static {
    let (js, readiness) = (platform.jetstream.clone(), platform.readiness.clone());
    let settings = platform.config.nats.streams;
    readiness.expect_streams();
    async move {
        for stream in streams {
            let ensured = longship_messaging::ensure_streams_with_retry(
                &js, &naming, *stream, &settings, &stop,
            )
            .await;
            if let Err(e) = ensured {
                tracing::error!(error = %e, "JetStream refused the stream settings; stopping");
                let _ = refused.set(e.to_string());
                stop.cancel();
                return "streams";
            }
        }
        if !stop.is_cancelled() {
            readiness.set_streams_ready();
        }
        "streams"
    }
}

/// Joins every task, aborting those still running after `limit`.
async fn join_within(mut running: tokio::task::JoinSet<&'static str>, limit: Duration) {
    let joined = tokio::time::timeout(limit, async {
        while let Some(done) = running.join_next().await {
            if let Err(e) = done {
                tracing::warn!(error = %e, "a background task failed");
            }
        }
    })
    .await;
    if joined.is_err() {
        tracing::warn!(
            tasks = running.len(),
            "background tasks still running at the shutdown timeout; aborting them"
        );
        running.shutdown().await;
    }
}

/// Applies the platform's, the libraries' and the service's migrations and returns (the
/// `<service> migrate` subcommand, for Kubernetes jobs), retrying while the database is unreachable.
pub async fn migrate<S: Service>(
    config: &CommonConfig,
    shutdown: &CancellationToken,
) -> Result<(), StartError> {
    let migrations = Migrations {
        schemas: PLATFORM_SCHEMAS
            .iter()
            .chain(S::schemas())
            .copied()
            .collect(),
        service: S::migrations(),
    };
    crate::platform::migrate_with_retry(config, &migrations, shutdown).await
}
