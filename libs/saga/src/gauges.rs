//! Gauges an operator alerts on, refreshed by each engine's worker loop: stuck sagas by type and
//! age, and sagas waiting for a replica that knows their version.

use sqlx::{PgPool, Row};

use crate::versions::{SagaData, SagaVersions};

/// The age buckets of `saga_stuck` (age since the saga started).
pub const AGE_BUCKETS: [&str; 4] = ["under_1m", "1m_to_10m", "10m_to_1h", "over_1h"];

/// The condition of a stuck saga, in SQL over table `saga`: not terminal, and past its deadline or
/// with the current step (or compensation) attempted 5 times or more.
pub const STUCK_SQL: &str =
    "status IN ('RUNNING', 'COMPENSATING') AND (deadline < now() OR attempts >= 5)";

/// Sets `saga_stuck{saga_type,age}` and `saga_waiting_for_version{saga_type,version}` from the
/// table (`seen`: the versions waiting at the last refresh, set back to 0 once none waits).
/// Failures are logged and leave the gauges as they were.
pub(crate) async fn refresh<D: SagaData>(
    pool: &PgPool,
    versions: &SagaVersions<D>,
    seen: &mut std::collections::BTreeSet<i32>,
) {
    let saga_type = versions.saga_type();
    let known: Vec<i32> = versions.known().into_iter().map(|v| v as i32).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN {STUCK_SQL} THEN
                    CASE WHEN created_at > now() - interval '1 minute' THEN 0
                         WHEN created_at > now() - interval '10 minutes' THEN 1
                         WHEN created_at > now() - interval '1 hour' THEN 2 ELSE 3 END
                END AS bucket,
                CASE WHEN version = ANY($2) THEN 0 ELSE version END AS unknown_version,
                count(*) AS n
         FROM saga WHERE saga_type = $1 AND status IN ('RUNNING', 'COMPENSATING')
         GROUP BY 1, 2"
    )))
    .bind(saga_type)
    .bind(&known)
    .persistent(false)
    .fetch_all(pool)
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "refreshing the saga gauges failed");
            return;
        }
    };
    let mut stuck = [0i64; 4];
    let mut waiting: std::collections::BTreeMap<i32, i64> = Default::default();
    for row in rows {
        let n: i64 = row.try_get("n").unwrap_or(0);
        if let Ok(Some(bucket)) = row.try_get::<Option<i32>, _>("bucket")
            && let Some(slot) = stuck.get_mut(bucket as usize)
        {
            *slot += n;
        }
        let unknown: i32 = row.try_get("unknown_version").unwrap_or(0);
        if unknown != 0 {
            *waiting.entry(unknown).or_default() += n;
        }
    }
    for (bucket, n) in AGE_BUCKETS.iter().zip(stuck) {
        metrics::gauge!("saga_stuck", "saga_type" => saga_type, "age" => *bucket).set(n as f64);
    }
    for version in seen.iter() {
        if !waiting.contains_key(version) {
            metrics::gauge!("saga_waiting_for_version", "saga_type" => saga_type, "version" => version.to_string())
                .set(0.0);
        }
    }
    for (version, n) in &waiting {
        metrics::gauge!("saga_waiting_for_version", "saga_type" => saga_type, "version" => version.to_string())
            .set(*n as f64);
    }
    *seen = waiting.into_keys().collect();
}
