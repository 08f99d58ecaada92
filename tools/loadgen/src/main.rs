//! Longship's load generator: a real client of the public HTTP API that seeds tenants, places
//! orders in closed and open loops, watches sagas finish on NATS, measures what each saga costs
//! (CPU, Postgres commits, statements, JetStream messages) against the commit ceiling of the same
//! Postgres, checks the invariants and writes `target/bench/<timestamp>/report.{json,md}` and
//! `chart.svg`. `just bench` runs it against a release platform of its own.

// reason: a command-line tool whose output is its report
#![allow(clippy::print_stdout)]

mod api;
mod bench;
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

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::cli::{Command, Options};
use crate::cost::Cost;
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
        Command::Bench(o) => bench::run(*o).await,
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
