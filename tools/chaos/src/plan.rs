//! Everything the seed decides, drawn up front: the catalog (tenants, stock, balances), the orders
//! and the fault schedule. The same seed gives the same plan; only the timing of the real processes
//! varies between runs.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A service of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Svc {
    /// The order service (saga orchestrator).
    Order,
    /// The inventory service.
    Inventory,
    /// The payment service.
    Payment,
}

impl Svc {
    /// All three, in start order (participants first).
    pub const ALL: [Svc; 3] = [Svc::Inventory, Svc::Payment, Svc::Order];

    /// The binary and service name.
    pub fn name(self) -> &'static str {
        match self {
            Svc::Order => "order",
            Svc::Inventory => "inventory",
            Svc::Payment => "payment",
        }
    }

    /// The service's database.
    pub fn database(self) -> &'static str {
        match self {
            Svc::Order => "orders",
            Svc::Inventory => "inventory",
            Svc::Payment => "payments",
        }
    }
}

impl fmt::Display for Svc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Replicas per service.
pub const REPLICAS: usize = 2;

/// A product to create before the run.
#[derive(Debug, Clone)]
pub struct ProductPlan {
    /// The sku.
    pub sku: String,
    /// Unit price.
    pub price_cents: i64,
    /// Initial stock.
    pub on_hand: i64,
}

/// An account to create before the run.
#[derive(Debug, Clone)]
pub struct CustomerPlan {
    /// The customer id.
    pub id: String,
    /// Initial balance.
    pub balance_cents: i64,
}

/// One tenant's catalog.
#[derive(Debug, Clone)]
pub struct TenantPlan {
    /// The tenant id.
    pub id: String,
    /// Its products (all priced in USD).
    pub products: Vec<ProductPlan>,
    /// Its customers (all USD accounts).
    pub customers: Vec<CustomerPlan>,
}

/// One order to place.
#[derive(Debug, Clone)]
pub struct PlannedOrder {
    /// Position in the plan.
    pub n: usize,
    /// When to place it, from the start of the run.
    pub at: Duration,
    /// Index into the catalog's tenants.
    pub tenant: usize,
    /// The customer.
    pub customer: String,
    /// The currency (USD; rarely EUR to provoke `currency_mismatch`).
    pub currency: String,
    /// (sku, quantity) lines; rarely an unknown sku to provoke `unknown_sku`.
    pub items: Vec<(String, u32)>,
    /// The `Idempotency-Key`.
    pub key: String,
}

impl PlannedOrder {
    /// The request body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "customer_id": self.customer,
            "currency": self.currency,
            "items": self.items.iter().map(|(sku, q)| serde_json::json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
        })
    }
}

/// The link from the order service to one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Participant {
    /// order -> inventory gRPC.
    Inventory,
    /// order -> payment gRPC.
    Payment,
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Participant::Inventory => "order->inventory",
            Participant::Payment => "order->payment",
        })
    }
}

/// One fault the nemesis injects (and heals).
#[derive(Debug, Clone)]
pub enum Fault {
    /// SIGKILL a replica's process group, restart it after `down_for` (order replicas are killed
    /// while they hold sagas in flight).
    KillReplica {
        svc: Svc,
        replica: usize,
        down_for: Duration,
    },
    /// SIGSTOP a replica for longer than the saga deadline, then SIGCONT.
    PauseReplica {
        svc: Svc,
        replica: usize,
        paused_for: Duration,
    },
    /// SIGKILL nats-server, restart it after `down_for`.
    KillNats { down_for: Duration },
    /// Immediate stop of Postgres (SIGQUIT, crash recovery on restart), restart after `down_for`.
    RestartPostgres { down_for: Duration },
    /// Add latency to an order -> participant gRPC link.
    DelayGrpc {
        link: Participant,
        latency: Duration,
        lasting: Duration,
    },
    /// Reset every connection of an order -> participant link, then refuse new ones for a while.
    CutGrpc {
        link: Participant,
        refuse_for: Duration,
    },
    /// Slow a service's NATS link, then reset its connections repeatedly while acks are in
    /// flight: deliveries whose ack is lost come again (duplicates, out of order) and relay
    /// batches are republished (JetStream drops them by `Nats-Msg-Id`).
    CutNats {
        svc: Svc,
        latency: Duration,
        cuts: u32,
        gap: Duration,
    },
    /// Stall a service's NATS link (publish acks and consumer acks time out, then resume).
    BlackholeNats { svc: Svc, lasting: Duration },
    /// Reset a service's Postgres connections.
    CutPostgres { svc: Svc },
    /// Stall a service's Postgres link (transactions hang, then resume).
    BlackholePostgres { svc: Svc, lasting: Duration },
}

/// The fault kinds, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL + restart of a service replica.
    KillReplica,
    /// SIGSTOP/SIGCONT of a service replica.
    PauseReplica,
    /// nats-server killed and restarted.
    KillNats,
    /// Postgres immediate stop and restart.
    RestartPostgres,
    /// gRPC latency.
    DelayGrpc,
    /// gRPC connections cut / refused.
    CutGrpc,
    /// NATS connections cut mid-batch (redelivery, reordering).
    CutNats,
    /// NATS link stalled.
    BlackholeNats,
    /// Postgres connections cut.
    CutPostgres,
    /// Postgres link stalled.
    BlackholePostgres,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::KillReplica,
        FaultKind::PauseReplica,
        FaultKind::KillNats,
        FaultKind::RestartPostgres,
        FaultKind::DelayGrpc,
        FaultKind::CutGrpc,
        FaultKind::CutNats,
        FaultKind::BlackholeNats,
        FaultKind::CutPostgres,
        FaultKind::BlackholePostgres,
    ];

    /// A stable name for the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillReplica => "sigkill+restart replica",
            FaultKind::PauseReplica => "sigstop/sigcont replica",
            FaultKind::KillNats => "nats-server killed+restarted",
            FaultKind::RestartPostgres => "postgres immediate restart",
            FaultKind::DelayGrpc => "grpc link delayed",
            FaultKind::CutGrpc => "grpc link cut/refused",
            FaultKind::CutNats => "nats link cut mid-batch",
            FaultKind::BlackholeNats => "nats link blackholed",
            FaultKind::CutPostgres => "postgres link cut",
            FaultKind::BlackholePostgres => "postgres link blackholed",
        }
    }
}

impl Fault {
    /// The fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::KillReplica { .. } => FaultKind::KillReplica,
            Fault::PauseReplica { .. } => FaultKind::PauseReplica,
            Fault::KillNats { .. } => FaultKind::KillNats,
            Fault::RestartPostgres { .. } => FaultKind::RestartPostgres,
            Fault::DelayGrpc { .. } => FaultKind::DelayGrpc,
            Fault::CutGrpc { .. } => FaultKind::CutGrpc,
            Fault::CutNats { .. } => FaultKind::CutNats,
            Fault::BlackholeNats { .. } => FaultKind::BlackholeNats,
            Fault::CutPostgres { .. } => FaultKind::CutPostgres,
            Fault::BlackholePostgres { .. } => FaultKind::BlackholePostgres,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillReplica {
                svc,
                replica,
                down_for,
            } => write!(f, "SIGKILL {svc}-{replica}, restart after {down_for:.1?}"),
            Fault::PauseReplica {
                svc,
                replica,
                paused_for,
            } => write!(f, "SIGSTOP {svc}-{replica} for {paused_for:.1?}"),
            Fault::KillNats { down_for } => {
                write!(f, "SIGKILL nats-server, restart after {down_for:.1?}")
            }
            Fault::RestartPostgres { down_for } => {
                write!(f, "postgres immediate stop, restart after {down_for:.1?}")
            }
            Fault::DelayGrpc {
                link,
                latency,
                lasting,
            } => write!(f, "{link} +{latency:.0?} per chunk for {lasting:.1?}"),
            Fault::CutGrpc { link, refuse_for } => {
                write!(f, "cut {link}, refuse for {refuse_for:.1?}")
            }
            Fault::CutNats {
                svc,
                latency,
                cuts,
                gap,
            } => {
                write!(f, "{svc}->nats +{latency:.0?}, cut {cuts}x every {gap:.0?}")
            }
            Fault::BlackholeNats { svc, lasting } => {
                write!(f, "blackhole {svc}->nats for {lasting:.1?}")
            }
            Fault::CutPostgres { svc } => write!(f, "cut {svc}->postgres"),
            Fault::BlackholePostgres { svc, lasting } => {
                write!(f, "blackhole {svc}->postgres for {lasting:.1?}")
            }
        }
    }
}

/// A fault and when it starts.
#[derive(Debug, Clone)]
pub struct ScheduledFault {
    /// Start, from the beginning of the run.
    pub at: Duration,
    /// What happens.
    pub fault: Fault,
}

/// The whole plan of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Tenants, products, customers.
    pub tenants: Vec<TenantPlan>,
    /// Orders, by time.
    pub orders: Vec<PlannedOrder>,
    /// Faults, by time.
    pub faults: Vec<ScheduledFault>,
}

/// Mean units per order line and lines per order (for sizing stock and balances).
const MEAN_QTY: f64 = 2.5;
const MEAN_LINES: f64 = 1.75;
const MEAN_PRICE: f64 = 850.0;

/// Draws the plan for `seed`: `orders` orders over `duration`, and faults over the same window.
pub fn draw(seed: u64, duration: Duration, orders: u64, saga_deadline: Duration) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let tenants = catalog(&mut rng, orders);
    let orders = order_stream(&mut rng, seed, &tenants, duration, orders);
    let faults = schedule(&mut rng, duration, saga_deadline);
    Plan {
        tenants,
        orders,
        faults,
    }
}

fn catalog(rng: &mut StdRng, orders: u64) -> Vec<TenantPlan> {
    let per_tenant = orders as f64 / 3.0;
    ["chaos-a", "chaos-b", "chaos-c"]
        .iter()
        .enumerate()
        .map(|(t, id)| {
            let skus = 4;
            let customers = 4;
            // stock and money for only part of the demand: orders compete for both
            let units_per_sku = per_tenant * MEAN_LINES * MEAN_QTY / skus as f64;
            let spend_per_customer =
                per_tenant * MEAN_LINES * MEAN_QTY * MEAN_PRICE / customers as f64;
            TenantPlan {
                id: (*id).to_owned(),
                products: (1..=skus)
                    .map(|i| ProductPlan {
                        sku: format!("SKU-{}{i}", (b'A' + t as u8) as char),
                        price_cents: rng.random_range(200..=1500),
                        on_hand: ((units_per_sku * rng.random_range(0.3..0.6)).round() as i64)
                            .max(5),
                    })
                    .collect(),
                customers: (1..=customers)
                    .map(|i| CustomerPlan {
                        id: format!("cust-{i}"),
                        balance_cents: ((spend_per_customer * rng.random_range(0.4..0.7)).round()
                            as i64)
                            .max(2_000),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn order_stream(
    rng: &mut StdRng,
    seed: u64,
    tenants: &[TenantPlan],
    duration: Duration,
    count: u64,
) -> Vec<PlannedOrder> {
    let step = duration.as_secs_f64() / count as f64;
    (0..count as usize)
        .map(|n| {
            let tenant = rng.random_range(0..tenants.len());
            let plan = &tenants[tenant];
            let customer = plan.customers[rng.random_range(0..plan.customers.len())]
                .id
                .clone();
            let lines = if rng.random_bool(0.25) { 1 } else { 2 }.min(plan.products.len());
            let mut skus: Vec<&ProductPlan> = plan.products.iter().collect();
            skus.shuffle(rng);
            let mut items: Vec<(String, u32)> = skus[..lines]
                .iter()
                .map(|p| (p.sku.clone(), rng.random_range(1..=4)))
                .collect();
            if rng.random_bool(0.02) {
                items.push((format!("NOPE-{n}"), 1));
            }
            let currency = if rng.random_bool(0.02) { "EUR" } else { "USD" };
            let jitter = rng.random_range(0.0..step);
            PlannedOrder {
                n,
                at: Duration::from_secs_f64(step * n as f64 + jitter),
                tenant,
                customer,
                currency: currency.to_owned(),
                items,
                key: format!("chaos-{seed}-{n}"),
            }
        })
        .collect()
}

fn pick_svc(rng: &mut StdRng) -> Svc {
    Svc::ALL[rng.random_range(0..Svc::ALL.len())]
}

fn pick_participant(rng: &mut StdRng) -> Participant {
    if rng.random_bool(0.5) {
        Participant::Inventory
    } else {
        Participant::Payment
    }
}

fn secs(rng: &mut StdRng, range: std::ops::Range<f64>) -> Duration {
    Duration::from_secs_f64(rng.random_range(range))
}

/// One fault of `kind`, its parameters drawn from `rng`.
fn fault_of(kind: FaultKind, rng: &mut StdRng, deadline: Duration) -> Fault {
    let deadline = deadline.as_secs_f64();
    match kind {
        FaultKind::KillReplica => Fault::KillReplica {
            svc: pick_svc(rng),
            replica: rng.random_range(0..REPLICAS),
            down_for: secs(rng, 0.2..3.0),
        },
        FaultKind::PauseReplica => Fault::PauseReplica {
            svc: pick_svc(rng),
            replica: rng.random_range(0..REPLICAS),
            paused_for: secs(rng, deadline + 1.0..deadline + 4.0),
        },
        FaultKind::KillNats => Fault::KillNats {
            down_for: secs(rng, 0.5..4.0),
        },
        FaultKind::RestartPostgres => Fault::RestartPostgres {
            down_for: secs(rng, 0.0..2.0),
        },
        FaultKind::DelayGrpc => Fault::DelayGrpc {
            link: pick_participant(rng),
            latency: Duration::from_millis(rng.random_range(100..1200)),
            lasting: secs(rng, 2.0..8.0),
        },
        FaultKind::CutGrpc => Fault::CutGrpc {
            link: pick_participant(rng),
            refuse_for: secs(rng, 0.0..3.0),
        },
        FaultKind::CutNats => Fault::CutNats {
            svc: pick_svc(rng),
            latency: Duration::from_millis(rng.random_range(100..400)),
            cuts: rng.random_range(2..=5),
            gap: Duration::from_millis(rng.random_range(150..900)),
        },
        FaultKind::BlackholeNats => Fault::BlackholeNats {
            svc: pick_svc(rng),
            lasting: secs(rng, 2.0..9.0),
        },
        FaultKind::CutPostgres => Fault::CutPostgres { svc: pick_svc(rng) },
        FaultKind::BlackholePostgres => Fault::BlackholePostgres {
            svc: pick_svc(rng),
            lasting: secs(rng, 1.0..6.0),
        },
    }
}

/// Faults over `[3 s, duration - 3 s]`: every kind at least once (the process kills once per
/// service, the pauses once for an order replica and once for a participant), spread over the
/// window in a seeded order, plus extra faults of random kinds about every eight seconds.
fn schedule(rng: &mut StdRng, duration: Duration, deadline: Duration) -> Vec<ScheduledFault> {
    let mut must: Vec<Fault> = FaultKind::ALL
        .iter()
        .filter(|k| !matches!(k, FaultKind::KillReplica | FaultKind::PauseReplica))
        .map(|k| fault_of(*k, rng, deadline))
        .collect();
    // kills and pauses get fixed targets: every service is killed, and both the orchestrator and
    // a participant are paused past the saga deadline, in every run
    for svc in Svc::ALL {
        must.push(Fault::KillReplica {
            svc,
            replica: rng.random_range(0..REPLICAS),
            down_for: secs(rng, 0.2..3.0),
        });
    }
    let d = deadline.as_secs_f64();
    let participant = if rng.random_bool(0.5) {
        Svc::Inventory
    } else {
        Svc::Payment
    };
    for svc in [Svc::Order, participant] {
        must.push(Fault::PauseReplica {
            svc,
            replica: rng.random_range(0..REPLICAS),
            paused_for: secs(rng, d + 1.0..d + 4.0),
        });
    }
    must.shuffle(rng);

    let start = 3.0;
    let end = (duration.as_secs_f64() - 3.0).max(start + 1.0);
    let slot = (end - start) / must.len() as f64;
    let mut faults: Vec<ScheduledFault> = must
        .into_iter()
        .enumerate()
        .map(|(i, fault)| ScheduledFault {
            at: Duration::from_secs_f64(
                start + slot * i as f64 + rng.random_range(0.0..slot * 0.8),
            ),
            fault,
        })
        .collect();
    let mut t = start + rng.random_range(0.0..8.0);
    while t < end {
        let kind = FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())];
        faults.push(ScheduledFault {
            at: Duration::from_secs_f64(t),
            fault: fault_of(kind, rng, deadline),
        });
        t += rng.random_range(3.0..13.0);
    }
    faults.sort_by_key(|f| f.at);
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_plan() {
        let a = draw(42, Duration::from_secs(120), 600, Duration::from_secs(5));
        let b = draw(42, Duration::from_secs(120), 600, Duration::from_secs(5));
        assert_eq!(format!("{:?}", a.faults), format!("{:?}", b.faults));
        assert_eq!(format!("{:?}", a.orders), format!("{:?}", b.orders));
        let c = draw(43, Duration::from_secs(120), 600, Duration::from_secs(5));
        assert_ne!(format!("{:?}", a.faults), format!("{:?}", c.faults));
    }

    #[test]
    fn every_fault_kind_is_scheduled_inside_the_window() {
        for seed in 0..50 {
            for secs in [20u64, 60, 120] {
                let plan = draw(
                    seed,
                    Duration::from_secs(secs),
                    secs * 5,
                    Duration::from_secs(5),
                );
                for kind in FaultKind::ALL {
                    assert!(
                        plan.faults.iter().any(|f| f.fault.kind() == kind),
                        "seed {seed}, {secs}s: no {kind:?}"
                    );
                }
                for svc in Svc::ALL {
                    assert!(
                        plan.faults.iter().any(
                            |f| matches!(f.fault, Fault::KillReplica { svc: s, .. } if s == svc)
                        )
                    );
                }
                assert!(plan.faults.iter().any(|f| matches!(
                    f.fault,
                    Fault::PauseReplica { svc: Svc::Order, paused_for, .. } if paused_for > Duration::from_secs(5)
                )));
                assert!(plan.faults.iter().all(|f| f.at < Duration::from_secs(secs)));
            }
        }
    }

    #[test]
    fn orders_are_paced_over_the_run_for_three_tenants() {
        let plan = draw(7, Duration::from_secs(100), 500, Duration::from_secs(5));
        assert_eq!(plan.orders.len(), 500);
        assert!(plan.orders.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(
            plan.orders
                .last()
                .is_some_and(|o| o.at < Duration::from_secs(100))
        );
        for t in 0..3 {
            assert!(plan.orders.iter().filter(|o| o.tenant == t).count() > 100);
        }
        let keys: std::collections::HashSet<_> = plan.orders.iter().map(|o| &o.key).collect();
        assert_eq!(keys.len(), 500);
    }
}
