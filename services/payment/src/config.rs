//! The payment service's own settings: none yet (the settings every service has are
//! `longship_runtime::CommonConfig`).

use longship_runtime::{ConfigError, Env, ServiceDefaults};

/// The contract's ports and database for payment.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: "payment",
    http_port: 8082,
    grpc_port: 50053,
    database: "payments",
};

/// The payment service's own settings.
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl Config {
    /// Reads the settings; the error names the variable at fault.
    pub fn from_env(_env: &Env) -> Result<Config, ConfigError> {
        Ok(Config {})
    }
}
