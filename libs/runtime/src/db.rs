//! The Postgres pool and migrations.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::config::DatabaseConfig;

/// Opens the service's pool. Every connection switches to the configured application role, which
/// does not own the tables, so Postgres row-level security applies to everything the service runs.
/// The pool is created lazily: the service starts and reports not-ready while the database is down.
pub fn connect_lazy(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.expose().parse()?;
    let role = config.app_role.clone();
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
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

/// Applies `migrator` with the URL's own user (the schema owner), outside the application role.
pub async fn migrate(
    config: &DatabaseConfig,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    let options: PgConnectOptions = config
        .url
        .expose()
        .parse()
        .map_err(sqlx::migrate::MigrateError::from)?;
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let result = migrator.run(&mut conn).await;
    let _ = conn.close().await;
    result
}
