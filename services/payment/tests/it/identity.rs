//! Service identity on payment's gRPC port: only `order` may authorize, capture or void; another
//! platform service or a caller without a certificate is refused before any handler runs, and the
//! `x-tenant-id` it sends never moves money.

use longship_proto::payment::v1::payment_service_client::PaymentServiceClient;
use longship_testkit::assert_status;
use uuid::Uuid;

use crate::helpers::{PaymentApp, TestApp, authorize_request};

#[tokio::test]
async fn only_the_order_service_moves_money() {
    let app = TestApp::spawn().await;
    app.given_account("c-1", 5_000, "USD").await;
    for caller in [Some("inventory"), Some("payment"), None] {
        let mut client = PaymentServiceClient::new(app.grpc_channel_as(caller));
        let refused = client
            .authorize(app.request(authorize_request(Uuid::new_v4(), "c-1", 1_000, "USD")))
            .await;
        let (code, error) = match caller {
            Some(_) => (tonic::Code::PermissionDenied, "peer.forbidden"),
            None => (tonic::Code::Unauthenticated, "peer.unauthenticated"),
        };
        assert_status(refused, code, error);
        assert_eq!(app.funds("c-1").await, (5_000, 0), "{caller:?}");
    }
    let mut order = PaymentServiceClient::new(app.grpc_channel_as(Some("order")));
    order
        .authorize(app.request(authorize_request(Uuid::new_v4(), "c-1", 1_000, "USD")))
        .await
        .expect("order authorizes");
    assert_eq!(app.funds("c-1").await, (5_000, 1_000));
    app.stop().await;
}
