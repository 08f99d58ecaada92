//! The inventory rules, free of I/O: input validation, stock arithmetic, the reservation plan (all
//! lines or none) and what Release / Commit do in each reservation state.

use std::collections::HashSet;

use longship_errors::{Error, FieldError};
use serde::{Deserialize, Serialize};

/// Largest quantity one reservation line may ask for (keeps sums far from overflow).
pub const MAX_LINE_QUANTITY: i64 = 1_000_000;
/// Most lines one reservation may have.
pub const MAX_LINES: usize = 100;

/// Whether `sku` matches `[A-Za-z0-9._-]{1,64}`.
pub fn is_valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `currency` is three upper-case ASCII letters.
pub fn is_valid_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

/// What a client asks to store for one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInput {
    /// The sku (from the path).
    pub sku: String,
    /// Display name, 1-200 characters.
    pub name: String,
    /// Unit price in the currency's minor unit.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Units in the warehouse.
    pub on_hand: i64,
}

/// Validates a product upsert, reporting every failing field.
pub fn validate_product(input: &ProductInput) -> Result<(), Error> {
    let mut fields = Vec::new();
    if !is_valid_sku(&input.sku) {
        fields.push(FieldError::new(
            "sku",
            "format",
            "must match [A-Za-z0-9._-]{1,64}",
        ));
    }
    let name_len = input.name.chars().count();
    if !(1..=200).contains(&name_len)
        || input.name.trim().is_empty()
        || input.name.chars().any(char::is_control)
    {
        fields.push(FieldError::new(
            "name",
            "length",
            "must be 1-200 characters, not blank, no control characters",
        ));
    }
    if input.price_cents < 0 {
        fields.push(FieldError::new("price_cents", "range", "must be >= 0"));
    }
    if !is_valid_currency(&input.currency) {
        fields.push(FieldError::new(
            "currency",
            "format",
            "must be 3 upper-case letters",
        ));
    }
    if input.on_hand < 0 {
        fields.push(FieldError::new("on_hand", "range", "must be >= 0"));
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::validation(fields))
    }
}

/// A product's stock counters. Invariant: `0 <= reserved <= on_hand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevel {
    /// Units in the warehouse (including reserved ones).
    pub on_hand: i64,
    /// Units promised to orders that are not yet committed or released.
    pub reserved: i64,
}

/// Why a stock change is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// Not enough unreserved units.
    #[error("only {available} available")]
    Insufficient {
        /// What is left.
        available: i64,
    },
    /// Releasing or committing more than is reserved (a bug or corrupted data).
    #[error("more than is reserved")]
    NotReserved,
}

impl StockLevel {
    /// Units that may still be reserved.
    pub fn available(self) -> i64 {
        self.on_hand - self.reserved
    }

    /// Reserves `quantity` units.
    pub fn reserve(self, quantity: i64) -> Result<StockLevel, StockError> {
        if quantity > self.available() {
            return Err(StockError::Insufficient {
                available: self.available(),
            });
        }
        Ok(StockLevel {
            reserved: self.reserved + quantity,
            ..self
        })
    }

    /// Returns `quantity` reserved units to the available pool.
    pub fn release(self, quantity: i64) -> Result<StockLevel, StockError> {
        if quantity > self.reserved {
            return Err(StockError::NotReserved);
        }
        Ok(StockLevel {
            reserved: self.reserved - quantity,
            ..self
        })
    }

    /// Ships `quantity` reserved units: they leave both counters.
    pub fn commit(self, quantity: i64) -> Result<StockLevel, StockError> {
        if quantity > self.reserved {
            return Err(StockError::NotReserved);
        }
        Ok(StockLevel {
            on_hand: self.on_hand - quantity,
            reserved: self.reserved - quantity,
        })
    }
}

/// One line a caller asks to reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    /// The sku.
    pub sku: String,
    /// Units, 1..=[`MAX_LINE_QUANTITY`].
    pub quantity: i64,
}

/// One reserved line, as stored with the reservation and sent in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    /// The sku.
    pub sku: String,
    /// Units reserved.
    pub quantity: i64,
    /// The product's price when it was reserved.
    pub unit_price_cents: i64,
}

/// Validates a Reserve request's shape (not the stock): currency format, 1-100 lines, sku format,
/// quantity range, no duplicate sku.
pub fn validate_reserve(currency: &str, lines: &[RequestedLine]) -> Result<(), Error> {
    let mut fields = Vec::new();
    if !is_valid_currency(currency) {
        fields.push(FieldError::new(
            "currency",
            "format",
            "must be 3 upper-case letters",
        ));
    }
    if lines.is_empty() || lines.len() > MAX_LINES {
        fields.push(FieldError::new(
            "lines",
            "length",
            format!("must have 1-{MAX_LINES} lines"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_valid_sku(&line.sku) {
            fields.push(FieldError::new(
                format!("lines[{i}].sku"),
                "format",
                "must match [A-Za-z0-9._-]{1,64}",
            ));
        } else if !seen.insert(line.sku.as_str()) {
            fields.push(FieldError::new(
                format!("lines[{i}].sku"),
                "duplicate",
                "each sku may appear once",
            ));
        }
        if !(1..=MAX_LINE_QUANTITY).contains(&line.quantity) {
            fields.push(FieldError::new(
                format!("lines[{i}].quantity"),
                "range",
                format!("must be 1-{MAX_LINE_QUANTITY}"),
            ));
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::validation(fields))
    }
}

/// A product as the reservation plan sees it (its locked row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductStock {
    /// The sku.
    pub sku: String,
    /// Price currency.
    pub currency: String,
    /// Current unit price.
    pub price_cents: i64,
    /// Counters.
    pub stock: StockLevel,
}

/// Why a reservation is refused (a business outcome, not a fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveRejection {
    /// No product with this sku for the tenant.
    #[error("unknown sku {0}")]
    UnknownSku(String),
    /// The product is priced in another currency.
    #[error("sku {sku} is priced in {product_currency}")]
    CurrencyMismatch {
        /// The sku.
        sku: String,
        /// The product's currency.
        product_currency: String,
    },
    /// Not enough unreserved units.
    #[error("sku {sku}: requested {requested}, available {available}")]
    InsufficientStock {
        /// The sku.
        sku: String,
        /// Units asked for.
        requested: i64,
        /// Units left.
        available: i64,
    },
}

impl From<ReserveRejection> for Error {
    fn from(rejection: ReserveRejection) -> Self {
        let message = rejection.to_string();
        match rejection {
            ReserveRejection::UnknownSku(_) => Error::not_found("inventory.unknown_sku", message),
            ReserveRejection::CurrencyMismatch { .. } => {
                Error::failed_precondition("inventory.currency_mismatch", message)
            }
            ReserveRejection::InsufficientStock { .. } => {
                Error::failed_precondition("inventory.insufficient_stock", message)
            }
        }
    }
}

/// Decides a reservation against the locked products: every line or none. Unknown skus are
/// reported before currency mismatches, and those before missing stock, so the reason a caller sees
/// does not depend on line order. Returns the lines with their unit prices.
pub fn plan_reservation(
    currency: &str,
    lines: &[RequestedLine],
    products: &[ProductStock],
) -> Result<Vec<ReservedLine>, ReserveRejection> {
    let find = |sku: &str| products.iter().find(|p| p.sku == sku);
    if let Some(line) = lines.iter().find(|l| find(&l.sku).is_none()) {
        return Err(ReserveRejection::UnknownSku(line.sku.clone()));
    }
    let matched: Vec<(&RequestedLine, &ProductStock)> = lines
        .iter()
        .filter_map(|l| find(&l.sku).map(|p| (l, p)))
        .collect();
    if let Some((_, p)) = matched.iter().find(|(_, p)| p.currency != currency) {
        return Err(ReserveRejection::CurrencyMismatch {
            sku: p.sku.clone(),
            product_currency: p.currency.clone(),
        });
    }
    matched
        .iter()
        .map(|(line, product)| {
            product.stock.reserve(line.quantity).map_err(|_| {
                ReserveRejection::InsufficientStock {
                    sku: line.sku.clone(),
                    requested: line.quantity,
                    available: product.stock.available(),
                }
            })?;
            Ok(ReservedLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price_cents: product.price_cents,
            })
        })
        .collect()
}

/// The life of a reservation row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Stock is held.
    Reserved,
    /// Released by the saga; stock returned.
    Released,
    /// The order was confirmed; stock left the warehouse.
    Committed,
    /// Nobody confirmed or released it in time; stock returned by the sweep.
    Expired,
    /// A Release arrived before any Reserve; a late Reserve is refused.
    Tombstone,
}

impl ReservationStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "RESERVED",
            ReservationStatus::Released => "RELEASED",
            ReservationStatus::Committed => "COMMITTED",
            ReservationStatus::Expired => "EXPIRED",
            ReservationStatus::Tombstone => "TOMBSTONE",
        }
    }

    /// Parses the stored text.
    pub fn parse(raw: &str) -> Option<ReservationStatus> {
        Some(match raw {
            "RESERVED" => ReservationStatus::Reserved,
            "RELEASED" => ReservationStatus::Released,
            "COMMITTED" => ReservationStatus::Committed,
            "EXPIRED" => ReservationStatus::Expired,
            "TOMBSTONE" => ReservationStatus::Tombstone,
            _ => return None,
        })
    }
}

/// What a Reserve for an order that already has a row does.
pub fn replay_reserve(status: ReservationStatus) -> Result<(), Error> {
    match status {
        ReservationStatus::Reserved | ReservationStatus::Committed => Ok(()),
        ReservationStatus::Released | ReservationStatus::Expired | ReservationStatus::Tombstone => {
            Err(Error::failed_precondition(
                "inventory.reservation_released",
                "the reservation for this order was already released",
            ))
        }
    }
}

/// Why a reservation is being released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// The saga compensated (gRPC `Release`).
    Requested,
    /// The TTL passed (the sweep).
    Expired,
}

/// What to do on a release, given the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseAction {
    /// Return the stock and move to the given status.
    Release(ReservationStatus),
    /// Nothing to do; answer with this outcome.
    Nothing(ReleaseOutcome),
    /// No row: record a tombstone.
    Tombstone,
}

/// The outcome `Release` answers (the proto's `outcome` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Stock returned now.
    Released,
    /// Released or expired before.
    AlreadyReleased,
    /// Nothing was reserved; a tombstone refuses a late Reserve.
    Tombstoned,
    /// Too late: the order was confirmed and the stock committed.
    Committed,
}

impl ReleaseOutcome {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseOutcome::Released => "RELEASED",
            ReleaseOutcome::AlreadyReleased => "ALREADY_RELEASED",
            ReleaseOutcome::Tombstoned => "TOMBSTONED",
            ReleaseOutcome::Committed => "COMMITTED",
        }
    }
}

/// Decides a release. The sweep never records tombstones and only expires what is still reserved.
pub fn decide_release(current: Option<ReservationStatus>, reason: ReleaseReason) -> ReleaseAction {
    use ReservationStatus as S;
    match (current, reason) {
        (Some(S::Reserved), ReleaseReason::Requested) => ReleaseAction::Release(S::Released),
        (Some(S::Reserved), ReleaseReason::Expired) => ReleaseAction::Release(S::Expired),
        (Some(S::Released | S::Expired), _) => {
            ReleaseAction::Nothing(ReleaseOutcome::AlreadyReleased)
        }
        (Some(S::Committed), _) => ReleaseAction::Nothing(ReleaseOutcome::Committed),
        (Some(S::Tombstone), _) => ReleaseAction::Nothing(ReleaseOutcome::Tombstoned),
        (None, ReleaseReason::Requested) => ReleaseAction::Tombstone,
        (None, ReleaseReason::Expired) => ReleaseAction::Nothing(ReleaseOutcome::AlreadyReleased),
    }
}

/// The outcome of a commit (the proto's `outcome` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stock left the warehouse now.
    Committed,
    /// Committed before; nothing changed.
    AlreadyCommitted,
    /// Nothing is reserved for the order (released, expired, tombstoned or never reserved).
    NotReserved,
}

impl CommitOutcome {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitOutcome::Committed => "COMMITTED",
            CommitOutcome::AlreadyCommitted => "ALREADY_COMMITTED",
            CommitOutcome::NotReserved => "NOT_RESERVED",
        }
    }
}

/// Decides a commit from the current row: only a held reservation commits.
pub fn decide_commit(current: Option<ReservationStatus>) -> CommitOutcome {
    match current {
        Some(ReservationStatus::Reserved) => CommitOutcome::Committed,
        Some(ReservationStatus::Committed) => CommitOutcome::AlreadyCommitted,
        _ => CommitOutcome::NotReserved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn product(sku: &str, currency: &str, on_hand: i64, reserved: i64) -> ProductStock {
        ProductStock {
            sku: sku.into(),
            currency: currency.into(),
            price_cents: 100,
            stock: StockLevel { on_hand, reserved },
        }
    }

    fn line(sku: &str, quantity: i64) -> RequestedLine {
        RequestedLine {
            sku: sku.into(),
            quantity,
        }
    }

    #[test]
    fn sku_and_currency_formats() {
        for ok in ["A", "SKU-1", "a.b_c-9", &"x".repeat(64)] {
            assert!(is_valid_sku(ok), "{ok}");
        }
        for bad in ["", "sku 1", "sku/1", "ü", &"x".repeat(65)] {
            assert!(!is_valid_sku(bad), "{bad}");
        }
        assert!(is_valid_currency("USD"));
        for bad in ["usd", "US", "USDD", "U$D", ""] {
            assert!(!is_valid_currency(bad), "{bad}");
        }
    }

    #[test]
    fn product_validation_lists_every_field() {
        let input = ProductInput {
            sku: "bad sku".into(),
            name: String::new(),
            price_cents: -1,
            currency: "usd".into(),
            on_hand: -5,
        };
        let err = validate_product(&input).expect_err("invalid");
        let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["sku", "name", "price_cents", "currency", "on_hand"]
        );
        let ok = ProductInput {
            sku: "SKU-1".into(),
            name: "Widget".into(),
            price_cents: 0,
            currency: "EUR".into(),
            on_hand: 0,
        };
        assert!(validate_product(&ok).is_ok());
    }

    #[test]
    fn reserve_validation_catches_duplicates_and_zero_quantities() {
        let err = validate_reserve("USD", &[line("A", 1), line("A", 2), line("B", 0)])
            .expect_err("invalid");
        let fields: Vec<(&str, &str)> = err
            .fields()
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("lines[1].sku", "duplicate"),
                ("lines[2].quantity", "range")
            ]
        );
        assert!(validate_reserve("USD", &[]).is_err());
        assert!(validate_reserve("usd", &[line("A", 1)]).is_err());
        assert!(validate_reserve("USD", &[line("A", 1), line("B", MAX_LINE_QUANTITY)]).is_ok());
    }

    #[test]
    fn plan_reports_unknown_before_currency_before_stock() {
        let products = [product("A", "USD", 1, 0), product("B", "EUR", 10, 0)];
        let lines = [line("A", 5), line("B", 1), line("C", 1)];
        assert_eq!(
            plan_reservation("USD", &lines, &products),
            Err(ReserveRejection::UnknownSku("C".into()))
        );
        assert!(matches!(
            plan_reservation("USD", &lines[..2], &products),
            Err(ReserveRejection::CurrencyMismatch { sku, .. }) if sku == "B"
        ));
        assert!(matches!(
            plan_reservation("USD", &lines[..1], &products),
            Err(ReserveRejection::InsufficientStock {
                requested: 5,
                available: 1,
                ..
            })
        ));
        let planned = plan_reservation("USD", &[line("A", 1)], &products).expect("fits");
        assert_eq!(
            planned,
            [ReservedLine {
                sku: "A".into(),
                quantity: 1,
                unit_price_cents: 100
            }]
        );
    }

    #[test]
    fn rejections_carry_stable_codes() {
        let codes: Vec<(tonic::Code, String)> = [
            ReserveRejection::UnknownSku("A".into()),
            ReserveRejection::CurrencyMismatch {
                sku: "A".into(),
                product_currency: "EUR".into(),
            },
            ReserveRejection::InsufficientStock {
                sku: "A".into(),
                requested: 2,
                available: 1,
            },
        ]
        .into_iter()
        .map(|r| {
            let err = Error::from(r);
            (err.kind().grpc_code(), err.code().to_owned())
        })
        .collect();
        assert_eq!(
            codes,
            [
                (tonic::Code::NotFound, "inventory.unknown_sku".to_owned()),
                (
                    tonic::Code::FailedPrecondition,
                    "inventory.currency_mismatch".to_owned()
                ),
                (
                    tonic::Code::FailedPrecondition,
                    "inventory.insufficient_stock".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn release_and_commit_decisions() {
        use ReservationStatus as S;
        assert_eq!(
            decide_release(Some(S::Reserved), ReleaseReason::Requested),
            ReleaseAction::Release(S::Released)
        );
        assert_eq!(
            decide_release(Some(S::Reserved), ReleaseReason::Expired),
            ReleaseAction::Release(S::Expired)
        );
        assert_eq!(
            decide_release(Some(S::Expired), ReleaseReason::Requested),
            ReleaseAction::Nothing(ReleaseOutcome::AlreadyReleased)
        );
        assert_eq!(
            decide_release(Some(S::Committed), ReleaseReason::Expired),
            ReleaseAction::Nothing(ReleaseOutcome::Committed)
        );
        assert_eq!(
            decide_release(None, ReleaseReason::Requested),
            ReleaseAction::Tombstone
        );
        assert_eq!(
            decide_release(None, ReleaseReason::Expired),
            ReleaseAction::Nothing(ReleaseOutcome::AlreadyReleased)
        );
        assert_eq!(
            decide_release(Some(S::Tombstone), ReleaseReason::Requested),
            ReleaseAction::Nothing(ReleaseOutcome::Tombstoned)
        );
        assert_eq!(decide_commit(Some(S::Reserved)), CommitOutcome::Committed);
        assert_eq!(
            decide_commit(Some(S::Committed)),
            CommitOutcome::AlreadyCommitted
        );
        for other in [
            None,
            Some(S::Released),
            Some(S::Expired),
            Some(S::Tombstone),
        ] {
            assert_eq!(decide_commit(other), CommitOutcome::NotReserved);
        }
        for status in [
            S::Reserved,
            S::Released,
            S::Committed,
            S::Expired,
            S::Tombstone,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
        assert!(replay_reserve(S::Reserved).is_ok() && replay_reserve(S::Committed).is_ok());
        for refused in [S::Released, S::Expired, S::Tombstone] {
            assert_eq!(
                replay_reserve(refused).map_err(|e| e.code().to_owned()),
                Err("inventory.reservation_released".into())
            );
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(i64),
        Release(i64),
        Commit(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..50).prop_map(Op::Reserve),
            (0i64..50).prop_map(Op::Release),
            (0i64..50).prop_map(Op::Commit),
        ]
    }

    proptest! {
        #[test]
        fn stock_counters_never_leave_their_bounds(on_hand in 0i64..200, ops in prop::collection::vec(op(), 0..60)) {
            let mut level = StockLevel { on_hand, reserved: 0 };
            let mut shipped = 0;
            for op in ops {
                let next = match op {
                    Op::Reserve(q) => level.reserve(q),
                    Op::Release(q) => level.release(q),
                    Op::Commit(q) => level.commit(q).inspect(|_| shipped += q),
                };
                if let Ok(next) = next {
                    level = next;
                }
                prop_assert!(0 <= level.reserved && level.reserved <= level.on_hand, "{level:?}");
                prop_assert_eq!(level.on_hand + shipped, on_hand);
            }
        }

        #[test]
        fn a_plan_is_all_or_nothing(
            stock in prop::collection::vec((0i64..20, 0i64..20), 1..6),
            wanted in prop::collection::vec(1i64..25, 1..6),
        ) {
            let products: Vec<ProductStock> = stock
                .iter()
                .enumerate()
                .map(|(i, (extra, reserved))| product(&format!("S{i}"), "USD", reserved + extra, *reserved))
                .collect();
            let lines: Vec<RequestedLine> =
                wanted.iter().enumerate().map(|(i, q)| line(&format!("S{i}"), *q)).collect();
            let result = plan_reservation("USD", &lines, &products);
            let unknown = lines.iter().any(|l| !products.iter().any(|p| p.sku == l.sku));
            let short = lines.iter().zip(&products).any(|(l, p)| l.quantity > p.stock.available());
            match result {
                Ok(planned) => {
                    prop_assert!(!unknown && !short);
                    prop_assert_eq!(planned.len(), lines.len());
                    for (planned, product) in planned.iter().zip(&products) {
                        let after = product.stock.reserve(planned.quantity);
                        prop_assert!(after.is_ok_and(|s| s.reserved <= s.on_hand));
                    }
                }
                Err(ReserveRejection::UnknownSku(_)) => prop_assert!(unknown),
                Err(ReserveRejection::InsufficientStock { .. }) => prop_assert!(!unknown && short),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
