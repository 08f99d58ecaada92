//! Locating (or, with Docker, starting) the Postgres and NATS servers tests run against.

use std::time::Duration;

use tokio::sync::OnceCell;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

const PG_HELP: &str = "start the local server with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
or point TEST_DATABASE_URL at a Postgres whose user may create databases and roles, \
or make a Docker engine reachable so testcontainers can start one";
const NATS_HELP: &str = "start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log`, \
or point TEST_NATS_URL at a NATS server with JetStream enabled, \
or make a Docker engine reachable so testcontainers can start one";

static POSTGRES: OnceCell<String> = OnceCell::const_new();
static NATS: OnceCell<String> = OnceCell::const_new();

pub(crate) async fn postgres_admin_url() -> String {
    POSTGRES.get_or_init(find_postgres).await.clone()
}

pub(crate) async fn nats_url() -> String {
    NATS.get_or_init(find_nats).await.clone()
}

#[allow(clippy::panic)] // reason: a test without its infrastructure must fail loudly, saying what to start
async fn find_postgres() -> String {
    let explicit = std::env::var("TEST_DATABASE_URL").ok();
    let url = explicit.clone().unwrap_or_else(|| DEFAULT_PG.to_owned());
    match pg_ping(&url).await {
        Ok(()) => return url,
        Err(e) if explicit.is_some() => {
            panic!("TEST_DATABASE_URL={url} is not reachable ({e}); {PG_HELP}")
        }
        Err(_) => {}
    }
    #[cfg(feature = "containers")]
    if crate::infra::docker_available() {
        match containers::postgres().await {
            Ok(url) => return url,
            Err(e) => panic!(
                "Postgres is not reachable at {url} and starting a container failed: {e}; {PG_HELP}"
            ),
        }
    }
    panic!("Postgres is not reachable at {url} and no Docker engine is available; {PG_HELP}")
}

#[allow(clippy::panic)] // reason: a test without its infrastructure must fail loudly, saying what to start
async fn find_nats() -> String {
    let explicit = std::env::var("TEST_NATS_URL").ok();
    let url = explicit.clone().unwrap_or_else(|| DEFAULT_NATS.to_owned());
    match nats_ping(&url).await {
        Ok(()) => return url,
        Err(e) if explicit.is_some() => {
            panic!("TEST_NATS_URL={url} is not reachable ({e}); {NATS_HELP}")
        }
        Err(_) => {}
    }
    #[cfg(feature = "containers")]
    if crate::infra::docker_available() {
        match containers::nats().await {
            Ok(url) => return url,
            Err(e) => panic!(
                "NATS is not reachable at {url} and starting a container failed: {e}; {NATS_HELP}"
            ),
        }
    }
    panic!("NATS is not reachable at {url} and no Docker engine is available; {NATS_HELP}")
}

async fn pg_ping(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn =
        tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await??;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

async fn nats_ping(url: &str) -> anyhow::Result<()> {
    let client = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(1)
            .connect(url),
    )
    .await??;
    // a raw request: async-nats' typed `query_account` cannot parse nats-server 2.9's answer
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client.request("$JS.API.INFO", bytes::Bytes::new()),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("JetStream is not enabled on {url}: {e}"))?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    if info.get("error").is_some() {
        anyhow::bail!("JetStream is not enabled on {url}: {info}");
    }
    Ok(())
}

/// Whether a Docker engine looks reachable (a socket or DOCKER_HOST) — checked before trying
/// testcontainers so a machine without Docker fails fast with the real problem.
#[cfg(feature = "containers")]
pub(crate) fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists()
}

#[cfg(feature = "containers")]
mod containers {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{ContainerAsync, GenericImage, ImageExt};
    use tokio::sync::Mutex;

    // Containers live as long as the test process; keeping them here stops their Drop from removing them.
    static KEEP: Mutex<Vec<ContainerAsync<GenericImage>>> = Mutex::const_new(Vec::new());

    pub(super) async fn postgres() -> anyhow::Result<String> {
        let container = GenericImage::new("postgres", "15")
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .start()
            .await?;
        let port = container.get_host_port_ipv4(5432).await?;
        KEEP.lock().await.push(container);
        // the image logs "ready" once during init and once for real; wait for connections to work
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        for _ in 0..50 {
            if super::pg_ping(&url).await.is_ok() {
                return Ok(url);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        anyhow::bail!("postgres container did not accept connections")
    }

    pub(super) async fn nats() -> anyhow::Result<String> {
        let container = GenericImage::new("nats", "2.10")
            .with_exposed_port(4222.tcp())
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_cmd(["-js"])
            .start()
            .await?;
        let port = container.get_host_port_ipv4(4222).await?;
        KEEP.lock().await.push(container);
        Ok(format!("nats://127.0.0.1:{port}"))
    }
}
