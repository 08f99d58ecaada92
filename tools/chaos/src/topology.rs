//! The shape of the deployment a run breaks: replicas per service, a single nats-server or a
//! three-node JetStream cluster, a single Postgres or a primary with a synchronous standby.

use std::fmt;

/// Nodes of the NATS cluster in `--nats-cluster` mode (R3 keeps quorum with one node down).
pub const NATS_CLUSTER_NODES: usize = 3;

/// What the runner deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Replicas of every service.
    pub replicas: usize,
    /// nats-server processes (1, or [`NATS_CLUSTER_NODES`] clustered, streams R3).
    pub nats_nodes: usize,
    /// A synchronous hot standby the nemesis fails over to.
    pub pg_standby: bool,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            replicas: 2,
            nats_nodes: 1,
            pg_standby: false,
        }
    }
}

impl Topology {
    /// Whether NATS is a cluster.
    pub fn nats_cluster(&self) -> bool {
        self.nats_nodes > 1
    }

    /// `NATS_STREAM_REPLICAS` of the services: one copy per node of the cluster.
    pub fn stream_replicas(&self) -> usize {
        self.nats_nodes
    }

    /// The flags that select this topology (empty for the default one).
    pub fn flags(&self) -> String {
        let mut flags = String::new();
        if self.replicas != Topology::default().replicas {
            flags.push_str(&format!(" --replicas {}", self.replicas));
        }
        if self.nats_cluster() {
            flags.push_str(" --nats-cluster");
        }
        if self.pg_standby {
            flags.push_str(" --pg-failover");
        }
        flags
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} replicas per service, ", self.replicas)?;
        if self.nats_cluster() {
            write!(
                f,
                "NATS: {}-node JetStream cluster (NATS_STREAM_REPLICAS={}), ",
                self.nats_nodes,
                self.stream_replicas()
            )?;
        } else {
            f.write_str("NATS: one server, ")?;
        }
        if self.pg_standby {
            f.write_str("Postgres: primary + synchronous hot standby (failover)")
        } else {
            f.write_str("Postgres: one server")
        }
    }
}

/// A service of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Svc {
    /// The order service (saga orchestrator).
    Order,
    /// The inventory service.
    Inventory,
    /// The payment service.
    Payment,
}

impl Svc {
    /// All three, in start order (participants first).
    pub const ALL: [Svc; 3] = [Svc::Inventory, Svc::Payment, Svc::Order];

    /// The binary and service name.
    pub fn name(self) -> &'static str {
        match self {
            Svc::Order => "order",
            Svc::Inventory => "inventory",
            Svc::Payment => "payment",
        }
    }

    /// The service's database.
    pub fn database(self) -> &'static str {
        match self {
            Svc::Order => "orders",
            Svc::Inventory => "inventory",
            Svc::Payment => "payments",
        }
    }
}

impl fmt::Display for Svc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The link from the order service to one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Participant {
    /// order -> inventory gRPC.
    Inventory,
    /// order -> payment gRPC.
    Payment,
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Participant::Inventory => "order->inventory",
            Participant::Payment => "order->payment",
        })
    }
}
