//! The network between the processes: a fault proxy on every link the nemesis breaks (order ->
//! inventory/payment gRPC, each service -> Postgres, each service -> each NATS node), a small TCP
//! balancer spreading each gRPC link over a participant's replicas, and the Postgres endpoint: the
//! one address the services are given, re-pointed to the new primary on failover.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use longship_testkit::FaultProxy;
use longship_testkit::proxy::Mode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::topology::{Participant, Svc};

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

/// A forwarder with a movable upstream, like a managed database's endpoint: every connection goes
/// to the current target; re-pointing closes the connections to the old one.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    target: watch::Sender<SocketAddr>,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Starts an endpoint on 127.0.0.1 forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Endpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (sender, _) = watch::channel(target);
        let targets = sender.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let mut moved = targets.subscribe();
                let target = *moved.borrow_and_update();
                tokio::spawn(async move {
                    let connect = TcpStream::connect(target);
                    let Ok(Ok(mut server)) =
                        tokio::time::timeout(Duration::from_secs(2), connect).await
                    else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = moved.changed() => {}
                    }
                });
            }
        });
        Ok(Endpoint {
            addr,
            target: sender,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new connections to `target` and closes the ones open now.
    pub fn repoint(&self, target: SocketAddr) {
        self.target.send_replace(target);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Spreads connections over upstreams round-robin, skipping the ones that refuse (a killed
/// replica); a connection lives and dies with the upstream it got.
#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Starts a balancer on 127.0.0.1 over `upstreams`.
    pub async fn start(upstreams: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstreams = Arc::new(upstreams);
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let upstreams = Arc::clone(&upstreams);
                let first = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    for i in 0..upstreams.len() {
                        let target = upstreams[(first + i) % upstreams.len()];
                        let connect = TcpStream::connect(target);
                        if let Ok(Ok(mut server)) =
                            tokio::time::timeout(Duration::from_millis(500), connect).await
                        {
                            let mut client = client;
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                    // nobody answers: the client sees the connection close and retries
                });
            }
        });
        Ok(Balancer { addr, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which link a proxy sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// order -> a participant's gRPC.
    Grpc(Participant),
    /// a service -> Postgres.
    Postgres(Svc),
    /// a service -> one NATS node.
    Nats(Svc, usize),
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Grpc(p) => write!(f, "{p}"),
            Link::Postgres(s) => write!(f, "{s}->postgres"),
            Link::Nats(s, n) => write!(f, "{s}->nats-{n}"),
        }
    }
}

/// Every proxy and balancer of the run.
#[derive(Debug)]
pub struct Network {
    proxies: HashMap<Link, FaultProxy>,
    _balancers: Vec<Balancer>,
}

impl Network {
    /// Starts the proxies: gRPC links to balancers over `grpc_replicas` of each participant,
    /// Postgres links to its endpoint and NATS links to every node.
    pub async fn start(
        pg: SocketAddr,
        nats: &[SocketAddr],
        grpc_replicas: &HashMap<Participant, Vec<SocketAddr>>,
    ) -> std::io::Result<Network> {
        let mut proxies = HashMap::new();
        let mut balancers = Vec::new();
        for (participant, replicas) in grpc_replicas {
            let balancer = Balancer::start(replicas.clone()).await?;
            let proxy = FaultProxy::bind(loopback(), balancer.addr()).await?;
            proxies.insert(Link::Grpc(*participant), proxy);
            balancers.push(balancer);
        }
        for svc in Svc::ALL {
            proxies.insert(Link::Postgres(svc), FaultProxy::bind(loopback(), pg).await?);
            for (node, addr) in nats.iter().enumerate() {
                proxies.insert(
                    Link::Nats(svc, node),
                    FaultProxy::bind(loopback(), *addr).await?,
                );
            }
        }
        Ok(Network {
            proxies,
            _balancers: balancers,
        })
    }

    /// The proxy on `link`.
    pub fn proxy(&self, link: Link) -> Option<&FaultProxy> {
        self.proxies.get(&link)
    }

    /// The proxies from `svc` to every NATS node.
    pub fn nats_links(&self, svc: Svc) -> Vec<&FaultProxy> {
        let mut links: Vec<(usize, &FaultProxy)> = self
            .proxies
            .iter()
            .filter_map(|(link, proxy)| match link {
                Link::Nats(s, node) if *s == svc => Some((*node, proxy)),
                _ => None,
            })
            .collect();
        links.sort_by_key(|(node, _)| *node);
        links.into_iter().map(|(_, proxy)| proxy).collect()
    }

    /// The proxies from every service to NATS node `node`.
    pub fn nats_node_links(&self, node: usize) -> Vec<&FaultProxy> {
        self.proxies
            .iter()
            .filter_map(|(link, proxy)| match link {
                Link::Nats(_, n) if *n == node => Some(proxy),
                _ => None,
            })
            .collect()
    }

    /// The address clients of `link` connect to.
    pub fn addr(&self, link: Link) -> Option<SocketAddr> {
        self.proxies.get(&link).map(FaultProxy::addr)
    }

    /// Every link back to pass-through without latency.
    pub fn heal_all(&self) {
        for proxy in self.proxies.values() {
            proxy.set_mode(Mode::Pass);
            proxy.set_latency(Duration::ZERO);
        }
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
