//! Everything the seed decides, drawn up front: the catalog (tenants, stock, balances), the orders
//! and the fault schedule. The same seed gives the same plan; only the timing of the real processes
//! varies between runs.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub use crate::faults::{Fault, FaultKind, NatsNode, STREAMS, ScheduledFault};
pub use crate::topology::{Svc, Topology};

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
pub fn draw(
    seed: u64,
    duration: Duration,
    orders: u64,
    saga_deadline: Duration,
    topology: &Topology,
) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let tenants = catalog(&mut rng, orders);
    let orders = order_stream(&mut rng, seed, &tenants, duration, orders);
    let faults = crate::faults::schedule(&mut rng, duration, saga_deadline, topology);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_plan() {
        let a = draw(
            42,
            Duration::from_secs(120),
            600,
            Duration::from_secs(5),
            &Topology::default(),
        );
        let b = draw(
            42,
            Duration::from_secs(120),
            600,
            Duration::from_secs(5),
            &Topology::default(),
        );
        assert_eq!(format!("{:?}", a.faults), format!("{:?}", b.faults));
        assert_eq!(format!("{:?}", a.orders), format!("{:?}", b.orders));
        let c = draw(
            43,
            Duration::from_secs(120),
            600,
            Duration::from_secs(5),
            &Topology::default(),
        );
        assert_ne!(format!("{:?}", a.faults), format!("{:?}", c.faults));
    }

    #[test]
    fn orders_are_paced_over_the_run_for_three_tenants() {
        let plan = draw(
            7,
            Duration::from_secs(100),
            500,
            Duration::from_secs(5),
            &Topology::default(),
        );
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
