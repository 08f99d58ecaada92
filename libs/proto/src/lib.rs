//! Generated gRPC types and stubs for every Longship service, compiled at build time from `proto/`.
//!
//! Nothing here is written by hand: change the `.proto` files and rebuild. [`grpc_methods`] lists
//! every method the protos define, read from their compiled descriptors.

#![allow(missing_docs, clippy::all, clippy::pedantic)] // reason: generated code

/// The encoded `FileDescriptorSet` of every proto under `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/longship_descriptors.bin"));

/// Every gRPC method the protos define, as the `/package.Service/Method` paths a server is called
/// on, sorted. (Metrics count calls of these by name and of any other path as one value.)
pub fn grpc_methods() -> Vec<String> {
    use prost::Message;
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut paths: Vec<String> = set
        .file
        .iter()
        .flat_map(|file| {
            let package = file.package().to_owned();
            file.service.iter().flat_map(move |service| {
                let qualified = if package.is_empty() {
                    service.name().to_owned()
                } else {
                    format!("{package}.{}", service.name())
                };
                service
                    .method
                    .iter()
                    .map(move |m| format!("/{qualified}/{}", m.name()))
            })
        })
        .collect();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_of_the_protos_is_listed() {
        let methods = super::grpc_methods();
        for expected in [
            "/longship.inventory.v1.InventoryService/Reserve",
            "/longship.payment.v1.PaymentService/Authorize",
        ] {
            assert!(methods.iter().any(|m| m == expected), "{methods:?}");
        }
    }
}

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
