//! Generated gRPC types and stubs for every Longship service, compiled at build time from `proto/`.
//!
//! Nothing here is written by hand: change the `.proto` files and rebuild.

#![allow(missing_docs, clippy::all, clippy::pedantic)] // reason: generated code

/// `proto/inventory/v1`: stock reservations.
pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("longship.inventory.v1");
    }
}

/// `proto/payment/v1`: funds authorization and capture.
pub mod payment {
    pub mod v1 {
        tonic::include_proto!("longship.payment.v1");
    }
}

/// `proto/order/v1`: orders for internal gRPC clients.
pub mod order {
    pub mod v1 {
        tonic::include_proto!("longship.order.v1");
    }
}

// new-service:proto-modules -- `just new-service NAME` adds proto/NAME/v1's module above this line.
