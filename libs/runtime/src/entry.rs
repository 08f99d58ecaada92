//! A service binary's `main`: configuration, telemetry, signals, and the `serve` / `migrate`
//! subcommands, the same for every service.

use std::process::ExitCode;

use crate::service::{App, Service, ServiceConfig};
use crate::{Env, shutdown};

/// The whole `main.rs` of a service binary: installs the platform's allocator and runs
/// [`main`] for the service type.
///
/// ```ignore
/// longship_runtime::service_main!(order::Order);
/// ```
#[macro_export]
macro_rules! service_main {
    ($service:ty) => {
        #[global_allocator]
        static ALLOC: $crate::Allocator = $crate::Allocator;

        fn main() -> ::std::process::ExitCode {
            $crate::main::<$service>()
        }
    };
}

/// Declares a service: the type and its [`Service`] implementation from what the service has —
/// its settings type (read by its `from_env`) with its defaults, its migrations folder, the
/// streams it produces, the libraries' schemas it needs besides the platform's (optional), and
/// the async function that wires its parts into the [`crate::Shell`].
///
/// ```ignore
/// longship_runtime::service! {
///     /// The inventory service.
///     pub struct Inventory(Config = config::DEFAULTS) {
///         migrations: "../../migrations/inventory", streams: [STREAM], wire: wire,
///     }
/// }
///
/// async fn wire(shell: &mut Shell, config: Config) -> Result<(), WireError> { /* ... */ }
/// ```
#[macro_export]
macro_rules! service {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($config:ty = $defaults:expr) {
            migrations: $migrations:literal, streams: [$($stream:expr),* $(,)?],
            $(schemas: [$($schema:expr),* $(,)?],)?
            wire: $wire:path $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        $vis struct $name;

        impl $crate::Service for $name {
            type Config = $config;
            const DEFAULTS: $crate::ServiceDefaults = $defaults;
            const STREAMS: &'static [$crate::__private::StreamSpec] = &[$($stream),*];

            fn migrations() -> &'static $crate::__private::Migrator {
                static MIGRATOR: $crate::__private::Migrator = ::sqlx::migrate!($migrations);
                &MIGRATOR
            }

            $(
                fn schemas() -> &'static [&'static $crate::__private::Schema] {
                    static SCHEMAS: &[&$crate::__private::Schema] = &[$($schema),*];
                    SCHEMAS
                }
            )?

            fn config(env: &$crate::Env) -> ::std::result::Result<$config, $crate::ConfigError> {
                <$config>::from_env(env)
            }

            fn wire(
                shell: &mut $crate::Shell,
                config: $config,
            ) -> impl ::std::future::Future<
                Output = ::std::result::Result<(), $crate::WireError>,
            > + Send {
                $wire(shell, config)
            }
        }
    };
}

/// Runs a service binary: `<service>` (or `<service> serve`) serves until SIGTERM or ctrl-c, then
/// drains; `<service> migrate` applies the migrations and exits. A bad configuration stops with
/// exit status 2 and a message naming the variable; a failure at run time with status 1.
pub fn main<S: Service>() -> ExitCode {
    let name = S::DEFAULTS.name;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_command::<S>(std::env::args().nth(1).as_deref()))
}

async fn run_command<S: Service>(command: Option<&str>) -> ExitCode {
    let name = S::DEFAULTS.name;
    let config = match ServiceConfig::<S>::from_env(&Env::process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match longship_telemetry::init(&config.common.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = shutdown::on_signal();
    let result: Result<(), String> = match command {
        Some("migrate") => crate::service::migrate::<S>(&config.common, &shutdown)
            .await
            .map(|()| tracing::info!("migrations applied"))
            .map_err(|e| e.to_string()),
        None | Some("serve") => match App::<S>::build(config, &shutdown).await {
            Ok(app) => app.run().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Some(other) => {
            eprintln!("{name}: unknown command {other:?} (use `serve` or `migrate`)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} stopped");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
