//! The load: the plan's orders, each POSTed at its time with its `Idempotency-Key` to one order
//! replica, retried (same key, same body, the other replica first) after connection errors,
//! timeouts and 5xx, so that a retry after a lost response never places a second order.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use longship_testkit::HttpClient;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::plan::{PlannedOrder, TenantPlan};

/// What happened to one planned order.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The order id the API answered with (None: no answer yet).
    pub order_id: Option<Uuid>,
    /// POST attempts made.
    pub attempts: u32,
    /// Answers that contradict the contract (a different id for the same key, a 4xx for a valid
    /// request): violations.
    pub contract_errors: Vec<String>,
}

/// The load driver's shared state.
#[derive(Debug, Clone)]
pub struct Load {
    clients: Vec<HttpClient>,
    tenants: Arc<Vec<String>>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    stop: Arc<AtomicBool>,
}

/// How a single POST ended.
enum Answer {
    Placed(Uuid),
    Retry(String),
    Contract(String),
}

impl Load {
    /// A driver over the order replicas' HTTP clients.
    pub fn new(clients: Vec<HttpClient>, tenants: &[TenantPlan], orders: usize) -> Load {
        Load {
            clients,
            tenants: Arc::new(tenants.iter().map(|t| t.id.clone()).collect()),
            outcomes: Arc::new(Mutex::new(vec![Outcome::default(); orders])),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn outcomes(&self) -> std::sync::MutexGuard<'_, Vec<Outcome>> {
        match self.outcomes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A copy of every outcome so far.
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes().clone()
    }

    /// Places `orders` at their times (relative to `start`) until they are all sent or
    /// [`Load::stop`] is called; each order keeps retrying for `give_up_after`.
    pub async fn run(
        &self,
        orders: Arc<Vec<PlannedOrder>>,
        start: tokio::time::Instant,
        give_up_after: Duration,
    ) {
        let in_flight = Arc::new(Semaphore::new(64));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..orders.len() {
            let at = start + orders[i].at;
            tokio::time::sleep_until(at).await;
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                break;
            };
            let load = self.clone();
            let orders = Arc::clone(&orders);
            tasks.spawn(async move {
                let _permit = permit;
                load.place(&orders[i], give_up_after).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Stops the driver from sending further orders (those in flight finish their retries).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Places `order` (or learns its id), retrying for up to `give_up_after`.
    pub async fn place(&self, order: &PlannedOrder, give_up_after: Duration) {
        let deadline = tokio::time::Instant::now() + give_up_after;
        let body = order.body();
        let tenant = self.tenants.get(order.tenant).cloned().unwrap_or_default();
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0usize;
        loop {
            let replica = (order.n + attempt) % self.clients.len().max(1);
            attempt += 1;
            let answer = self.post(replica, &tenant, &order.key, &body).await;
            let retry = {
                let mut outcomes = self.outcomes();
                let outcome = &mut outcomes[order.n];
                outcome.attempts += 1;
                match answer {
                    Answer::Placed(id) => {
                        match outcome.order_id {
                            Some(first) if first != id => outcome.contract_errors.push(format!(
                                "key {}: answered order {first}, later order {id}",
                                order.key
                            )),
                            _ => outcome.order_id = Some(id),
                        }
                        None
                    }
                    Answer::Contract(message) => {
                        outcome.contract_errors.push(message);
                        None
                    }
                    Answer::Retry(why) => Some(why),
                }
            };
            let Some(why) = retry else {
                return;
            };
            if tokio::time::Instant::now() + backoff >= deadline {
                tracing::debug!(key = %order.key, %why, "giving up for now");
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn post(
        &self,
        replica: usize,
        tenant: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Answer {
        if self.clients.is_empty() {
            return Answer::Retry("no client".into());
        }
        let client = &self.clients[replica % self.clients.len()];
        let headers = [("x-tenant-id", tenant), ("idempotency-key", key)];
        let request = client.send_json(Method::POST, "/v1/orders", &headers, body);
        let response = match tokio::time::timeout(Duration::from_secs(8), request).await {
            Err(_) => return Answer::Retry("timed out".into()),
            Ok(Err(e)) => return Answer::Retry(format!("{e}")),
            Ok(Ok(r)) => r,
        };
        match response.status {
            StatusCode::ACCEPTED | StatusCode::OK => {
                match response.json()["id"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                {
                    Some(id) => Answer::Placed(id),
                    None => Answer::Contract(format!(
                        "key {key}: {} without an order id: {}",
                        response.status,
                        response.text()
                    )),
                }
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Answer::Retry(format!("{s}"))
            }
            s => Answer::Contract(format!(
                "key {key}: POST /v1/orders answered {s}: {}",
                response.text()
            )),
        }
    }

    /// Re-sends `sample` already-placed orders and checks the answer is the same order
    /// (idempotency across replicas, after every fault).
    pub async fn replay_check(&self, orders: &[PlannedOrder], sample: usize) -> Vec<String> {
        let placed: Vec<(usize, Uuid)> = self
            .snapshot()
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.order_id.map(|id| (i, id)))
            .collect();
        let step = (placed.len() / sample.max(1)).max(1);
        let mut violations = Vec::new();
        for (i, id) in placed.iter().step_by(step).take(sample) {
            let order = &orders[*i];
            let tenant = self.tenants.get(order.tenant).cloned().unwrap_or_default();
            let mut answer = Answer::Retry(String::new());
            for attempt in 0..10 {
                answer = self
                    .post(order.n + attempt + 1, &tenant, &order.key, &order.body())
                    .await;
                if !matches!(answer, Answer::Retry(_)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            match answer {
                Answer::Placed(again) if again == *id => {}
                Answer::Placed(again) => violations.push(format!(
                    "idempotency: key {} replayed as order {again}, first answered {id}",
                    order.key
                )),
                Answer::Contract(e) => violations.push(format!("idempotency replay: {e}")),
                Answer::Retry(e) => violations.push(format!(
                    "idempotency replay of key {} never answered: {e}",
                    order.key
                )),
            }
        }
        violations
    }
}
