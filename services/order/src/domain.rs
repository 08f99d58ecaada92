//! Order rules with no I/O: what an order is made of, request validation, the idempotency
//! fingerprint, totals, why an order fails, and the service's error codes.

use longship_errors::{FieldError, Fields};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::ToSchema;

longship_errors::error_codes! {
    /// The order service's own error codes (the platform's are `longship_errors::PlatformCode`).
    pub enum OrderCode in "order" from "../../docs/errors.md"
}

/// Why an order was cancelled (`failure_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// A line asked for more than was available.
    InsufficientStock,
    /// A sku is not in the catalogue.
    UnknownSku,
    /// The payment was declined (insufficient funds, no account).
    PaymentDeclined,
    /// A product or the account is in another currency than the order.
    CurrencyMismatch,
    /// The saga did not finish by its deadline.
    Timeout,
    /// An operator cancelled it.
    OperatorCancelled,
    /// The total cannot be represented (quantity x unit price overflows).
    AmountOutOfRange,
}

impl FailureReason {
    /// Every reason.
    pub const ALL: [FailureReason; 7] = [
        FailureReason::InsufficientStock,
        FailureReason::UnknownSku,
        FailureReason::PaymentDeclined,
        FailureReason::CurrencyMismatch,
        FailureReason::Timeout,
        FailureReason::OperatorCancelled,
        FailureReason::AmountOutOfRange,
    ];

    /// The stored and shown text.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::InsufficientStock => "insufficient_stock",
            FailureReason::UnknownSku => "unknown_sku",
            FailureReason::PaymentDeclined => "payment_declined",
            FailureReason::CurrencyMismatch => "currency_mismatch",
            FailureReason::Timeout => "timeout",
            FailureReason::OperatorCancelled => "operator_cancelled",
            FailureReason::AmountOutOfRange => "amount_out_of_range",
        }
    }
}

/// An order line as stored, published and shown (prices filled in once stock is reserved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[schema(as = OrderItem)]
pub struct OrderLine {
    /// The sku.
    pub sku: String,
    /// Quantity.
    pub quantity: u32,
    /// Price per unit in minor units; null until stock is reserved.
    pub unit_price_cents: Option<i64>,
}

/// Most items in one order.
pub const MAX_ITEMS: usize = 100;
/// Largest quantity of one item.
pub const MAX_QUANTITY: u32 = 1000;

/// `POST /v1/orders` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// The paying customer (1-64 characters, no control characters).
    #[schema(
        example = "c-1",
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub customer_id: String,
    /// ISO 4217 code, three upper-case letters.
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// 1-100 lines, each sku once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<RequestedItem>,
}

/// One requested line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedItem {
    /// `[A-Za-z0-9._-]{1,64}`.
    #[schema(example = "SKU-1", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// 1-1000.
    #[schema(example = 2, minimum = 1, maximum = 1000)]
    pub quantity: u32,
}

/// Checks every rule of the contract and reports every failing field at once.
pub fn validate(request: &PlaceOrderRequest) -> Result<(), Vec<FieldError>> {
    let mut fields = Fields::new();
    fields.customer_id("customer_id", &request.customer_id);
    fields.check(
        valid_currency(&request.currency),
        "currency",
        "format",
        "must be 3 upper-case letters (ISO 4217)",
    );
    let items = request.items.iter();
    let items = items.map(|i| (i.sku.as_str(), i64::from(i.quantity)));
    fields.sku_lines("items", items, MAX_ITEMS, i64::from(MAX_QUANTITY));
    let errors = fields.into_vec();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub use longship_errors::fields::{is_valid_currency as valid_currency, is_valid_sku as valid_sku};

/// `Idempotency-Key`: 1-255 printable ASCII characters.
pub fn valid_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A fingerprint of the request's meaning: the same key with a different body is refused.
pub fn fingerprint(request: &PlaceOrderRequest) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&canonical))
}

/// Sum of quantity x unit price, refusing overflow.
pub fn total_cents(lines: &[(u32, i64)]) -> Option<i64> {
    lines.iter().try_fold(0i64, |acc, (q, price)| {
        acc.checked_add(price.checked_mul(i64::from(*q))?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(items: Vec<(&str, u32)>) -> PlaceOrderRequest {
        PlaceOrderRequest {
            customer_id: "c-1".into(),
            currency: "USD".into(),
            items: items
                .into_iter()
                .map(|(s, q)| RequestedItem {
                    sku: s.into(),
                    quantity: q,
                })
                .collect(),
        }
    }

    #[test]
    fn valid_request_passes() {
        assert!(validate(&request(vec![("SKU-1", 2), ("sku.2_b", 1000)])).is_ok());
    }

    #[test]
    fn every_rule_reports_its_field() {
        let mut bad = request(vec![("SKU-1", 0), ("SKU-1", 1), ("bad sku!", 1001)]);
        bad.customer_id = String::new();
        bad.currency = "usd".into();
        let fields: Vec<String> = validate(&bad)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.field)
            .collect();
        for expected in [
            "customer_id",
            "currency",
            "items[0].quantity",
            "items[1].sku",
            "items[2].sku",
            "items[2].quantity",
        ] {
            assert!(
                fields.contains(&expected.to_string()),
                "{expected} missing in {fields:?}"
            );
        }
        assert!(validate(&request(vec![])).is_err());
        let many: Vec<(String, u32)> = (0..101).map(|i| (format!("S{i}"), 1)).collect();
        let many = PlaceOrderRequest {
            items: many
                .into_iter()
                .map(|(s, q)| RequestedItem {
                    sku: s,
                    quantity: q,
                })
                .collect(),
            ..request(vec![])
        };
        assert!(validate(&many).is_err());
    }

    #[test]
    fn idempotency_keys() {
        assert!(valid_idempotency_key("abc-123 ~!"));
        assert!(!valid_idempotency_key(""));
        assert!(!valid_idempotency_key(&"k".repeat(256)));
        assert!(!valid_idempotency_key("tab\there"));
        assert!(!valid_idempotency_key("ключ"));
    }

    #[test]
    fn fingerprints_differ_with_the_body() {
        let a = request(vec![("SKU-1", 1)]);
        let b = request(vec![("SKU-1", 2)]);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn the_codes_are_in_the_catalogue() {
        let catalogue = include_str!("../../../docs/errors.md");
        if let Err(e) = longship_errors::check_catalogue::<OrderCode>(catalogue) {
            panic!("{e}");
        }
    }

    #[test]
    fn reasons_are_the_stored_texts() {
        let texts: Vec<&str> = FailureReason::ALL.iter().map(|r| r.as_str()).collect();
        // the orders table's CHECK lists the same set (migrations/order/0001_init.sql)
        let schema = include_str!("../../../migrations/order/0001_init.sql");
        for text in texts {
            assert!(
                schema.contains(&format!("'{text}'")),
                "{text} missing from the CHECK"
            );
        }
    }

    proptest! {
        #[test]
        fn total_is_the_exact_sum_or_refuses_overflow(lines in proptest::collection::vec((1u32..=1000, 0i64..=10_000_000_000), 0..100)) {
            let expected: i128 = lines.iter().map(|(q, p)| i128::from(*q) * i128::from(*p)).sum();
            match total_cents(&lines) {
                Some(t) => prop_assert_eq!(i128::from(t), expected),
                None => prop_assert!(expected > i128::from(i64::MAX)),
            }
        }

        #[test]
        fn validation_never_panics(customer in "\\PC{0,80}", currency in "\\PC{0,5}", sku in "\\PC{0,70}", q in 0u32..2000) {
            let r = PlaceOrderRequest { customer_id: customer, currency, items: vec![RequestedItem { sku, quantity: q }] };
            let _ = validate(&r);
        }
    }
}
