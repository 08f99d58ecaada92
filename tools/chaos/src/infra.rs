//! The runner's own infrastructure: a temporary directory, Postgres (one server, or a primary
//! with a synchronous standby) and NATS (one server, or a JetStream cluster), each on its own
//! ports. The machine's shared servers are never used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::natsc::{self, Nats};
use crate::pg::Pg;
use crate::procs::Supervisor;
use crate::topology::Topology;

/// The run's directory and servers.
#[derive(Debug, Clone)]
pub struct Infra {
    /// The run directory (data, logs).
    pub dir: PathBuf,
    /// Postgres: its nodes and the endpoint in front of the primary.
    pub pg: Arc<Pg>,
    /// NATS: its nodes and, in a cluster, the route proxies between them.
    pub nats: Arc<Nats>,
}

impl Infra {
    /// The logs directory.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// An admin (superuser) URL of `database`, through the endpoint (not a fault proxy).
    pub fn pg_url(&self, database: &str) -> String {
        self.pg.url(database)
    }

    /// Every NATS node's URL, comma-separated, directly (not through a proxy).
    pub fn nats_url(&self) -> String {
        self.nats.urls()
    }
}

/// Creates the run directory under `parent`.
pub fn make_run_dir(parent: &Path, seed: u64) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("longship-chaos-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    // Postgres may run as another user: it must be able to reach its data directory
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", dir.display()))?;
    Ok(dir)
}

/// Starts Postgres (creating the three service databases) and NATS as `topology` says, and
/// waits until they answer.
pub async fn start(
    dir: &Path,
    supervisor: &Supervisor,
    topology: &Topology,
) -> anyhow::Result<Infra> {
    if !Path::new(natsc::NATS_SERVER).exists() {
        bail!(
            "{} is missing: apt-get install nats-server",
            natsc::NATS_SERVER
        );
    }
    let pg = Pg::start(dir, supervisor, topology.pg_standby).await?;
    let nats = Nats::start(dir, supervisor, topology.nats_nodes).await?;
    Ok(Infra {
        dir: dir.to_path_buf(),
        pg: Arc::new(pg),
        nats: Arc::new(nats),
    })
}

/// Waits until Postgres accepts connections through the endpoint.
pub async fn wait_postgres(infra: &Infra, within: Duration) -> anyhow::Result<()> {
    crate::pg::wait_url(&infra.pg_url("postgres"), within)
        .await
        .with_context(|| format!("logs in {}", infra.logs().display()))
}
