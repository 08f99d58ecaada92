//! The service replicas: their ports, environment (through the proxies), migrations, start and
//! readiness.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use longship_testkit::HttpClient;

use crate::infra::Infra;
use crate::net::{Link, Network, free_port};
use crate::procs::{ProcId, ProcSpec, Supervisor};
use crate::topology::{Participant, Svc, Topology};

/// The saga timings the order replicas run with (short, so recovery happens within the run).
#[derive(Debug, Clone, Copy)]
pub struct SagaTimings {
    /// `SAGA_DEADLINE_SECS`.
    pub deadline: Duration,
    /// `SAGA_LEASE_SECS`.
    pub lease: Duration,
    /// `SAGA_STEP_TIMEOUT_MS` (at most half the lease).
    pub step_timeout: Duration,
}

impl SagaTimings {
    /// Timings for a deadline: a lease a little shorter, a step timeout well within the lease.
    pub fn for_deadline(deadline: Duration) -> SagaTimings {
        let lease = Duration::from_secs((deadline.as_secs().saturating_sub(1)).max(2));
        SagaTimings {
            deadline,
            lease,
            step_timeout: (lease / 2).min(Duration::from_millis(1500)),
        }
    }
}

/// One replica's addresses.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaAddrs {
    /// HTTP.
    pub http: SocketAddr,
    /// gRPC.
    pub grpc: SocketAddr,
}

/// The replicas' addresses, fixed for the run (a restarted replica binds the same ports).
#[derive(Debug, Clone)]
pub struct Layout {
    /// (service, replica) -> addresses.
    pub replicas: HashMap<(Svc, usize), ReplicaAddrs>,
    /// Replicas per service.
    pub per_service: usize,
}

impl Layout {
    /// Picks free ports for `per_service` replicas of every service.
    pub fn allocate(per_service: usize) -> anyhow::Result<Layout> {
        let mut replicas = HashMap::new();
        for svc in Svc::ALL {
            for r in 0..per_service {
                replicas.insert(
                    (svc, r),
                    ReplicaAddrs {
                        http: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                        grpc: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                    },
                );
            }
        }
        Ok(Layout {
            replicas,
            per_service,
        })
    }

    /// The participants' gRPC addresses, for the balancers.
    pub fn grpc_of(&self) -> HashMap<Participant, Vec<SocketAddr>> {
        let of = |svc| {
            (0..self.per_service)
                .filter_map(|r| self.replicas.get(&(svc, r)).map(|a| a.grpc))
                .collect()
        };
        HashMap::from([
            (Participant::Inventory, of(Svc::Inventory)),
            (Participant::Payment, of(Svc::Payment)),
        ])
    }

    /// An HTTP client of a replica.
    pub fn http(&self, svc: Svc, replica: usize) -> HttpClient {
        let addr = self
            .replicas
            .get(&(svc, replica))
            .map(|a| a.http)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)));
        HttpClient::new(format!("http://{addr}"))
    }
}

/// The environment of one replica: every link goes through its proxy.
fn env(
    svc: Svc,
    replica: usize,
    addrs: ReplicaAddrs,
    network: &Network,
    timings: SagaTimings,
    pki: &longship_testkit::TestPki,
    topology: &Topology,
) -> anyhow::Result<Vec<(String, String)>> {
    let link = |l: Link| network.addr(l).with_context(|| format!("no proxy on {l}"));
    // one proxy per NATS node; the client picks one and moves on when it fails
    let nats_url = (0..topology.nats_nodes)
        .map(|node| link(Link::Nats(svc, node)).map(|a| format!("nats://{a}")))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(",");
    let mut env = vec![
        ("HTTP_ADDR".into(), addrs.http.to_string()),
        ("GRPC_ADDR".into(), addrs.grpc.to_string()),
        (
            "DATABASE_URL".into(),
            format!(
                "postgres://postgres@{}/{}",
                link(Link::Postgres(svc))?,
                svc.database()
            ),
        ),
        ("DATABASE_MAX_CONNECTIONS".into(), "10".into()),
        ("NATS_URL".into(), nats_url),
        (
            "NATS_STREAM_REPLICAS".into(),
            topology.stream_replicas().to_string(),
        ),
        ("AUTH_ALLOW_TENANT_HEADER".into(), "true".into()),
        (
            "AUTH_JWT_SECRET".into(),
            "longship-chaos-secret-not-for-prod".into(),
        ),
        ("OTEL_SERVICE_NAME".into(), format!("{svc}-{replica}")),
        ("RUST_LOG".into(), "info".into()),
        ("LOG_FORMAT".into(), "json".into()),
        ("NO_COLOR".into(), "1".into()),
        ("RUST_BACKTRACE".into(), "1".into()),
        ("SHUTDOWN_TIMEOUT_SECS".into(), "3".into()),
        ("HTTP_REQUEST_TIMEOUT_SECS".into(), "10".into()),
        // service identity as in production: every replica of a service shares its certificate
        ("GRPC_MTLS".into(), "on".into()),
    ];
    env.extend(
        pki.env(svc.name())
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    if svc == Svc::Order {
        env.extend([
            (
                "INVENTORY_GRPC_URL".into(),
                format!("https://{}", link(Link::Grpc(Participant::Inventory))?),
            ),
            (
                "PAYMENT_GRPC_URL".into(),
                format!("https://{}", link(Link::Grpc(Participant::Payment))?),
            ),
            (
                "SAGA_DEADLINE_SECS".into(),
                timings.deadline.as_secs().to_string(),
            ),
            (
                "SAGA_LEASE_SECS".into(),
                timings.lease.as_secs().to_string(),
            ),
            (
                "SAGA_STEP_TIMEOUT_MS".into(),
                timings.step_timeout.as_millis().to_string(),
            ),
        ]);
    }
    Ok(env)
}

/// The binary of `svc` in `bin_dir`, checked.
pub fn binary(bin_dir: &Path, svc: Svc) -> anyhow::Result<PathBuf> {
    let path = bin_dir.join(svc.name());
    if !path.is_file() {
        bail!(
            "{} not found: build it (cargo build -p order -p inventory -p payment) or pass --bin-dir",
            path.display()
        );
    }
    Ok(path)
}

/// Registers the replicas, applies each service's migrations once, starts the replicas and
/// waits until all are ready.
pub async fn start(
    infra: &Infra,
    bin_dir: &Path,
    layout: &Layout,
    network: &Network,
    timings: SagaTimings,
    topology: &Topology,
    supervisor: &Supervisor,
) -> anyhow::Result<()> {
    let pki = longship_testkit::TestPki::new(&infra.logs().with_file_name("certs"));
    for svc in Svc::ALL {
        let program = binary(bin_dir, svc)?;
        for r in 0..layout.per_service {
            let addrs = *layout
                .replicas
                .get(&(svc, r))
                .context("replica without ports")?;
            supervisor.add(
                ProcId::Replica(svc, r),
                ProcSpec {
                    program: program.clone(),
                    args: vec![],
                    env: env(svc, r, addrs, network, timings, &pki, topology)?,
                    as_user: None,
                    log: infra.logs().join(format!("{svc}-{r}.log")),
                },
            );
        }
        // migrations once, before the replicas race for them
        let addrs = *layout.replicas.get(&(svc, 0)).context("replica 0")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(infra.logs().join(format!("{svc}-migrate.log")))?;
        let status = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(&program)
                .arg("migrate")
                .env_clear()
                .envs(env(svc, 0, addrs, network, timings, &pki, topology)?)
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .status(),
        )
        .await
        .with_context(|| format!("`{svc} migrate` took over 120 s"))??;
        if !status.success() {
            bail!(
                "`{svc} migrate` failed ({status}); see {}/{svc}-migrate.log",
                infra.logs().display()
            );
        }
    }
    for svc in Svc::ALL {
        for r in 0..layout.per_service {
            supervisor.start(ProcId::Replica(svc, r))?;
        }
    }
    let not_ready = wait_ready(layout, Duration::from_secs(90), Some(supervisor)).await;
    if !not_ready.is_empty() {
        bail!(
            "not ready after 90 s: {} (logs in {})",
            not_ready.join(", "),
            infra.logs().display()
        );
    }
    Ok(())
}

/// Waits until every replica answers `/readyz` with 200; returns the ones that never did. With a
/// supervisor, replicas that exit meanwhile are restarted.
pub async fn wait_ready(
    layout: &Layout,
    within: Duration,
    supervisor: Option<&Supervisor>,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut pending: Vec<(Svc, usize)> = Svc::ALL
        .iter()
        .flat_map(|s| (0..layout.per_service).map(move |r| (*s, r)))
        .collect();
    loop {
        if let Some(supervisor) = supervisor {
            for (id, status) in supervisor.reap() {
                tracing::warn!(process = %id, %status, "exited while starting; restarting");
            }
        }
        let mut still = Vec::new();
        for (svc, r) in pending {
            let ready =
                tokio::time::timeout(Duration::from_secs(2), layout.http(svc, r).get("/readyz"))
                    .await
                    .is_ok_and(|res| res.is_ok_and(|res| res.status == http::StatusCode::OK));
            if !ready {
                still.push((svc, r));
            }
        }
        pending = still;
        if pending.is_empty() || tokio::time::Instant::now() >= deadline {
            return pending.iter().map(|(s, r)| format!("{s}-{r}")).collect();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
