//! Service identity on inventory's gRPC port: the saga's commands come from `order` only, over
//! mutual TLS with the platform CA; everyone else is refused before any handler runs, and the
//! `x-tenant-id` they send never acts for a tenant.

use longship_proto::inventory::v1 as pb;
use longship_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use longship_testkit::{TestPki, assert_status, scratch_dir};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use uuid::Uuid;

use crate::helpers::{InventoryApp, TestApp, reserve_request};

/// A Reserve of five units of `sku` for a new order, acting for the test tenant.
fn reserve_five(app: &TestApp, sku: &str) -> tonic::Request<pb::ReserveRequest> {
    app.request(reserve_request(Uuid::new_v4(), "USD", &[(sku, 5)]))
}

#[tokio::test]
async fn another_platform_service_cannot_reserve_stock_for_any_tenant() {
    let app = TestApp::spawn().await;
    app.given_product("SKU-1", 100, "USD", 10).await;
    // payment's valid certificate, a forged tenant: refused before the handler, nothing reserved
    let mut payment = InventoryServiceClient::new(app.grpc_channel_as(Some("payment")));
    let refused = payment.reserve(reserve_five(&app, "SKU-1")).await;
    assert_status(refused, tonic::Code::PermissionDenied, "peer.forbidden");
    assert_eq!(app.stock("SKU-1").await, (10, 0));
    // order may
    let mut order = InventoryServiceClient::new(app.grpc_channel_as(Some("order")));
    order
        .reserve(reserve_five(&app, "SKU-1"))
        .await
        .expect("order reserves");
    assert_eq!(app.stock("SKU-1").await, (10, 5));
    app.stop().await;
}

#[tokio::test]
async fn a_caller_without_a_certificate_is_unauthenticated_but_may_check_health() {
    let app = TestApp::spawn().await;
    app.given_product("SKU-1", 100, "USD", 10).await;
    let channel = app.grpc_channel_as(None);
    let refused = InventoryServiceClient::new(channel.clone())
        .reserve(reserve_five(&app, "SKU-1"))
        .await;
    assert_status(
        refused,
        tonic::Code::Unauthenticated,
        "peer.unauthenticated",
    );
    assert_eq!(app.stock("SKU-1").await, (10, 0));
    // the health service stays reachable for probes over TLS
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health without a client certificate");
    // and plaintext gets nothing at all
    let plain = Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .expect("URL")
        .connect_lazy();
    let status = InventoryServiceClient::new(plain)
        .reserve(reserve_five(&app, "SKU-1"))
        .await
        .expect_err("plaintext is refused");
    assert_ne!(status.code(), tonic::Code::Ok);
    assert_eq!(app.stock("SKU-1").await, (10, 0));
    app.stop().await;
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_at_the_handshake() {
    let app = TestApp::spawn().await;
    app.given_product("SKU-1", 100, "USD", 10).await;
    let dir = scratch_dir("foreign-ca");
    let foreign = TestPki::new(&dir).files("order");
    let identity = Identity::from_pem(
        std::fs::read(&foreign.cert).expect("cert"),
        std::fs::read(&foreign.key).expect("key"),
    );
    let ca = std::fs::read(TestPki::shared().ca_file()).expect("ca");
    let channel = Endpoint::from_shared(format!("https://{}", app.grpc_addr))
        .expect("URL")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .identity(identity)
                .domain_name("inventory"),
        )
        .expect("TLS")
        .connect_lazy();
    let status = InventoryServiceClient::new(channel)
        .reserve(reserve_five(&app, "SKU-1"))
        .await
        .expect_err("refused");
    let _ = std::fs::remove_dir_all(&dir);
    let seen = format!("{status:?}");
    assert!(
        seen.contains("UnknownCA") || seen.contains("BadCertificate") || seen.contains("alert"),
        "the caller sees the handshake refusal: {seen}"
    );
    assert_eq!(app.stock("SKU-1").await, (10, 0));
    app.stop().await;
}
