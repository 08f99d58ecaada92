//! The runner's Postgres: one server, or a primary with a synchronous hot standby
//! (`pg_basebackup -R`, streaming replication, `synchronous_standby_names = '*'`). The services
//! and the checks reach it through one endpoint; a failover kills the primary, promotes the
//! standby, re-points the endpoint (as a managed database's address moves) and builds a new
//! standby from the new primary, so the next failover can happen.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;

use crate::net::{Endpoint, free_port};
use crate::procs::{ProcId, ProcSpec, Supervisor};

/// Where Debian's PostgreSQL 15 binaries live.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The service databases.
const DATABASES: [&str; 3] = ["orders", "inventory", "payments"];

/// One Postgres node.
#[derive(Debug, Clone)]
struct Node {
    id: ProcId,
    port: u16,
    data: PathBuf,
}

impl Node {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

#[derive(Debug)]
struct Roles {
    primary: Node,
    standby: Option<Node>,
    /// Number of the next node built.
    next: usize,
}

/// The Postgres nodes of a run and the endpoint in front of the primary.
#[derive(Debug)]
pub struct Pg {
    dir: PathBuf,
    sockets: PathBuf,
    user: Option<String>,
    endpoint: Endpoint,
    /// Held for a whole failover, so a heal waits for one in progress.
    roles: tokio::sync::Mutex<Roles>,
}

impl Pg {
    /// Initialises and starts the primary, creates the service databases, starts the endpoint
    /// and, with `standby`, builds the synchronous standby and waits until it is in sync.
    pub async fn start(dir: &Path, supervisor: &Supervisor, standby: bool) -> anyhow::Result<Pg> {
        for tool in ["initdb", "postgres", "pg_ctl", "pg_basebackup"] {
            let path = format!("{PG_BIN}/{tool}");
            if !Path::new(&path).exists() {
                bail!("{path} is missing: apt-get install postgresql-15");
            }
        }
        let user = postgres_user()?;
        let (data, sockets) = init_cluster(dir, user.as_deref())?;
        let primary = Node {
            id: ProcId::Postgres(0),
            port: free_port()?,
            data,
        };
        supervisor.add(
            primary.id,
            postgres_spec(dir, &primary, &sockets, user.clone()),
        );
        supervisor.start(primary.id)?;
        wait_url(&primary.url("postgres"), Duration::from_secs(60))
            .await
            .with_context(|| format!("log {}/logs/{}.log", dir.display(), primary.id))?;
        let mut admin = sqlx::PgConnection::connect(&primary.url("postgres")).await?;
        for db in DATABASES {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
                .execute(&mut admin)
                .await
                .with_context(|| format!("creating database {db}"))?;
        }
        let endpoint = Endpoint::start(primary.addr()).await?;
        let pg = Pg {
            dir: dir.to_path_buf(),
            sockets,
            user,
            endpoint,
            roles: tokio::sync::Mutex::new(Roles {
                primary,
                standby: None,
                next: 1,
            }),
        };
        if standby {
            // written before the base backup, so every standby (a primary to be) carries it;
            // in force on this primary from the reload once its standby streams
            sqlx::query("ALTER SYSTEM SET synchronous_standby_names = '*'")
                .execute(&mut admin)
                .await?;
            let mut roles = pg.roles.lock().await;
            pg.build_standby(&mut roles, supervisor).await?;
            sqlx::query("SELECT pg_reload_conf()")
                .execute(&mut admin)
                .await?;
            wait_standby(&roles.primary, true, Duration::from_secs(30)).await?;
        }
        let _ = admin.close().await;
        Ok(pg)
    }

    /// An admin (superuser) URL of `database` through the endpoint (the current primary).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.endpoint.addr())
    }

    /// The endpoint the services connect to (through their fault proxies).
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint.addr()
    }

    /// The process of the current primary (waits for a failover in progress).
    pub async fn primary(&self) -> ProcId {
        self.roles.lock().await.primary.id
    }

    /// Returns once no failover is in progress.
    pub async fn settle(&self) {
        drop(self.roles.lock().await);
    }

    /// Fails over: SIGKILL of the primary, `pg_ctl promote` of the standby, the endpoint
    /// re-pointed to it, then a new standby from the new primary (`pg_basebackup -R`), in sync.
    /// Returns what happened, with timings.
    pub async fn failover(&self, supervisor: &Supervisor) -> anyhow::Result<String> {
        let mut roles = self.roles.lock().await;
        let Some(standby) = roles.standby.clone() else {
            return Ok("no standby in sync yet; failover skipped".into());
        };
        let old = roles.primary.clone();
        let started = tokio::time::Instant::now();
        supervisor.retire(old.id).await;
        self.promote(&standby).await?;
        self.endpoint.repoint(standby.addr());
        let promoted_after = started.elapsed();
        roles.primary = standby.clone();
        roles.standby = None;
        let _ = std::fs::remove_dir_all(&old.data);
        let rebuilt = tokio::time::Instant::now();
        let new = self.build_standby(&mut roles, supervisor).await?;
        Ok(format!(
            "SIGKILL primary {}, {} promoted and the endpoint re-pointed after {:.1?}; new standby {} in sync after {:.1?}",
            old.id,
            standby.id,
            promoted_after,
            new,
            rebuilt.elapsed()
        ))
    }

    async fn promote(&self, standby: &Node) -> anyhow::Result<()> {
        let output = self
            .as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("promote")
            .arg("-D")
            .arg(&standby.data)
            .args(["-w", "-t", "60"])
            .output()
            .await
            .context("running pg_ctl promote")?;
        if !output.status.success() {
            bail!(
                "pg_ctl promote of {} failed: {}",
                standby.id,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut conn = sqlx::PgConnection::connect(&standby.url("postgres")).await?;
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        if in_recovery {
            bail!("{} still in recovery after pg_ctl promote", standby.id);
        }
        Ok(())
    }

    /// A base backup of the primary into a new node, started as its synchronous standby;
    /// returns once the primary reports it in sync.
    async fn build_standby(
        &self,
        roles: &mut Roles,
        supervisor: &Supervisor,
    ) -> anyhow::Result<ProcId> {
        let n = roles.next;
        roles.next += 1;
        let node = Node {
            id: ProcId::Postgres(n),
            port: free_port()?,
            data: self.dir.join(format!("pg-{n}")),
        };
        make_data_dir(&node.data, self.user.as_deref())?;
        let output = self
            .as_postgres(&format!("{PG_BIN}/pg_basebackup"))
            .args(["-h", "127.0.0.1", "-p"])
            .arg(roles.primary.port.to_string())
            .args(["-U", "postgres", "-D"])
            .arg(&node.data)
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"])
            .output()
            .await
            .context("running pg_basebackup")?;
        if !output.status.success() {
            bail!(
                "pg_basebackup for {} failed: {}",
                node.id,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        supervisor.add(
            node.id,
            postgres_spec(&self.dir, &node, &self.sockets, self.user.clone()),
        );
        supervisor.start(node.id)?;
        // synchronous at once after a failover; the first standby once the primary reloads
        wait_standby(&roles.primary, false, Duration::from_secs(60)).await?;
        let id = node.id;
        roles.standby = Some(node);
        Ok(id)
    }

    fn as_postgres(&self, program: &str) -> tokio::process::Command {
        let mut command = match &self.user {
            Some(user) => {
                let mut c = tokio::process::Command::new("setpriv");
                c.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                    .arg(program);
                c
            }
            None => tokio::process::Command::new(program),
        };
        command.env("LANG", "C.UTF-8").kill_on_drop(true);
        command
    }
}

/// Waits until `primary` has a standby streaming (and synchronous, with `sync`).
async fn wait_standby(primary: &Node, sync: bool, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let found = async {
            let mut conn = sqlx::PgConnection::connect(&primary.url("postgres")).await?;
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND (sync_state = 'sync' OR NOT $1)",
            )
            .bind(sync)
            .fetch_one(&mut conn)
            .await?;
            let _ = conn.close().await;
            Ok::<i64, sqlx::Error>(n)
        };
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), found).await
            && n > 0
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no standby streaming from {} within {within:?} (synchronous: {sync})",
                primary.id
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until Postgres at `url` accepts connections.
pub async fn wait_url(url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let attempt =
            tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(url)).await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) if tokio::time::Instant::now() >= deadline => {
                bail!("Postgres did not come up: {e}")
            }
            Err(_) if tokio::time::Instant::now() >= deadline => {
                bail!("Postgres did not come up (connecting timed out)")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// An empty data directory, mode 700, owned by `user` when running as root.
fn make_data_dir(data: &Path, user: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(data)?;
    set_mode(data, 0o700)?;
    if let Some(user) = user {
        let status = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(data)
            .status()
            .context("chown of a Postgres directory")?;
        if !status.success() {
            bail!("chown {user} of {} failed", data.display());
        }
    }
    Ok(())
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

/// How the supervisor starts Postgres `node`.
fn postgres_spec(dir: &Path, node: &Node, sockets: &Path, user: Option<String>) -> ProcSpec {
    ProcSpec {
        program: format!("{PG_BIN}/postgres").into(),
        args: vec![
            "-D".into(),
            node.data.display().to_string(),
            "-p".into(),
            node.port.to_string(),
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
            // a standby being built or catching up finds the WAL it needs
            "-c".into(),
            "wal_keep_size=256MB".into(),
        ],
        env: vec![("LANG".into(), "C.UTF-8".into())],
        as_user: user,
        log: dir.join(format!("logs/{}.log", node.id)),
    }
}
