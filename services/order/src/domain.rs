//! Order rules with no I/O: request validation, the idempotency fingerprint, and how participants'
//! refusals become an order's failure reason.

use longship_errors::FieldError;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::ToSchema;

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
    let mut errors = Vec::new();
    let customer_len = request.customer_id.chars().count();
    if customer_len == 0 || customer_len > 64 || request.customer_id.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "customer_id",
            "length",
            "must be 1-64 characters, no control characters",
        ));
    }
    if !(request.currency.len() == 3 && request.currency.bytes().all(|b| b.is_ascii_uppercase())) {
        errors.push(FieldError::new(
            "currency",
            "format",
            "must be 3 upper-case letters (ISO 4217)",
        ));
    }
    if request.items.is_empty() || request.items.len() > MAX_ITEMS {
        errors.push(FieldError::new(
            "items",
            "length",
            format!("must have 1-{MAX_ITEMS} items"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, item) in request.items.iter().enumerate() {
        if !valid_sku(&item.sku) {
            errors.push(FieldError::new(
                format!("items[{i}].sku"),
                "format",
                "must match [A-Za-z0-9._-]{1,64}",
            ));
        } else if !seen.insert(item.sku.as_str()) {
            errors.push(FieldError::new(
                format!("items[{i}].sku"),
                "duplicate",
                "each sku may appear once",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                "range",
                format!("must be 1-{MAX_QUANTITY}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `[A-Za-z0-9._-]{1,64}`.
pub fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// `Idempotency-Key`: 1-255 printable ASCII characters.
pub fn valid_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A fingerprint of the request's meaning: the same key with a different body is refused.
pub fn fingerprint(request: &PlaceOrderRequest) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&canonical))
}

/// The failure reason an order gets from a participant's error code.
pub fn failure_reason(code: &str, step: &str) -> &'static str {
    match code {
        "inventory.unknown_sku" => "unknown_sku",
        "inventory.insufficient_stock" => "insufficient_stock",
        "inventory.currency_mismatch" | "payment.currency_mismatch" => "currency_mismatch",
        "inventory.reservation_released" | "payment.voided" => "timeout",
        _ if step == "AuthorizePayment" => "payment_declined",
        _ => "insufficient_stock",
    }
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
    fn reasons() {
        assert_eq!(
            failure_reason("inventory.unknown_sku", "ReserveStock"),
            "unknown_sku"
        );
        assert_eq!(
            failure_reason("payment.declined", "AuthorizePayment"),
            "payment_declined"
        );
        assert_eq!(
            failure_reason("payment.currency_mismatch", "AuthorizePayment"),
            "currency_mismatch"
        );
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
