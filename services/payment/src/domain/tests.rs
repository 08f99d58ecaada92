//! The payment rules, case by case and over random inputs.

use super::*;
use proptest::prelude::*;

fn account(currency: &str, balance_cents: i64, held_cents: i64) -> Account {
    Account {
        currency: currency.into(),
        funds: Funds {
            balance_cents,
            held_cents,
        },
    }
}

#[test]
fn validation_lists_every_field() {
    let err = validate_account(&AccountInput {
        customer_id: String::new(),
        balance_cents: -1,
        currency: "usd".into(),
    })
    .expect_err("invalid");
    let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["customer_id", "balance_cents", "currency"]);
    assert!(
        validate_account(&AccountInput {
            customer_id: "c".repeat(64),
            balance_cents: 0,
            currency: "EUR".into()
        })
        .is_ok()
    );
    assert!(
        validate_account(&AccountInput {
            customer_id: "c".repeat(65),
            balance_cents: 0,
            currency: "EUR".into()
        })
        .is_err()
    );
    let err = validate_authorize("c-1", 0, "USD").expect_err("zero amount");
    assert_eq!(err.fields()[0].field, "amount_cents");
    assert!(validate_authorize("c-1", 1, "USD").is_ok());
}

#[test]
fn authorization_declines_with_stable_codes() {
    assert_eq!(authorize(None, "USD", 1), Err(Decline::NoAccount));
    assert_eq!(
        authorize(Some(&account("EUR", 100, 0)), "USD", 1),
        Err(Decline::CurrencyMismatch)
    );
    assert_eq!(
        authorize(Some(&account("USD", 100, 60)), "USD", 41),
        Err(Decline::InsufficientFunds)
    );
    assert_eq!(
        authorize(Some(&account("USD", 100, 60)), "USD", 40),
        Ok(Funds {
            balance_cents: 100,
            held_cents: 100
        })
    );
    let codes: Vec<String> = [
        Decline::NoAccount,
        Decline::CurrencyMismatch,
        Decline::InsufficientFunds,
    ]
    .iter()
    .map(|d| {
        assert_eq!(Decline::parse(d.as_str()).as_ref(), Some(d));
        let err = d.error();
        assert_eq!(err.kind().grpc_code(), tonic::Code::FailedPrecondition);
        err.code().to_owned()
    })
    .collect();
    assert_eq!(
        codes,
        [
            "payment.declined",
            "payment.currency_mismatch",
            "payment.declined"
        ]
    );
}

#[test]
fn account_updates_keep_holds_covered() {
    let held = account("USD", 100, 40);
    let input = |balance_cents, currency: &str| AccountInput {
        customer_id: "c".into(),
        balance_cents,
        currency: currency.into(),
    };
    assert!(check_account_update(None, &input(0, "USD")).is_ok());
    assert!(check_account_update(Some(&held), &input(40, "USD")).is_ok());
    assert_eq!(
        check_account_update(Some(&held), &input(39, "USD")).map_err(|e| e.code().to_owned()),
        Err("payment.balance_below_held".into())
    );
    assert_eq!(
        check_account_update(Some(&held), &input(100, "EUR")).map_err(|e| e.code().to_owned()),
        Err("payment.currency_change_with_hold".into())
    );
    assert!(check_account_update(Some(&account("USD", 100, 0)), &input(5, "EUR")).is_ok());
}

#[test]
fn void_and_capture_decisions() {
    use PaymentStatus as S;
    assert_eq!(decide_void(Some(S::Authorized)), VoidAction::Void);
    assert_eq!(
        decide_void(Some(S::Voided)),
        VoidAction::Nothing(VoidOutcome::AlreadyVoided)
    );
    assert_eq!(
        decide_void(Some(S::Declined)),
        VoidAction::Nothing(VoidOutcome::AlreadyVoided)
    );
    assert_eq!(
        decide_void(Some(S::Captured)),
        VoidAction::Nothing(VoidOutcome::Captured)
    );
    assert_eq!(decide_void(None), VoidAction::Tombstone);
    assert_eq!(decide_capture(Some(S::Authorized)), CaptureAction::Capture);
    assert_eq!(
        decide_capture(Some(S::Captured)),
        CaptureAction::AlreadyCaptured
    );
    for other in [None, Some(S::Voided), Some(S::Declined)] {
        assert_eq!(decide_capture(other), CaptureAction::NotCapturable);
    }
    for status in [S::Authorized, S::Captured, S::Voided, S::Declined] {
        assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
    }
}

proptest! {
    #[test]
    fn an_authorization_holds_exactly_the_amount_or_nothing(
        balance in 0i64..10_000, held_fraction in 0i64..=100, amount in 1i64..12_000,
    ) {
        let held = balance * held_fraction / 100;
        let before = account("USD", balance, held);
        match authorize(Some(&before), "USD", amount) {
            Ok(after) => {
                prop_assert!(amount <= balance - held);
                prop_assert_eq!(after, Funds { balance_cents: balance, held_cents: held + amount });
            }
            Err(decline) => {
                prop_assert_eq!(decline, Decline::InsufficientFunds);
                prop_assert!(amount > balance - held);
            }
        }
    }
}

#[test]
fn the_codes_are_in_the_catalogue() {
    let catalogue = include_str!("../../../../docs/errors.md");
    if let Err(e) = longship_errors::check_catalogue::<PaymentCode>(catalogue) {
        panic!("{e}");
    }
}
