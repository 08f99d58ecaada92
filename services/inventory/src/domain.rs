//! The inventory rules, free of I/O: input validation, stock arithmetic, the reservation plan (all
//! lines or none) and what Release / Commit do in each reservation state.

use longship_errors::{Error, Fields};
use longship_saga::hold::Held;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

longship_errors::error_codes! {
    /// The inventory service's own error codes (the platform's are `longship_errors::PlatformCode`).
    pub enum InventoryCode in "inventory" from "../../docs/errors.md"
}

/// Largest quantity one reservation line may ask for (keeps sums far from overflow).
pub const MAX_LINE_QUANTITY: i64 = 1_000_000;
/// Most lines one reservation may have.
pub const MAX_LINES: usize = 100;

pub use longship_errors::fields::{is_valid_currency, is_valid_sku};

/// What a client asks to store for one product: the body of `PUT /v1/products/{sku}` and the sku
/// its path names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[schema(as = PutProductRequest, description = "The body of `PUT /v1/products/{sku}`.")]
pub struct ProductInput {
    /// The sku (from the path, not the body).
    #[serde(skip_deserializing)]
    pub sku: String,
    /// Display name, 1-200 characters, not blank, no control characters.
    #[schema(
        example = "Blue widget",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// Unit price in the currency's minor unit (>= 1: a product that costs nothing could never be
    /// paid for).
    #[schema(example = 1250, minimum = 1)]
    pub price_cents: i64,
    /// ISO 4217 code (3 upper-case letters).
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Units in the warehouse (>= 0 and not below the units currently reserved).
    #[schema(example = 100, minimum = 0)]
    pub on_hand: i64,
}

/// Validates a product upsert, reporting every failing field.
pub fn validate_product(input: &ProductInput) -> Result<(), Error> {
    let mut fields = Fields::new();
    fields.sku("sku", &input.sku);
    let name_len = input.name.chars().count();
    fields.check(
        (1..=200).contains(&name_len)
            && !input.name.trim().is_empty()
            && !input.name.chars().any(char::is_control),
        "name",
        "length",
        "must be 1-200 characters, not blank, no control characters",
    );
    // a product that costs nothing could never be paid for (a payment authorizes at least one
    // minor unit): give-aways are a discount's business, not a price of 0
    fields.check(
        input.price_cents >= 1,
        "price_cents",
        "range",
        "must be >= 1",
    );
    fields.currency("currency", &input.currency);
    fields.check(input.on_hand >= 0, "on_hand", "range", "must be >= 0");
    fields.finish()
}

longship_saga::holding! {
    /// A product's stock counters. Invariant: `0 <= reserved <= on_hand`.
    pub struct StockLevel {
        /// Units in the warehouse (including reserved ones).
        total: on_hand,
        /// Units promised to orders that are not yet committed or released.
        held: reserved,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    let mut fields = Fields::new();
    fields.currency("currency", currency);
    let lines = lines.iter().map(|l| (l.sku.as_str(), l.quantity));
    fields.sku_lines("lines", lines, MAX_LINES, MAX_LINE_QUANTITY);
    fields.finish()
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
            ReserveRejection::UnknownSku(_) => Error::coded(InventoryCode::UnknownSku, message),
            ReserveRejection::CurrencyMismatch { .. } => {
                Error::coded(InventoryCode::CurrencyMismatch, message)
            }
            ReserveRejection::InsufficientStock { .. } => {
                Error::coded(InventoryCode::InsufficientStock, message)
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
            product
                .stock
                .hold(line.quantity)
                .map_err(|_| ReserveRejection::InsufficientStock {
                    sku: line.sku.clone(),
                    requested: line.quantity,
                    available: product.stock.available(),
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
    pub const fn as_str(self) -> &'static str {
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
            Err(Error::coded(
                InventoryCode::ReservationReleased,
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
mod tests;
