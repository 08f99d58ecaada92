//! Order's own gRPC API is reachable from outside the platform, so it takes the tenant's JWT like
//! HTTP does (no client certificate needed, TLS still): no token is UNAUTHENTICATED, a valid
//! token works, and its tenant wins over any `x-tenant-id` the caller sends.

use longship_proto::order::v1 as pb;
use longship_proto::order::v1::order_service_client::OrderServiceClient;
use longship_testkit::{TEST_JWT_SECRET, TestApp, assert_status};

fn token(tenant: &str) -> String {
    longship_tenant::issue_dev_token(
        TEST_JWT_SECRET,
        &longship_tenant::TenantId::parse(tenant).expect("tenant"),
        300,
    )
    .expect("token")
}

fn with<T>(message: T, bearer: Option<&str>, tenant_header: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("metadata"),
        );
    }
    if let Some(t) = tenant_header {
        request
            .metadata_mut()
            .insert("x-tenant-id", t.parse().expect("metadata"));
    }
    request
}

fn place() -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        customer_id: "c-1".into(),
        currency: "USD".into(),
        items: vec![pb::OrderItem {
            sku: "SKU-1".into(),
            quantity: 1,
            unit_price_cents: 0,
        }],
        idempotency_key: String::new(),
    }
}

#[tokio::test]
async fn order_grpc_needs_the_tenants_jwt_and_its_tenant_wins() {
    let app = TestApp::<order::Order>::builder()
        .env("AUTH_ALLOW_TENANT_HEADER", "false")
        .spawn()
        .await;
    let mut client = OrderServiceClient::new(app.grpc_channel_as(None));

    // no token (an x-tenant-id alone is not a credential here): refused before the handler
    let refused = client.place_order(with(place(), None, Some("acme"))).await;
    assert_status(
        refused,
        tonic::Code::Unauthenticated,
        "auth.tenant_header_not_allowed",
    );
    let refused = client.place_order(with(place(), None, None)).await;
    assert_status(
        refused,
        tonic::Code::Unauthenticated,
        "auth.missing_credentials",
    );
    let refused = client
        .place_order(with(place(), Some("not-a-jwt"), None))
        .await;
    assert_status(refused, tonic::Code::Unauthenticated, "auth.invalid_token");

    // acme's token, with a forged header naming another tenant: the order is acme's
    let placed = client
        .place_order(with(place(), Some(&token("acme")), Some("victim")))
        .await
        .expect("placed with a JWT")
        .into_inner();
    let get = |t: &str| {
        with(
            pb::GetOrderRequest {
                id: placed.id.clone(),
            },
            Some(&token(t)),
            None,
        )
    };
    let found = client.get_order(get("acme")).await.expect("acme sees it");
    assert_eq!(found.into_inner().id, placed.id);
    let hidden = client.get_order(get("victim")).await;
    assert_eq!(
        hidden.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound)
    );
    app.stop().await;
}
