//! What a saga costs: CPU seconds of each process (from `/proc/<pid>/stat`), Postgres transactions
//! of the three databases (`pg_stat_database`), WAL flushes (`pg_stat_wal`), statements
//! (`pg_stat_statements` when loaded, or a counting proxy's stats file) and JetStream messages
//! stored (stream info). A [`Snapshot`] before and after a phase; [`Probe::between`] the difference.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_nats::jetstream;
use longship_messaging::Naming;
use sqlx::{PgPool, Row};

/// The streams the platform's services produce (unprefixed).
const STREAMS: [&str; 3] = ["ORDERS", "INVENTORY", "PAYMENTS"];

/// Where the numbers come from.
pub struct Probe {
    clk_tck: f64,
    services: BTreeMap<String, i32>,
    admin: PgPool,
    databases: Vec<String>,
    js: jetstream::Context,
    naming: Naming,
    census_file: Option<PathBuf>,
    /// Whether `pg_stat_statements` is loaded and usable.
    pub pg_stat_statements: bool,
}

/// Counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    procs: HashMap<i32, (String, u64)>,
    machine: (u64, u64, u64),
    xact: BTreeMap<String, (i64, i64)>,
    wal: Option<(i64, i64, i64)>,
    streams: BTreeMap<String, u64>,
    statements: Option<BTreeMap<String, Statements>>,
}

/// Statement counters of one database.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Statements {
    /// Statements executed.
    pub statements: u64,
    /// Client round trips (a simple query or an extended-protocol Sync); 0 from pg_stat_statements.
    #[serde(default)]
    pub round_trips: u64,
    /// Round trips without a statement (sqlx's ping on returning a connection); census only.
    #[serde(default)]
    pub pings: u64,
    /// Statements by text; census only.
    #[serde(default)]
    pub by_statement: BTreeMap<String, u64>,
}

/// The difference between two snapshots, per saga where it says so.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cost {
    /// Wall time between the snapshots.
    pub seconds: f64,
    /// Sagas the numbers are divided by.
    pub sagas: u64,
    /// CPU seconds per saga by process group.
    pub cpu_ms_per_saga: BTreeMap<String, f64>,
    /// Average cores busy by process group over the window.
    pub cores_busy: BTreeMap<String, f64>,
    /// Cores busy on the whole machine (all processes, ours and others').
    pub machine_cores_busy: f64,
    /// Cores busy outside the groups above and interrupts (builds, other users of the machine).
    pub other_cores_busy: f64,
    /// Cores busy in interrupts (irq + softirq): mostly loopback network processing, everyone's.
    pub interrupt_cores_busy: f64,
    /// Committed transactions per saga by database (read-only ones included: Postgres counts them too).
    pub commits_per_saga: BTreeMap<String, f64>,
    /// Sum over the three databases.
    pub commits_per_saga_total: f64,
    /// Rolled-back transactions per saga, summed over the three databases.
    pub rollbacks_per_saga: f64,
    /// Committed transactions per second, summed over the three databases.
    pub commits_per_second: f64,
    /// WAL flushes (fsync calls) per saga, whole server.
    pub wal_syncs_per_saga: Option<f64>,
    /// WAL bytes per saga, whole server.
    pub wal_bytes_per_saga: Option<f64>,
    /// Statements per saga by database, when counted.
    pub statements_per_saga: Option<BTreeMap<String, f64>>,
    /// Round trips per saga by database, when counted by the proxy.
    pub round_trips_per_saga: Option<BTreeMap<String, f64>>,
    /// Of those, round trips without a statement (pings), by database.
    pub pings_per_saga: Option<BTreeMap<String, f64>>,
    /// Statements per saga by database and text, most frequent first (census only).
    pub statement_texts_per_saga: BTreeMap<String, Vec<(String, f64)>>,
    /// Messages stored per saga by stream.
    pub nats_messages_per_saga: BTreeMap<String, f64>,
    /// Sum over the streams.
    pub nats_messages_per_saga_total: f64,
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime + cutime + cstime in clock ticks, and the command name.
fn proc_ticks(pid: i32) -> Option<(String, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses `/proc/<pid>/stat` (the command may contain spaces and parentheses).
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14
    let sum = (11..=14)
        .map(|i| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    Some((comm, sum))
}

/// (busy, total, interrupts) jiffies of all CPUs; interrupts (irq + softirq: loopback network
/// processing of every process) are part of busy.
fn machine_ticks() -> (u64, u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0, 0);
    };
    let Some(line) = stat.lines().next() else {
        return (0, 0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let interrupts = v.get(5).copied().unwrap_or(0) + v.get(6).copied().unwrap_or(0);
    (total.saturating_sub(idle), total, interrupts)
}

/// The pid in `<state_dir>/run/<service>.pid`, if that process lives.
pub fn service_pid(state_dir: &Path, service: &str) -> Option<i32> {
    let raw = std::fs::read_to_string(state_dir.join("run").join(format!("{service}.pid"))).ok()?;
    let pid: i32 = raw.lines().next()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// The executable of a process.
pub fn exe_of(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

impl Probe {
    /// A probe of the services whose pid files are under `state_dir`.
    pub async fn new(
        state_dir: &Path,
        admin: PgPool,
        databases: Vec<String>,
        js: jetstream::Context,
        prefix: &str,
        census_file: Option<PathBuf>,
    ) -> Probe {
        let services = ["order", "inventory", "payment"]
            .iter()
            .filter_map(|s| service_pid(state_dir, s).map(|p| ((*s).to_owned(), p)))
            .collect();
        let pg_stat_statements = pgss_available(&admin).await;
        Probe {
            clk_tck: clk_tck(),
            services,
            admin,
            databases,
            js,
            naming: Naming::new(prefix),
            census_file,
            pg_stat_statements,
        }
    }

    /// Service name -> pid, as found.
    pub fn services(&self) -> &BTreeMap<String, i32> {
        &self.services
    }

    /// Takes a snapshot.
    pub async fn snapshot(&self) -> Snapshot {
        let backends: HashMap<i32, String> =
            sqlx::query("SELECT pid, datname::text FROM pg_stat_activity WHERE datname = ANY($1)")
                .bind(&self.databases)
                .fetch_all(&self.admin)
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|r| Some((r.try_get("pid").ok()?, r.try_get("datname").ok()?)))
                .collect();
        let mut procs = HashMap::new();
        let self_pid = std::process::id() as i32;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                let Some((comm, ticks)) = proc_ticks(pid) else {
                    continue;
                };
                let group = if let Some((name, _)) = self.services.iter().find(|(_, p)| **p == pid)
                {
                    name.clone()
                } else if pid == self_pid {
                    "loadgen".to_owned()
                } else if comm == "postgres" {
                    if backends.contains_key(&pid) {
                        "postgres (run databases)".to_owned()
                    } else {
                        "postgres (other)".to_owned()
                    }
                } else if comm == "nats-server" {
                    "nats-server".to_owned()
                } else {
                    continue;
                };
                procs.insert(pid, (group, ticks));
            }
        }
        let xact = sqlx::query(
            "SELECT datname::text AS d, xact_commit, xact_rollback FROM pg_stat_database WHERE datname = ANY($1)",
        )
        .bind(&self.databases)
        .fetch_all(&self.admin)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get::<String, _>("d").ok()?,
                (
                    r.try_get("xact_commit").ok()?,
                    r.try_get("xact_rollback").ok()?,
                ),
            ))
        })
        .collect();
        let wal =
            sqlx::query("SELECT wal_records, wal_sync, wal_bytes::bigint AS b FROM pg_stat_wal")
                .fetch_one(&self.admin)
                .await
                .ok()
                .and_then(|r| {
                    Some((
                        r.try_get("wal_records").ok()?,
                        r.try_get("wal_sync").ok()?,
                        r.try_get("b").ok()?,
                    ))
                });
        let mut streams = BTreeMap::new();
        for s in STREAMS {
            let last = match self.js.get_stream(self.naming.stream(s)).await {
                Ok(mut stream) => stream
                    .info()
                    .await
                    .map(|i| i.state.last_sequence)
                    .unwrap_or(0),
                Err(_) => 0,
            };
            streams.insert(s.to_owned(), last);
        }
        let statements = match (&self.census_file, self.pg_stat_statements) {
            (Some(file), _) => read_census(file, &self.databases),
            (None, true) => self.pgss_counts().await,
            (None, false) => None,
        };
        Snapshot {
            at: Instant::now(),
            procs,
            machine: machine_ticks(),
            xact,
            wal,
            streams,
            statements,
        }
    }

    async fn pgss_counts(&self) -> Option<BTreeMap<String, Statements>> {
        let rows = sqlx::query(
            "SELECT d.datname::text AS d, sum(s.calls)::bigint AS calls FROM pg_stat_statements s
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = ANY($1) GROUP BY 1",
        )
        .bind(&self.databases)
        .fetch_all(&self.admin)
        .await
        .ok()?;
        Some(
            rows.iter()
                .filter_map(|r| {
                    let calls: i64 = r.try_get("calls").ok()?;
                    Some((
                        r.try_get("d").ok()?,
                        Statements {
                            statements: calls.max(0) as u64,
                            ..Statements::default()
                        },
                    ))
                })
                .collect(),
        )
    }

    /// The cost between two snapshots, divided by `sagas`.
    pub fn between(&self, a: &Snapshot, b: &Snapshot, sagas: u64) -> Cost {
        let seconds = b.at.saturating_duration_since(a.at).as_secs_f64().max(1e-9);
        let n = sagas.max(1) as f64;
        let mut cpu: BTreeMap<String, f64> = BTreeMap::new();
        for (pid, (group, ticks)) in &b.procs {
            let before = a.procs.get(pid).map(|(_, t)| *t).unwrap_or(0);
            *cpu.entry(group.clone()).or_default() +=
                ticks.saturating_sub(before) as f64 / self.clk_tck;
        }
        for s in self.services.keys() {
            cpu.entry(s.clone()).or_default();
        }
        let cpu_ms_per_saga = cpu
            .iter()
            .map(|(k, v)| (k.clone(), v * 1000.0 / n))
            .collect();
        let cores_busy = cpu.iter().map(|(k, v)| (k.clone(), v / seconds)).collect();
        let (busy, total) = (
            b.machine.0.saturating_sub(a.machine.0) as f64,
            b.machine.1.saturating_sub(a.machine.1) as f64,
        );
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let share = |ticks: f64| {
            if total > 0.0 {
                ticks / total * cores
            } else {
                0.0
            }
        };
        let machine_cores_busy = share(busy);
        let interrupt_cores_busy = share(b.machine.2.saturating_sub(a.machine.2) as f64);
        let mut commits_per_saga = BTreeMap::new();
        let (mut commits, mut rollbacks) = (0i64, 0i64);
        for (db, (c1, r1)) in &b.xact {
            let (c0, r0) = a.xact.get(db).copied().unwrap_or((*c1, *r1));
            commits += c1 - c0;
            rollbacks += r1 - r0;
            commits_per_saga.insert(db.clone(), (c1 - c0) as f64 / n);
        }
        let (wal_syncs_per_saga, wal_bytes_per_saga) = match (a.wal, b.wal) {
            (Some((_, s0, b0)), Some((_, s1, b1))) => {
                (Some((s1 - s0) as f64 / n), Some((b1 - b0) as f64 / n))
            }
            _ => (None, None),
        };
        let mut pings_per_saga = None;
        let mut statement_texts_per_saga = BTreeMap::new();
        let (statements_per_saga, round_trips_per_saga) = match (&a.statements, &b.statements) {
            (Some(x), Some(y)) => {
                let mut st = BTreeMap::new();
                let mut rt = BTreeMap::new();
                let mut pings = BTreeMap::new();
                for (db, s1) in y {
                    let s0 = x.get(db).cloned().unwrap_or_default();
                    pings.insert(db.clone(), s1.pings.saturating_sub(s0.pings) as f64 / n);
                    let mut texts: Vec<(String, f64)> = s1
                        .by_statement
                        .iter()
                        .map(|(text, c1)| {
                            let c0 = s0.by_statement.get(text).copied().unwrap_or(0);
                            (text.clone(), c1.saturating_sub(c0) as f64 / n)
                        })
                        .filter(|(_, per)| *per > 0.0)
                        .collect();
                    texts.sort_by(|p, q| q.1.total_cmp(&p.1).then_with(|| p.0.cmp(&q.0)));
                    if !texts.is_empty() {
                        statement_texts_per_saga.insert(db.clone(), texts);
                    }
                    st.insert(
                        db.clone(),
                        s1.statements.saturating_sub(s0.statements) as f64 / n,
                    );
                    rt.insert(
                        db.clone(),
                        s1.round_trips.saturating_sub(s0.round_trips) as f64 / n,
                    );
                }
                let any_rt = rt.values().any(|v| *v > 0.0);
                if any_rt {
                    pings_per_saga = Some(pings);
                }
                (Some(st), any_rt.then_some(rt))
            }
            _ => (None, None),
        };
        let nats_messages_per_saga: BTreeMap<String, f64> = b
            .streams
            .iter()
            .map(|(s, l1)| {
                let l0 = a.streams.get(s).copied().unwrap_or(0);
                (s.clone(), l1.saturating_sub(l0) as f64 / n)
            })
            .collect();
        let ours: f64 = cpu.values().sum::<f64>() / seconds;
        Cost {
            other_cores_busy: (machine_cores_busy - interrupt_cores_busy - ours).max(0.0),
            interrupt_cores_busy,
            seconds,
            sagas,
            cpu_ms_per_saga,
            cores_busy,
            machine_cores_busy,
            commits_per_saga_total: commits as f64 / n,
            commits_per_saga,
            rollbacks_per_saga: rollbacks as f64 / n,
            commits_per_second: commits as f64 / seconds,
            wal_syncs_per_saga,
            wal_bytes_per_saga,
            statements_per_saga,
            round_trips_per_saga,
            pings_per_saga,
            statement_texts_per_saga,
            nats_messages_per_saga_total: nats_messages_per_saga.values().sum(),
            nats_messages_per_saga,
        }
    }
}

async fn pgss_available(admin: &PgPool) -> bool {
    let loaded: Option<String> =
        sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
            .fetch_optional(admin)
            .await
            .ok()
            .flatten();
    if !loaded.is_some_and(|l| l.contains("pg_stat_statements")) {
        return false;
    }
    // the view lives in whichever database has the extension; ours is the admin database
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(admin)
        .await
        .is_ok()
}

fn read_census(file: &Path, databases: &[String]) -> Option<BTreeMap<String, Statements>> {
    #[derive(serde::Deserialize)]
    struct Census {
        databases: BTreeMap<String, Statements>,
    }
    let raw = std::fs::read_to_string(file).ok()?;
    let census: Census = serde_json::from_str(&raw).ok()?;
    Some(
        census
            .databases
            .into_iter()
            .filter(|(db, _)| databases.contains(db))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line =
            "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 3 2 20 0 2 0 500 0 0";
        assert_eq!(
            parse_stat(line),
            Some(("tokio (rt) 1".to_owned(), 250 + 75 + 3 + 2))
        );
        assert_eq!(parse_stat("garbage"), None);
    }
}
