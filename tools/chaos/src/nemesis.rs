//! The nemesis: runs the plan's faults at their times. Each fault heals itself when it ends;
//! faults on the same target (a process, a link) take turns, faults on different targets overlap.
//! [`heal_everything`] undoes whatever is still broken when the nemesis is stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use longship_testkit::proxy::Mode;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::infra::{self, Infra};
use crate::net::{Link, Network};
use crate::plan::{Fault, FaultKind, NatsNode, STREAMS, ScheduledFault, Svc};
use crate::procs::{ProcId, Supervisor};

/// One injected fault, for the report.
#[derive(Debug, Clone)]
pub struct Injected {
    /// When it started, from the beginning of the run.
    pub at: Duration,
    /// Its kind.
    pub kind: FaultKind,
    /// What it did, with what it found (e.g. sagas in flight at a kill).
    pub what: String,
}

/// What the nemesis needs.
#[derive(Clone)]
pub struct Nemesis {
    /// The processes.
    pub supervisor: Arc<Supervisor>,
    /// The proxies.
    pub network: Arc<Network>,
    /// The servers.
    pub infra: Infra,
    /// A superuser pool on the orders database (not through a proxy), to see sagas in flight.
    pub orders_db: PgPool,
    /// Faults injected so far.
    pub log: Arc<Mutex<Vec<Injected>>>,
    /// One lock per target, so faults on it take turns.
    targets: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl std::fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nemesis").finish_non_exhaustive()
    }
}

impl Nemesis {
    /// A nemesis over the run's processes and links.
    pub fn new(
        supervisor: Arc<Supervisor>,
        network: Arc<Network>,
        infra: Infra,
        orders_db: PgPool,
    ) -> Nemesis {
        Nemesis {
            supervisor,
            network,
            infra,
            orders_db,
            log: Arc::new(Mutex::new(Vec::new())),
            targets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> Vec<Injected> {
        match self.log.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Runs `faults` (sorted by time) relative to `start`; returns when the last one has been
    /// started and the tasks still running (the caller aborts them to stop the nemesis).
    pub async fn run(
        &self,
        faults: Vec<ScheduledFault>,
        start: tokio::time::Instant,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for scheduled in faults {
            tokio::time::sleep_until(start + scheduled.at).await;
            let nemesis = self.clone();
            tasks.spawn(async move {
                nemesis.inject(scheduled.fault, start).await;
            });
        }
        tasks
    }

    fn target_lock(&self, target: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut targets = match self.targets.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        Arc::clone(targets.entry(target).or_default())
    }

    /// Records a fault as it starts; returns its position for [`Nemesis::amend`].
    fn record(&self, start: tokio::time::Instant, kind: FaultKind, what: String) -> usize {
        tracing::info!(fault = ?kind, "{what}");
        let entry = Injected {
            at: start.elapsed(),
            kind,
            what,
        };
        let mut log = match self.log.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        log.push(entry);
        log.len() - 1
    }

    /// Adds what came of fault `at` (recovery times) to its entry.
    fn amend(&self, at: usize, more: &str) {
        tracing::info!("{more}");
        let mut log = match self.log.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if let Some(entry) = log.get_mut(at) {
            entry.what.push_str("; ");
            entry.what.push_str(more);
        }
    }

    fn proxy(&self, link: Link) -> Option<&longship_testkit::FaultProxy> {
        self.network.proxy(link)
    }

    /// Injects one fault and heals it. Faults on one target (a process, a link) take turns.
    pub async fn inject(&self, fault: Fault, start: tokio::time::Instant) {
        let lock = self.target_lock(target_of(&fault));
        let _turn = lock.lock().await;
        match fault {
            Fault::KillReplica { .. }
            | Fault::PauseReplica { .. }
            | Fault::KillNats { .. }
            | Fault::RestartPostgres { .. } => self.disturb_process(fault, start).await,
            Fault::KillNatsNode { .. }
            | Fault::PauseNatsNode { .. }
            | Fault::PartitionNatsNode { .. } => self.disturb_nats_node(fault, start).await,
            Fault::FailoverPostgres => self.fail_over_postgres(start).await,
            _ => self.disturb_link(fault, start).await,
        }
    }

    /// Kills or pauses a process (a replica, nats-server, Postgres) and brings it back.
    async fn disturb_process(&self, fault: Fault, start: tokio::time::Instant) {
        let kind = fault.kind();
        match fault {
            Fault::KillReplica {
                svc,
                replica,
                down_for,
            } => {
                let id = ProcId::Replica(svc, replica);
                let Some(pid) = self.supervisor.pid(id) else {
                    self.record(start, kind, format!("{id} already down; kill skipped"));
                    return;
                };
                let in_flight = if svc == Svc::Order {
                    // mid-saga: wait (briefly) until this replica holds sagas, then kill it
                    let found = self.sagas_held_by(pid, Duration::from_secs(3)).await;
                    format!(", {found} sagas in flight on it")
                } else {
                    String::new()
                };
                self.supervisor.kill_and_hold(id).await;
                self.record(
                    start,
                    kind,
                    format!("SIGKILL {id} (pid {pid}){in_flight}; restart in {down_for:.1?}"),
                );
                tokio::time::sleep(down_for).await;
                if let Err(e) = self.supervisor.release(id) {
                    tracing::warn!(error = %e, "restart of {id} failed; the reaper retries");
                }
            }
            Fault::PauseReplica {
                svc,
                replica,
                paused_for,
            } => {
                let id = ProcId::Replica(svc, replica);
                let held = match (svc, self.supervisor.pid(id)) {
                    (Svc::Order, Some(pid)) => {
                        let n = self.sagas_held_by(pid, Duration::from_secs(3)).await;
                        format!(" holding {n} sagas")
                    }
                    _ => String::new(),
                };
                if !self.supervisor.pause(id) {
                    self.record(start, kind, format!("{id} is down; pause skipped"));
                    return;
                }
                self.record(
                    start,
                    kind,
                    format!("SIGSTOP {id}{held} for {paused_for:.1?}"),
                );
                tokio::time::sleep(paused_for).await;
                self.supervisor.resume(id);
            }
            Fault::KillNats { down_for } => {
                self.supervisor.kill_and_hold(ProcId::Nats(0)).await;
                self.record(
                    start,
                    kind,
                    format!("SIGKILL nats-server; restart in {down_for:.1?}"),
                );
                tokio::time::sleep(down_for).await;
                if let Err(e) = self.supervisor.release(ProcId::Nats(0)) {
                    tracing::warn!(error = %e, "nats-server restart failed; the reaper retries");
                }
                let _ = self.infra.nats.wait_node(0, Duration::from_secs(20)).await;
            }
            Fault::RestartPostgres { down_for } => {
                let primary = self.infra.pg.primary().await;
                self.supervisor.postgres_immediate_stop(primary).await;
                self.record(
                    start,
                    kind,
                    format!("{primary} (primary) immediate stop; restart in {down_for:.1?}"),
                );
                tokio::time::sleep(down_for).await;
                if let Err(e) = self.supervisor.release(primary) {
                    tracing::warn!(error = %e, "postgres restart failed; the reaper retries");
                }
                let _ = infra::wait_postgres(&self.infra, Duration::from_secs(60)).await;
            }
            _ => {}
        }
    }

    /// Slows, cuts or blackholes a link through its fault proxy, and restores it.
    async fn disturb_link(&self, fault: Fault, start: tokio::time::Instant) {
        let kind = fault.kind();
        match fault {
            Fault::DelayGrpc {
                link,
                latency,
                lasting,
            } => {
                let Some(proxy) = self.proxy(Link::Grpc(link)) else {
                    return;
                };
                proxy.set_latency(latency);
                self.record(
                    start,
                    kind,
                    format!("{link}: +{latency:.0?} for {lasting:.1?}"),
                );
                tokio::time::sleep(lasting).await;
                proxy.set_latency(Duration::ZERO);
            }
            Fault::CutGrpc { link, refuse_for } => {
                let Some(proxy) = self.proxy(Link::Grpc(link)) else {
                    return;
                };
                proxy.cut();
                proxy.set_mode(Mode::Refuse);
                self.record(
                    start,
                    kind,
                    format!("{link}: cut, refused for {refuse_for:.1?}"),
                );
                tokio::time::sleep(refuse_for).await;
                proxy.set_mode(Mode::Pass);
            }
            Fault::CutNats {
                svc,
                latency,
                cuts,
                gap,
            } => {
                let links = self.network.nats_links(svc);
                // acks crawl through the slowed link, so each cut loses some in flight
                for proxy in &links {
                    proxy.set_latency(latency);
                }
                self.record(
                    start,
                    kind,
                    format!("{svc}->nats: +{latency:.0?}, {cuts} cuts {gap:.0?} apart"),
                );
                for _ in 0..cuts {
                    tokio::time::sleep(gap).await;
                    for proxy in &links {
                        proxy.cut();
                    }
                }
                for proxy in &links {
                    proxy.set_latency(Duration::ZERO);
                }
            }
            Fault::BlackholeNats { svc, lasting } => {
                let links = self.network.nats_links(svc);
                for proxy in &links {
                    proxy.set_mode(Mode::Blackhole);
                }
                self.record(
                    start,
                    kind,
                    format!("{svc}->nats: blackhole for {lasting:.1?}"),
                );
                tokio::time::sleep(lasting).await;
                for proxy in &links {
                    proxy.set_mode(Mode::Pass);
                }
            }
            Fault::CutPostgres { svc } => {
                let Some(proxy) = self.proxy(Link::Postgres(svc)) else {
                    return;
                };
                proxy.cut();
                self.record(start, kind, format!("{svc}->postgres: cut"));
            }
            Fault::BlackholePostgres { svc, lasting } => {
                let Some(proxy) = self.proxy(Link::Postgres(svc)) else {
                    return;
                };
                proxy.set_mode(Mode::Blackhole);
                self.record(
                    start,
                    kind,
                    format!("{svc}->postgres: blackhole for {lasting:.1?}"),
                );
                tokio::time::sleep(lasting).await;
                proxy.set_mode(Mode::Pass);
            }
            _ => {}
        }
    }

    /// Kills, pauses or partitions one node of the NATS cluster and brings it back, then waits
    /// until every stream has a leader and every replica is current again (so the next node
    /// fault leaves a quorum holding every message).
    async fn disturb_nats_node(&self, fault: Fault, start: tokio::time::Instant) {
        let kind = fault.kind();
        let (Fault::KillNatsNode { node, .. }
        | Fault::PauseNatsNode { node, .. }
        | Fault::PartitionNatsNode { node, .. }) = fault
        else {
            return;
        };
        let (index, which) = match node {
            NatsNode::Index(i) => (i, format!("nats-{i}")),
            NatsNode::LeaderOf(stream) => match self.infra.nats.leader_of(stream).await {
                Some(i) => (i, format!("nats-{i} ({stream} leader)")),
                None => {
                    self.record(
                        start,
                        kind,
                        format!("no {stream} leader found; {kind:?} skipped"),
                    );
                    return;
                }
            },
        };
        let id = ProcId::Nats(index);
        let entry = match fault {
            Fault::KillNatsNode { down_for, .. } => {
                self.supervisor.kill_and_hold(id).await;
                let entry = self.record(
                    start,
                    kind,
                    format!("SIGKILL {which}; restart in {down_for:.1?}"),
                );
                tokio::time::sleep(down_for).await;
                if let Err(e) = self.supervisor.release(id) {
                    tracing::warn!(error = %e, "restart of {id} failed; the reaper retries");
                }
                let _ = self
                    .infra
                    .nats
                    .wait_node(index, Duration::from_secs(30))
                    .await;
                entry
            }
            Fault::PauseNatsNode { paused_for, .. } => {
                if !self.supervisor.pause(id) {
                    self.record(start, kind, format!("{which} is down; pause skipped"));
                    return;
                }
                let entry =
                    self.record(start, kind, format!("SIGSTOP {which} for {paused_for:.1?}"));
                tokio::time::sleep(paused_for).await;
                self.supervisor.resume(id);
                entry
            }
            Fault::PartitionNatsNode { lasting, .. } => {
                // the peers hear nothing (raft times out); the services are refused and move on
                let routes = self.infra.nats.routes_of(index);
                let clients = self.network.nats_node_links(index);
                for proxy in &routes {
                    proxy.set_mode(Mode::Blackhole);
                }
                for proxy in &clients {
                    proxy.cut();
                    proxy.set_mode(Mode::Refuse);
                }
                let entry = self.record(
                    start,
                    kind,
                    format!(
                        "partition {which} (routes stalled, clients refused) for {lasting:.1?}"
                    ),
                );
                tokio::time::sleep(lasting).await;
                for proxy in routes.iter().chain(&clients) {
                    proxy.set_mode(Mode::Pass);
                }
                entry
            }
            _ => return,
        };
        let healed = tokio::time::Instant::now();
        match self
            .infra
            .nats
            .wait_streams_current(&STREAMS, Duration::from_secs(60))
            .await
        {
            Ok(_) => self.amend(
                entry,
                &format!(
                    "streams led and current {:.1?} after it ended",
                    healed.elapsed()
                ),
            ),
            Err(e) => self.amend(entry, &format!("not caught up after 60 s: {e}")),
        }
    }

    /// Fails Postgres over to its standby. The failover runs to its end in its own task even
    /// when the nemesis is stopped meanwhile (a heal waits for it): a half-done failover would
    /// leave no primary, or two.
    async fn fail_over_postgres(&self, start: tokio::time::Instant) {
        let entry = self.record(
            start,
            FaultKind::FailoverPostgres,
            "postgres failover".into(),
        );
        let (pg, supervisor) = (Arc::clone(&self.infra.pg), Arc::clone(&self.supervisor));
        let failover = tokio::spawn(async move { pg.failover(&supervisor).await });
        match failover.await {
            Ok(Ok(what)) => self.amend(entry, &what),
            Ok(Err(e)) => self.amend(entry, &format!("FAILED: {e:#}")),
            Err(e) => self.amend(entry, &format!("FAILED: {e}")),
        }
    }

    /// Sagas the order replica with `pid` holds (its engine's worker id starts with its pid),
    /// waiting up to `within` for at least one.
    async fn sagas_held_by(&self, pid: i32, within: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let count = tokio::time::timeout(
                Duration::from_secs(1),
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM saga WHERE status IN ('RUNNING', 'COMPENSATING') AND locked_by LIKE $1",
                )
                .bind(format!("{pid}-%"))
                .fetch_one(&self.orders_db),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
            if count > 0 || tokio::time::Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Undoes every fault: links and routes back to pass-through, a failover in progress finished,
/// paused processes continued, stopped ones started, Postgres and every NATS node up, and in a
/// NATS cluster every stream led with its replicas current. Returns what it had to do.
pub async fn heal_everything(nemesis: &Nemesis) -> Vec<String> {
    nemesis.network.heal_all();
    nemesis.infra.nats.heal_routes();
    nemesis.infra.pg.settle().await;
    let mut healed = nemesis.supervisor.heal_all();
    if let Err(e) = infra::wait_postgres(&nemesis.infra, Duration::from_secs(60)).await {
        healed.push(format!("postgres not back: {e:#}"));
    }
    if let Err(e) = nemesis.infra.nats.wait_all(Duration::from_secs(30)).await {
        healed.push(format!("nats not back: {e:#}"));
    }
    if nemesis.infra.nats.len() > 1
        && let Err(e) = nemesis
            .infra
            .nats
            .wait_streams_current(&STREAMS, Duration::from_secs(60))
            .await
    {
        healed.push(format!("nats streams: {e:#}"));
    }
    healed
}

/// The process or link a fault disturbs.
fn target_of(fault: &Fault) -> String {
    match fault {
        Fault::KillReplica { svc, replica, .. } | Fault::PauseReplica { svc, replica, .. } => {
            ProcId::Replica(*svc, *replica).to_string()
        }
        Fault::KillNats { .. } => "nats".into(),
        Fault::RestartPostgres { .. } => "postgres".into(),
        Fault::DelayGrpc { link, .. } | Fault::CutGrpc { link, .. } => {
            Link::Grpc(*link).to_string()
        }
        Fault::CutNats { svc, .. } | Fault::BlackholeNats { svc, .. } => format!("{svc}->nats"),
        // never more than one node down at a time: R3 keeps its quorum
        Fault::KillNatsNode { .. }
        | Fault::PauseNatsNode { .. }
        | Fault::PartitionNatsNode { .. } => "nats-cluster".into(),
        Fault::FailoverPostgres => "postgres".into(),
        Fault::CutPostgres { svc } | Fault::BlackholePostgres { svc, .. } => {
            Link::Postgres(*svc).to_string()
        }
    }
}
