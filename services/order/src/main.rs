//! The order service binary: `order` serves, `order migrate` applies the migrations and exits.

longship_runtime::service_main!(order::Order);
