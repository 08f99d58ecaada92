//! The payment rules, free of I/O: input validation, the funds arithmetic of holds and captures,
//! the authorization decision and what Void / Capture do in each payment state.

use longship_errors::{Error, Fields};
use longship_saga::hold::Held;
use serde::Deserialize;
use utoipa::ToSchema;

longship_errors::error_codes! {
    /// The payment service's own error codes (the platform's are `longship_errors::PlatformCode`).
    pub enum PaymentCode in "payment" from "../../docs/errors.md"
}

/// What a client asks to store for one account: the body of `PUT /v1/accounts/{customer_id}` and
/// the customer its path names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[schema(
    as = PutAccountRequest,
    description = "The body of `PUT /v1/accounts/{customer_id}`."
)]
pub struct AccountInput {
    /// The customer (from the path, not the body).
    #[serde(skip_deserializing)]
    pub customer_id: String,
    /// The balance in the currency's minor unit (>= 0 and not below the held amount).
    #[schema(example = 100_000, minimum = 0)]
    pub balance_cents: i64,
    /// ISO 4217 code (3 upper-case letters); cannot change while money is held.
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

/// Validates an account upsert, reporting every failing field.
pub fn validate_account(input: &AccountInput) -> Result<(), Error> {
    let mut fields = Fields::new();
    fields.customer_id("customer_id", &input.customer_id);
    let balance_ok = input.balance_cents >= 0;
    fields.check(balance_ok, "balance_cents", "range", "must be >= 0");
    fields.currency("currency", &input.currency);
    fields.finish()
}

/// Validates an Authorize request's shape.
pub fn validate_authorize(
    customer_id: &str,
    amount_cents: i64,
    currency: &str,
) -> Result<(), Error> {
    let mut fields = Fields::new();
    fields.customer_id("customer_id", customer_id);
    fields.check(amount_cents > 0, "amount_cents", "range", "must be > 0");
    fields.currency("currency", currency);
    fields.finish()
}

longship_saga::holding! {
    /// An account's money. Invariant: `0 <= held <= balance`.
    pub struct Funds {
        /// Money on the account (including held money).
        total: balance_cents,
        /// Money promised to authorized, not yet captured or voided payments.
        held: held_cents,
    }
}

/// An account as the authorization sees it (its locked row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account's currency.
    pub currency: String,
    /// Its money.
    pub funds: Funds,
}

/// Why an authorization is declined. Each is recorded as a DECLINED payment, so a repeat answers
/// the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decline {
    /// The customer has no account.
    NoAccount,
    /// The account holds another currency.
    CurrencyMismatch,
    /// Balance minus holds is below the amount.
    InsufficientFunds,
}

impl Decline {
    /// The stored `decline_reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decline::NoAccount => "no_account",
            Decline::CurrencyMismatch => "currency_mismatch",
            Decline::InsufficientFunds => "insufficient_funds",
        }
    }

    /// Parses a stored `decline_reason`.
    pub fn parse(raw: &str) -> Option<Decline> {
        Some(match raw {
            "no_account" => Decline::NoAccount,
            "currency_mismatch" => Decline::CurrencyMismatch,
            "insufficient_funds" => Decline::InsufficientFunds,
            _ => return None,
        })
    }

    /// The error the caller receives (FAILED_PRECONDITION with a stable code).
    pub fn error(&self) -> Error {
        match self {
            Decline::NoAccount => Error::coded(
                PaymentCode::Declined,
                "declined: the customer has no account",
            ),
            Decline::CurrencyMismatch => Error::coded(
                PaymentCode::CurrencyMismatch,
                "declined: the account holds another currency",
            ),
            Decline::InsufficientFunds => {
                Error::coded(PaymentCode::Declined, "declined: insufficient funds")
            }
        }
    }
}

/// Decides an authorization: the account's funds after the hold, or why it is declined.
pub fn authorize(
    account: Option<&Account>,
    currency: &str,
    amount_cents: i64,
) -> Result<Funds, Decline> {
    let account = account.ok_or(Decline::NoAccount)?;
    if account.currency != currency {
        return Err(Decline::CurrencyMismatch);
    }
    account
        .funds
        .hold(amount_cents)
        .map_err(|_| Decline::InsufficientFunds)
}

/// Checks an account update against the current row: the new balance must cover what is held, and
/// the currency cannot change while money is held in the old one.
pub fn check_account_update(current: Option<&Account>, input: &AccountInput) -> Result<(), Error> {
    let Some(current) = current else {
        return Ok(());
    };
    if current.currency != input.currency && current.funds.held_cents > 0 {
        return Err(Error::from_code(PaymentCode::CurrencyChangeWithHold));
    }
    if input.balance_cents < current.funds.held_cents {
        return Err(balance_below_held());
    }
    Ok(())
}

/// The error for a balance below the held amount.
pub fn balance_below_held() -> Error {
    Error::from_code(PaymentCode::BalanceBelowHeld)
}

/// The life of a payment row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Funds are held.
    Authorized,
    /// Funds left the account.
    Captured,
    /// The hold was released.
    Voided,
    /// Nothing was held.
    Declined,
}

impl PaymentStatus {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "AUTHORIZED",
            PaymentStatus::Captured => "CAPTURED",
            PaymentStatus::Voided => "VOIDED",
            PaymentStatus::Declined => "DECLINED",
        }
    }

    /// Parses the stored text.
    pub fn parse(raw: &str) -> Option<PaymentStatus> {
        Some(match raw {
            "AUTHORIZED" => PaymentStatus::Authorized,
            "CAPTURED" => PaymentStatus::Captured,
            "VOIDED" => PaymentStatus::Voided,
            "DECLINED" => PaymentStatus::Declined,
            _ => return None,
        })
    }
}

/// The outcome `Void` answers (the proto's `outcome` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoidOutcome {
    /// The hold was released now.
    Voided,
    /// Voided (or declined, so nothing held) before.
    AlreadyVoided,
    /// Nothing was authorized; a tombstone refuses a late Authorize.
    Tombstoned,
    /// Too late: the payment was captured.
    Captured,
}

impl VoidOutcome {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            VoidOutcome::Voided => "VOIDED",
            VoidOutcome::AlreadyVoided => "ALREADY_VOIDED",
            VoidOutcome::Tombstoned => "TOMBSTONED",
            VoidOutcome::Captured => "CAPTURED",
        }
    }
}

/// What to do on a Void, given the order's payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoidAction {
    /// Release the hold.
    Void,
    /// Nothing to do; answer with this outcome.
    Nothing(VoidOutcome),
    /// No payment: record a tombstone.
    Tombstone,
}

/// Decides a Void.
pub fn decide_void(current: Option<PaymentStatus>) -> VoidAction {
    match current {
        Some(PaymentStatus::Authorized) => VoidAction::Void,
        Some(PaymentStatus::Voided | PaymentStatus::Declined) => {
            VoidAction::Nothing(VoidOutcome::AlreadyVoided)
        }
        Some(PaymentStatus::Captured) => VoidAction::Nothing(VoidOutcome::Captured),
        None => VoidAction::Tombstone,
    }
}

/// What a Capture does, given the order's payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureAction {
    /// Take the held money.
    Capture,
    /// Captured before; nothing to do.
    AlreadyCaptured,
    /// Nothing is held for the order (voided, declined or never authorized).
    NotCapturable,
}

/// Decides a Capture: only an authorized payment captures.
pub fn decide_capture(current: Option<PaymentStatus>) -> CaptureAction {
    match current {
        Some(PaymentStatus::Authorized) => CaptureAction::Capture,
        Some(PaymentStatus::Captured) => CaptureAction::AlreadyCaptured,
        _ => CaptureAction::NotCapturable,
    }
}

#[cfg(test)]
mod tests;
