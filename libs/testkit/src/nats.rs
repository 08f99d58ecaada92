//! An isolated NATS namespace per test: a unique subject/stream prefix on a shared server.

use std::time::Duration;

use crate::infra;

/// A NATS connection plus a prefix no other test uses. Pass [`TestNats::prefix`] as the
/// platform's `NATS_PREFIX` so every subject and stream the code under test creates is its own.
#[derive(Debug, Clone)]
pub struct TestNats {
    url: String,
    prefix: String,
    client: async_nats::Client,
}

impl TestNats {
    /// Connects and picks a fresh prefix; sweeps streams that earlier test runs left behind.
    pub async fn new() -> TestNats {
        crate::init_test_logging();
        let url = infra::nats_url().await;
        let client = connect(&url).await;
        sweep_once(&client).await;
        let prefix = format!("lst{}", crate::unique_suffix());
        TestNats {
            url,
            prefix,
            client,
        }
    }

    /// The same namespace reached through another URL, e.g. a [`crate::FaultProxy`] in front of the
    /// server; the client of the copy still talks to the server directly.
    pub fn via(&self, url: &str) -> TestNats {
        TestNats {
            url: url.to_owned(),
            prefix: self.prefix.clone(),
            client: self.client.clone(),
        }
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The namespace prefix for subjects and streams (lower-case letters and digits).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connected client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// A JetStream context on the client.
    pub fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client.clone())
    }

    /// Deletes every stream of this namespace.
    pub async fn cleanup(&self) {
        delete_streams(&self.jetstream(), |name| {
            name.to_lowercase().starts_with(&self.prefix)
        })
        .await;
    }
}

#[allow(clippy::panic)] // reason: a test without NATS must fail loudly
async fn connect(url: &str) -> async_nats::Client {
    match async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
    {
        Ok(c) => c,
        Err(e) => panic!("connecting to NATS at {url}: {e}"),
    }
}

async fn delete_streams(js: &async_nats::jetstream::Context, matches: impl Fn(&str) -> bool) {
    use futures::StreamExt;
    let mut names = js.stream_names();
    let mut doomed = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        if matches(&name) {
            doomed.push(name);
        }
    }
    for name in doomed {
        let _ = js.delete_stream(&name).await;
    }
}

async fn sweep_once(client: &async_nats::Client) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            use futures::StreamExt;
            let js = async_nats::jetstream::new(client.clone());
            let mut streams = js.streams();
            let cutoff = std::time::SystemTime::now() - Duration::from_secs(3600);
            let mut doomed = Vec::new();
            while let Some(Ok(info)) = streams.next().await {
                let created: std::time::SystemTime = info.created.into();
                if is_test_stream(&info.config.name) && created < cutoff {
                    doomed.push(info.config.name.clone());
                }
            }
            for name in doomed {
                let _ = js.delete_stream(&name).await;
            }
        })
        .await;
}

/// Streams that tests create are named `LST<12 hex>_<NAME>`.
fn is_test_stream(name: &str) -> bool {
    name.strip_prefix("LST")
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(id, _)| id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
}
