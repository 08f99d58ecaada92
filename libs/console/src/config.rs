//! Which services the console shows, and where the peers' admin APIs are (`CONSOLE_PEERS`).

use std::time::Duration;

use serde::Serialize;

longship_errors::error_codes! {
    /// The console's error codes (its proxy to the peers' admin APIs).
    pub enum ConsoleCode in "console" {
        /// Unknown asset.
        AssetNotFound = ("console.asset_not_found", NotFound, "the console has no such file"),
        /// Unknown peer.
        UnknownService = ("console.unknown_service", NotFound, "the console knows no service of this name (see CONSOLE_PEERS)"),
        /// Not an admin route.
        NotProxied = ("console.not_proxied", NotFound, "the console forwards admin routes (admin/v1/...) only"),
        /// Peer down.
        PeerUnavailable = ("console.peer_unavailable", Unavailable, "the service's admin API could not be reached; retry later"),
        /// Peer slow.
        PeerTimeout = ("console.peer_timeout", Timeout, "the service's admin API did not answer in time"),
    }
}

/// The peers of the order service's console when `CONSOLE_PEERS` is not set: the contract's
/// ports (ARCHITECTURE.md section 3) on this machine.
pub const DEFAULT_PEERS: &str = "inventory=http://127.0.0.1:8081,payment=http://127.0.0.1:8082";

/// A service whose admin API the console reaches through its proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its name (`[a-z][a-z0-9-]{0,62}`), the `{service}` of `/console/api/{service}/...`.
    pub name: String,
    /// The base URL of its HTTP port, `http://host:port` (no path).
    pub url: String,
}

/// What the console shows: the service serving it (reached on the same origin) and its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The service that serves the page (its admin API is on the page's own origin).
    pub own: String,
    /// The other services, reached through the proxy.
    pub peers: Vec<Peer>,
    /// How long a peer has to answer through the proxy (head and body) before the page gets 504
    /// `console.peer_timeout`.
    pub peer_timeout: Duration,
}

/// The default of [`ConsoleConfig::peer_timeout`].
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct ServiceEntry<'a> {
    name: &'a str,
    base: String,
}

impl ConsoleConfig {
    /// The console of service `own` with the peers of `peers`, a comma-separated list of
    /// `name=http://host:port` (`None`: [`DEFAULT_PEERS`]; empty: no peers). The error says what
    /// is wrong with the value.
    pub fn parse(own: &str, peers: Option<&str>) -> Result<ConsoleConfig, String> {
        let peers = peers.unwrap_or(DEFAULT_PEERS);
        let mut parsed: Vec<Peer> = Vec::new();
        for entry in peers.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not name=http://host:port"))?;
            let url = url.trim();
            let (name, url) = (name.trim(), url.strip_suffix('/').unwrap_or(url));
            if !valid_name(name) {
                return Err(format!(
                    "`{name}` is not a service name ([a-z][a-z0-9-]{{0,62}})"
                ));
            }
            if name == own || parsed.iter().any(|p| p.name == name) {
                return Err(format!("service `{name}` is named twice"));
            }
            check_url(url).map_err(|reason| format!("`{url}` (service {name}): {reason}"))?;
            parsed.push(Peer {
                name: name.to_owned(),
                url: url.to_owned(),
            });
        }
        Ok(ConsoleConfig {
            own: own.to_owned(),
            peers: parsed,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
        })
    }

    /// `{"services":[{"name","base"}]}`: each service and the path prefix of its admin API on the
    /// console's origin (empty for the console's own service).
    pub fn services_json(&self) -> String {
        let mut services = vec![ServiceEntry {
            name: &self.own,
            base: String::new(),
        }];
        services.extend(self.peers.iter().map(|p| ServiceEntry {
            name: &p.name,
            base: format!("/console/api/{}", p.name),
        }));
        serde_json::json!({ "services": services }).to_string()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// A peer is plain `http://host:port` inside the platform's network (the proxy speaks HTTP/1 and
/// adds nothing to the URL but the admin path).
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("must start with http:// (the proxy speaks plain HTTP inside the platform)")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err("must be http://host:port, with no path, query or credentials");
    }
    url.parse::<http::Uri>()
        .map(|_| ())
        .map_err(|_| "is not a valid URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_codes_are_in_the_catalogue() {
        let catalogue = include_str!("../../../docs/errors.md");
        if let Err(e) = longship_errors::check_catalogue::<ConsoleCode>(catalogue) {
            panic!("{e}");
        }
    }

    #[test]
    fn defaults_are_the_contract_ports() {
        let config = ConsoleConfig::parse("order", None).unwrap_or_else(|e| unreachable!("{e}"));
        let names: Vec<_> = config
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.url.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("inventory", "http://127.0.0.1:8081"),
                ("payment", "http://127.0.0.1:8082")
            ]
        );
        let services: serde_json::Value =
            serde_json::from_str(&config.services_json()).unwrap_or_default();
        assert_eq!(
            services["services"][0],
            serde_json::json!({"name": "order", "base": ""})
        );
        assert_eq!(services["services"][2]["base"], "/console/api/payment");
    }

    #[test]
    fn peers_parse_with_spaces_and_a_trailing_slash() {
        let config = ConsoleConfig::parse("order", Some(" stock = http://inventory:8081/ , "))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            config.peers,
            [Peer {
                name: "stock".into(),
                url: "http://inventory:8081".into()
            }]
        );
        assert_eq!(
            ConsoleConfig::parse("order", Some("")).map(|c| c.peers.len()),
            Ok(0)
        );
    }

    #[test]
    fn bad_peers_are_refused_with_the_reason() {
        for (value, says) in [
            ("inventory", "name=http"),
            ("Inventory=http://a:1", "service name"),
            ("a=http://x:1,a=http://y:1", "twice"),
            ("order=http://x:1", "twice"),
            ("a=https://x:1", "http://"),
            ("a=ftp://x:1", "http://"),
            ("a=http://x:1/admin", "no path"),
            ("a=http://user@x:1", "credentials"),
            ("a=http://", "start with http://"),
            ("a=http://x:1//", "no path"),
        ] {
            let err = ConsoleConfig::parse("order", Some(value)).expect_err(value);
            assert!(err.contains(says), "{value}: {err}");
        }
    }
}
