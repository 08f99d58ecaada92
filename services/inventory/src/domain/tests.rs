//! The inventory rules, case by case and over random inputs.

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
        price_cents: 1,
        currency: "EUR".into(),
        on_hand: 0,
    };
    assert!(validate_product(&ok).is_ok());
    // a price of 0 could never be paid for: refused with a field error
    let free = ProductInput {
        price_cents: 0,
        ..ok
    };
    let err = validate_product(&free).expect_err("price 0");
    assert_eq!(err.fields()[0].field, "price_cents");
}

#[test]
fn reserve_validation_catches_duplicates_and_zero_quantities() {
    let err =
        validate_reserve("USD", &[line("A", 1), line("A", 2), line("B", 0)]).expect_err("invalid");
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

proptest! {
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
                    let after = product.stock.hold(planned.quantity);
                    prop_assert!(after.is_ok_and(|s| s.reserved <= s.on_hand));
                }
            }
            Err(ReserveRejection::UnknownSku(_)) => prop_assert!(unknown),
            Err(ReserveRejection::InsufficientStock { .. }) => prop_assert!(!unknown && short),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

#[test]
fn the_codes_are_in_the_catalogue() {
    let catalogue = include_str!("../../../../docs/errors.md");
    if let Err(e) = longship_errors::check_catalogue::<InventoryCode>(catalogue) {
        panic!("{e}");
    }
}
