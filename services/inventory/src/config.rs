//! The inventory service's own settings: the reservation safety net (the settings every service
//! has are `longship_runtime::CommonConfig`).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RESERVATION_TTL_SECS` | 600 | how long an unconfirmed reservation holds stock (60-86400; must stay well above the saga deadline) |
//! | `RESERVATION_SWEEP_INTERVAL_SECS` | 5 | how often expired reservations are released (1-3600) |

use std::time::Duration;

use longship_runtime::{ConfigError, Env, ServiceDefaults};

/// The contract's ports and database for inventory.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: "inventory",
    http_port: 8081,
    grpc_port: 50052,
    database: "inventory",
};

/// The shortest TTL the environment may set. A reservation must outlive the order saga's deadline
/// (30 s by default): otherwise a confirmed order could find its stock released.
pub const MIN_RESERVATION_TTL_SECS: u64 = 60;

/// The inventory service's own settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a reservation holds stock unless committed or released. `from_env` refuses less
    /// than [`MIN_RESERVATION_TTL_SECS`]; tests may set a shorter value on the struct directly.
    pub reservation_ttl: Duration,
    /// How often the expiry sweep runs.
    pub sweep_interval: Duration,
}

impl Config {
    /// Reads the configuration; the error names the variable at fault.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        Ok(Config {
            reservation_ttl: env.secs_or(
                "RESERVATION_TTL_SECS",
                600,
                MIN_RESERVATION_TTL_SECS,
                86_400,
            )?,
            sweep_interval: env.secs_or("RESERVATION_SWEEP_INTERVAL_SECS", 5, 1, 3600)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut env = Env::from_pairs([("AUTH_ALLOW_TENANT_HEADER", "true")]);
        for (k, v) in pairs {
            env = env.set(*k, *v);
        }
        env
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from_env(&env(&[])).expect("config");
        assert_eq!((DEFAULTS.http_port, DEFAULTS.grpc_port), (8081, 50052));
        assert_eq!(config.reservation_ttl, Duration::from_secs(600));
        assert_eq!(config.sweep_interval, Duration::from_secs(5));
    }

    #[test]
    fn a_ttl_shorter_than_the_saga_is_refused() {
        for bad in ["0", "59", "abc", "100000"] {
            let err = Config::from_env(&env(&[("RESERVATION_TTL_SECS", bad)])).expect_err(bad);
            assert_eq!(err.variable, "RESERVATION_TTL_SECS");
        }
        let config = Config::from_env(&env(&[("RESERVATION_TTL_SECS", "60")])).expect("config");
        assert_eq!(config.reservation_ttl, Duration::from_secs(60));
        let err =
            Config::from_env(&env(&[("RESERVATION_SWEEP_INTERVAL_SECS", "0")])).expect_err("0");
        assert_eq!(err.variable, "RESERVATION_SWEEP_INTERVAL_SECS");
    }
}
