//! The run's tenants, their catalogue and customers, and the orders clients place.

use std::collections::HashMap;

use bytes::Bytes;
use futures::StreamExt;
use longship_tenant::TenantId;
use longship_testkit::invariants::Initial;
use rand::Rng;

use crate::api::Api;

/// Units of each product: far more than a run sells, so happy orders never run out.
const STOCK: i64 = 100_000_000;
/// Balance of each customer in cents: far more than a run spends.
const BALANCE: i64 = 1_000_000_000_000;
/// The product with no stock (orders for it are cancelled with `insufficient_stock`).
const EMPTY_SKU: &str = "BENCH-EMPTY";
/// The customer without money (orders are cancelled with `payment_declined`).
const BROKE_CUSTOMER: &str = "bench-broke";

/// What an order is meant to end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Intent {
    /// CONFIRMED.
    Confirm,
    /// CANCELLED with `payment_declined` (Reserve succeeds, then is compensated).
    Decline,
    /// CANCELLED with `insufficient_stock` (the first step refuses).
    OutOfStock,
}

impl Intent {
    /// The status and reason the order should reach.
    pub fn expected(self) -> (&'static str, Option<&'static str>) {
        match self {
            Intent::Confirm => ("CONFIRMED", None),
            Intent::Decline => ("CANCELLED", Some("payment_declined")),
            Intent::OutOfStock => ("CANCELLED", Some("insufficient_stock")),
        }
    }
}

/// One tenant's seeded data.
#[derive(Debug, Clone)]
pub struct TenantData {
    /// The tenant.
    pub id: TenantId,
    skus: Vec<String>,
    customers: Vec<String>,
}

/// The run's tenants and what they were seeded with.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Tenants, each with its catalogue.
    pub tenants: Vec<TenantData>,
    mix: f64,
    /// The first tenant places this many times as many orders as each other tenant (1: even).
    skew: f64,
    /// Initial stock and balances for the invariant check.
    pub initial: Initial,
}

/// An order to place.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    /// Its tenant.
    pub tenant: TenantId,
    /// Which side of a skewed load it is on (`Even` when the load is not skewed).
    pub class: TenantClass,
    /// What it should end as.
    pub intent: Intent,
    /// The JSON body.
    pub body: Bytes,
}

/// A tenant's side of a skewed load (`--tenant-skew`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantClass {
    /// The load is not skewed.
    Even,
    /// The first tenant, placing `skew` times as many orders as each other one.
    Heavy,
    /// Any other tenant.
    Other,
}

impl Workload {
    /// Names `tenants` fresh tenants `<run>-t<i>` (unique per run, so earlier data never interferes).
    pub fn new(run: &str, tenants: usize, skus: usize, customers: usize, mix: f64) -> Workload {
        let tenants = (0..tenants)
            .filter_map(|t| TenantId::parse(&format!("{run}-t{t}")).ok())
            .map(|id| TenantData {
                id,
                skus: (0..skus).map(|s| format!("SKU-{s:04}")).collect(),
                customers: (0..customers).map(|c| format!("cust-{c:04}")).collect(),
            })
            .collect();
        Workload {
            tenants,
            mix,
            skew: 1.0,
            initial: Initial::default(),
        }
    }

    /// The first tenant places `skew` times as many orders as each other tenant.
    pub fn with_skew(mut self, skew: f64) -> Workload {
        self.skew = skew.max(1.0);
        self
    }

    /// Whether the load is skewed.
    pub fn skewed(&self) -> bool {
        self.skew > 1.0 && self.tenants.len() > 1
    }

    /// A tenant by weight: the first `skew`, every other 1.
    fn pick_tenant(&self, rng: &mut impl Rng) -> (usize, TenantClass) {
        let n = self.tenants.len();
        if !self.skewed() {
            return (rng.random_range(0..n), TenantClass::Even);
        }
        let r = rng.random_range(0.0..self.skew + (n - 1) as f64);
        if r < self.skew {
            (0, TenantClass::Heavy)
        } else {
            let i = 1 + ((r - self.skew) as usize).min(n - 2);
            (i, TenantClass::Other)
        }
    }

    /// The tenant ids.
    pub fn tenant_ids(&self) -> Vec<TenantId> {
        self.tenants.iter().map(|t| t.id.clone()).collect()
    }

    /// Creates every product and account through the API (32 requests in flight) and records the
    /// initial stock and balances.
    pub async fn seed(&mut self, api: &Api) -> anyhow::Result<usize> {
        let mut puts: Vec<(TenantId, Put)> = Vec::new();
        let mut rng = rand::rng();
        for t in &self.tenants {
            for sku in &t.skus {
                let price = rng.random_range(100..5_000);
                puts.push((t.id.clone(), Put::Product(sku.clone(), price, STOCK)));
            }
            puts.push((t.id.clone(), Put::Product(EMPTY_SKU.into(), 999, 0)));
            for c in &t.customers {
                puts.push((t.id.clone(), Put::Account(c.clone(), BALANCE)));
            }
            puts.push((t.id.clone(), Put::Account(BROKE_CUSTOMER.into(), 0)));
        }
        let mut initial = Initial {
            stock: HashMap::new(),
            balances: HashMap::new(),
        };
        for (tenant, put) in &puts {
            match put {
                Put::Product(sku, _, on_hand) => {
                    initial
                        .stock
                        .insert((tenant.to_string(), sku.clone()), *on_hand);
                }
                Put::Account(c, balance) => {
                    initial
                        .balances
                        .insert((tenant.to_string(), c.clone()), *balance);
                }
            }
        }
        let n = puts.len();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(puts)
            .map(|(tenant, put)| async move {
                match put {
                    Put::Product(sku, price, on_hand) => {
                        api.put_product(&tenant, &sku, price, on_hand).await
                    }
                    Put::Account(c, balance) => api.put_account(&tenant, &c, balance).await,
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for r in results {
            r?;
        }
        self.initial = initial;
        Ok(n)
    }

    /// A random order: 1-3 distinct lines of 1-3 units; `mix` of them meant to fail.
    pub fn next_order(&self, rng: &mut impl Rng) -> OrderSpec {
        let (index, class) = self.pick_tenant(rng);
        let tenant = &self.tenants[index];
        let intent = if self.mix > 0.0 && rng.random_bool(self.mix) {
            if rng.random_bool(0.5) {
                Intent::Decline
            } else {
                Intent::OutOfStock
            }
        } else {
            Intent::Confirm
        };
        let customer = match intent {
            Intent::Decline => BROKE_CUSTOMER,
            _ => tenant.customers[rng.random_range(0..tenant.customers.len())].as_str(),
        };
        let lines = rng.random_range(1..=3usize).min(tenant.skus.len());
        let mut items: Vec<serde_json::Value> = Vec::with_capacity(lines + 1);
        let start = rng.random_range(0..tenant.skus.len());
        for k in 0..lines {
            let sku = &tenant.skus[(start + k * 7) % tenant.skus.len()];
            if items.iter().any(|i| i["sku"] == sku.as_str()) {
                continue;
            }
            items.push(serde_json::json!({"sku": sku, "quantity": rng.random_range(1..=3)}));
        }
        if intent == Intent::OutOfStock {
            items.push(serde_json::json!({"sku": EMPTY_SKU, "quantity": 1}));
        }
        let body = serde_json::json!({"customer_id": customer, "currency": "USD", "items": items});
        OrderSpec {
            tenant: tenant.id.clone(),
            class,
            intent,
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        }
    }
}

enum Put {
    Product(String, i64, i64),
    Account(String, i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_valid_and_follow_the_mix() {
        let w = Workload::new("lgtest", 2, 5, 3, 0.5);
        let mut rng = rand::rng();
        let mut fails = 0;
        for _ in 0..400 {
            let o = w.next_order(&mut rng);
            let v: serde_json::Value = serde_json::from_slice(&o.body).unwrap();
            let items = v["items"].as_array().unwrap();
            assert!(!items.is_empty() && items.len() <= 4);
            let mut skus: Vec<&str> = items.iter().map(|i| i["sku"].as_str().unwrap()).collect();
            skus.sort();
            skus.dedup();
            assert_eq!(skus.len(), items.len(), "duplicate sku in {v}");
            if o.intent != Intent::Confirm {
                fails += 1;
            }
        }
        assert!((100..300).contains(&fails), "{fails}");
    }

    #[test]
    fn a_skewed_load_gives_the_first_tenant_k_times_each_others_share() {
        let w = Workload::new("lgtest", 3, 5, 3, 0.0).with_skew(10.0);
        let mut rng = rand::rng();
        let mut per_tenant = [0usize; 3];
        for _ in 0..12_000 {
            let o = w.next_order(&mut rng);
            let i = w.tenants.iter().position(|t| t.id == o.tenant).unwrap();
            assert_eq!(
                o.class,
                if i == 0 {
                    TenantClass::Heavy
                } else {
                    TenantClass::Other
                }
            );
            per_tenant[i] += 1;
        }
        // expected 10,000 / 1,000 / 1,000
        assert!((9_500..10_500).contains(&per_tenant[0]), "{per_tenant:?}");
        assert!(
            per_tenant[1..].iter().all(|n| (800..1_200).contains(n)),
            "{per_tenant:?}"
        );
        let even = Workload::new("lgtest", 3, 5, 3, 0.0);
        assert!(!even.skewed());
        assert_eq!(even.next_order(&mut rng).class, TenantClass::Even);
    }
}
