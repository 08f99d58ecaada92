//! The payment service binary: `payment` serves, `payment migrate` applies the migrations and
//! exits.

longship_runtime::service_main!(payment::Payment);
