//! The runner's own infrastructure: a temporary directory, a fresh Postgres cluster (`initdb`) and
//! a nats-server with JetStream, each on its own port. The machine's shared servers are never used.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;

use crate::procs::{ProcId, ProcSpec, Supervisor};

/// Where Debian's PostgreSQL 15 binaries live.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Debian's nats-server.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A port free on 127.0.0.1 right now, below the kernel's ephemeral range: ports handed out for
/// `bind(0)` (the proxies) and for outgoing connections come from that range, so a port chosen here
/// stays free for the server that binds it later (and again after each restart).
pub fn free_port() -> anyhow::Result<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            r.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12_000 {
        (10_000, ephemeral_low)
    } else {
        (ephemeral_low / 2, ephemeral_low)
    };
    for _ in 0..200 {
        let port = rand::random_range(low..high);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port found in {low}..{high} on 127.0.0.1")
}

/// The run's directory and servers.
#[derive(Debug, Clone)]
pub struct Infra {
    /// The run directory (data, logs).
    pub dir: PathBuf,
    /// Postgres port (direct; services go through proxies).
    pub pg_port: u16,
    /// NATS port (direct; services go through proxies).
    pub nats_port: u16,
}

impl Infra {
    /// The logs directory.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// An admin (superuser) URL of `database`, directly on the server.
    pub fn pg_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.pg_port)
    }

    /// The NATS URL, directly on the server.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }
}

/// Creates the run directory under `parent`.
pub fn make_run_dir(parent: &Path, seed: u64) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("longship-chaos-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    // Postgres may run as another user: it must be able to reach its data directory
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// The user Postgres runs as: `postgres` when the runner is root (initdb refuses root), else none.
fn postgres_user() -> anyhow::Result<Option<String>> {
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .context("reading /proc/self")?;
    if euid != 0 {
        return Ok(None);
    }
    let known = std::process::Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !known {
        bail!(
            "running as root, and initdb refuses root: a `postgres` user is needed (apt-get install postgresql creates it)"
        );
    }
    Ok(Some("postgres".to_owned()))
}

/// Initialises a cluster in `dir/pg`, registers Postgres and NATS with `supervisor`, starts both
/// and waits until they answer; creates the three service databases.
pub async fn start(dir: &Path, supervisor: &Supervisor) -> anyhow::Result<Infra> {
    for tool in [
        format!("{PG_BIN}/initdb"),
        format!("{PG_BIN}/postgres"),
        NATS_SERVER.into(),
    ] {
        if !Path::new(&tool).exists() {
            bail!("{tool} is missing: apt-get install postgresql-15 nats-server");
        }
    }
    let user = postgres_user()?;
    let (data, sockets) = init_cluster(dir, user.as_deref())?;
    let pg_port = free_port()?;
    supervisor.add(
        ProcId::Postgres,
        postgres_spec(dir, &data, &sockets, pg_port, user),
    );
    let nats_port = free_port()?;
    supervisor.add(ProcId::Nats, nats_spec(dir, nats_port)?);
    let infra = Infra {
        dir: dir.to_path_buf(),
        pg_port,
        nats_port,
    };
    supervisor.start(ProcId::Postgres)?;
    supervisor.start(ProcId::Nats)?;
    wait_postgres(&infra, Duration::from_secs(60)).await?;
    wait_nats(&infra, Duration::from_secs(30)).await?;
    let mut admin = sqlx::PgConnection::connect(&infra.pg_url("postgres")).await?;
    for db in ["orders", "inventory", "payments"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {db}"))?;
    }
    let _ = admin.close().await;
    Ok(infra)
}

/// Creates the data and socket directories (owned by `user` when running as root) and runs
/// initdb; returns both directories.
fn init_cluster(dir: &Path, user: Option<&str>) -> anyhow::Result<(PathBuf, PathBuf)> {
    let data = dir.join("pg");
    let sockets = dir.join("pg-sock");
    std::fs::create_dir_all(&data)?;
    std::fs::create_dir_all(&sockets)?;
    set_mode(&data, 0o700)?;
    if let Some(user) = user {
        let status = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(&data)
            .arg(&sockets)
            .status()
            .context("chown of the Postgres directories")?;
        if !status.success() {
            bail!("chown {user} of {} failed", data.display());
        }
    }
    let initdb_log = dir.join("logs/initdb.log");
    let mut initdb = match user {
        Some(user) => {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                .arg(format!("{PG_BIN}/initdb"));
            c
        }
        None => std::process::Command::new(format!("{PG_BIN}/initdb")),
    };
    let output = initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ])
        .output()
        .context("running initdb")?;
    std::fs::write(
        &initdb_log,
        [&output.stdout[..], &output.stderr[..]].concat(),
    )?;
    if !output.status.success() {
        bail!(
            "initdb failed (log {}): {}",
            initdb_log.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((data, sockets))
}

/// How the supervisor starts Postgres on `port`.
fn postgres_spec(
    dir: &Path,
    data: &Path,
    sockets: &Path,
    port: u16,
    user: Option<String>,
) -> ProcSpec {
    ProcSpec {
        program: format!("{PG_BIN}/postgres").into(),
        args: vec![
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            sockets.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            // a crash of the process loses nothing without fsync (the page cache survives);
            // only a machine crash would, and the runner does not crash machines
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=300".into(),
            "-c".into(),
            "shared_buffers=64MB".into(),
        ],
        env: vec![("LANG".into(), "C.UTF-8".into())],
        as_user: user,
        log: dir.join("logs/postgres.log"),
    }
}

/// How the supervisor starts nats-server (JetStream) on `port`.
fn nats_spec(dir: &Path, port: u16) -> anyhow::Result<ProcSpec> {
    let nats_store = dir.join("nats");
    std::fs::create_dir_all(&nats_store)?;
    Ok(ProcSpec {
        program: NATS_SERVER.into(),
        args: vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            nats_store.display().to_string(),
        ],
        env: vec![],
        as_user: None,
        log: dir.join("logs/nats-server.log"),
    })
}

/// Waits until Postgres accepts connections.
pub async fn wait_postgres(infra: &Infra, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::PgConnection::connect(&infra.pg_url("postgres")),
        )
        .await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) if tokio::time::Instant::now() >= deadline => {
                bail!(
                    "Postgres on port {} did not come up: {e} (log {}/logs/postgres.log)",
                    infra.pg_port,
                    infra.dir.display()
                )
            }
            Err(_) if tokio::time::Instant::now() >= deadline => {
                bail!("Postgres on port {} did not come up", infra.pg_port)
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until NATS answers with JetStream enabled.
pub async fn wait_nats(infra: &Infra, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let attempt = async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(2))
                .connect(infra.nats_url())
                .await?;
            // raw: async-nats' typed account query cannot parse nats-server 2.9's answer
            let reply = client.request("$JS.API.INFO", Vec::new().into()).await?;
            let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
            match info.get("error") {
                Some(e) => Err(format!("JetStream: {e}").into()),
                None => Ok::<(), async_nats::Error>(()),
            }
        };
        let outcome = match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        match outcome {
            why if tokio::time::Instant::now() >= deadline => bail!(
                "nats-server on port {} did not come up with JetStream: {why} (log {}/logs/nats-server.log)",
                infra.nats_port,
                infra.dir.display()
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
