//! `loadgen bench`: one run, phase by phase (seed, warm-up, closed loop, open loops, invariants,
//! commit ceiling), then the report (`report.{json,md}` and `chart.svg`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::api::Api;
use crate::ceiling::Ceiling;
use crate::cli::Options;
use crate::cost::Probe;
use crate::recorder::Recorder;
use crate::report::{Headline, PhaseReport, Report};
use crate::workload::Workload;
use crate::{Measured, events, runner};

/// What every phase of a run uses: the options, the connections, the seeded workload, the probe
/// that measures cost and the recorder of every order's outcome.
struct Bench {
    o: Options,
    run_id: String,
    admin: PgPool,
    admin_options: PgConnectOptions,
    databases: Vec<String>,
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    api: Api,
    probe: Probe,
    statements_source: String,
    tenant_names: Vec<String>,
    workload: Arc<Workload>,
    recorder: Arc<Recorder>,
    seeded: usize,
}

/// What the load phases measured, for the report.
#[derive(Default)]
struct Phases {
    measured: Vec<Measured>,
    closed_rate: Option<f64>,
    /// Backends of the run's databases during the closed loop (mean): in a transaction or
    /// statement, and open.
    busy_backends: f64,
    held_backends: f64,
}

/// Runs a whole bench; `Ok(false)` when it failed and `--fail-on-errors` asks for a failing exit.
pub(crate) async fn run(o: Options) -> anyhow::Result<bool> {
    let wall = Instant::now();
    let started_at = chrono::Utc::now();
    let bench = Bench::prepare(o).await?;
    let watcher = events::watch(
        &bench.nats,
        &bench.o.nats_prefix,
        bench.tenant_names.iter().cloned().collect::<HashSet<_>>(),
        Arc::clone(&bench.recorder),
    )
    .await?;
    let mut phases = Phases::default();
    bench.warmup(&mut phases).await?;
    bench.closed_loop(&mut phases).await;
    bench.open_loops(&mut phases).await;
    watcher.abort();
    let violations = bench.invariants().await?;
    let ceiling = bench.ceiling(phases.busy_backends).await;
    let report = bench
        .report(&phases, ceiling, violations, started_at, wall)
        .await;
    let stamp = started_at.format("%Y%m%d-%H%M%S").to_string();
    write_report(&bench.o, &report, &stamp)?;
    Ok(report.passed || !bench.o.fail_on_errors)
}

impl Bench {
    /// Connects, checks the platform is there and ready, and seeds the tenants.
    async fn prepare(o: Options) -> anyhow::Result<Bench> {
        let run_id = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (admin, admin_options) = crate::admin_pool(&o).await?;
        let databases: Vec<String> = o.databases().iter().map(|(_, d)| d.clone()).collect();
        ensure_databases(&admin, &databases, &o.db_suffix).await?;
        let nats = async_nats::ConnectOptions::new()
            .subscription_capacity(1 << 20)
            .connect(&o.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", o.nats_url))?;
        let js = async_nats::jetstream::new(nats.clone());
        let mut workload =
            Workload::new(&run_id, o.tenants, o.skus, o.customers, o.mix).with_skew(o.tenant_skew);
        let tenants = workload.tenant_ids();
        let api = Api::new(
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
        let statements_source = statements_source(&o, &probe);
        eprintln!(
            "loadgen {run_id}: seeding {} tenants at {}",
            tenants.len(),
            api.order_base()
        );
        let seeded = workload.seed(&api).await?;
        crate::vacuum_analyze(&admin_options, &databases).await?;
        Ok(Bench {
            tenant_names: tenants.iter().map(|t| t.to_string()).collect(),
            o,
            run_id,
            admin,
            admin_options,
            databases,
            nats,
            js,
            api,
            probe,
            statements_source,
            workload: Arc::new(workload),
            recorder: Arc::new(Recorder::new()),
            seeded,
        })
    }

    /// The closed loop's clients.
    fn clients(&self) -> runner::Clients {
        runner::Clients {
            count: self.o.clients,
            wait_terminal: self.o.wait_terminal,
        }
    }

    /// The warm-up: a closed loop whose cost is not measured.
    async fn warmup(&self, phases: &mut Phases) -> anyhow::Result<()> {
        let o = &self.o;
        if o.warmup.is_zero() {
            return Ok(());
        }
        eprintln!(
            "warm-up: {} clients, {:.0} s",
            o.clients,
            o.warmup.as_secs_f64()
        );
        let phase = runner::closed_loop(
            &self.api,
            &self.workload,
            &self.recorder,
            "warmup",
            self.clients(),
            o.warmup,
        )
        .await;
        let unfinished = runner::drain(&self.recorder, phase, o.drain_timeout).await;
        phases.measured.push(Measured {
            phase,
            unfinished,
            cost: None,
        });
        // the warm-up filled the tables that seeding left empty (orders, sagas, payments, ...)
        crate::vacuum_analyze(&self.admin_options, &self.databases).await
    }

    /// The closed loop: `--clients` clients, each placing its next order once the last is
    /// accepted; its cost and the database backends it kept busy are measured.
    async fn closed_loop(&self, phases: &mut Phases) {
        let o = &self.o;
        if o.closed.is_zero() {
            return;
        }
        crate::settle(&self.js, &o.nats_prefix).await;
        let before = self.probe.snapshot().await;
        eprintln!(
            "closed loop: {} clients, {:.0} s",
            o.clients,
            o.closed.as_secs_f64()
        );
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = tokio::spawn(crate::sample_backends(
            self.admin.clone(),
            self.databases.clone(),
            Arc::clone(&samples),
        ));
        let phase = runner::closed_loop(
            &self.api,
            &self.workload,
            &self.recorder,
            "closed",
            self.clients(),
            o.closed,
        )
        .await;
        sampler.abort();
        let samples: Vec<(i64, i64)> = samples.lock().map(|s| s.clone()).unwrap_or_default();
        if !samples.is_empty() {
            let n = samples.len() as f64;
            phases.busy_backends = samples.iter().map(|s| s.0 as f64).sum::<f64>() / n;
            phases.held_backends = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
        }
        let unfinished = runner::drain(&self.recorder, phase, o.drain_timeout).await;
        crate::settle(&self.js, &o.nats_prefix).await;
        let after = self.probe.snapshot().await;
        let (finished, rate) = self.recorder.with(|p, _| {
            let ph = &p[phase];
            let secs = ph
                .ended
                .map(|e| e.saturating_duration_since(ph.started).as_secs_f64())
                .unwrap_or(1.0);
            (ph.finished, ph.accepted as f64 / secs.max(1e-9))
        });
        phases.closed_rate = Some(rate);
        phases.measured.push(Measured {
            phase,
            unfinished,
            cost: Some(self.probe.between(&before, &after, finished)),
        });
    }

    /// The open loops: orders placed at fixed rates (`--rates`, or a share of the closed loop's).
    async fn open_loops(&self, phases: &mut Phases) {
        let o = &self.o;
        if o.open.is_zero() {
            return;
        }
        let rates: Vec<f64> = if !o.rates.is_empty() {
            o.rates.clone()
        } else {
            phases
                .closed_rate
                .map(|r| vec![(r * o.rate_share).max(1.0).round()])
                .unwrap_or_default()
        };
        for rate in rates {
            crate::settle(&self.js, &o.nats_prefix).await;
            let before = self.probe.snapshot().await;
            eprintln!(
                "open loop: {rate:.0} orders/s, {:.0} s",
                o.open.as_secs_f64()
            );
            let phase =
                runner::open_loop(&self.api, &self.workload, &self.recorder, rate, o.open).await;
            let unfinished = runner::drain(&self.recorder, phase, o.drain_timeout).await;
            crate::settle(&self.js, &o.nats_prefix).await;
            let after = self.probe.snapshot().await;
            let finished = self.recorder.with(|p, _| p[phase].finished);
            phases.measured.push(Measured {
                phase,
                unfinished,
                cost: Some(self.probe.between(&before, &after, finished)),
            });
        }
    }

    /// The invariants over this run's tenants, unless `--no-invariants`.
    async fn invariants(&self) -> anyhow::Result<Vec<String>> {
        if self.o.no_invariants {
            return Ok(Vec::new());
        }
        eprintln!("checking invariants over this run's tenants");
        crate::check_invariants(
            &self.admin_options,
            &self.databases,
            &self.workload,
            &self.tenant_names,
        )
        .await
    }

    /// The commit ceiling of the same Postgres at the concurrency the platform kept busy.
    async fn ceiling(&self, busy_backends: f64) -> Option<Ceiling> {
        let o = &self.o;
        if o.ceiling.is_zero() {
            return None;
        }
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
            match crate::ceiling::measure(&self.admin, &self.admin_options, connections, o.ceiling)
                .await
            {
                Ok(c) => return Some(c),
                Err(e) if connections > 1 && e.to_string().contains("too many clients") => {
                    connections /= 2;
                }
                Err(e) => {
                    eprintln!("commit ceiling not measured: {e:#}");
                    return None;
                }
            }
        }
    }

    /// The report of the run: phases, headline, verdict and what the run was made of.
    async fn report(
        &self,
        phases: &Phases,
        ceiling: Option<Ceiling>,
        violations: Vec<String>,
        started_at: chrono::DateTime<chrono::Utc>,
        wall: Instant,
    ) -> Report {
        let (phase_reports, timeline) = self.recorder.with(|p, s| {
            let reports: Vec<PhaseReport> = phases
                .measured
                .iter()
                .map(|m| PhaseReport::of(&p[m.phase], m.unfinished as u64, m.cost.clone()))
                .collect();
            (reports, crate::report::timeline(p, s))
        });
        let headline = headline(&phase_reports, ceiling.as_ref());
        let errors_total: u64 = phase_reports
            .iter()
            .map(|p| p.errors.values().sum::<u64>())
            .sum();
        let unfinished_total: u64 = phase_reports.iter().map(|p| p.unfinished).sum();
        let unexpected = self.recorder.unexpected();
        let passed = errors_total == 0
            && unfinished_total == 0
            && unexpected.is_empty()
            && violations.is_empty();
        let pg_version = self.postgres_version().await;
        let nats_version = format!("nats-server {}", self.nats.server_info().version);
        Report {
            run_id: self.run_id.clone(),
            started_at: started_at.to_rfc3339(),
            duration_s: wall.elapsed().as_secs_f64(),
            command: self.o.argv.join(" "),
            profile: self.o.profile.clone(),
            machine: crate::machine::machine(pg_version, nats_version),
            build: crate::machine::build(self.probe.services()),
            platform: self.platform(phases),
            workload: self.workload_summary(),
            phases: phase_reports,
            ceiling,
            headline,
            statements_source: self.statements_source.clone(),
            invariants_checked: !self.o.no_invariants,
            invariant_violations: violations,
            errors_total,
            unfinished_total,
            unexpected_outcomes: unexpected,
            stray_events: self.recorder.stray_events(),
            passed,
            timeline,
        }
    }

    /// `PostgreSQL 15.x`, without the build details.
    async fn postgres_version(&self) -> String {
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&self.admin)
            .await
            .unwrap_or_default();
        version.split(" on ").next().unwrap_or_default().to_owned()
    }

    /// What the run measured: its addresses, databases, sizing and authentication.
    fn platform(&self, phases: &Phases) -> BTreeMap<String, String> {
        let o = &self.o;
        let mut platform = BTreeMap::new();
        platform.insert("order".to_owned(), o.order_url.clone());
        platform.insert("inventory".to_owned(), o.inventory_url.clone());
        platform.insert("payment".to_owned(), o.payment_url.clone());
        platform.insert("databases".to_owned(), self.databases.join(" "));
        platform.insert("nats_prefix".to_owned(), o.nats_prefix.clone());
        // the sizing the bench recipe started the platform with (tools/loadgen/bench.sh)
        if let Ok(config) = std::env::var("BENCH_PLATFORM_CONFIG") {
            platform.insert("config".to_owned(), config);
        }
        platform.insert(
            "postgres_backends_closed_loop".to_owned(),
            format!(
                "{:.1} busy of {:.1} connected (mean)",
                phases.busy_backends, phases.held_backends
            ),
        );
        let auth = if o.token_secret.is_some() {
            "HS256 bearer token"
        } else {
            "X-Tenant-Id"
        };
        platform.insert("auth".to_owned(), auth.to_owned());
        platform
    }

    /// The workload's shape for the report.
    fn workload_summary(&self) -> BTreeMap<String, serde_json::Value> {
        let o = &self.o;
        let mut wl = BTreeMap::new();
        wl.insert(
            "tenants".to_owned(),
            serde_json::json!(self.tenant_names.len()),
        );
        wl.insert("skus_per_tenant".to_owned(), serde_json::json!(o.skus));
        wl.insert(
            "customers_per_tenant".to_owned(),
            serde_json::json!(o.customers),
        );
        wl.insert("mix".to_owned(), serde_json::json!(o.mix));
        if self.workload.skewed() {
            wl.insert("tenant_skew".to_owned(), serde_json::json!(o.tenant_skew));
        }
        wl.insert("seed_requests".to_owned(), serde_json::json!(self.seeded));
        wl
    }
}

/// Every database of the run exists (the platform was started with the same suffix).
async fn ensure_databases(
    admin: &PgPool,
    databases: &[String],
    suffix: &str,
) -> anyhow::Result<()> {
    for db in databases {
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(db)
                .fetch_optional(admin)
                .await?;
        anyhow::ensure!(
            exists.is_some(),
            "database {db} does not exist: is the platform running with LONGSHIP_DB_SUFFIX={suffix:?}?"
        );
    }
    Ok(())
}

/// Where the statement counts come from.
fn statements_source(o: &Options, probe: &Probe) -> String {
    match (&o.census_file, probe.pg_stat_statements) {
        (Some(f), _) => format!("counted by `loadgen pg-proxy` ({})", f.display()),
        (None, true) => "pg_stat_statements".to_owned(),
        (None, false) => "pg_stat_statements is not loaded (shared_preload_libraries); run the census (`just bench-census`) to count through `loadgen pg-proxy`".to_owned(),
    }
}

/// The closed loop's sagas per second against the commit ceiling, when both were measured.
fn headline(phases: &[PhaseReport], ceiling: Option<&Ceiling>) -> Option<Headline> {
    let p = phases.iter().find(|p| p.name == "closed")?;
    let c = p.cost.as_ref()?;
    let ceil = ceiling?;
    Some(Headline {
        sagas_per_s: p.completed_per_s,
        commits_per_saga: c.commits_per_saga_total,
        ceiling_commits_per_s: ceil.commits_per_second,
        ratio_to_ceiling: p.completed_per_s * c.commits_per_saga_total
            / ceil.commits_per_second.max(1e-9),
    })
}

/// Writes `report.json`, `report.md` and `chart.svg` into a directory of the run's own and prints
/// the markdown.
fn write_report(o: &Options, report: &Report, stamp: &str) -> anyhow::Result<()> {
    let out = crate::claim_report_dir(&o.out_dir, stamp)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(report)?)?;
    let markdown = report.markdown();
    std::fs::write(out.join("report.md"), &markdown)?;
    if let Err(e) = crate::chart::draw(
        &out.join("chart.svg"),
        &format!("Longship {} ({})", report.run_id, report.profile),
        &report.timeline,
    ) {
        eprintln!("chart not drawn: {e:#}");
    }
    println!("{markdown}");
    println!("report: {}", out.join("report.md").display());
    Ok(())
}
