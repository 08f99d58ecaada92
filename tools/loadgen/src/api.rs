//! The platform's public HTTP API as a client sends it: keep-alive HTTP/1.1 connections, the
//! tenant as `X-Tenant-Id` (local) or a HS256 bearer token, an `Idempotency-Key` per order.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use longship_tenant::TenantId;
use uuid::Uuid;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const TENANT: HeaderName = HeaderName::from_static("x-tenant-id");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// How a POST /v1/orders ended.
#[derive(Debug)]
pub enum PostOutcome {
    /// 202 with the order id.
    Accepted(Uuid),
    /// Anything else, by kind (e.g. `http_503`, `timeout`, `connect`).
    Failed(String),
}

/// The three services' APIs.
#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    orders_uri: String,
    inventory: String,
    payment: String,
    order: String,
    auth: HashMap<TenantId, (HeaderName, HeaderValue)>,
}

impl Api {
    /// A client of the three base URLs; `token_secret` switches to bearer tokens.
    pub fn new(
        order: &str,
        inventory: &str,
        payment: &str,
        tenants: &[TenantId],
        token_secret: Option<&str>,
    ) -> anyhow::Result<Api> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4096)
            .build(connector);
        let mut auth = HashMap::new();
        for tenant in tenants {
            let header = match token_secret {
                None => (TENANT, HeaderValue::from_str(tenant.as_str())?),
                Some(secret) => {
                    let token = longship_tenant::issue_dev_token(secret, tenant, 24 * 3600)
                        .map_err(|e| anyhow::anyhow!("issuing a token: {e}"))?;
                    (
                        AUTHORIZATION,
                        HeaderValue::from_str(&format!("Bearer {token}"))?,
                    )
                }
            };
            auth.insert(tenant.clone(), header);
        }
        let trim = |s: &str| s.trim_end_matches('/').to_owned();
        Ok(Api {
            client,
            orders_uri: format!("{}/v1/orders", trim(order)),
            inventory: trim(inventory),
            payment: trim(payment),
            order: trim(order),
            auth,
        })
    }

    /// Fails unless every service answers GET /readyz with 200.
    pub async fn check_ready(&self) -> anyhow::Result<()> {
        for base in [&self.order, &self.inventory, &self.payment] {
            let uri = format!("{base}/readyz");
            let request = Request::get(&uri).body(Full::new(Bytes::new()))?;
            let response =
                tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
                    .await
                    .map_err(|_| anyhow::anyhow!("GET {uri}: no answer within 5 s"))?
                    .with_context(|| {
                        format!(
                            "GET {uri}: is the platform running? (`just up`, or the bench recipe)"
                        )
                    })?;
            if response.status() != StatusCode::OK {
                bail!("GET {uri} answered {}: not ready", response.status());
            }
        }
        Ok(())
    }

    /// The order service's base URL.
    pub fn order_base(&self) -> &str {
        &self.order
    }

    fn auth(&self, tenant: &TenantId) -> anyhow::Result<&(HeaderName, HeaderValue)> {
        self.auth
            .get(tenant)
            .with_context(|| format!("no credentials for tenant {tenant}"))
    }

    async fn put(&self, uri: String, tenant: &TenantId, body: Bytes) -> anyhow::Result<()> {
        let (name, value) = self.auth(tenant)?;
        let request = Request::builder()
            .method(Method::PUT)
            .uri(&uri)
            .header(CONTENT_TYPE, JSON)
            .header(name, value)
            .body(Full::new(body))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("PUT {uri}: timed out"))??;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.into_body().collect().await?.to_bytes();
            bail!("PUT {uri}: {status}: {}", String::from_utf8_lossy(&body));
        }
        let _ = response.into_body().collect().await?;
        Ok(())
    }

    /// PUT /v1/products/{sku}.
    pub async fn put_product(
        &self,
        tenant: &TenantId,
        sku: &str,
        price_cents: i64,
        on_hand: i64,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({"name": format!("Bench {sku}"), "price_cents": price_cents, "currency": "USD", "on_hand": on_hand});
        self.put(
            format!("{}/v1/products/{sku}", self.inventory),
            tenant,
            serde_json::to_vec(&body)?.into(),
        )
        .await
    }

    /// PUT /v1/accounts/{customer}.
    pub async fn put_account(
        &self,
        tenant: &TenantId,
        customer: &str,
        balance_cents: i64,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({"balance_cents": balance_cents, "currency": "USD"});
        self.put(
            format!("{}/v1/accounts/{customer}", self.payment),
            tenant,
            serde_json::to_vec(&body)?.into(),
        )
        .await
    }

    /// POST /v1/orders with a fresh idempotency key.
    pub async fn place_order(&self, tenant: &TenantId, body: Bytes) -> PostOutcome {
        let Ok((name, value)) = self.auth(tenant) else {
            return PostOutcome::Failed("no_credentials".into());
        };
        let key = Uuid::new_v4().simple().to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.orders_uri)
            .header(CONTENT_TYPE, JSON)
            .header(name, value)
            .header(IDEMPOTENCY_KEY, key)
            .body(Full::new(body));
        let Ok(request) = request else {
            return PostOutcome::Failed("bad_request_built".into());
        };
        let response =
            match tokio::time::timeout(Duration::from_secs(30), self.client.request(request)).await
            {
                Err(_) => return PostOutcome::Failed("timeout".into()),
                Ok(Err(e)) if e.is_connect() => return PostOutcome::Failed("connect".into()),
                Ok(Err(_)) => return PostOutcome::Failed("transport".into()),
                Ok(Ok(r)) => r,
            };
        let status = response.status();
        let Ok(body) = response.into_body().collect().await else {
            return PostOutcome::Failed("body_read".into());
        };
        if status != StatusCode::ACCEPTED {
            return PostOutcome::Failed(format!("http_{}", status.as_u16()));
        }
        #[derive(serde::Deserialize)]
        struct Placed {
            id: Uuid,
        }
        match serde_json::from_slice::<Placed>(&body.to_bytes()) {
            Ok(p) => PostOutcome::Accepted(p.id),
            Err(_) => PostOutcome::Failed("bad_body".into()),
        }
    }
}
