//! The safety net: reservations nobody committed or released within their TTL are released by a
//! periodic sweep (status EXPIRED, event `inventory.v1.reservation_expired`).

use std::time::Duration;

use longship_errors::Error;
use longship_messaging::RelayWake;
use longship_runtime::CancellationToken;
use longship_tenant::TenantId;
use sqlx::PgPool;

use crate::store;

/// Reservations looked at per sweep round.
const BATCH: i32 = 100;

/// Releases expired reservations every `interval` until shut down. Safe with several replicas:
/// each reservation is re-checked under its row lock, so a second sweeper finds nothing to do.
#[derive(Debug, Clone)]
pub struct ExpirySweeper {
    pool: PgPool,
    relay: RelayWake,
    interval: Duration,
}

impl ExpirySweeper {
    /// A sweeper over `pool`.
    pub fn new(pool: PgPool, relay: RelayWake, interval: Duration) -> ExpirySweeper {
        ExpirySweeper {
            pool,
            relay,
            interval,
        }
    }

    /// Sweeps until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "released expired reservations"),
                Err(e) => {
                    tracing::warn!(error = %e, cause = %e.source_chain(), "expiry sweep failed; retrying")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Releases every reservation that is due now. Returns how many it expired.
    pub async fn sweep(&self) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let due = store::expired_reservations(&self.pool, BATCH).await?;
            let mut expired_now = 0;
            for (tenant, order_id) in &due {
                let Ok(tenant) = TenantId::parse(tenant) else {
                    tracing::error!(tenant_id = %tenant, %order_id, "reservation with an invalid tenant id; skipped");
                    continue;
                };
                let mut tx = longship_tenant::begin(&self.pool, &tenant).await?;
                if store::expire(&mut tx, &tenant, *order_id).await? {
                    expired_now += 1;
                    metrics::counter!("inventory_reservations_expired_total").increment(1);
                    tracing::info!(tenant_id = %tenant, %order_id, "reservation expired");
                }
                tx.commit().await?;
            }
            if expired_now > 0 {
                self.relay.wake();
            }
            total += expired_now;
            // a short batch means nothing more is due; a full one may hide more behind it
            if due.len() < BATCH as usize || expired_now == 0 {
                return Ok(total);
            }
        }
    }
}
