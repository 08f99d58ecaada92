//! The commit ceiling of the same Postgres, measured in the same run: single-row INSERT
//! transactions (autocommit, so one commit each) from `connections` connections with sqlx, over
//! the transport the services use (TCP, or the Unix socket named in the URL's `host=/dir`). Runs in a scratch database that it empties afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The scratch database.
pub const DATABASE: &str = "longship_bench_ceiling";

/// What the benchmark measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ceiling {
    /// Connections committing at once.
    pub connections: usize,
    /// Measured seconds (after a short warm-up).
    pub seconds: f64,
    /// Commits per second.
    pub commits_per_second: f64,
    /// How the connections reached Postgres: `TCP` or `Unix socket <dir>`.
    pub transport: String,
}

/// Runs the benchmark for `duration` after 0.5 s of warm-up.
pub async fn measure(
    admin: &PgPool,
    admin_options: &PgConnectOptions,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Ceiling> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(DATABASE)
        .fetch_optional(admin)
        .await?;
    if exists.is_none() {
        // a concurrent creator wins the race harmlessly
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
            .execute(admin)
            .await;
    }
    let options = admin_options.clone().database(DATABASE);
    let mut setup = PgConnection::connect_with(&options).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS ceiling_commits (id bigserial PRIMARY KEY, v bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut setup)
    .await?;
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        conns.push(PgConnection::connect_with(&options).await?);
    }
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (counting, stop, count) =
            (Arc::clone(&counting), Arc::clone(&stop), Arc::clone(&count));
        tasks.push(tokio::spawn(async move {
            let mut v = i as i64;
            while !stop.load(Ordering::Relaxed) {
                let done = sqlx::query("INSERT INTO ceiling_commits (v) VALUES ($1)")
                    .bind(v)
                    .execute(&mut conn)
                    .await;
                if done.is_err() {
                    break;
                }
                if counting.load(Ordering::Relaxed) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                v += 1;
            }
            let _ = conn.close().await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    counting.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let commits = count.load(Ordering::Relaxed);
    sqlx::query("TRUNCATE ceiling_commits")
        .execute(&mut setup)
        .await?;
    let _ = setup.close().await;
    Ok(Ceiling {
        connections: connections.max(1),
        seconds,
        commits_per_second: commits as f64 / seconds,
        transport: match admin_options.get_socket() {
            Some(dir) => format!("Unix socket {}", dir.display()),
            None => "TCP".to_owned(),
        },
    })
}
