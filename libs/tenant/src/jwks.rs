//! Where JWKS keys come from: a file (`AUTH_JWKS_FILE`, e.g. a mounted Secret) and a URL
//! (`AUTH_JWKS_URL`, the identity provider's `jwks_uri`). Both are read again every refresh
//! interval and, at most once per minimum gap, when a token names a `kid` we do not hold, so a new
//! key is used as soon as tokens signed with it arrive. A failed read keeps the previous keys.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::keys::{KidKeys, parse_jwks};

/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long one fetch of the URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The configured JWKS sources and when the URL was last fetched.
pub(crate) struct Sources {
    pub(crate) file: Option<PathBuf>,
    url: Option<(http::Uri, HttpsClient)>,
    /// When the sources were last read, for the unknown-kid rate limit.
    last_read: tokio::sync::Mutex<Option<Instant>>,
    pub(crate) min_gap: Duration,
}

impl Sources {
    /// The sources of `file` and `url` (an `http` or `https` URL; https verifies the server
    /// against the web PKI roots).
    pub(crate) fn new(
        file: Option<PathBuf>,
        url: Option<&str>,
        min_gap: Duration,
    ) -> Result<Sources, String> {
        let url = match url {
            None => None,
            Some(text) => {
                let uri: http::Uri = text
                    .parse()
                    .map_err(|e| format!("AUTH_JWKS_URL is not a URL: {e}"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err("AUTH_JWKS_URL must be an http:// or https:// URL".into());
                }
                Some((uri, https_client()?))
            }
        };
        Ok(Sources {
            file,
            url,
            last_read: tokio::sync::Mutex::new(None),
            min_gap,
        })
    }

    /// Whether a URL is configured.
    pub(crate) fn has_url(&self) -> bool {
        self.url.is_some()
    }

    /// Reads the file now (at start-up: an unreadable file stops the service).
    pub(crate) fn read_file(&self) -> Result<Option<KidKeys>, String> {
        let Some(path) = &self.file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("AUTH_JWKS_FILE {}: {e}", path.display()))?;
        parse_jwks(&text)
            .map(Some)
            .map_err(|e| format!("AUTH_JWKS_FILE {}: {e}", path.display()))
    }

    /// Fetches the URL's keys (`None` without a URL).
    pub(crate) async fn fetch_url(&self) -> Result<Option<KidKeys>, String> {
        let Some((uri, client)) = &self.url else {
            return Ok(None);
        };
        let fetch = async {
            let response = client
                .get(uri.clone())
                .await
                .map_err(|e| format!("AUTH_JWKS_URL {uri}: {e}"))?;
            if response.status() != http::StatusCode::OK {
                return Err(format!(
                    "AUTH_JWKS_URL {uri}: answered {}",
                    response.status()
                ));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("AUTH_JWKS_URL {uri}: {e}"))?
                .to_bytes();
            let text = std::str::from_utf8(&body)
                .map_err(|_| format!("AUTH_JWKS_URL {uri}: the document is not UTF-8"))?;
            parse_jwks(text).map_err(|e| format!("AUTH_JWKS_URL {uri}: {e}"))
        };
        match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(result) => result.map(Some),
            Err(_) => Err(format!(
                "AUTH_JWKS_URL {uri}: no answer within {FETCH_TIMEOUT:?}"
            )),
        }
    }

    /// Takes the right to read the sources now: always for a scheduled refresh (`forced`), at
    /// most once per minimum gap for an unknown kid. Holding the returned guard serialises
    /// concurrent refreshes.
    pub(crate) async fn begin_read(
        &self,
        forced: bool,
    ) -> Option<tokio::sync::MutexGuard<'_, Option<Instant>>> {
        let mut last = self.last_read.lock().await;
        let recent = last.is_some_and(|at| at.elapsed() < self.min_gap);
        if recent && !forced {
            return None;
        }
        *last = Some(Instant::now());
        Some(last)
    }
}

fn https_client() -> Result<HttpsClient, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| format!("TLS for AUTH_JWKS_URL: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
