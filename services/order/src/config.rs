//! The order service's own settings: its peers and the saga's tuning (the settings every service
//! has are `longship_runtime::CommonConfig`).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `INVENTORY_GRPC_URL` | `http://127.0.0.1:50052` | inventory's gRPC endpoint |
//! | `PAYMENT_GRPC_URL` | `http://127.0.0.1:50053` | payment's gRPC endpoint |
//! | `SAGA_DEADLINE_SECS` | 30 | an order not finished by then is cancelled with reason `timeout` (1-3600) |
//! | `SAGA_LEASE_SECS` | 30 | how long a dead replica's sagas wait before another resumes them (1-3600) |
//! | `SAGA_STEP_TIMEOUT_MS` | 5000 | timeout of one call to inventory or payment (100-600000, at most half the lease) |
//! | `SAGA_WORKER_CONCURRENCY` | 512 | sagas one replica executes at once (1-100000) |
//! | `SAGA_TENANT_SHARE_PERCENT` | 50 | the share of those slots one tenant may hold while another tenant's sagas are active (1-100; a tenant alone may take them all) |
//! | `SAGA_START_VERSION` | newest | the place-order version new orders start on (hold the old one during a rolling deploy) |

use std::time::Duration;

use longship_runtime::{ConfigError, Env, ServiceDefaults};
use longship_saga::EngineConfig;

/// Defaults from the contract (ARCHITECTURE.md section 3).
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: "order",
    http_port: 8080,
    grpc_port: 50051,
    database: "orders",
};

/// The order service's own settings.
#[derive(Debug, Clone)]
pub struct Config {
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
    /// `SAGA_TENANT_SHARE_PERCENT`: the share of those one tenant may hold while another
    /// tenant's sagas are active.
    pub saga_tenant_share_percent: u32,
    /// `SAGA_START_VERSION`: the version new orders' sagas start on (`None`: the newest).
    pub saga_start_version: Option<u32>,
}

impl Config {
    /// Reads the settings; the error names the variable at fault.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let saga_lease = env.secs_or("SAGA_LEASE_SECS", 30, 1, 3600)?;
        let step_timeout = env.millis_or("SAGA_STEP_TIMEOUT_MS", 5000, 100, 600_000)?;
        if step_timeout * 2 > saga_lease {
            return Err(ConfigError {
                variable: "SAGA_STEP_TIMEOUT_MS".into(),
                value: step_timeout.as_millis().to_string(),
                reason: "must be at most half of SAGA_LEASE_SECS, so a claim never lapses mid-call"
                    .into(),
            });
        }
        let saga_start_version = match env.get("SAGA_START_VERSION") {
            None => None,
            Some(_) => {
                Some(env.within_or("SAGA_START_VERSION", 1, (1, 1000), "(a version)")? as u32)
            }
        };
        Ok(Config {
            inventory_url: url(env, "INVENTORY_GRPC_URL", "http://127.0.0.1:50052")?,
            payment_url: url(env, "PAYMENT_GRPC_URL", "http://127.0.0.1:50053")?,
            saga_deadline: env.secs_or("SAGA_DEADLINE_SECS", 30, 1, 3600)?,
            saga_lease,
            step_timeout,
            saga_concurrency: env.within_or(
                "SAGA_WORKER_CONCURRENCY",
                512,
                (1, 100_000),
                "sagas",
            )? as usize,
            saga_tenant_share_percent: env.within_or(
                "SAGA_TENANT_SHARE_PERCENT",
                50,
                (1, 100),
                "percent",
            )? as u32,
            saga_start_version,
        })
    }

    /// The saga engine's tuning.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            deadline: self.saga_deadline,
            lease: self.saga_lease,
            step_timeout: self.step_timeout,
            concurrency: self.saga_concurrency,
            tenant_share: f64::from(self.saga_tenant_share_percent) / 100.0,
            ..EngineConfig::default()
        }
    }
}

fn url(env: &Env, key: &str, default: &str) -> Result<String, ConfigError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let config = Config::from_env(&Env::from_pairs([("X", "1")])).expect("defaults");
        assert_eq!(config.step_timeout, Duration::from_millis(5000));
        assert_eq!(
            (config.saga_concurrency, config.saga_start_version),
            (512, None)
        );
        for (key, value) in [
            ("SAGA_STEP_TIMEOUT_MS", "20000"),
            ("SAGA_STEP_TIMEOUT_MS", "5"),
            ("SAGA_STEP_TIMEOUT_MS", "x"),
            ("SAGA_WORKER_CONCURRENCY", "0"),
            ("SAGA_WORKER_CONCURRENCY", "200000"),
            ("SAGA_TENANT_SHARE_PERCENT", "0"),
            ("SAGA_TENANT_SHARE_PERCENT", "101"),
            ("SAGA_START_VERSION", "0"),
            ("INVENTORY_GRPC_URL", "ftp://x"),
            ("SAGA_DEADLINE_SECS", "0"),
        ] {
            let err = Config::from_env(&Env::from_pairs([(key, value)])).expect_err(key);
            assert_eq!(err.variable, key, "{key}={value}: {err}");
        }
        let config = Config::from_env(&Env::from_pairs([("SAGA_START_VERSION", "1")])).expect("v1");
        assert_eq!(config.saga_start_version, Some(1));
    }
}
