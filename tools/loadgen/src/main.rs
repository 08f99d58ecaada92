//! Longship's load generator: a real client of the public HTTP API that seeds tenants, places
//! orders in closed and open loops, watches sagas finish on NATS, measures what each saga costs
//! (CPU, Postgres commits, statements, JetStream messages) against the commit ceiling of the same
//! Postgres, checks the invariants and writes `target/bench/<timestamp>/report.{json,md}` and
//! `chart.svg`. `just bench` runs it against a release platform of its own.

// reason: a command-line tool whose output is its report
#![allow(clippy::print_stdout)]

mod api;
mod ceiling;
mod chart;
mod cli;
mod cost;
mod events;
mod machine;
mod pgproxy;
mod recorder;
mod report;
mod runner;
mod workload;

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::cli::{Command, Options};
use crate::cost::{Cost, Probe};
use crate::recorder::Recorder;
use crate::report::{Headline, PhaseReport, Report};
use crate::workload::Workload;

#[tokio::main]
async fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(true)
        }
        Command::PgProxy(o) => pgproxy::run(o).await.map(|()| true),
        Command::Cleanup(o) => cleanup(&o).await.map(|()| true),
        Command::Bench(o) => bench(*o).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `VACUUM (ANALYZE)` in each database, as pgbench does after loading and as autovacuum would do
/// on its own: the services' cached plans are made again against the tables as they are now (on a
/// server with autovacuum off, plans made while a table was empty would otherwise scan it
/// sequentially for the rest of the run).
async fn vacuum_analyze(admin: &PgConnectOptions, databases: &[String]) -> anyhow::Result<()> {
    for db in databases {
        let mut conn = sqlx::PgConnection::connect_with(&admin.clone().database(db))
            .await
            .with_context(|| format!("connecting to {db} to vacuum it"))?;
        sqlx::raw_sql("VACUUM (ANALYZE)")
            .execute(&mut conn)
            .await
            .with_context(|| format!("VACUUM (ANALYZE) in {db}"))?;
    }
    Ok(())
}

async fn admin_pool(o: &Options) -> anyhow::Result<(PgPool, PgConnectOptions)> {
    let options: PgConnectOptions = o
        .pg_url
        .parse()
        .context("--pg-url / LONGSHIP_PG_URL is not a Postgres URL")?;
    let options = options.disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .with_context(|| format!("connecting to Postgres at {}", redact(&o.pg_url)))?;
    Ok((pool, options))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &url[s + 3..at];
            match auth.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &auth[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Deletes the prefixed streams and drops the suffixed databases of a finished run.
async fn cleanup(o: &Options) -> anyhow::Result<()> {
    if !o.nats_prefix.is_empty() {
        let client = async_nats::connect(&o.nats_url).await?;
        let js = async_nats::jetstream::new(client);
        let naming = longship_messaging::Naming::new(&o.nats_prefix);
        for s in ["ORDERS", "INVENTORY", "PAYMENTS", "DEADLETTER"] {
            let name = naming.stream(s);
            if js.delete_stream(&name).await.is_ok() {
                eprintln!("deleted stream {name}");
            }
        }
    } else {
        eprintln!("no --nats-prefix: streams left alone (never deletes unprefixed streams)");
    }
    if !o.db_suffix.is_empty() {
        let (admin, _) = admin_pool(o).await?;
        for (_, db) in o.databases() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
            )))
            .execute(&admin)
            .await
            .with_context(|| format!("dropping {db}"))?;
            eprintln!("dropped database {db}");
        }
    } else {
        eprintln!("no --db-suffix: databases left alone (never drops the default ones)");
    }
    Ok(())
}

/// Waits until the run's streams stop growing (consumers done), then long enough for Postgres to
/// flush its statistics (backends report at most once a second).
async fn settle(js: &async_nats::jetstream::Context, prefix: &str) {
    let naming = longship_messaging::Naming::new(prefix);
    let mut last = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut sum = 0;
        for s in ["ORDERS", "INVENTORY", "PAYMENTS"] {
            if let Ok(mut stream) = js.get_stream(naming.stream(s)).await
                && let Ok(info) = stream.info().await
            {
                sum += info.state.last_sequence;
            }
        }
        if sum == last || Instant::now() >= deadline {
            break;
        }
        last = sum;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

struct Measured {
    phase: usize,
    unfinished: usize,
    cost: Option<Cost>,
}

/// A report directory of its own under `root`: `<stamp>`, or `<stamp>-2`, `-3`, ... when a run
/// started in the same second (two benches side by side) has taken it. Creating the leaf is the
/// claim, so two runs never write into one directory.
fn claim_report_dir(root: &std::path::Path, stamp: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    for n in 1..1000 {
        let dir = match n {
            1 => root.join(stamp),
            n => root.join(format!("{stamp}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    anyhow::bail!(
        "no free report directory for {stamp} under {}",
        root.display()
    )
}

async fn bench(o: Options) -> anyhow::Result<bool> {
    let wall = Instant::now();
    let started_at = chrono::Utc::now();
    let run_id = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let stamp = started_at.format("%Y%m%d-%H%M%S").to_string();
    let (admin, admin_options) = admin_pool(&o).await?;
    let databases: Vec<String> = o.databases().iter().map(|(_, d)| d.clone()).collect();
    for db in &databases {
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(db)
                .fetch_optional(&admin)
                .await?;
        anyhow::ensure!(
            exists.is_some(),
            "database {db} does not exist: is the platform running with LONGSHIP_DB_SUFFIX={:?}?",
            o.db_suffix
        );
    }
    let nats = async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 20)
        .connect(&o.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", o.nats_url))?;
    let js = async_nats::jetstream::new(nats.clone());

    let mut workload = Workload::new(&run_id, o.tenants, o.skus, o.customers, o.mix);
    let tenants = workload.tenant_ids();
    let tenant_names: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    let api = api::Api::new(
        &o.order_url,
        &o.inventory_url,
        &o.payment_url,
        &tenants,
        o.token_secret.as_deref(),
    )?;
    api.check_ready().await?;
    let probe = Probe::new(
        &o.state_dir,
        admin.clone(),
        databases.clone(),
        js.clone(),
        &o.nats_prefix,
        o.census_file.clone(),
    )
    .await;
    if probe.services().len() < 3 {
        eprintln!(
            "note: pid files of only {:?} found under {}/run: CPU of the others is not measured",
            probe.services().keys().collect::<Vec<_>>(),
            o.state_dir.display()
        );
    }
    let statements_source = match (&o.census_file, probe.pg_stat_statements) {
        (Some(f), _) => format!("counted by `loadgen pg-proxy` ({})", f.display()),
        (None, true) => "pg_stat_statements".to_owned(),
        (None, false) => "pg_stat_statements is not loaded (shared_preload_libraries); run the census (`just bench-census`) to count through `loadgen pg-proxy`".to_owned(),
    };

    eprintln!(
        "loadgen {run_id}: seeding {} tenants at {}",
        tenants.len(),
        api.order_base()
    );
    let seeded = workload.seed(&api).await?;
    vacuum_analyze(&admin_options, &databases).await?;
    let workload = Arc::new(workload);
    let recorder = Arc::new(Recorder::new());
    let watcher = events::watch(
        &nats,
        &o.nats_prefix,
        tenant_names.iter().cloned().collect::<HashSet<_>>(),
        Arc::clone(&recorder),
    )
    .await?;

    let mut measured: Vec<Measured> = Vec::new();
    if !o.warmup.is_zero() {
        eprintln!(
            "warm-up: {} clients, {:.0} s",
            o.clients,
            o.warmup.as_secs_f64()
        );
        let phase =
            runner::closed_loop(&api, &workload, &recorder, "warmup", o.clients, o.warmup).await;
        let unfinished = runner::drain(&recorder, phase, o.drain_timeout).await;
        measured.push(Measured {
            phase,
            unfinished,
            cost: None,
        });
        // the warm-up filled the tables that seeding left empty (orders, sagas, payments, ...)
        vacuum_analyze(&admin_options, &databases).await?;
    }
    let mut closed_rate = None;
    // backends of the run's databases during the closed loop: in a transaction or statement, and open
    let (mut busy_backends, mut held_backends) = (0.0f64, 0.0f64);
    if !o.closed.is_zero() {
        settle(&js, &o.nats_prefix).await;
        let before = probe.snapshot().await;
        eprintln!(
            "closed loop: {} clients, {:.0} s",
            o.clients,
            o.closed.as_secs_f64()
        );
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = tokio::spawn(sample_backends(
            admin.clone(),
            databases.clone(),
            Arc::clone(&samples),
        ));
        let phase =
            runner::closed_loop(&api, &workload, &recorder, "closed", o.clients, o.closed).await;
        sampler.abort();
        let samples: Vec<(i64, i64)> = samples.lock().map(|s| s.clone()).unwrap_or_default();
        if !samples.is_empty() {
            let n = samples.len() as f64;
            busy_backends = samples.iter().map(|s| s.0 as f64).sum::<f64>() / n;
            held_backends = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
        }
        let unfinished = runner::drain(&recorder, phase, o.drain_timeout).await;
        settle(&js, &o.nats_prefix).await;
        let after = probe.snapshot().await;
        let (finished, rate) = recorder.with(|p, _| {
            let ph = &p[phase];
            let secs = ph
                .ended
                .map(|e| e.saturating_duration_since(ph.started).as_secs_f64())
                .unwrap_or(1.0);
            (ph.finished, ph.accepted as f64 / secs.max(1e-9))
        });
        closed_rate = Some(rate);
        measured.push(Measured {
            phase,
            unfinished,
            cost: Some(probe.between(&before, &after, finished)),
        });
    }
    let rates: Vec<f64> = if !o.rates.is_empty() {
        o.rates.clone()
    } else {
        closed_rate
            .map(|r| vec![(r * o.rate_share).max(1.0).round()])
            .unwrap_or_default()
    };
    if !o.open.is_zero() {
        for rate in rates {
            settle(&js, &o.nats_prefix).await;
            let before = probe.snapshot().await;
            eprintln!(
                "open loop: {rate:.0} orders/s, {:.0} s",
                o.open.as_secs_f64()
            );
            let phase = runner::open_loop(&api, &workload, &recorder, rate, o.open).await;
            let unfinished = runner::drain(&recorder, phase, o.drain_timeout).await;
            settle(&js, &o.nats_prefix).await;
            let after = probe.snapshot().await;
            let finished = recorder.with(|p, _| p[phase].finished);
            measured.push(Measured {
                phase,
                unfinished,
                cost: Some(probe.between(&before, &after, finished)),
            });
        }
    }
    watcher.abort();

    let mut violations = Vec::new();
    if !o.no_invariants {
        eprintln!("checking invariants over this run's tenants");
        violations = check_invariants(&admin_options, &databases, &workload, &tenant_names).await?;
    }

    let ceiling = if o.ceiling.is_zero() {
        None
    } else {
        // "the same concurrency": as many connections as the platform kept busy on average
        let mut connections = o
            .ceiling_connections
            .unwrap_or(busy_backends.ceil() as usize)
            .clamp(1, 256);
        loop {
            eprintln!(
                "commit ceiling: {connections} connections, {:.0} s",
                o.ceiling.as_secs_f64()
            );
            match ceiling::measure(&admin, &admin_options, connections, o.ceiling).await {
                Ok(c) => break Some(c),
                Err(e) if connections > 1 && e.to_string().contains("too many clients") => {
                    connections /= 2;
                }
                Err(e) => {
                    eprintln!("commit ceiling not measured: {e:#}");
                    break None;
                }
            }
        }
    };

    // --- the report --------------------------------------------------------------------------
    let (phases, timeline) = recorder.with(|p, s| {
        let phases: Vec<PhaseReport> = measured
            .iter()
            .map(|m| PhaseReport::of(&p[m.phase], m.unfinished as u64, m.cost.clone()))
            .collect();
        (phases, report::timeline(p, s))
    });
    let headline = phases
        .iter()
        .find(|p| p.name == "closed")
        .and_then(|p| Some((p, p.cost.as_ref()?, ceiling.as_ref()?)))
        .map(|(p, c, ceil)| Headline {
            sagas_per_s: p.completed_per_s,
            commits_per_saga: c.commits_per_saga_total,
            ceiling_commits_per_s: ceil.commits_per_second,
            ratio_to_ceiling: p.completed_per_s * c.commits_per_saga_total
                / ceil.commits_per_second.max(1e-9),
        });
    let errors_total: u64 = phases.iter().map(|p| p.errors.values().sum::<u64>()).sum();
    let unfinished_total: u64 = phases.iter().map(|p| p.unfinished).sum();
    let unexpected = recorder.unexpected();
    let passed = errors_total == 0
        && unfinished_total == 0
        && unexpected.is_empty()
        && violations.is_empty();
    let pg_version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&admin)
        .await
        .unwrap_or_default();
    let pg_version = pg_version
        .split(" on ")
        .next()
        .unwrap_or_default()
        .to_owned();
    let nats_version = format!("nats-server {}", nats.server_info().version);
    let mut platform = BTreeMap::new();
    platform.insert("order".to_owned(), o.order_url.clone());
    platform.insert("inventory".to_owned(), o.inventory_url.clone());
    platform.insert("payment".to_owned(), o.payment_url.clone());
    platform.insert("databases".to_owned(), databases.join(" "));
    platform.insert("nats_prefix".to_owned(), o.nats_prefix.clone());
    // the sizing the bench recipe started the platform with (tools/loadgen/bench.sh)
    if let Ok(config) = std::env::var("BENCH_PLATFORM_CONFIG") {
        platform.insert("config".to_owned(), config);
    }
    platform.insert(
        "postgres_backends_closed_loop".to_owned(),
        format!("{busy_backends:.1} busy of {held_backends:.1} connected (mean)"),
    );
    platform.insert(
        "auth".to_owned(),
        if o.token_secret.is_some() {
            "HS256 bearer token"
        } else {
            "X-Tenant-Id"
        }
        .to_owned(),
    );
    let mut wl = BTreeMap::new();
    wl.insert("tenants".to_owned(), serde_json::json!(tenant_names.len()));
    wl.insert("skus_per_tenant".to_owned(), serde_json::json!(o.skus));
    wl.insert(
        "customers_per_tenant".to_owned(),
        serde_json::json!(o.customers),
    );
    wl.insert("mix".to_owned(), serde_json::json!(o.mix));
    wl.insert("seed_requests".to_owned(), serde_json::json!(seeded));
    let report = Report {
        run_id: run_id.clone(),
        started_at: started_at.to_rfc3339(),
        duration_s: wall.elapsed().as_secs_f64(),
        command: o.argv.join(" "),
        profile: o.profile.clone(),
        machine: machine::machine(pg_version, nats_version),
        build: machine::build(probe.services()),
        platform,
        workload: wl,
        phases,
        ceiling,
        headline,
        statements_source,
        invariants_checked: !o.no_invariants,
        invariant_violations: violations,
        errors_total,
        unfinished_total,
        unexpected_outcomes: unexpected,
        stray_events: recorder.stray_events(),
        passed,
        timeline,
    };
    let out = claim_report_dir(&o.out_dir, &stamp)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    let markdown = report.markdown();
    std::fs::write(out.join("report.md"), &markdown)?;
    if let Err(e) = chart::draw(
        &out.join("chart.svg"),
        &format!("Longship {} ({})", run_id, report.profile),
        &report.timeline,
    ) {
        eprintln!("chart not drawn: {e:#}");
    }
    println!("{markdown}");
    println!("report: {}", out.join("report.md").display());
    Ok(passed || !o.fail_on_errors)
}

/// Samples, every 200 ms, the backends of the run's databases: (not idle, all).
async fn sample_backends(
    admin: PgPool,
    databases: Vec<String>,
    samples: Arc<std::sync::Mutex<Vec<(i64, i64)>>>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let row: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state <> 'idle'), count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
        )
        .bind(&databases)
        .fetch_one(&admin)
        .await;
        if let (Ok(row), Ok(mut s)) = (row, samples.lock()) {
            s.push(row);
        }
    }
}

async fn check_invariants(
    admin: &PgConnectOptions,
    databases: &[String],
    workload: &Workload,
    tenants: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut pools = Vec::new();
    for db in databases {
        pools.push(
            PgPoolOptions::new()
                .max_connections(2)
                .connect_with(admin.clone().database(db))
                .await
                .with_context(|| format!("connecting to {db}"))?,
        );
    }
    let dbs = longship_testkit::invariants::Databases {
        orders: &pools[0],
        inventory: &pools[1],
        payments: &pools[2],
    };
    Ok(longship_testkit::invariants::wait_quiet_scoped(
        &dbs,
        &workload.initial,
        Some(tenants),
        Duration::from_secs(30),
    )
    .await)
}

#[cfg(test)]
mod tests {
    use super::claim_report_dir;

    #[test]
    fn runs_started_in_the_same_second_get_directories_of_their_own() {
        let root = std::env::temp_dir().join(format!("loadgen-reports-{}", uuid::Uuid::new_v4()));
        let first = claim_report_dir(&root, "20261123-052843").expect("first");
        let second = claim_report_dir(&root, "20261123-052843").expect("second");
        let third = claim_report_dir(&root, "20261123-052843").expect("third");
        assert_eq!(first, root.join("20261123-052843"));
        assert_eq!(second, root.join("20261123-052843-2"));
        assert_eq!(third, root.join("20261123-052843-3"));
        assert!(first.is_dir() && second.is_dir() && third.is_dir());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
