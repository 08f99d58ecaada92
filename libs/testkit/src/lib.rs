//! Real infrastructure for tests, and any service started on it: [`TestApp`] runs a service
//! in-process on port 0 with typed clients, [`eventually`] polls, [`assert_status`] checks gRPC
//! answers. The infrastructure: a fresh, migrated Postgres database per test ([`TestDb`]) and an
//! isolated NATS namespace per test ([`TestNats`]), and a fault-injecting TCP proxy ([`FaultProxy`])
//! to put between code under test and either of them. [`browser`] runs the real-browser tests of
//! `tests/browser/` against a service started in-process; [`tools`] hands `/metrics` and
//! `/openapi.json` to promtool and openapi-spec-validator; [`otlp`] receives exported spans.
//! [`snapshot`] compares generated or served JSON (OpenAPI, event schemas) with its committed file;
//! [`event_schemas`] validates published events against the committed schemas. [`batches`] has
//! what the tests of batched commands and set-based consumers share.
//!
//! Infrastructure is found, in order, from `TEST_DATABASE_URL` / `TEST_NATS_URL`, then the local
//! defaults (`postgres://postgres@127.0.0.1:5432/postgres`, `nats://127.0.0.1:4222`), then
//! containers started with testcontainers when a Docker engine is reachable. When none answers the
//! test fails with one message saying what to start: tests never skip silently.

mod app;
pub mod batches;
pub mod browser;
pub mod checks;
pub mod event_schemas;
mod http;
mod infra;
pub mod invariants;
mod nats;
pub mod otlp;
mod pki;
mod postgres;
pub mod proxy;
pub mod snapshot;
pub mod tools;

pub use app::{
    TEST_JWT_SECRET, TEST_TENANT, TestApp, TestAppBuilder, assert_status, error_code, eventually,
};
pub use http::{HttpClient, HttpResponse};
pub use nats::TestNats;
pub use pki::{TEST_NAMESPACE, TestPki, scratch_dir};
pub use postgres::TestDb;
pub use proxy::FaultProxy;

/// Installs a test log subscriber once per process; quiet unless `TEST_LOG` is set
/// (then `TEST_LOG` is the filter, e.g. `TEST_LOG=debug`).
pub fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let filter = if filter.is_empty() || filter == "1" {
                "info".to_owned()
            } else {
                filter
            };
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A short random lower-case id for names that must not collide between tests.
pub fn unique_suffix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..12].to_owned()
}

#[doc(hidden)]
pub use longship_runtime::Service as __Service;

/// The two snapshot tests every service has, as test functions of the calling test crate:
/// `event_schemas_match_the_committed_files` (the schemas of `$published`, a
/// `Vec<PublishedSchema>`, against `schemas/events/<service>/`) and
/// `served_openapi_matches_the_committed_file` (the service `$service` started in-process,
/// against `openapi/<service>.json`). `just snapshots` rewrites both after a deliberate change.
#[macro_export]
macro_rules! snapshot_tests {
    ($service:ty, $published:expr) => {
        #[test]
        fn event_schemas_match_the_committed_files() {
            let service = <$service as $crate::__Service>::DEFAULTS.name;
            $crate::event_schemas::assert_schema_snapshots(service, &$published);
        }

        #[tokio::test]
        async fn served_openapi_matches_the_committed_file() {
            let app = $crate::TestApp::<$service>::spawn().await;
            let service = <$service as $crate::__Service>::DEFAULTS.name;
            let file = format!("openapi/{service}.json");
            $crate::snapshot::assert_served_openapi(&app.http, &file).await;
            app.stop().await;
        }
    };
}

#[doc(hidden)]
pub use tonic::transport::Channel as __Channel;

#[doc(hidden)]
pub use uuid::Uuid as __Uuid;

/// A service's typed test helpers, with what every service's are made of declared once:
/// `TestApp` (the testkit's app of `$service`), the trait `$name` (its `app()`, a `grpc()` client
/// `$client` on the app's channel, and the service's own helpers, `$($helpers)*`) and the trait's
/// implementation for `TestApp`. `steps(release, commit)` adds, for each saga command named, a
/// helper of that name that sends it for an order as the order service does
/// ([`TestApp::step_request`], the idempotency key `{order_id}:{step}`) and returns the answer's
/// `outcome`.
///
/// ```ignore
/// longship_testkit::service_helpers! {
///     /// Typed requests to the inventory service.
///     pub trait InventoryApp for inventory::Inventory, grpc InventoryServiceClient, steps(release, commit) {
///         /// `GET /v1/products/{sku}` as JSON, asserting 200.
///         async fn product(&self, sku: &str) -> serde_json::Value {
///             self.app().get_ok(&format!("/v1/products/{sku}")).await
///         }
///     }
/// }
/// ```
#[macro_export]
macro_rules! service_helpers {
    (
        $(#[$meta:meta])*
        pub trait $name:ident for $service:ty, grpc $client:ident $(, steps($($step:ident),+ $(,)?))? {
            $($helpers:tt)*
        }
    ) => {
        /// The service under test.
        pub type TestApp = $crate::TestApp<$service>;

        $(#[$meta])*
        #[allow(async_fn_in_trait)] // reason: a test helper trait, only used with concrete types
        pub trait $name {
            /// The app.
            fn app(&self) -> &TestApp;

            /// A gRPC client on the app's channel.
            fn grpc(&self) -> $client<$crate::__Channel> {
                $client::new(self.app().grpc_channel())
            }

            $($(
                #[doc = concat!("gRPC `", stringify!($step), "` for `order_id` as the saga sends it, returning the outcome.")]
                #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
                async fn $step(&self, order_id: $crate::__Uuid) -> String {
                    let request = self.app().step_request(order_id, stringify!($step));
                    let answer = self.grpc().$step(request).await.expect(stringify!($step));
                    answer.into_inner().outcome
                }
            )+)?

            $($helpers)*
        }

        impl $name for TestApp {
            fn app(&self) -> &TestApp {
                self
            }
        }
    };
}
