//! Payment configuration: the platform's common settings (see `longship_runtime::CommonConfig`);
//! payment has no settings of its own yet.

use longship_runtime::{CommonConfig, ConfigError, Env, ServiceDefaults};

/// The contract's ports and database for payment.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: "payment",
    http_port: 8082,
    grpc_port: 50053,
    database: "payments",
};

/// The payment service's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ports, database, NATS, auth, telemetry.
    pub common: CommonConfig,
}

impl Config {
    /// Reads the configuration; the error names the variable at fault.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        Ok(Config {
            common: CommonConfig::from_env(env, DEFAULTS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from_env(&Env::from_pairs([("AUTH_ALLOW_TENANT_HEADER", "true")]))
            .expect("config");
        assert_eq!(config.common.http_addr.port(), 8082);
        assert_eq!(config.common.grpc_addr.port(), 50053);
        assert!(config.common.database.url.expose().ends_with("/payments"));
        let err = Config::from_env(&Env::from_pairs([
            ("AUTH_ALLOW_TENANT_HEADER", "true"),
            ("GRPC_ADDR", "x"),
        ]))
        .expect_err("bad addr");
        assert_eq!(err.variable, "GRPC_ADDR");
    }
}
