//! Request validation that reports every failing field at once ([`Fields`]), and the field rules
//! the services share: a currency code, a sku, a customer id and a list of sku lines.

use std::collections::HashSet;

use crate::{Error, FieldError};

/// Whether `currency` is three upper-case ASCII letters (the shape of an ISO 4217 code).
pub fn is_valid_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

/// Whether `sku` matches `[A-Za-z0-9._-]{1,64}`.
pub fn is_valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `customer_id` has 1-64 characters and no control characters (a NUL could not even be
/// stored).
pub fn is_valid_customer_id(customer_id: &str) -> bool {
    (1..=64).contains(&customer_id.chars().count()) && !customer_id.chars().any(char::is_control)
}

/// The failing fields of one request, collected so that a client sees every one of them at once;
/// [`Fields::finish`] turns them into a 422 `request.invalid` [`Error`].
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// No failing field yet.
    pub fn new() -> Fields {
        Fields::default()
    }

    /// Records that `field` breaks `rule` unless `ok`.
    pub fn check(
        &mut self,
        ok: bool,
        field: impl Into<String>,
        rule: &str,
        message: impl Into<String>,
    ) {
        if !ok {
            self.0.push(FieldError::new(field, rule, message));
        }
    }

    /// `field` must be three upper-case letters.
    pub fn currency(&mut self, field: &str, value: &str) {
        let ok = is_valid_currency(value);
        self.check(ok, field, "format", "must be 3 upper-case letters");
    }

    /// `field` must match `[A-Za-z0-9._-]{1,64}`.
    pub fn sku(&mut self, field: impl Into<String>, value: &str) {
        let ok = is_valid_sku(value);
        self.check(ok, field, "format", "must match [A-Za-z0-9._-]{1,64}");
    }

    /// `field` must have 1-64 characters and no control characters.
    pub fn customer_id(&mut self, field: &str, value: &str) {
        let ok = is_valid_customer_id(value);
        let message = "must be 1-64 characters, no control characters";
        self.check(ok, field, "length", message);
    }

    /// `field` is a list of `(sku, quantity)` lines: 1 to `max_lines` of them, each sku well-formed
    /// and present once, each quantity 1 to `max_quantity`. A line's fields are named
    /// `field[i].sku` and `field[i].quantity`.
    pub fn sku_lines<'a>(
        &mut self,
        field: &str,
        lines: impl ExactSizeIterator<Item = (&'a str, i64)>,
        max_lines: usize,
        max_quantity: i64,
    ) {
        let count = lines.len();
        let message = format!("must have 1-{max_lines} {field}");
        self.check((1..=max_lines).contains(&count), field, "length", message);
        let mut seen = HashSet::new();
        for (i, (sku, quantity)) in lines.enumerate() {
            if !is_valid_sku(sku) {
                self.sku(format!("{field}[{i}].sku"), sku);
            } else if !seen.insert(sku) {
                let message = "each sku may appear once";
                self.check(false, format!("{field}[{i}].sku"), "duplicate", message);
            }
            let in_range = (1..=max_quantity).contains(&quantity);
            let message = format!("must be 1-{max_quantity}");
            self.check(in_range, format!("{field}[{i}].quantity"), "range", message);
        }
    }

    /// The failing fields, in the order they were found.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    /// `Ok` when no field failed, else a 422 `request.invalid` listing every failing field.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(fields: Fields) -> Vec<(String, String)> {
        let all = fields.into_vec().into_iter();
        all.map(|f| (f.field, f.code)).collect()
    }

    #[test]
    fn the_shared_rules_accept_and_refuse() {
        assert!(is_valid_currency("USD"));
        for bad in ["usd", "US", "USDD", "", "U$D", "ÜSD"] {
            assert!(!is_valid_currency(bad), "{bad}");
        }
        for ok in ["SKU-1", "a.b_c", &"x".repeat(64)] {
            assert!(is_valid_sku(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65), "a\0"] {
            assert!(!is_valid_sku(bad), "{bad}");
        }
        assert!(is_valid_customer_id("c-1") && is_valid_customer_id(&"é".repeat(64)));
        for bad in [String::new(), "x".repeat(65), "a\0b".into(), "a\nb".into()] {
            assert!(!is_valid_customer_id(&bad), "{bad:?}");
        }
    }

    #[test]
    fn every_failing_field_is_reported_and_none_is_ok() {
        let mut fields = Fields::new();
        fields.currency("currency", "USD");
        fields.customer_id("customer_id", "c-1");
        fields.sku_lines("lines", [("A", 1), ("B", 7)].into_iter(), 2, 7);
        assert!(fields.finish().is_ok());

        let mut fields = Fields::new();
        fields.currency("currency", "usd");
        fields.customer_id("customer_id", "");
        let lines = [("A", 1), ("A", 2), ("bad sku", 0), ("C", 8)];
        fields.sku_lines("lines", lines.into_iter(), 3, 7);
        assert_eq!(
            named(fields),
            [
                ("currency", "format"),
                ("customer_id", "length"),
                ("lines", "length"),
                ("lines[1].sku", "duplicate"),
                ("lines[2].sku", "format"),
                ("lines[2].quantity", "range"),
                ("lines[3].quantity", "range"),
            ]
            .map(|(f, c)| (f.to_owned(), c.to_owned()))
        );
    }

    #[test]
    fn an_empty_list_is_too_short_and_finish_is_a_validation_error() {
        let mut fields = Fields::new();
        fields.sku_lines("items", std::iter::empty(), 100, 1000);
        let error = fields.finish().expect_err("empty");
        assert_eq!(error.kind(), crate::Kind::Validation);
        assert_eq!(error.fields()[0].field, "items");
        assert_eq!(error.fields()[0].message, "must have 1-100 items");
    }
}
