//! The admin API over HTTP/1: one request, its status and JSON body; the three services' base URLs.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The services whose admin API the CLI reaches, with their contract ports (ARCHITECTURE.md
/// section 3; `LONGSHIP_PORT_OFFSET` is added, like `just up` does).
pub const SERVICES: [(&str, u16); 3] = [("order", 8080), ("inventory", 8081), ("payment", 8082)];

/// Where each service is and the token to show it.
#[derive(Debug, Clone)]
pub struct Api {
    /// `(service, base URL)`.
    pub bases: Vec<(String, String)>,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer of the admin API.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body as JSON (`Null` when empty or not JSON).
    pub body: serde_json::Value,
}

/// Why a call did not get an answer.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl Api {
    /// The services at `bases`, called with `token`.
    pub fn new(bases: Vec<(String, String)>, token: String) -> Api {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        Api {
            bases,
            token,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The base URL of `service`.
    pub fn base(&self, service: &str) -> Option<&str> {
        self.bases
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, b)| b.as_str())
    }

    /// `method path` on `service` with an optional JSON body.
    pub async fn call(
        &self,
        service: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, Unreachable> {
        let base = self
            .base(service)
            .ok_or_else(|| Unreachable(format!("unknown service {service}")))?;
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json");
        let bytes = match body {
            Some(b) => {
                request = request.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| Unreachable(format!("{url}: {e}")))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| Unreachable(format!("{url}: no answer within 30 s")))?
            .map_err(|e| Unreachable(format!("{url}: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Unreachable(format!("{url}: {e}")))?
            .to_bytes();
        Ok(Answer {
            status,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
