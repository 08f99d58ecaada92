//! Saga completions observed the way a downstream system sees them: the `order_confirmed` and
//! `order_cancelled` events on NATS (a core subscription to the platform's subjects), not polling.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use longship_messaging::{EventEnvelope, Naming};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::recorder::{Recorder, Terminal};

/// The event types that end an order.
pub const CONFIRMED: &str = "orders.v1.order_confirmed";
/// See [`CONFIRMED`].
pub const CANCELLED: &str = "orders.v1.order_cancelled";

/// Subscribes to both subjects under `prefix` and feeds the recorder until the client closes.
/// Events of tenants other than the run's are ignored.
pub async fn watch(
    client: &async_nats::Client,
    prefix: &str,
    tenants: HashSet<String>,
    recorder: Arc<Recorder>,
) -> anyhow::Result<JoinHandle<()>> {
    let naming = Naming::new(prefix);
    let confirmed = client.subscribe(naming.subject(CONFIRMED)).await?;
    let cancelled = client.subscribe(naming.subject(CANCELLED)).await?;
    // the subscriptions must be registered before the first order is placed
    client.flush().await?;
    let mut both = futures::stream::select(confirmed, cancelled);
    Ok(tokio::spawn(async move {
        while let Some(message) = both.next().await {
            let Ok(envelope) = EventEnvelope::decode(&message.payload) else {
                continue;
            };
            if !tenants.contains(envelope.tenant_id.as_str()) {
                continue;
            }
            let Some(id) = envelope
                .data
                .get("order_id")
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok())
            else {
                continue;
            };
            let terminal = if envelope.event_type == CONFIRMED {
                Terminal {
                    status: "CONFIRMED",
                    reason: None,
                }
            } else {
                Terminal {
                    status: "CANCELLED",
                    reason: envelope
                        .data
                        .get("reason")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                }
            };
            recorder.terminal(id, terminal);
        }
    }))
}
