//! The runner's NATS: one nats-server, or a JetStream cluster of nodes on loopback. In a cluster
//! each node reaches each other node through its own route proxy (node i -> node j), so the
//! nemesis can partition one node from its peers; nodes advertise neither their client URLs (the
//! services know only their proxies) nor a reachable cluster URL (no route can bypass a proxy).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use longship_testkit::FaultProxy;
use longship_testkit::proxy::Mode;

use crate::net::free_port;
use crate::procs::{ProcId, ProcSpec, Supervisor};

/// Debian's nats-server.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// One node's ports.
#[derive(Debug, Clone, Copy)]
struct Node {
    client_port: u16,
}

/// The NATS nodes of a run.
#[derive(Debug)]
pub struct Nats {
    nodes: Vec<Node>,
    /// (from, to) -> the proxy `from` dials to reach `to`'s cluster port.
    routes: Vec<((usize, usize), FaultProxy)>,
    dir: std::path::PathBuf,
}

/// The server name of node `i` (what `cluster.leader` of a stream names).
pub fn server_name(i: usize) -> String {
    format!("chaos-nats-{i}")
}

impl Nats {
    /// Registers `count` nodes with `supervisor` (clustered when more than one), starts them and
    /// waits until each answers with JetStream.
    pub async fn start(dir: &Path, supervisor: &Supervisor, count: usize) -> anyhow::Result<Nats> {
        let mut nodes = Vec::new();
        let mut cluster_ports = Vec::new();
        for _ in 0..count {
            nodes.push(Node {
                client_port: free_port()?,
            });
            cluster_ports.push(free_port()?);
        }
        let mut routes = Vec::new();
        if count > 1 {
            for from in 0..count {
                for (to, port) in cluster_ports.iter().enumerate() {
                    if from != to {
                        let upstream = SocketAddr::from(([127, 0, 0, 1], *port));
                        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
                        routes.push(((from, to), FaultProxy::bind(listen, upstream).await?));
                    }
                }
            }
        }
        let nats = Nats {
            nodes,
            routes,
            dir: dir.to_path_buf(),
        };
        for (i, cluster_port) in cluster_ports.into_iter().enumerate() {
            supervisor.add(ProcId::Nats(i), nats.spec(i, cluster_port)?);
        }
        for i in 0..count {
            supervisor.start(ProcId::Nats(i))?;
        }
        for i in 0..count {
            nats.wait_node(i, Duration::from_secs(30)).await?;
        }
        Ok(nats)
    }

    fn spec(&self, i: usize, cluster_port: u16) -> anyhow::Result<ProcSpec> {
        let store = self.dir.join(format!("nats-{i}"));
        std::fs::create_dir_all(&store)?;
        let mut args: Vec<String> = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.nodes[i].client_port.to_string(),
            "-js".into(),
            "-sd".into(),
            store.display().to_string(),
            "--server_name".into(),
            server_name(i),
        ];
        if self.nodes.len() > 1 {
            let routes: Vec<String> = self
                .routes
                .iter()
                .filter(|((from, _), _)| *from == i)
                .map(|(_, proxy)| format!("nats://{}", proxy.addr()))
                .collect();
            args.extend([
                "--cluster_name".into(),
                "chaos".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--routes".into(),
                routes.join(","),
                // clients learn no node address: they know only their proxies
                "--no_advertise=true".into(),
                // an implicit route to a gossiped URL would bypass the route proxies
                "--cluster_advertise".into(),
                "127.0.0.1:1".into(),
            ]);
        }
        Ok(ProcSpec {
            program: NATS_SERVER.into(),
            args,
            env: vec![],
            as_user: None,
            log: self.dir.join(format!("logs/nats-{i}.log")),
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client address, directly (not through a proxy).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .map(|n| SocketAddr::from(([127, 0, 0, 1], n.client_port)))
            .collect()
    }

    /// Every node's URL, comma-separated (a client picks one that answers).
    pub fn urls(&self) -> String {
        self.addrs()
            .iter()
            .map(|a| format!("nats://{a}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The route proxies from and to `node`.
    pub fn routes_of(&self, node: usize) -> Vec<&FaultProxy> {
        self.routes
            .iter()
            .filter(|((from, to), _)| *from == node || *to == node)
            .map(|(_, proxy)| proxy)
            .collect()
    }

    /// Every route back to pass-through.
    pub fn heal_routes(&self) {
        for (_, proxy) in &self.routes {
            proxy.set_mode(Mode::Pass);
        }
    }

    /// The node leading `stream`'s replicas now (None: no leader, or NATS unreachable).
    pub async fn leader_of(&self, stream: &str) -> Option<usize> {
        let info = self.stream_info(stream).await.ok()?;
        let leader = info.pointer("/cluster/leader")?.as_str()?;
        (0..self.len()).find(|i| server_name(*i) == leader)
    }

    /// The replicas `stream` is configured with (None: not readable).
    pub async fn replicas_of(&self, stream: &str) -> Option<u64> {
        let info = self.stream_info(stream).await.ok()?;
        info.pointer("/config/num_replicas")?.as_u64()
    }

    /// `$JS.API.STREAM.INFO.<stream>`, raw (async-nats' typed info differs across 2.9/2.10).
    async fn stream_info(&self, stream: &str) -> Result<serde_json::Value, async_nats::Error> {
        let client = connect(&self.urls()).await?;
        let reply = tokio::time::timeout(
            Duration::from_secs(3),
            client.request(format!("$JS.API.STREAM.INFO.{stream}"), Vec::new().into()),
        )
        .await??;
        let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        if let Some(e) = info.get("error") {
            return Err(format!("{stream}: {e}").into());
        }
        Ok(info)
    }

    /// Waits until every stream in `streams` has a leader and every replica is current (the next
    /// node fault then leaves a quorum that has every message). Returns how long it took.
    pub async fn wait_streams_current(
        &self,
        streams: &[&str],
        within: Duration,
    ) -> anyhow::Result<Duration> {
        let started = tokio::time::Instant::now();
        let mut lagging = String::new();
        while started.elapsed() < within {
            lagging.clear();
            for stream in streams {
                match self.stream_info(stream).await {
                    Ok(info) => {
                        let has_leader = info.pointer("/cluster/leader").is_some();
                        let replicas = info
                            .pointer("/cluster/replicas")
                            .and_then(|r| r.as_array())
                            .cloned()
                            .unwrap_or_default();
                        let behind = replicas
                            .iter()
                            .filter(|r| r.get("current").and_then(|c| c.as_bool()) != Some(true));
                        if !has_leader || behind.count() > 0 {
                            lagging.push_str(&format!("{stream} "));
                        }
                    }
                    Err(e) => lagging.push_str(&format!("{stream} ({e}) ")),
                }
            }
            if lagging.is_empty() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("streams without a leader or with a replica behind: {lagging}")
    }

    /// Waits until node `i` answers with JetStream enabled.
    pub async fn wait_node(&self, i: usize, within: Duration) -> anyhow::Result<()> {
        let url = format!("nats://127.0.0.1:{}", self.nodes[i].client_port);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let attempt = async {
                let client = connect(&url).await?;
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
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "nats-{i} on port {} did not come up with JetStream: {outcome} (log {}/logs/nats-{i}.log)",
                    self.nodes[i].client_port,
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every node answers with JetStream.
    pub async fn wait_all(&self, within: Duration) -> anyhow::Result<()> {
        for i in 0..self.len() {
            self.wait_node(i, within).await?;
        }
        Ok(())
    }
}

/// A client of the servers in `urls` (comma-separated): the first that answers.
pub async fn connect(urls: &str) -> Result<async_nats::Client, async_nats::Error> {
    let servers: Vec<&str> = urls.split(',').collect();
    Ok(async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(servers)
        .await?)
}
