//! Typed configuration from environment variables (plain names, documented in one table in the
//! README). Defaults first, then the environment; a bad value stops start-up naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use longship_messaging::{ConsumerSettings, RelayConfig, StreamSettings};
use longship_telemetry::{LogFormat, TelemetryConfig};
use longship_tenant::{AuthConfig, JwtAlgorithm};

use crate::Secret;
use crate::tenant_limit::TenantLimits;

/// A configuration error naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: String,
    /// The value it had (redacted for secrets).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Where configuration values come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: HashMap<String, String>,
    use_process_env: bool,
}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env {
            overrides: HashMap::new(),
            use_process_env: true,
        }
    }

    /// Only the given pairs (tests start services with exactly the config they mean).
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            overrides: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            use_process_env: false,
        }
    }

    /// Adds or replaces one value.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Env {
        self.overrides.insert(key.into(), value.into());
        self
    }

    /// The raw value of `key` (empty strings count as unset).
    pub fn get(&self, key: &str) -> Option<String> {
        let value = match self.overrides.get(key) {
            Some(v) => Some(v.clone()),
            None if self.use_process_env => std::env::var(key).ok(),
            None => None,
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// `key` parsed, or `default` when unset.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
                variable: key.to_owned(),
                value: raw.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// A boolean (`true/false/1/0/yes/no`), or `default`.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError {
                variable: key.into(),
                value: v,
                reason: "expected true or false".into(),
            }),
        }
    }

    /// Seconds as a duration, within `min..=max`.
    pub fn secs_or(
        &self,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.within_or(key, default, (min, max), "seconds")
            .map(Duration::from_secs)
    }

    /// Milliseconds as a duration, within `min..=max`.
    pub fn millis_or(
        &self,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.within_or(key, default, (min, max), "milliseconds")
            .map(Duration::from_millis)
    }

    /// A whole number of `unit`s within `min..=max`, or `default`; the error says the range.
    pub fn within_or(
        &self,
        key: &str,
        default: u64,
        (min, max): (u64, u64),
        unit: &str,
    ) -> Result<u64, ConfigError> {
        let value: u64 = self.parse_or(key, default)?;
        if !(min..=max).contains(&value) {
            return Err(ConfigError {
                variable: key.into(),
                value: value.to_string(),
                reason: format!("must be between {min} and {max} {unit}"),
            });
        }
        Ok(value)
    }
}

/// Per-service defaults for the common settings (the contract's ports and database name).
#[derive(Debug, Clone, Copy)]
pub struct ServiceDefaults {
    /// Service name (logs, traces, OpenAPI title).
    pub name: &'static str,
    /// Default HTTP port.
    pub http_port: u16,
    /// Default gRPC port.
    pub grpc_port: u16,
    /// Default database name.
    pub database: &'static str,
}

/// Postgres settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connection URL (the user must own the schema to run migrations).
    pub url: Secret,
    /// Size of the pool that serves requests (`DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// Size of the pool of background work: saga claims and transitions, the outbox relay,
    /// consumers, sweeps (`DATABASE_WORKER_MAX_CONNECTIONS`). Apart, so requests cannot starve it.
    pub worker_max_connections: u32,
    /// Role the request pool switches to after connecting (`SET ROLE`), so row-level security
    /// applies even when the URL's user owns the tables. `None` when the URL already logs in as it.
    pub app_role: Option<String>,
    /// Role the worker pool switches to (`DATABASE_WORKER_ROLE`, default `longship_worker`): the
    /// application role's rights, and across tenants on the platform's queue tables only.
    pub worker_role: Option<String>,
    /// Postgres' `plan_cache_mode` for the service's connections (`DATABASE_PLAN_CACHE_MODE`):
    /// `force_generic_plan` by default, so each prepared statement is planned once per connection
    /// instead of on every execution.
    pub plan_cache_mode: PlanCacheMode,
}

/// How Postgres plans the services' prepared statements (its `plan_cache_mode` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanCacheMode {
    /// Postgres' default: custom plans for the first executions, then generic ones only when
    /// their estimated cost is close.
    Auto,
    /// Plan every prepared statement once (per connection) and reuse the plan. Every statement on
    /// the services' hot paths is a primary-key or index lookup whatever its parameters, so the
    /// generic plan is the custom one without the planning (measured in docs/performance.md).
    ForceGeneric,
    /// Plan every execution with its parameters.
    ForceCustom,
}

impl PlanCacheMode {
    /// The setting's value as Postgres spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanCacheMode::Auto => "auto",
            PlanCacheMode::ForceGeneric => "force_generic_plan",
            PlanCacheMode::ForceCustom => "force_custom_plan",
        }
    }

    fn parse(s: &str) -> Option<PlanCacheMode> {
        [
            PlanCacheMode::Auto,
            PlanCacheMode::ForceGeneric,
            PlanCacheMode::ForceCustom,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// NATS settings.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URL.
    pub url: String,
    /// Prefix of every subject and stream, so environments and tests can share a server.
    pub prefix: String,
    /// How the service's streams and the dead-letter stream are stored (`NATS_STREAM_*`).
    pub streams: StreamSettings,
    /// How its durable consumers are delivered to (`NATS_CONSUMER_*`).
    pub consumers: ConsumerSettings,
}

/// The settings every service has.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// Service name.
    pub service_name: String,
    /// `HTTP_ADDR`.
    pub http_addr: SocketAddr,
    /// `GRPC_ADDR`.
    pub grpc_addr: SocketAddr,
    /// Database.
    pub database: DatabaseConfig,
    /// NATS.
    pub nats: NatsConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Telemetry.
    pub telemetry: TelemetryConfig,
    /// How long in-flight work may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Per-request timeout of the HTTP API.
    pub request_timeout: Duration,
    /// Concurrent `/v1` requests one tenant may have in flight on this replica (0 = unlimited).
    pub tenant_concurrency_limit: usize,
    /// Sustained `/v1` requests per second one tenant may make on this replica (0 = unlimited).
    pub tenant_rate_limit_rps: f64,
    /// Requests a tenant may make at once after being idle (the token bucket's size).
    pub tenant_rate_limit_burst: u32,
    /// The outbox relay's tuning: `RelayConfig::default()` with `OUTBOX_BATCH_SIZE` and
    /// `OUTBOX_LINGER_MS` applied.
    pub outbox: RelayConfig,
    /// Listen backlog, connection caps and timeouts of the HTTP and gRPC servers.
    pub connections: crate::connections::ConnectionLimits,
}

impl CommonConfig {
    /// Reads the common settings.
    pub fn from_env(env: &Env, defaults: ServiceDefaults) -> Result<CommonConfig, ConfigError> {
        let (tenant_rate_limit_rps, tenant_rate_limit_burst) = rate_limits(env)?;
        Ok(CommonConfig {
            service_name: defaults.name.to_owned(),
            http_addr: env.parse_or(
                "HTTP_ADDR",
                SocketAddr::from(([0, 0, 0, 0], defaults.http_port)),
            )?,
            grpc_addr: env.parse_or(
                "GRPC_ADDR",
                SocketAddr::from(([0, 0, 0, 0], defaults.grpc_port)),
            )?,
            database: database(env, defaults.database)?,
            nats: nats(env)?,
            auth: auth(env)?,
            telemetry: telemetry(env, defaults.name)?,
            shutdown_timeout: env.secs_or("SHUTDOWN_TIMEOUT_SECS", 20, 1, 600)?,
            request_timeout: env.secs_or("HTTP_REQUEST_TIMEOUT_SECS", 15, 1, 300)?,
            tenant_concurrency_limit: env.parse_or("TENANT_CONCURRENCY_LIMIT", 0)?,
            tenant_rate_limit_rps,
            tenant_rate_limit_burst,
            outbox: crate::messaging_config::relay(env)?,
            connections: crate::connections::ConnectionLimits::from_env(env)?,
        })
    }

    /// The per-tenant limits of the `/v1` API.
    pub fn tenant_limits(&self) -> TenantLimits {
        TenantLimits {
            concurrency: self.tenant_concurrency_limit,
            rate_per_sec: self.tenant_rate_limit_rps,
            burst: self.tenant_rate_limit_burst,
        }
    }
}

/// `DATABASE_*`.
fn database(env: &Env, name: &str) -> Result<DatabaseConfig, ConfigError> {
    let url = env
        .get("DATABASE_URL")
        .unwrap_or_else(|| format!("postgres://postgres@127.0.0.1:5432/{}", name));
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ConfigError {
            variable: "DATABASE_URL".into(),
            value: "<redacted>".into(),
            reason: "must start with postgres://".into(),
        });
    }
    let max_connections =
        env.within_or("DATABASE_MAX_CONNECTIONS", 16, (1, 1000), "connections")? as u32;
    let worker_max_connections = env.within_or(
        "DATABASE_WORKER_MAX_CONNECTIONS",
        8,
        (1, 1000),
        "connections",
    )? as u32;
    let app_role = role(env, "DATABASE_APP_ROLE", "longship_app")?;
    let worker_role = role(env, "DATABASE_WORKER_ROLE", "longship_worker")?;
    let plan_cache_mode = match env.get("DATABASE_PLAN_CACHE_MODE") {
        None => PlanCacheMode::ForceGeneric,
        Some(v) => PlanCacheMode::parse(&v).ok_or_else(|| ConfigError {
            variable: "DATABASE_PLAN_CACHE_MODE".into(),
            value: v,
            reason: "must be auto, force_generic_plan or force_custom_plan".into(),
        })?,
    };
    Ok(DatabaseConfig {
        url: Secret::new(url),
        max_connections,
        worker_max_connections,
        app_role,
        worker_role,
        plan_cache_mode,
    })
}

/// A role to `SET ROLE` to: `default` when unset, none for `none` or `-`.
fn role(env: &Env, key: &str, default: &str) -> Result<Option<String>, ConfigError> {
    match env.get(key) {
        None => Ok(Some(default.to_owned())),
        Some(r) if r == "none" || r == "-" => Ok(None),
        Some(r) if r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(Some(r)),
        Some(r) => Err(ConfigError {
            variable: key.into(),
            value: r,
            reason: "must be a plain role name ([A-Za-z0-9_]) or `none`".into(),
        }),
    }
}

/// `NATS_URL`, `NATS_PREFIX`, `NATS_STREAM_*`, `NATS_CONSUMER_*`.
fn nats(env: &Env) -> Result<NatsConfig, ConfigError> {
    let nats_url = env
        .get("NATS_URL")
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let prefix = env.get("NATS_PREFIX").unwrap_or_default();
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ConfigError {
            variable: "NATS_PREFIX".into(),
            value: prefix,
            reason: "letters, digits and dashes only".into(),
        });
    }
    Ok(NatsConfig {
        url: nats_url,
        prefix,
        streams: crate::messaging_config::streams(env)?,
        consumers: crate::messaging_config::consumers(env)?,
    })
}

/// `AUTH_*`, checked by building the authenticator once (which reads `AUTH_JWKS_FILE`).
fn auth(env: &Env) -> Result<AuthConfig, ConfigError> {
    let algorithm: JwtAlgorithm = env.parse_or("AUTH_JWT_ALGORITHM", JwtAlgorithm::Hs256)?;
    let auth = AuthConfig {
        allow_tenant_header: env.bool_or("AUTH_ALLOW_TENANT_HEADER", false)?,
        algorithm,
        secret: env.get("AUTH_JWT_SECRET"),
        public_key_pem: env.get("AUTH_JWT_PUBLIC_KEY"),
        jwks_file: env.get("AUTH_JWKS_FILE").map(Into::into),
        jwks_url: env.get("AUTH_JWKS_URL"),
        jwks_refresh: env.secs_or("AUTH_JWKS_REFRESH_SECS", 300, 1, 86_400)?,
        jwks_min_refresh: env.secs_or("AUTH_JWKS_MIN_REFRESH_SECS", 30, 0, 3_600)?,
    };
    longship_tenant::Authenticator::new(&auth).map_err(|reason| ConfigError {
        variable: "AUTH_* (JWT keys, JWKS, tenant header)".into(),
        value: "<redacted>".into(),
        reason,
    })?;
    Ok(auth)
}

/// `OTEL_SERVICE_NAME`, `RUST_LOG`, `LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn telemetry(env: &Env, service: &str) -> Result<TelemetryConfig, ConfigError> {
    let telemetry = TelemetryConfig {
        service_name: env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| service.to_owned()),
        log_filter: env.get("RUST_LOG").unwrap_or_else(|| "info".into()),
        log_format: env.parse_or("LOG_FORMAT", LogFormat::Json)?,
        otlp_endpoint: env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    };
    Ok(telemetry)
}

/// `TENANT_RATE_LIMIT_RPS` and `TENANT_RATE_LIMIT_BURST`.
fn rate_limits(env: &Env) -> Result<(f64, u32), ConfigError> {
    let tenant_rate_limit_rps: f64 = env.parse_or("TENANT_RATE_LIMIT_RPS", 0.0)?;
    if !(tenant_rate_limit_rps.is_finite() && (0.0..=1_000_000.0).contains(&tenant_rate_limit_rps))
    {
        return Err(ConfigError {
            variable: "TENANT_RATE_LIMIT_RPS".into(),
            value: tenant_rate_limit_rps.to_string(),
            reason: "must be a number of requests per second between 0 (off) and 1000000".into(),
        });
    }
    // by default a tenant may spend one second's worth of requests at once
    let default_burst = tenant_rate_limit_rps.ceil().max(1.0) as u32;
    let tenant_rate_limit_burst: u32 = env.parse_or("TENANT_RATE_LIMIT_BURST", default_burst)?;
    if tenant_rate_limit_burst == 0 {
        return Err(ConfigError {
            variable: "TENANT_RATE_LIMIT_BURST".into(),
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok((tenant_rate_limit_rps, tenant_rate_limit_burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: ServiceDefaults = ServiceDefaults {
        name: "order",
        http_port: 8080,
        grpc_port: 50051,
        database: "orders",
    };

    #[test]
    fn defaults_follow_the_contract() {
        let env = Env::from_pairs([("AUTH_ALLOW_TENANT_HEADER", "true")]);
        let config = CommonConfig::from_env(&env, DEFAULTS).expect("config");
        assert_eq!(config.http_addr.port(), 8080);
        assert_eq!(config.grpc_addr.port(), 50051);
        assert_eq!(
            config.database.url.expose(),
            "postgres://postgres@127.0.0.1:5432/orders"
        );
        assert_eq!(config.database.app_role.as_deref(), Some("longship_app"));
        assert_eq!(
            config.database.worker_role.as_deref(),
            Some("longship_worker")
        );
        assert_eq!(config.database.worker_max_connections, 8);
        assert_eq!(config.connections, Default::default());
        assert!(config.connections.listen_backlog >= 1024);
        assert!(config.auth.allow_tenant_header);
        assert!(!config.tenant_limits().enabled());
        assert_eq!(
            (config.outbox.batch_size, config.outbox.linger),
            (256, Duration::from_millis(2))
        );
    }

    #[test]
    fn the_outbox_relay_is_tuned_by_its_variables() {
        let env = Env::from_pairs([
            ("AUTH_ALLOW_TENANT_HEADER", "true"),
            ("OUTBOX_BATCH_SIZE", "64"),
            ("OUTBOX_LINGER_MS", "0"),
        ]);
        let config = CommonConfig::from_env(&env, DEFAULTS).expect("config");
        assert_eq!(
            (config.outbox.batch_size, config.outbox.linger),
            (64, Duration::ZERO)
        );
    }

    #[test]
    fn tenant_limits_are_read() {
        let env = Env::from_pairs([
            ("AUTH_ALLOW_TENANT_HEADER", "true"),
            ("TENANT_CONCURRENCY_LIMIT", "8"),
            ("TENANT_RATE_LIMIT_RPS", "2.5"),
        ]);
        let limits = CommonConfig::from_env(&env, DEFAULTS)
            .expect("config")
            .tenant_limits();
        assert_eq!(
            limits,
            TenantLimits {
                concurrency: 8,
                rate_per_sec: 2.5,
                burst: 3
            }
        );
        let env = env.set("TENANT_RATE_LIMIT_BURST", "50");
        let limits = CommonConfig::from_env(&env, DEFAULTS)
            .expect("config")
            .tenant_limits();
        assert_eq!(limits.burst, 50);
    }

    #[test]
    fn plan_cache_mode_defaults_to_generic_plans_and_takes_postgres_spellings() {
        let base = Env::from_pairs([("AUTH_ALLOW_TENANT_HEADER", "true")]);
        let config = CommonConfig::from_env(&base, DEFAULTS).expect("config");
        assert_eq!(config.database.plan_cache_mode, PlanCacheMode::ForceGeneric);
        for mode in ["auto", "force_generic_plan", "force_custom_plan"] {
            let env = Env::from_pairs([
                ("AUTH_ALLOW_TENANT_HEADER", "true"),
                ("DATABASE_PLAN_CACHE_MODE", mode),
            ]);
            let config = CommonConfig::from_env(&env, DEFAULTS).expect(mode);
            assert_eq!(config.database.plan_cache_mode.as_str(), mode);
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("HTTP_ADDR", "not-an-addr"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("DATABASE_URL", "mysql://x"),
            ("AUTH_ALLOW_TENANT_HEADER", "perhaps"),
            ("LOG_FORMAT", "xml"),
            ("SHUTDOWN_TIMEOUT_SECS", "100000"),
            ("NATS_PREFIX", "a.b"),
            ("DATABASE_APP_ROLE", "x; drop"),
            ("DATABASE_WORKER_ROLE", "x y"),
            ("DATABASE_WORKER_MAX_CONNECTIONS", "0"),
            ("LISTEN_BACKLOG", "1"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "0"),
            ("HTTP_IDLE_TIMEOUT_SECS", "99999"),
            ("GRPC_MAX_CONNECTIONS", "0"),
            ("GRPC_CONCURRENCY_PER_CONNECTION", "0"),
            ("TENANT_CONCURRENCY_LIMIT", "-1"),
            ("TENANT_RATE_LIMIT_RPS", "-5"),
            ("TENANT_RATE_LIMIT_RPS", "NaN"),
            ("TENANT_RATE_LIMIT_BURST", "0"),
            ("DATABASE_PLAN_CACHE_MODE", "generic"),
            ("OUTBOX_BATCH_SIZE", "0"),
            ("OUTBOX_BATCH_SIZE", "20000"),
            ("OUTBOX_LINGER_MS", "5000"),
            ("OUTBOX_LINGER_MS", "-1"),
        ];
        for (key, value) in cases {
            let env = Env::from_pairs([("AUTH_ALLOW_TENANT_HEADER", "true"), (key, value)]);
            let err = CommonConfig::from_env(&env, DEFAULTS).expect_err(key);
            assert!(err.variable.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn no_auth_method_is_refused_and_secrets_are_redacted() {
        let err =
            CommonConfig::from_env(&Env::from_pairs([("X", "1")]), DEFAULTS).expect_err("no auth");
        assert!(err.to_string().contains("AUTH_JWT_SECRET"));
        let env = Env::from_pairs([
            ("AUTH_JWT_SECRET", "a-long-enough-secret-value"),
            ("DATABASE_URL", "postgres://u:hunter2@db/orders"),
        ]);
        let config = CommonConfig::from_env(&env, DEFAULTS).expect("config");
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("a-long-enough"),
            "{printed}"
        );
    }
}
