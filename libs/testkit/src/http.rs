//! A small HTTP/1 client for tests and tools, on the hyper stack the platform already builds.

use std::time::Duration;

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: bytes::Bytes,
}

impl HttpResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The fields a `422 request.invalid` problem lists, in order, after asserting that it is one
    /// (status, `application/problem+json`, code).
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub fn invalid_fields(&self) -> Vec<String> {
        assert_eq!(self.status, 422, "{}", self.text());
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let problem = self.json();
        assert_eq!(problem["code"], "request.invalid", "{problem}");
        problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str().map(str::to_owned))
            .collect()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A pooled HTTP client bound to a base URL such as `http://127.0.0.1:8080`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    client: Client<HttpConnector, Full<bytes::Bytes>>,
    default_headers: Vec<(String, String)>,
}

impl HttpClient {
    /// A client for `base`.
    pub fn new(base: impl Into<String>) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient {
            base: base.into(),
            client,
            default_headers: Vec::new(),
        }
    }

    /// A copy that sends `name: value` on every request (e.g. `X-Tenant-Id`).
    pub fn with_header(&self, name: &str, value: &str) -> HttpClient {
        let mut next = self.clone();
        next.default_headers
            .push((name.to_owned(), value.to_owned()));
        next
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<HttpResponse> {
        self.send(Method::GET, path, &[], None).await
    }

    /// POST `path` without a body.
    pub async fn post_empty(&self, path: &str) -> anyhow::Result<HttpResponse> {
        self.send(Method::POST, path, &[], None).await
    }

    /// GET `path` as JSON, asserting 200.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn get_ok(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await.expect("GET");
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.json()
    }

    /// `PUT path` with a JSON `body`, asserting 200; the answer as JSON.
    #[allow(clippy::expect_used)] // reason: a test helper fails the test by panicking
    pub async fn put_ok(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let response = self
            .send_json(Method::PUT, path, &[], body)
            .await
            .expect("PUT");
        assert_eq!(response.status, 200, "PUT {path}: {}", response.text());
        response.json()
    }

    /// Sends a JSON body with `method`.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> anyhow::Result<HttpResponse> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(method, path, &all, Some(serde_json::to_vec(body)?.into()))
            .await
    }

    /// Sends any request; `body` is sent as is.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<bytes::Bytes>,
    ) -> anyhow::Result<HttpResponse> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (name, value) in &self.default_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.unwrap_or_default()))?;
        let response =
            tokio::time::timeout(Duration::from_secs(30), self.client.request(request)).await??;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
