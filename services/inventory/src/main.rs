//! The inventory service binary: `inventory` serves, `inventory migrate` applies the migrations
//! and exits.

longship_runtime::service_main!(inventory::Inventory);
