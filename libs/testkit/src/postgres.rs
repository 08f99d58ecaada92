//! A fresh Postgres database per test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::infra;

/// Prefix of every database a test creates; the sweep drops old ones by it.
const PREFIX: &str = "lstest_";
/// Databases of crashed or finished test processes older than this are dropped by the next run.
const SWEEP_AFTER: Duration = Duration::from_secs(3600);

/// A database created for one test: `lstest_<unix seconds>_<random>`, dropped by [`TestDb::drop_db`]
/// or, if a test dies first, by a later run's sweep.
#[derive(Debug, Clone)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
    pool: PgPool,
}

impl TestDb {
    /// Creates an empty database (no migrations).
    pub async fn new() -> TestDb {
        crate::init_test_logging();
        let admin_url = infra::postgres_admin_url().await;
        sweep_once(&admin_url).await;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("{PREFIX}{secs}_{}", crate::unique_suffix());
        let mut admin = connect_admin(&admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| fail(&format!("creating test database {name}: {e}")));
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .unwrap_or_else(|e| fail(&format!("connecting to test database {name}: {e}")));
        TestDb {
            name,
            url,
            admin_url,
            pool,
        }
    }

    /// Creates a database and applies `migrator` to it.
    pub async fn migrated(migrator: &sqlx::migrate::Migrator) -> TestDb {
        let db = TestDb::new().await;
        migrator
            .run(&db.pool)
            .await
            .unwrap_or_else(|e| fail(&format!("migrating test database {}: {e}", db.name)));
        db
    }

    /// Applies library schemas (e.g. `longship_tenant::SCHEMA`, `longship_messaging::SCHEMA`), in
    /// order, as the owner: what a library's own tests need instead of a service's migrations.
    pub async fn apply(&self, schemas: &[&longship_sql::Schema]) {
        let mut conn =
            self.pool.acquire().await.unwrap_or_else(|e| {
                fail(&format!("connecting to test database {}: {e}", self.name))
            });
        longship_sql::apply_all(&mut conn, schemas)
            .await
            .unwrap_or_else(|e| fail(&format!("applying schemas to {}: {e}", self.name)));
    }

    /// A pool connected as the admin (owner) user.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database's URL (admin user).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for this database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.url
            .parse()
            .unwrap_or_else(|e| fail(&format!("parsing {}: {e}", self.url)))
    }

    /// A connection of its own (not the pool's) as the application role `longship_app`, with no
    /// tenant set: what row-level security checks probe. Dropping it closes it, so whatever it
    /// set never reaches another test.
    pub async fn app_role_connection(&self) -> PgConnection {
        let mut conn = PgConnection::connect_with(&self.connect_options())
            .await
            .unwrap_or_else(|e| fail(&format!("connecting to {}: {e}", self.name)));
        sqlx::query("SET ROLE longship_app")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| fail(&format!("SET ROLE longship_app: {e}")));
        conn
    }

    /// Drops the database (terminating its connections).
    pub async fn drop_db(self) {
        self.pool.close().await;
        let mut admin = connect_admin(&self.admin_url).await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await;
    }
}

#[allow(clippy::panic)] // reason: test infrastructure failures must fail the test with their cause
fn fail(message: &str) -> ! {
    panic!("{message}")
}

async fn connect_admin(admin_url: &str) -> PgConnection {
    PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| fail(&format!("connecting to Postgres at {admin_url}: {e}")))
}

fn with_database(admin_url: &str, name: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut url) => {
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        Err(_) => fail(&format!("TEST_DATABASE_URL is not a URL: {admin_url}")),
    }
}

async fn sweep_once(admin_url: &str) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(mut admin) = PgConnection::connect(admin_url).await else {
                return;
            };
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'lstest\\_%'",
            )
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            for name in names {
                let created = name
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.split('_').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if created.is_some_and(|c| now.saturating_sub(c) > SWEEP_AFTER.as_secs()) {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            }
        })
        .await;
}
