//! The report: `report.json` (everything), `report.md` (the tables a person reads) and the chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::ceiling::Ceiling;
use crate::cost::Cost;
use crate::machine::{Build, Machine};
use crate::recorder::{PhaseStats, Second};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// From a histogram in microseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One phase's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseReport {
    /// `warmup`, `closed`, `open@500`.
    pub name: String,
    /// Closed-loop clients.
    pub clients: Option<usize>,
    /// Open-loop intended rate.
    pub rate: Option<f64>,
    /// Seconds of load.
    pub seconds: f64,
    /// POST /v1/orders answered 202.
    pub accepted: u64,
    /// Accepted per second.
    pub accepted_per_s: f64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// POST latency (open loop: from the intended send time).
    pub post_ms: Percentiles,
    /// Terminal events per second while the phase ran (steady-state saga completion rate).
    pub completed_per_s: f64,
    /// This phase's orders that reached CONFIRMED or CANCELLED.
    pub finished: u64,
    /// This phase's orders without a terminal event after the drain.
    pub unfinished: u64,
    /// Outcomes of this phase's orders.
    pub outcomes: BTreeMap<String, u64>,
    /// Accept-to-terminal latency (POST answered -> terminal event received).
    pub accept_to_terminal_ms: Percentiles,
    /// With `--tenant-skew`: the same for the heavy tenant's orders and for the other tenants'.
    pub accept_to_terminal_by_tenant: Option<BTreeMap<String, Percentiles>>,
    /// Closed loop: clients waited for each order's terminal event (`--wait-terminal`).
    pub waits_for_terminal: bool,
    /// Open loop: requests sent over 1 ms later than intended (the generator fell behind).
    pub late_sends: u64,
    /// Cost per saga over the phase (from its start to its drained end).
    pub cost: Option<Cost>,
}

impl PhaseReport {
    /// From the recorder's phase.
    pub fn of(p: &PhaseStats, unfinished: u64, cost: Option<Cost>) -> PhaseReport {
        let seconds = p
            .ended
            .map(|e| e.saturating_duration_since(p.started).as_secs_f64())
            .unwrap_or(0.0)
            .max(1e-9);
        PhaseReport {
            name: p.name.clone(),
            clients: p.clients,
            rate: p.rate,
            seconds,
            accepted: p.accepted,
            accepted_per_s: p.accepted as f64 / seconds,
            errors: p.errors.clone(),
            post_ms: Percentiles::of(&p.post),
            completed_per_s: p.completed_in_window as f64 / seconds,
            finished: p.finished,
            unfinished,
            outcomes: p.outcomes.clone(),
            accept_to_terminal_ms: Percentiles::of(&p.e2e),
            accept_to_terminal_by_tenant: (!p.e2e_heavy.is_empty() || !p.e2e_others.is_empty())
                .then(|| {
                    BTreeMap::from([
                        ("heavy tenant".to_owned(), Percentiles::of(&p.e2e_heavy)),
                        ("other tenants".to_owned(), Percentiles::of(&p.e2e_others)),
                    ])
                }),
            waits_for_terminal: p.waits_for_terminal,
            late_sends: p.late_sends,
            cost,
        }
    }
}

/// One second of the timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelinePoint {
    /// Seconds since the first phase started.
    pub t: usize,
    /// The phase generating load.
    pub phase: Option<String>,
    /// Accepted orders.
    pub accepted: u64,
    /// Failed requests.
    pub errors: u64,
    /// Terminal events.
    pub completed: u64,
    /// POST p50/p95/p99 (ms).
    pub post_p50_ms: f64,
    /// See above.
    pub post_p95_ms: f64,
    /// See above.
    pub post_p99_ms: f64,
    /// Accept-to-terminal p50/p99 (ms) of the events of this second.
    pub e2e_p50_ms: f64,
    /// See above.
    pub e2e_p99_ms: f64,
}

/// Builds the timeline from the recorder's seconds.
pub fn timeline(phases: &[PhaseStats], seconds: &[Second]) -> Vec<TimelinePoint> {
    let q = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    seconds
        .iter()
        .enumerate()
        .map(|(t, s)| TimelinePoint {
            t,
            phase: s.phase.and_then(|p| phases.get(p)).map(|p| p.name.clone()),
            accepted: s.accepted,
            errors: s.errors,
            completed: s.completed,
            post_p50_ms: q(&s.post, 0.5),
            post_p95_ms: q(&s.post, 0.95),
            post_p99_ms: q(&s.post, 0.99),
            e2e_p50_ms: q(&s.e2e, 0.5),
            e2e_p99_ms: q(&s.e2e, 0.99),
        })
        .collect()
}

/// The headline: throughput against the commit bound.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Headline {
    /// Completed sagas per second in the closed loop.
    pub sagas_per_s: f64,
    /// Committed transactions per saga (three databases).
    pub commits_per_saga: f64,
    /// Commit ceiling measured in this run.
    pub ceiling_commits_per_s: f64,
    /// sagas/s x commits per saga / ceiling.
    pub ratio_to_ceiling: f64,
}

/// Everything the run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Run id (also the tenants' prefix).
    pub run_id: String,
    /// Start (UTC, RFC 3339).
    pub started_at: String,
    /// Whole run in seconds.
    pub duration_s: f64,
    /// The command line.
    pub command: String,
    /// `default`, `quick` or customised.
    pub profile: String,
    /// The machine.
    pub machine: Machine,
    /// The build.
    pub build: Build,
    /// The services' URLs, databases and NATS prefix.
    pub platform: BTreeMap<String, String>,
    /// Tenants, catalogue, mix.
    pub workload: BTreeMap<String, serde_json::Value>,
    /// The phases (warm-up first).
    pub phases: Vec<PhaseReport>,
    /// The commit ceiling.
    pub ceiling: Option<Ceiling>,
    /// The closed loop against the ceiling.
    pub headline: Option<Headline>,
    /// How statements were counted (or why not).
    pub statements_source: String,
    /// Whether the invariants were checked, and what failed.
    pub invariants_checked: bool,
    /// Violations (empty = all hold).
    pub invariant_violations: Vec<String>,
    /// Failed requests, all phases.
    pub errors_total: u64,
    /// Orders without a terminal event, all phases.
    pub unfinished_total: u64,
    /// Orders that ended otherwise than meant.
    pub unexpected_outcomes: BTreeMap<String, u64>,
    /// Duplicate terminal events, and terminal events whose POST answer never came.
    pub stray_events: (u64, usize),
    /// No errors, no unfinished or unexpected orders, no violations.
    pub passed: bool,
    /// Per second.
    pub timeline: Vec<TimelinePoint>,
}

/// Statements listed per database in the census section; the rest are summed in one row.
const STATEMENT_ROWS: usize = 20;

fn f(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `key value, key value, ...` for a per-database (or per-stream) breakdown in one table cell.
fn breakdown(values: &BTreeMap<String, f64>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} {}", f(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        self.header(&mut m);
        self.verdict(&mut m);
        self.throughput(&mut m);
        for p in &self.phases {
            if let Some(c) = &p.cost {
                self.cost(&mut m, p, c);
            }
        }
        self.ceiling(&mut m);
        self.errors(&mut m);
        self.invariants(&mut m);
        m
    }

    /// Run, machine, build, command, platform and workload.
    fn header(&self, m: &mut String) {
        let b = &self.build;
        let profiles: Vec<String> = b.profiles.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(m, "# Longship benchmark `{}`\n", self.run_id);
        let _ = writeln!(
            m,
            "- **When**: {} ({:.0} s); profile `{}`",
            self.started_at, self.duration_s, self.profile
        );
        let _ = writeln!(
            m,
            "- **Machine**: {} — {} × {}, {} GiB, {}, kernel {}; {}; NATS {}",
            self.machine.hostname,
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory_gib,
            self.machine.os,
            self.machine.kernel,
            self.machine.postgres,
            self.machine.nats
        );
        let _ = writeln!(
            m,
            "- **Build**: commit `{}`{}; services: {}",
            b.commit,
            if b.dirty {
                " (with uncommitted changes)"
            } else {
                ""
            },
            if profiles.is_empty() {
                "unknown (no pid files)".to_owned()
            } else {
                profiles.join(", ")
            }
        );
        let _ = writeln!(m, "- **Command**: `{}`", self.command);
        let platform: Vec<String> = self
            .platform
            .iter()
            .map(|(k, v)| format!("{k} `{v}`"))
            .collect();
        let _ = writeln!(m, "- **Platform**: {}", platform.join(", "));
        let workload: Vec<String> = self
            .workload
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(m, "- **Workload**: {}\n", workload.join(", "));
    }

    /// PASS or FAIL and why.
    fn verdict(&self, m: &mut String) {
        let _ = writeln!(
            m,
            "**Verdict**: {} — {} failed requests, {} unfinished orders, {} unexpected outcomes, {} invariant violations{}.\n",
            if self.passed { "PASS" } else { "FAIL" },
            self.errors_total,
            self.unfinished_total,
            self.unexpected_outcomes.values().sum::<u64>(),
            self.invariant_violations.len(),
            if self.invariants_checked {
                ""
            } else {
                " (invariants not checked)"
            }
        );
    }

    /// Throughput and latency per phase.
    fn throughput(&self, m: &mut String) {
        let _ = writeln!(m, "## Throughput and latency\n");
        let _ = writeln!(
            m,
            "| phase | load | accepted/s | POST p50 | p95 | p99 | max | sagas completed/s | accept→terminal p50 | p95 | p99 | max | errors |"
        );
        let _ = writeln!(
            m,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &self.phases {
            let load = match (p.clients, p.rate) {
                (Some(c), _) if p.waits_for_terminal => format!(
                    "closed, {c} clients waiting for each saga's end, {:.0} s",
                    p.seconds
                ),
                (Some(c), _) => format!("closed, {c} clients, {:.0} s", p.seconds),
                (_, Some(r)) => format!("open, {r:.0}/s, {:.0} s", p.seconds),
                _ => String::new(),
            };
            let (e, t) = (&p.post_ms, &p.accept_to_terminal_ms);
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} | {} ms | {} ms | {} ms | {} ms | {} |",
                p.name,
                load,
                f(p.accepted_per_s),
                f(e.p50),
                f(e.p95),
                f(e.p99),
                f(e.max),
                f(p.completed_per_s),
                f(t.p50),
                f(t.p95),
                f(t.p99),
                f(t.max),
                p.errors.values().sum::<u64>()
            );
        }
        let _ = writeln!(
            m,
            "\nPOST latency in the open loop counts from the intended send time (no coordinated omission). \
             Accept→terminal: from the 202 to the `order_confirmed`/`order_cancelled` event arriving on NATS.\n"
        );
        self.tenant_skew(m);
    }

    /// With `--tenant-skew`: accept->terminal latency of the heavy tenant and of the others.
    fn tenant_skew(&self, m: &mut String) {
        let skewed: Vec<&PhaseReport> = self
            .phases
            .iter()
            .filter(|p| p.accept_to_terminal_by_tenant.is_some())
            .collect();
        if skewed.is_empty() {
            return;
        }
        let _ = writeln!(
            m,
            "Tenant skew (`--tenant-skew {}`): accept→terminal by side.\n",
            self.workload
                .get("tenant_skew")
                .map(|v| v.to_string())
                .unwrap_or_default()
        );
        let _ = writeln!(m, "| phase | tenants | orders | p50 | p95 | p99 | max |");
        let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|");
        for p in skewed {
            for (side, t) in p.accept_to_terminal_by_tenant.iter().flatten() {
                let _ = writeln!(
                    m,
                    "| {} | {side} | {} | {} ms | {} ms | {} ms | {} ms |",
                    p.name,
                    t.count,
                    f(t.p50),
                    f(t.p95),
                    f(t.p99),
                    f(t.max)
                );
            }
        }
        let _ = writeln!(m);
    }

    /// The cost per saga of one measured phase.
    fn cost(&self, m: &mut String, p: &PhaseReport, c: &Cost) {
        let _ = writeln!(
            m,
            "## Cost per saga: {} ({} sagas over {:.1} s)\n",
            p.name, c.sagas, c.seconds
        );
        let _ = writeln!(m, "| process | CPU ms per saga | cores busy |");
        let _ = writeln!(m, "|---|---:|---:|");
        for (k, v) in &c.cpu_ms_per_saga {
            let _ = writeln!(
                m,
                "| {k} | {} | {} |",
                f(*v),
                f(c.cores_busy.get(k).copied().unwrap_or(0.0))
            );
        }
        let _ = writeln!(
            m,
            "| kernel interrupts (irq + softirq: loopback networking, everyone's) | | {} |",
            f(c.interrupt_cores_busy)
        );
        let _ = writeln!(
            m,
            "| everything else on the machine (other users, builds) | | {} |",
            f(c.other_cores_busy)
        );
        let _ = writeln!(
            m,
            "| whole machine | | {} of {} |\n",
            f(c.machine_cores_busy),
            self.machine.cores
        );
        self.measures(m, c);
        Self::statement_texts(m, c);
    }

    /// Commits, statements, round trips and messages per saga.
    fn measures(&self, m: &mut String, c: &Cost) {
        let _ = writeln!(m, "| measure | per saga |");
        let _ = writeln!(m, "|---|---:|");
        let _ = writeln!(
            m,
            "| Postgres commits (xact_commit; {}) | {} |",
            breakdown(&c.commits_per_saga),
            f(c.commits_per_saga_total)
        );
        let _ = writeln!(m, "| Postgres rollbacks | {} |", f(c.rollbacks_per_saga));
        if let Some(w) = c.wal_syncs_per_saga {
            let _ = writeln!(
                m,
                "| WAL flushes (pg_stat_wal.wal_sync, whole server) | {} |",
                f(w)
            );
        }
        if let Some(w) = c.wal_bytes_per_saga {
            let _ = writeln!(m, "| WAL bytes (whole server) | {} |", f(w));
        }
        match &c.statements_per_saga {
            Some(s) => {
                let _ = writeln!(
                    m,
                    "| statements ({}) | {} |",
                    breakdown(s),
                    f(s.values().sum())
                );
            }
            None => {
                let _ = writeln!(
                    m,
                    "| statements | not counted: {} |",
                    self.statements_source
                );
            }
        }
        if let Some(r) = &c.round_trips_per_saga {
            let _ = writeln!(
                m,
                "| client round trips to Postgres ({}) | {} |",
                breakdown(r),
                f(r.values().sum())
            );
        }
        if let Some(p) = &c.pings_per_saga {
            let _ = writeln!(
                m,
                "| of those, without a statement (sqlx's ping when a connection returns to its pool; {}) | {} |",
                breakdown(p),
                f(p.values().sum())
            );
        }
        let _ = writeln!(
            m,
            "| JetStream messages stored ({}) | {} |",
            breakdown(&c.nats_messages_per_saga),
            f(c.nats_messages_per_saga_total)
        );
        let _ = writeln!(
            m,
            "| Postgres commits per second (three databases) | {} /s |\n",
            f(c.commits_per_second)
        );
    }

    /// The census' statements per saga, per database.
    fn statement_texts(m: &mut String, c: &Cost) {
        for (db, texts) in &c.statement_texts_per_saga {
            let _ = writeln!(
                m,
                "Statements per saga in `{db}` (census; whitespace collapsed, long ones cut):\n\n| per saga | statement |\n|---:|---|"
            );
            for (text, per) in texts.iter().take(STATEMENT_ROWS) {
                let _ = writeln!(m, "| {} | `{}` |", f(*per), text.replace('|', "\\|"));
            }
            if texts.len() > STATEMENT_ROWS {
                let rest: f64 = texts[STATEMENT_ROWS..].iter().map(|(_, v)| v).sum();
                let _ = writeln!(
                    m,
                    "| {} | ({} other statements) |",
                    f(rest),
                    texts.len() - STATEMENT_ROWS
                );
            }
            let _ = writeln!(m);
        }
    }

    /// The commit ceiling and the closed loop against it.
    fn ceiling(&self, m: &mut String) {
        let _ = writeln!(m, "## Commit ceiling\n");
        match (&self.ceiling, &self.headline) {
            (Some(c), Some(h)) => {
                let _ = writeln!(
                    m,
                    "Single-row INSERT commits on the same Postgres, {} connections over {} (sqlx), {:.1} s: **{} commits/s**.\n",
                    c.connections,
                    c.transport,
                    c.seconds,
                    f(c.commits_per_second)
                );
                let _ = writeln!(
                    m,
                    "closed loop: {} sagas/s × {} commits per saga / {} commits/s = **{:.0}% of the commit ceiling**\n",
                    f(h.sagas_per_s),
                    f(h.commits_per_saga),
                    f(h.ceiling_commits_per_s),
                    h.ratio_to_ceiling * 100.0
                );
            }
            (Some(c), None) => {
                let _ = writeln!(
                    m,
                    "{} commits/s with {} connections (no closed loop to compare).\n",
                    f(c.commits_per_second),
                    c.connections
                );
            }
            _ => {
                let _ = writeln!(m, "not measured\n");
            }
        }
    }

    /// Failed requests, unexpected outcomes and unfinished orders.
    fn errors(&self, m: &mut String) {
        let _ = writeln!(m, "## Errors and outcomes\n");
        let mut any = false;
        for p in &self.phases {
            for (k, v) in &p.errors {
                any = true;
                let _ = writeln!(m, "- {}: {v} × {k}", p.name);
            }
        }
        for (k, v) in &self.unexpected_outcomes {
            any = true;
            let _ = writeln!(m, "- unexpected outcome: {v} × {k}");
        }
        if self.unfinished_total > 0 {
            any = true;
            let _ = writeln!(
                m,
                "- {} orders without a terminal event",
                self.unfinished_total
            );
        }
        if !any {
            let _ = writeln!(m, "No failed requests.");
        }
        for p in &self.phases {
            let o: Vec<String> = p.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(m, "- {} outcomes: {}", p.name, o.join(", "));
        }
    }

    /// The invariants and the chart.
    fn invariants(&self, m: &mut String) {
        let _ = writeln!(
            m,
            "\n## Invariants (ARCHITECTURE.md section 8, over this run's tenants)\n"
        );
        if !self.invariants_checked {
            let _ = writeln!(m, "not checked (--no-invariants)");
        } else if self.invariant_violations.is_empty() {
            let _ = writeln!(m, "All hold.");
        } else {
            for v in &self.invariant_violations {
                let _ = writeln!(m, "- {v}");
            }
        }
        let _ = writeln!(
            m,
            "\n## Over time\n\n![throughput and latency over time](chart.svg)"
        );
    }
}
