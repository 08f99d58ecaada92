//! The network between the processes: a fault proxy on every link the nemesis breaks (order ->
//! inventory/payment gRPC, each service -> Postgres, each service -> NATS), and a small TCP
//! balancer spreading each gRPC link over a participant's two replicas.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use longship_testkit::FaultProxy;
use longship_testkit::proxy::Mode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::plan::{Participant, Svc};

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
    /// a service -> NATS.
    Nats(Svc),
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Grpc(p) => write!(f, "{p}"),
            Link::Postgres(s) => write!(f, "{s}->postgres"),
            Link::Nats(s) => write!(f, "{s}->nats"),
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
    /// Postgres and NATS links to the servers.
    pub async fn start(
        pg: SocketAddr,
        nats: SocketAddr,
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
            proxies.insert(Link::Nats(svc), FaultProxy::bind(loopback(), nats).await?);
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
