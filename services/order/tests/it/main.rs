//! Integration tests of the order service (end-to-end tests with inventory and payment arrive with them).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // reason: tests fail by panicking

#[test]
fn config_refuses_a_step_timeout_longer_than_half_the_lease() {
    let env = longship_runtime::Env::from_pairs([
        ("AUTH_ALLOW_TENANT_HEADER", "true"),
        ("SAGA_LEASE_SECS", "4"),
        ("SAGA_STEP_TIMEOUT_MS", "3000"),
    ]);
    let err = order::Config::from_env(&env).expect_err("refused");
    assert_eq!(err.variable, "SAGA_STEP_TIMEOUT_MS");
}
