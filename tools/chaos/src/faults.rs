//! The faults the nemesis injects, and their seeded schedule: every kind the topology allows at
//! least once, spread over the run, plus extra faults of random kinds.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::topology::{Participant, Svc, Topology};

/// Which node of the NATS cluster a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsNode {
    /// The node leading this stream's replicas when the fault starts.
    LeaderOf(&'static str),
    /// A node by index.
    Index(usize),
}

impl fmt::Display for NatsNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsNode::LeaderOf(stream) => write!(f, "the {stream} leader"),
            NatsNode::Index(i) => write!(f, "nats-{i}"),
        }
    }
}

/// The streams whose leaders the nemesis goes after.
pub const STREAMS: [&str; 3] = ["ORDERS", "INVENTORY", "PAYMENTS"];

/// One fault the nemesis injects (and heals).
#[derive(Debug, Clone)]
pub enum Fault {
    /// SIGKILL a replica's process group, restart it after `down_for` (order replicas are killed
    /// while they hold sagas in flight).
    KillReplica {
        svc: Svc,
        replica: usize,
        down_for: Duration,
    },
    /// SIGSTOP a replica for longer than the saga deadline, then SIGCONT.
    PauseReplica {
        svc: Svc,
        replica: usize,
        paused_for: Duration,
    },
    /// SIGKILL nats-server, restart it after `down_for`.
    KillNats { down_for: Duration },
    /// Immediate stop of Postgres (SIGQUIT, crash recovery on restart), restart after `down_for`.
    RestartPostgres { down_for: Duration },
    /// Add latency to an order -> participant gRPC link.
    DelayGrpc {
        link: Participant,
        latency: Duration,
        lasting: Duration,
    },
    /// Reset every connection of an order -> participant link, then refuse new ones for a while.
    CutGrpc {
        link: Participant,
        refuse_for: Duration,
    },
    /// Slow a service's NATS link, then reset its connections repeatedly while acks are in
    /// flight: deliveries whose ack is lost come again (duplicates, out of order) and relay
    /// batches are republished (JetStream drops them by `Nats-Msg-Id`).
    CutNats {
        svc: Svc,
        latency: Duration,
        cuts: u32,
        gap: Duration,
    },
    /// Stall a service's NATS link (publish acks and consumer acks time out, then resume).
    BlackholeNats { svc: Svc, lasting: Duration },
    /// Reset a service's Postgres connections.
    CutPostgres { svc: Svc },
    /// Stall a service's Postgres link (transactions hang, then resume).
    BlackholePostgres { svc: Svc, lasting: Duration },
    /// SIGKILL one node of the NATS cluster, restart it after `down_for`.
    KillNatsNode { node: NatsNode, down_for: Duration },
    /// SIGSTOP one node of the NATS cluster (clients and peers see silence), then SIGCONT.
    PauseNatsNode {
        node: NatsNode,
        paused_for: Duration,
    },
    /// Partition one node of the NATS cluster: its routes to the other nodes stall and the
    /// services' connections to it are refused, for `lasting`.
    PartitionNatsNode { node: NatsNode, lasting: Duration },
    /// SIGKILL the Postgres primary, promote the synchronous standby, re-point the services'
    /// address to it, then build a new standby from the new primary.
    FailoverPostgres,
}

/// The fault kinds, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL + restart of a service replica.
    KillReplica,
    /// SIGSTOP/SIGCONT of a service replica.
    PauseReplica,
    /// nats-server killed and restarted.
    KillNats,
    /// Postgres immediate stop and restart.
    RestartPostgres,
    /// gRPC latency.
    DelayGrpc,
    /// gRPC connections cut / refused.
    CutGrpc,
    /// NATS connections cut mid-batch (redelivery, reordering).
    CutNats,
    /// NATS link stalled.
    BlackholeNats,
    /// Postgres connections cut.
    CutPostgres,
    /// Postgres link stalled.
    BlackholePostgres,
    /// One NATS cluster node killed and restarted.
    KillNatsNode,
    /// One NATS cluster node paused.
    PauseNatsNode,
    /// One NATS cluster node partitioned from its peers and clients.
    PartitionNatsNode,
    /// Postgres primary killed, standby promoted, new standby built.
    FailoverPostgres,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::KillReplica,
        FaultKind::PauseReplica,
        FaultKind::KillNats,
        FaultKind::RestartPostgres,
        FaultKind::DelayGrpc,
        FaultKind::CutGrpc,
        FaultKind::CutNats,
        FaultKind::BlackholeNats,
        FaultKind::CutPostgres,
        FaultKind::BlackholePostgres,
        FaultKind::KillNatsNode,
        FaultKind::PauseNatsNode,
        FaultKind::PartitionNatsNode,
        FaultKind::FailoverPostgres,
    ];

    /// The kinds a run on `topology` injects, in report order: with a NATS cluster the single
    /// server's kill gives way to kills, pauses and partitions of one node; with a standby the
    /// Postgres failover joins.
    pub fn for_topology(topology: &Topology) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|kind| match kind {
                FaultKind::KillNats => !topology.nats_cluster(),
                FaultKind::KillNatsNode
                | FaultKind::PauseNatsNode
                | FaultKind::PartitionNatsNode => topology.nats_cluster(),
                FaultKind::FailoverPostgres => topology.pg_standby,
                _ => true,
            })
            .collect()
    }

    /// A stable name for the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillReplica => "sigkill+restart replica",
            FaultKind::PauseReplica => "sigstop/sigcont replica",
            FaultKind::KillNats => "nats-server killed+restarted",
            FaultKind::RestartPostgres => "postgres immediate restart",
            FaultKind::DelayGrpc => "grpc link delayed",
            FaultKind::CutGrpc => "grpc link cut/refused",
            FaultKind::CutNats => "nats link cut mid-batch",
            FaultKind::BlackholeNats => "nats link blackholed",
            FaultKind::CutPostgres => "postgres link cut",
            FaultKind::BlackholePostgres => "postgres link blackholed",
            FaultKind::KillNatsNode => "nats node killed+restarted",
            FaultKind::PauseNatsNode => "nats node paused",
            FaultKind::PartitionNatsNode => "nats node partitioned",
            FaultKind::FailoverPostgres => "postgres primary failed over",
        }
    }
}

impl Fault {
    /// The fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::KillReplica { .. } => FaultKind::KillReplica,
            Fault::PauseReplica { .. } => FaultKind::PauseReplica,
            Fault::KillNats { .. } => FaultKind::KillNats,
            Fault::RestartPostgres { .. } => FaultKind::RestartPostgres,
            Fault::DelayGrpc { .. } => FaultKind::DelayGrpc,
            Fault::CutGrpc { .. } => FaultKind::CutGrpc,
            Fault::CutNats { .. } => FaultKind::CutNats,
            Fault::BlackholeNats { .. } => FaultKind::BlackholeNats,
            Fault::CutPostgres { .. } => FaultKind::CutPostgres,
            Fault::BlackholePostgres { .. } => FaultKind::BlackholePostgres,
            Fault::KillNatsNode { .. } => FaultKind::KillNatsNode,
            Fault::PauseNatsNode { .. } => FaultKind::PauseNatsNode,
            Fault::PartitionNatsNode { .. } => FaultKind::PartitionNatsNode,
            Fault::FailoverPostgres => FaultKind::FailoverPostgres,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillReplica {
                svc,
                replica,
                down_for,
            } => write!(f, "SIGKILL {svc}-{replica}, restart after {down_for:.1?}"),
            Fault::PauseReplica {
                svc,
                replica,
                paused_for,
            } => write!(f, "SIGSTOP {svc}-{replica} for {paused_for:.1?}"),
            Fault::KillNats { down_for } => {
                write!(f, "SIGKILL nats-server, restart after {down_for:.1?}")
            }
            Fault::RestartPostgres { down_for } => {
                write!(f, "postgres immediate stop, restart after {down_for:.1?}")
            }
            Fault::DelayGrpc {
                link,
                latency,
                lasting,
            } => write!(f, "{link} +{latency:.0?} per chunk for {lasting:.1?}"),
            Fault::CutGrpc { link, refuse_for } => {
                write!(f, "cut {link}, refuse for {refuse_for:.1?}")
            }
            Fault::CutNats {
                svc,
                latency,
                cuts,
                gap,
            } => {
                write!(f, "{svc}->nats +{latency:.0?}, cut {cuts}x every {gap:.0?}")
            }
            Fault::BlackholeNats { svc, lasting } => {
                write!(f, "blackhole {svc}->nats for {lasting:.1?}")
            }
            Fault::CutPostgres { svc } => write!(f, "cut {svc}->postgres"),
            Fault::BlackholePostgres { svc, lasting } => {
                write!(f, "blackhole {svc}->postgres for {lasting:.1?}")
            }
            Fault::KillNatsNode { node, down_for } => {
                write!(f, "SIGKILL {node}, restart after {down_for:.1?}")
            }
            Fault::PauseNatsNode { node, paused_for } => {
                write!(f, "SIGSTOP {node} for {paused_for:.1?}")
            }
            Fault::PartitionNatsNode { node, lasting } => {
                write!(f, "partition {node} for {lasting:.1?}")
            }
            Fault::FailoverPostgres => f.write_str("postgres failover to the standby"),
        }
    }
}

/// A fault and when it starts.
#[derive(Debug, Clone)]
pub struct ScheduledFault {
    /// Start, from the beginning of the run.
    pub at: Duration,
    /// What happens.
    pub fault: Fault,
}

fn pick_svc(rng: &mut StdRng) -> Svc {
    Svc::ALL[rng.random_range(0..Svc::ALL.len())]
}

fn pick_participant(rng: &mut StdRng) -> Participant {
    if rng.random_bool(0.5) {
        Participant::Inventory
    } else {
        Participant::Payment
    }
}

/// The stream leader half of the time (the node whose loss forces an election), else any node.
fn pick_node(rng: &mut StdRng, topology: &Topology) -> NatsNode {
    if rng.random_bool(0.5) {
        NatsNode::LeaderOf(STREAMS[rng.random_range(0..STREAMS.len())])
    } else {
        NatsNode::Index(rng.random_range(0..topology.nats_nodes))
    }
}

fn secs(rng: &mut StdRng, range: std::ops::Range<f64>) -> Duration {
    Duration::from_secs_f64(rng.random_range(range))
}

/// One fault of `kind`, its parameters drawn from `rng`.
fn fault_of(kind: FaultKind, rng: &mut StdRng, deadline: Duration, topology: &Topology) -> Fault {
    let deadline = deadline.as_secs_f64();
    let replicas = topology.replicas;
    match kind {
        FaultKind::KillReplica => Fault::KillReplica {
            svc: pick_svc(rng),
            replica: rng.random_range(0..replicas),
            down_for: secs(rng, 0.2..3.0),
        },
        FaultKind::PauseReplica => Fault::PauseReplica {
            svc: pick_svc(rng),
            replica: rng.random_range(0..replicas),
            paused_for: secs(rng, deadline + 1.0..deadline + 4.0),
        },
        FaultKind::KillNats => Fault::KillNats {
            down_for: secs(rng, 0.5..4.0),
        },
        FaultKind::RestartPostgres => Fault::RestartPostgres {
            down_for: secs(rng, 0.0..2.0),
        },
        FaultKind::DelayGrpc => Fault::DelayGrpc {
            link: pick_participant(rng),
            latency: Duration::from_millis(rng.random_range(100..1200)),
            lasting: secs(rng, 2.0..8.0),
        },
        FaultKind::CutGrpc => Fault::CutGrpc {
            link: pick_participant(rng),
            refuse_for: secs(rng, 0.0..3.0),
        },
        FaultKind::CutNats => Fault::CutNats {
            svc: pick_svc(rng),
            latency: Duration::from_millis(rng.random_range(100..400)),
            cuts: rng.random_range(2..=5),
            gap: Duration::from_millis(rng.random_range(150..900)),
        },
        FaultKind::BlackholeNats => Fault::BlackholeNats {
            svc: pick_svc(rng),
            lasting: secs(rng, 2.0..9.0),
        },
        FaultKind::CutPostgres => Fault::CutPostgres { svc: pick_svc(rng) },
        FaultKind::BlackholePostgres => Fault::BlackholePostgres {
            svc: pick_svc(rng),
            lasting: secs(rng, 1.0..6.0),
        },
        FaultKind::KillNatsNode => Fault::KillNatsNode {
            node: pick_node(rng, topology),
            down_for: secs(rng, 1.0..6.0),
        },
        FaultKind::PauseNatsNode => Fault::PauseNatsNode {
            node: pick_node(rng, topology),
            paused_for: secs(rng, 2.0..9.0),
        },
        FaultKind::PartitionNatsNode => Fault::PartitionNatsNode {
            node: pick_node(rng, topology),
            lasting: secs(rng, 3.0..10.0),
        },
        FaultKind::FailoverPostgres => Fault::FailoverPostgres,
    }
}

/// Faults over `[3 s, duration - 3 s]`: every kind at least once (the process kills once per
/// service, the pauses once for an order replica and once for a participant), spread over the
/// window in a seeded order, plus extra faults of random kinds about every eight seconds.
pub fn schedule(
    rng: &mut StdRng,
    duration: Duration,
    deadline: Duration,
    topology: &Topology,
) -> Vec<ScheduledFault> {
    let kinds = FaultKind::for_topology(topology);
    let mut must: Vec<Fault> = kinds
        .iter()
        .filter(|k| !matches!(k, FaultKind::KillReplica | FaultKind::PauseReplica))
        .map(|k| fault_of(*k, rng, deadline, topology))
        .collect();
    if topology.nats_cluster() {
        // the stream leader is killed in every cluster run
        must.push(Fault::KillNatsNode {
            node: NatsNode::LeaderOf(STREAMS[rng.random_range(0..STREAMS.len())]),
            down_for: secs(rng, 1.0..6.0),
        });
    }
    // kills and pauses get fixed targets: every service is killed, and both the orchestrator and
    // a participant are paused past the saga deadline, in every run
    for svc in Svc::ALL {
        must.push(Fault::KillReplica {
            svc,
            replica: rng.random_range(0..topology.replicas),
            down_for: secs(rng, 0.2..3.0),
        });
    }
    let d = deadline.as_secs_f64();
    let participant = if rng.random_bool(0.5) {
        Svc::Inventory
    } else {
        Svc::Payment
    };
    for svc in [Svc::Order, participant] {
        must.push(Fault::PauseReplica {
            svc,
            replica: rng.random_range(0..topology.replicas),
            paused_for: secs(rng, d + 1.0..d + 4.0),
        });
    }
    must.shuffle(rng);

    let start = 3.0;
    let end = (duration.as_secs_f64() - 3.0).max(start + 1.0);
    let slot = (end - start) / must.len() as f64;
    let mut faults: Vec<ScheduledFault> = must
        .into_iter()
        .enumerate()
        .map(|(i, fault)| ScheduledFault {
            at: Duration::from_secs_f64(
                start + slot * i as f64 + rng.random_range(0.0..slot * 0.8),
            ),
            fault,
        })
        .collect();
    let mut t = start + rng.random_range(0.0..8.0);
    while t < end {
        let kind = kinds[rng.random_range(0..kinds.len())];
        faults.push(ScheduledFault {
            at: Duration::from_secs_f64(t),
            fault: fault_of(kind, rng, deadline, topology),
        });
        t += rng.random_range(3.0..13.0);
    }
    faults.sort_by_key(|f| f.at);
    faults
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::topology::NATS_CLUSTER_NODES;

    fn draw(seed: u64, secs: u64, topology: &Topology) -> Vec<ScheduledFault> {
        let mut rng = StdRng::seed_from_u64(seed);
        schedule(
            &mut rng,
            Duration::from_secs(secs),
            Duration::from_secs(5),
            topology,
        )
    }

    #[test]
    fn every_fault_kind_of_the_topology_is_scheduled_inside_the_window() {
        let cluster = Topology {
            replicas: 3,
            nats_nodes: NATS_CLUSTER_NODES,
            pg_standby: true,
        };
        for topology in [Topology::default(), cluster] {
            let kinds = FaultKind::for_topology(&topology);
            for seed in 0..50 {
                for secs in [20u64, 60, 120] {
                    let faults = draw(seed, secs, &topology);
                    for kind in FaultKind::ALL {
                        assert_eq!(
                            faults.iter().any(|f| f.fault.kind() == kind),
                            kinds.contains(&kind),
                            "seed {seed}, {secs}s, {topology}: {kind:?}"
                        );
                    }
                    for svc in Svc::ALL {
                        assert!(faults.iter().any(
                            |f| matches!(f.fault, Fault::KillReplica { svc: s, .. } if s == svc)
                        ));
                    }
                    assert!(faults.iter().any(|f| matches!(
                        f.fault,
                        Fault::PauseReplica { svc: Svc::Order, paused_for, .. } if paused_for > Duration::from_secs(5)
                    )));
                    assert!(faults.iter().all(|f| f.at < Duration::from_secs(secs)));
                    for f in &faults {
                        match f.fault {
                            Fault::KillReplica { replica, .. }
                            | Fault::PauseReplica { replica, .. } => {
                                assert!(replica < topology.replicas)
                            }
                            Fault::KillNatsNode {
                                node: NatsNode::Index(i),
                                ..
                            }
                            | Fault::PauseNatsNode {
                                node: NatsNode::Index(i),
                                ..
                            }
                            | Fault::PartitionNatsNode {
                                node: NatsNode::Index(i),
                                ..
                            } => assert!(i < topology.nats_nodes),
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_cluster_run_always_kills_a_stream_leader() {
        let cluster = Topology {
            nats_nodes: NATS_CLUSTER_NODES,
            ..Topology::default()
        };
        for seed in 0..50 {
            assert!(draw(seed, 60, &cluster).iter().any(|f| matches!(
                f.fault,
                Fault::KillNatsNode {
                    node: NatsNode::LeaderOf(_),
                    ..
                }
            )));
        }
        let kinds = FaultKind::for_topology(&cluster);
        assert!(!kinds.contains(&FaultKind::KillNats));
        assert!(!kinds.contains(&FaultKind::FailoverPostgres));
    }
}
