//! The payment service binary: `payment` serves, `payment migrate` applies migrations and exits.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: longship_runtime::Allocator = longship_runtime::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match payment::Config::from_env(&longship_runtime::Env::process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("payment: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match longship_telemetry::init(&config.common.telemetry) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("payment: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = longship_runtime::shutdown::on_signal();
    let result = match std::env::args().nth(1).as_deref() {
        Some("migrate") => payment::migrate(&config, &shutdown).await,
        None | Some("serve") => payment::run(config, shutdown).await,
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?} (use `serve` or `migrate`)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "payment stopped");
            eprintln!("payment: {e:#}");
            ExitCode::FAILURE
        }
    }
}
