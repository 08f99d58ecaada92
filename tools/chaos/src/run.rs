//! One chaos run from start to summary: infrastructure, replicas, catalog, load + nemesis, heal,
//! quiescence, checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use longship_testkit::HttpClient;
use sqlx::postgres::PgPoolOptions;

use crate::cli::Args;
use crate::cluster::{self, Layout, SagaTimings};
use crate::infra;
use crate::load::Load;
use crate::nemesis::{self, Nemesis};
use crate::net::Network;
use crate::plan::{self, Plan, Svc};
use crate::procs::{ProcId, Supervisor};
use crate::report::Report;
use crate::verify::{self, Pools};

/// The last value of each counter per process (replica, pid, counter name).
type Counters = Mutex<HashMap<(ProcId, i32, String), f64>>;

/// Counters read from the replicas' `/metrics`.
const COUNTERS: [&str; 7] = [
    "consumer_duplicates_total",
    "consumer_retries_total",
    "saga_step_retries_total",
    "saga_compensation_failures_total",
    "outbox_publish_failures_total",
    SAGAS_FINISHED,
    STEP_ATTEMPTS,
];

/// Sagas an order replica finished (ran to completed or compensated).
const SAGAS_FINISHED: &str = "saga_finished_total";
/// Step attempts an order replica made.
const STEP_ATTEMPTS: &str = "saga_step_duration_seconds_count";

/// The platform under test: its own Postgres and NATS, the network between them and the
/// replicas, the replicas' addresses and pools on the three databases.
struct Deployment {
    infra: infra::Infra,
    layout: Layout,
    network: Arc<Network>,
    pools: Pools,
}

/// What the background watchers collect while the run goes on: processes that died on their own,
/// negative balances or stock, the counters of every replica.
struct Watchers {
    reaper: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
    unexpected: Arc<Mutex<Vec<String>>>,
    negatives: Arc<Mutex<BTreeSet<String>>>,
    counters: Arc<Counters>,
}

/// Runs the whole thing. `Err` only when the harness itself fails; violations are in the report.
pub async fn run(
    args: &Args,
    supervisor: Arc<Supervisor>,
    run_dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let plan = draw_plan(args, run_dir);
    let deployment = deploy(args, &supervisor, run_dir).await?;
    seed_catalog(&deployment.layout, &plan).await?;
    let watchers = watch(&deployment, &supervisor);
    let (load, nemesis, load_task) = storm(args, &plan, &deployment, &supervisor).await;
    // quiescence is timed from the end of the nemesis, healing included
    let healed_at = tokio::time::Instant::now();
    let healed = nemesis::heal_everything(&nemesis).await;
    tracing::info!(?healed, "nemesis stopped; everything healed");

    let mut report = Report {
        seed: args.seed,
        duration: args.duration,
        orders_planned: plan.orders.len(),
        run_dir: run_dir.to_path_buf(),
        reproduce: args.reproduce(),
        topology: args.topology,
        ..Report::default()
    };
    finish_orders(&deployment, &plan, &load, load_task, &mut report).await;
    check(args, &deployment, &plan, &load, healed_at, &mut report).await;
    watchers.sampler.abort();
    watchers.reaper.abort();
    scrape_counters(&deployment.layout, &supervisor, &watchers.counters).await;
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for ((id, _, name), value) in lock(&watchers.counters).iter() {
        *totals.entry(name.clone()).or_default() += value;
        if let ProcId::Replica(Svc::Order, r) = id {
            let work = report.per_replica.entry(*r).or_default();
            match name.as_str() {
                SAGAS_FINISHED => work.sagas_finished += value,
                STEP_ATTEMPTS => work.step_attempts += value,
                _ => {}
            }
        }
    }
    report
        .violations
        .extend(lock(&watchers.negatives).iter().cloned());
    report.counters = totals;
    for stream in plan::STREAMS {
        match deployment.infra.nats.replicas_of(stream).await {
            Some(n) => {
                report.stream_replicas.insert(stream.to_owned(), n);
                if n < args.topology.stream_replicas() as u64 {
                    report.warnings.push(format!(
                        "stream {stream} has {n} replicas, not the {} asked for (NATS_STREAM_REPLICAS)",
                        args.topology.stream_replicas()
                    ));
                }
            }
            None => report
                .warnings
                .push(format!("replicas of stream {stream} not readable")),
        }
    }
    report.faults = nemesis.injected();
    report.processes = supervisor.stats();
    report
        .warnings
        .extend(lock(&watchers.unexpected).iter().cloned());
    for kind in plan::FaultKind::for_topology(&args.topology) {
        if !report.faults.iter().any(|f| f.kind == kind) {
            report
                .warnings
                .push(format!("no fault of kind \"{}\" was injected", kind.name()));
        }
    }
    Ok(report)
}

/// The run's orders and faults, drawn from its seed.
fn draw_plan(args: &Args, run_dir: &std::path::Path) -> Plan {
    let plan = plan::draw(
        args.seed,
        args.duration,
        args.orders,
        args.saga_deadline,
        &args.topology,
    );
    tracing::info!(
        seed = args.seed,
        orders = plan.orders.len(),
        faults = plan.faults.len(),
        dir = %run_dir.display(),
        "plan drawn"
    );
    for f in &plan.faults {
        tracing::debug!("planned at {:>6.1}s: {}", f.at.as_secs_f64(), f.fault);
    }
    plan
}

/// Starts Postgres, NATS (as the topology says), the network in between and every replica, and
/// waits until they are ready.
async fn deploy(
    args: &Args,
    supervisor: &Arc<Supervisor>,
    run_dir: &std::path::Path,
) -> anyhow::Result<Deployment> {
    let timings = SagaTimings::for_deadline(args.saga_deadline);
    let infra = infra::start(run_dir, supervisor, &args.topology).await?;
    tracing::info!(
        postgres = %infra.pg.endpoint(),
        nats = %infra.nats_url(),
        topology = %args.topology,
        "own Postgres and NATS up"
    );
    let layout = Layout::allocate(args.topology.replicas)?;
    let network = Arc::new(
        Network::start(infra.pg.endpoint(), &infra.nats.addrs(), &layout.grpc_of()).await?,
    );
    cluster::start(
        &infra,
        &args.bin_dir,
        &layout,
        &network,
        timings,
        &args.topology,
        supervisor,
    )
    .await?;
    tracing::info!(
        deadline_s = timings.deadline.as_secs(),
        lease_s = timings.lease.as_secs(),
        step_timeout_ms = timings.step_timeout.as_millis() as u64,
        replicas = args.topology.replicas,
        "every replica ready"
    );
    let pools = pools(&infra)?;
    Ok(Deployment {
        infra,
        layout,
        network,
        pools,
    })
}

/// The reaper restarts what dies on its own; the sampler watches for negative balances or stock
/// and reads counters from `/metrics`.
fn watch(deployment: &Deployment, supervisor: &Arc<Supervisor>) -> Watchers {
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let reaper = {
        let supervisor = Arc::clone(supervisor);
        let unexpected = Arc::clone(&unexpected);
        tokio::spawn(async move {
            loop {
                for (id, status) in supervisor.reap() {
                    tracing::warn!(process = %id, %status, "exited on its own; restarting");
                    lock(&unexpected).push(format!("{id} exited on its own ({status})"));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let negatives: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let counters: Arc<Counters> = Arc::default();
    let sampler = {
        let (pools, negatives, counters, supervisor, layout) = (
            deployment.pools.clone(),
            Arc::clone(&negatives),
            Arc::clone(&counters),
            Arc::clone(supervisor),
            deployment.layout.clone(),
        );
        tokio::spawn(async move {
            let mut tick = 0u64;
            loop {
                let found = verify::sample_negatives(&pools).await;
                lock(&negatives).extend(found);
                if tick.is_multiple_of(4) {
                    scrape_counters(&layout, &supervisor, &counters).await;
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    Watchers {
        reaper,
        sampler,
        unexpected,
        negatives,
        counters,
    }
}

/// Load and nemesis for the run's duration; then the nemesis stops (faults still running are
/// abandoned) while orders still being retried go on.
async fn storm(
    args: &Args,
    plan: &Plan,
    deployment: &Deployment,
    supervisor: &Arc<Supervisor>,
) -> (Load, Nemesis, tokio::task::JoinHandle<()>) {
    let orders = Arc::new(plan.orders.clone());
    let load = Load::new(
        (0..deployment.layout.per_service)
            .map(|r| deployment.layout.http(Svc::Order, r))
            .collect(),
        &plan.tenants,
        plan.orders.len(),
    );
    let nemesis = Nemesis::new(
        Arc::clone(supervisor),
        Arc::clone(&deployment.network),
        deployment.infra.clone(),
        deployment.pools.orders.clone(),
    );
    let start = tokio::time::Instant::now();
    let load_task = {
        let (load, orders) = (load.clone(), Arc::clone(&orders));
        tokio::spawn(async move { load.run(orders, start, Duration::from_secs(30)).await })
    };
    let nemesis_task = {
        let (nemesis, faults) = (nemesis.clone(), plan.faults.clone());
        tokio::spawn(async move { nemesis.run(faults, start).await })
    };
    let progress = {
        let (load, nemesis) = (load.clone(), nemesis.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let answered = load
                    .snapshot()
                    .iter()
                    .filter(|o| o.order_id.is_some())
                    .count();
                tracing::info!(
                    elapsed_s = start.elapsed().as_secs(),
                    orders_answered = answered,
                    faults = nemesis.injected().len(),
                    "running"
                );
            }
        })
    };
    tokio::time::sleep_until(start + args.duration).await;
    load.stop();
    progress.abort();
    nemesis_task.abort();
    if let Ok(mut tasks) = nemesis_task.await {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    (load, nemesis, load_task)
}

/// Waits for the replicas to be ready again, lets orders being retried finish and asks again
/// (same idempotency key) for those never answered.
async fn finish_orders(
    deployment: &Deployment,
    plan: &Plan,
    load: &Load,
    load_task: tokio::task::JoinHandle<()>,
    report: &mut Report,
) {
    let not_ready = cluster::wait_ready(&deployment.layout, Duration::from_secs(90), None).await;
    for r in &not_ready {
        report
            .violations
            .push(format!("{r} not ready 90 s after healing"));
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), load_task).await;
    let unanswered: Vec<plan::PlannedOrder> = verify::unanswered(plan, &load.snapshot())
        .into_iter()
        .cloned()
        .collect();
    if !unanswered.is_empty() {
        tracing::info!(
            count = unanswered.len(),
            "asking again for orders without an answer"
        );
        let mut tasks = tokio::task::JoinSet::new();
        for order in unanswered {
            let load = load.clone();
            tasks.spawn(async move { load.place(&order, Duration::from_secs(60)).await });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Quiescence, then every check: the invariants, the stores against the plan and the answers,
/// the APIs, and the idempotent replay of a sample of orders.
async fn check(
    args: &Args,
    deployment: &Deployment,
    plan: &Plan,
    load: &Load,
    healed_at: tokio::time::Instant,
    report: &mut Report,
) {
    let (pools, layout, nats_url) = (
        &deployment.pools,
        &deployment.layout,
        deployment.infra.nats_url(),
    );
    let initial = verify::initial(plan);
    let remaining = args.quiesce_timeout.saturating_sub(healed_at.elapsed());
    match verify::wait_quiescent(pools, &initial, &nats_url, remaining).await {
        Ok(_) => report.quiesced_after = Some(healed_at.elapsed()),
        Err(standing) => {
            report.violations.push(format!(
                "not quiescent within {:.0?} after the nemesis stopped",
                args.quiesce_timeout
            ));
            report.violations.extend(standing);
        }
    }
    tracing::info!(quiesced_after = ?report.quiesced_after, "checking the invariants");
    let outcomes = load.snapshot();
    report.orders_answered = outcomes.iter().filter(|o| o.order_id.is_some()).count();
    report.post_attempts = outcomes.iter().map(|o| u64::from(o.attempts)).sum();
    if report.quiesced_after.is_some() {
        // the testkit's checks passed to reach quiescence; run them once more on the final state
        report.violations.extend(
            longship_testkit::invariants::check(
                &longship_testkit::invariants::Databases {
                    orders: &pools.orders,
                    inventory: &pools.inventory,
                    payments: &pools.payments,
                },
                &initial,
            )
            .await,
        );
    }
    let (store_violations, tally) = verify::check_stores(pools, plan, &outcomes, &nats_url).await;
    report.violations.extend(store_violations);
    report.tally = tally;
    report.violations.extend(
        verify::check_apis(
            &layout.http(Svc::Order, 0),
            &layout.http(Svc::Inventory, 1),
            &layout.http(Svc::Payment, 0),
            plan,
            &outcomes,
        )
        .await,
    );
    report
        .violations
        .extend(load.replay_check(&plan.orders, 25).await);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn pools(infra: &infra::Infra) -> anyhow::Result<Pools> {
    let pool = |db: &str| -> anyhow::Result<sqlx::PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&infra.pg_url(db))?)
    };
    Ok(Pools {
        orders: pool("orders")?,
        inventory: pool("inventory")?,
        payments: pool("payments")?,
    })
}

/// Creates the plan's products and accounts through the APIs.
async fn seed_catalog(layout: &Layout, plan: &Plan) -> anyhow::Result<()> {
    let inventory = layout.http(Svc::Inventory, 0);
    let payment = layout.http(Svc::Payment, 0);
    for tenant in &plan.tenants {
        for p in &tenant.products {
            let body = serde_json::json!({"name": format!("Chaos {}", p.sku), "price_cents": p.price_cents, "currency": "USD", "on_hand": p.on_hand});
            put(
                &inventory,
                &tenant.id,
                &format!("/v1/products/{}", p.sku),
                &body,
            )
            .await?;
        }
        for c in &tenant.customers {
            let body = serde_json::json!({"balance_cents": c.balance_cents, "currency": "USD"});
            put(
                &payment,
                &tenant.id,
                &format!("/v1/accounts/{}", c.id),
                &body,
            )
            .await?;
        }
    }
    Ok(())
}

async fn put(
    api: &HttpClient,
    tenant: &str,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    let response = api
        .send_json(Method::PUT, path, &[("x-tenant-id", tenant)], body)
        .await
        .with_context(|| format!("PUT {path}"))?;
    if response.status != StatusCode::OK {
        bail!(
            "PUT {path} answered {}: {}",
            response.status,
            response.text()
        );
    }
    Ok(())
}

/// Reads the counters of every running replica, remembering the last value per process (a
/// restarted process starts from zero).
async fn scrape_counters(layout: &Layout, supervisor: &Supervisor, into: &Counters) {
    for svc in Svc::ALL {
        for r in 0..layout.per_service {
            let id = ProcId::Replica(svc, r);
            let Some(pid) = supervisor.pid(id) else {
                continue;
            };
            if !supervisor.is_up(id) {
                continue;
            }
            let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(1), layout.http(svc, r).get("/metrics"))
                    .await
            else {
                continue;
            };
            let text = response.text();
            let mut sums: HashMap<String, f64> = HashMap::new();
            for line in text.lines() {
                for name in COUNTERS {
                    if let Some(rest) = line.strip_prefix(name)
                        && (rest.starts_with('{') || rest.starts_with(' '))
                        && let Some(value) =
                            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
                    {
                        *sums.entry(name.to_owned()).or_default() += value;
                    }
                }
            }
            let mut map = lock(into);
            for (name, value) in sums {
                map.insert((id, pid, name), value);
            }
        }
    }
}
