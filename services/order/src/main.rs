//! The order service binary: `order` serves, `order migrate` applies migrations and exits.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: longship_runtime::Allocator = longship_runtime::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match order::Config::from_env(&longship_runtime::Env::process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("order: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match longship_telemetry::init(&config.common.telemetry) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("order: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = longship_runtime::shutdown::on_signal();
    let result = match std::env::args().nth(1).as_deref() {
        Some("migrate") => order::migrate(&config, &shutdown).await,
        None | Some("serve") => order::run(config, shutdown).await,
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?} (use `serve` or `migrate`)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "order stopped");
            eprintln!("order: {e:#}");
            ExitCode::FAILURE
        }
    }
}
