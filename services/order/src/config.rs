//! The order service's configuration: the common settings plus its peers and saga tuning.

use std::time::Duration;

use longship_runtime::config::ConfigError;
use longship_runtime::{CommonConfig, Env, ServiceDefaults};

/// Defaults from the contract (ARCHITECTURE.md section 3).
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: "order",
    http_port: 8080,
    grpc_port: 50051,
    database: "orders",
};

/// Order service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `INVENTORY_GRPC_URL`.
    pub inventory_url: String,
    /// `PAYMENT_GRPC_URL`.
    pub payment_url: String,
    /// `SAGA_DEADLINE_SECS`: an order not finished by then is cancelled with reason `timeout`.
    pub saga_deadline: Duration,
    /// `SAGA_LEASE_SECS`: how long a dead replica's sagas wait before another resumes them.
    pub saga_lease: Duration,
    /// `SAGA_STEP_TIMEOUT_MS`: timeout of one call to inventory or payment.
    pub step_timeout: Duration,
    /// `SAGA_WORKER_CONCURRENCY`: sagas one replica executes at once.
    pub saga_concurrency: usize,
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let common = CommonConfig::from_env(env, DEFAULTS)?;
        let url = |key: &str, default: &str| -> Result<String, ConfigError> {
            let value = env.get(key).unwrap_or_else(|| default.to_owned());
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(value)
            } else {
                Err(ConfigError {
                    variable: key.into(),
                    value,
                    reason: "must be an http:// or https:// URL".into(),
                })
            }
        };
        let saga_deadline = env.secs_or("SAGA_DEADLINE_SECS", 30, 1, 3600)?;
        let step_timeout = Duration::from_millis(env.parse_or("SAGA_STEP_TIMEOUT_MS", 5000u64)?);
        let saga_lease = env.secs_or("SAGA_LEASE_SECS", 30, 1, 3600)?;
        if step_timeout * 2 > saga_lease {
            return Err(ConfigError {
                variable: "SAGA_STEP_TIMEOUT_MS".into(),
                value: step_timeout.as_millis().to_string(),
                reason: "must be at most half of SAGA_LEASE_SECS, so a claim never lapses mid-call"
                    .into(),
            });
        }
        Ok(Config {
            common,
            inventory_url: url("INVENTORY_GRPC_URL", "http://127.0.0.1:50052")?,
            payment_url: url("PAYMENT_GRPC_URL", "http://127.0.0.1:50053")?,
            saga_deadline,
            saga_lease,
            step_timeout,
            saga_concurrency: env.parse_or("SAGA_WORKER_CONCURRENCY", 512)?,
        })
    }
}
