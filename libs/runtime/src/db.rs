//! The Postgres pool and migrations.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::config::DatabaseConfig;

/// The startup option with which the services' connections opt out of the outbox trigger's
/// `NOTIFY` (migrations `0002_outbox_notify_opt_out.sql`): a notifying commit serialises with every
/// other notifying commit of the server, and the services wake their relay in-process instead.
pub const OUTBOX_NOTIFY_OFF: (&str, &str) = ("longship.outbox_notify", "off");

/// Which of the service's two pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Request handling (HTTP and gRPC), as the application role.
    Requests,
    /// Background work (saga engine, outbox relay, consumers, sweeps), as the worker role.
    Workers,
}

/// Opens the service's request pool ([`connect_lazy_as`] with [`PoolKind::Requests`]).
pub fn connect_lazy(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    connect_lazy_as(config, PoolKind::Requests)
}

/// Opens one of the service's pools. Every connection switches to the pool's role (the application
/// role for requests, the worker role for background work), neither of which owns the tables, so
/// Postgres row-level security applies to everything the service runs. The two pools are sized
/// apart (`DATABASE_MAX_CONNECTIONS`, `DATABASE_WORKER_MAX_CONNECTIONS`): a burst of requests
/// that takes every request connection leaves the saga engine, the relay and the consumers theirs.
/// The pool is created lazily: the service starts and reports not-ready while the database is down.
/// Connections start with the configured `plan_cache_mode` (generic plans by default).
///
/// Connections are not pinged when taken from the pool (sqlx's default costs a round trip per
/// checkout, about one in ten of a saga's round trips): a connection that died while idle fails
/// its next statement instead, which callers already treat as a transient error (the saga retries,
/// the API answers 503), and the pool then replaces it.
pub fn connect_lazy_as(config: &DatabaseConfig, kind: PoolKind) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.expose().parse()?;
    let (role, size) = match kind {
        PoolKind::Requests => (config.app_role.clone(), config.max_connections),
        PoolKind::Workers => (config.worker_role.clone(), config.worker_max_connections),
    };
    let options = options.options([
        OUTBOX_NOTIFY_OFF,
        ("plan_cache_mode", config.plan_cache_mode.as_str()),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .after_connect(move |conn, _meta| {
            let role = role.clone();
            Box::pin(async move {
                if let Some(role) = role {
                    // role names are validated at config time ([A-Za-z0-9_]), so quoting is safe
                    sqlx::query(sqlx::AssertSqlSafe(format!("SET ROLE \"{role}\"")))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options);
    Ok(pool)
}

/// Fails when the URL's user cannot switch to a pool's role (the role is missing, or the user is not
/// a member of it): the service would otherwise look ready while every request or every saga fails.
/// The error names the variable. Any other failure (the database just went away) is left to the
/// pools' own retries.
pub async fn check_roles(config: &DatabaseConfig) -> Result<(), String> {
    let Ok(options) = config.url.expose().parse::<PgConnectOptions>() else {
        return Ok(());
    };
    let Ok(mut conn) = sqlx::PgConnection::connect_with(&options).await else {
        return Ok(());
    };
    let roles = [
        ("DATABASE_APP_ROLE", &config.app_role),
        ("DATABASE_WORKER_ROLE", &config.worker_role),
    ];
    let mut result = Ok(());
    for (variable, role) in roles {
        let Some(role) = role else { continue };
        // role names are validated at config time ([A-Za-z0-9_]), so quoting is safe
        let set = sqlx::query(sqlx::AssertSqlSafe(format!("SET ROLE \"{role}\"")))
            .execute(&mut conn)
            .await;
        if let Err(sqlx::Error::Database(e)) = set {
            result = Err(format!("{variable}={role}: cannot SET ROLE: {e}"));
            break;
        }
    }
    let _ = conn.close().await;
    result
}

/// Everything a service database needs, in the order it is applied: the platform's and the
/// libraries' schemas (each with its own migrations table), then the service's own migrations.
#[derive(Debug)]
pub struct Migrations {
    /// Library schemas, in order.
    pub schemas: Vec<&'static longship_sql::Schema>,
    /// The service's migrations.
    pub service: &'static sqlx::migrate::Migrator,
}

/// Applies `migrations` (the libraries' schemas, then the service's migrations) with the URL's own
/// user (the schema owner), outside the application role.
pub async fn migrate(
    config: &DatabaseConfig,
    migrations: &Migrations,
) -> Result<(), sqlx::migrate::MigrateError> {
    let options: PgConnectOptions = config
        .url
        .expose()
        .parse()
        .map_err(sqlx::migrate::MigrateError::from)?;
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let result = match longship_sql::apply_all(&mut conn, &migrations.schemas).await {
        Ok(()) => migrations.service.run(&mut conn).await,
        Err(e) => Err(e),
    };
    let _ = conn.close().await;
    result
}
