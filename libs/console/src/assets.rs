//! The page and its files, compiled into the binary, each answered with the console's security
//! headers.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use longship_errors::Error;

use crate::config::ConsoleCode;

/// Everything the page may load or call: its own origin only; no inline script or style, no
/// plugins, no framing, no `<base>` rewriting, forms post to the origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const PAGE: &str = include_str!("../assets/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/console.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/dom.js"),
    },
    Asset {
        name: "sagas.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/sagas.js"),
    },
    Asset {
        name: "operations.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/operations.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// The headers of every console response: the policy, no sniffing, no framing, no referrer (the
/// URL may carry a token in its fragment; browsers never send fragments, this is belt and braces).
fn secured(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, cache),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /console`: the page (never cached: a new build's page names its assets afresh).
pub async fn page() -> Response {
    secured(
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response(),
        "no-store",
    )
}

/// A small JSON document with the console's headers.
pub fn json(body: &str) -> Response {
    secured(
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_owned(),
        )
            .into_response(),
        "no-store",
    )
}

/// `GET /console/assets/{name}`: a file of the page, revalidated by its `ETag` (a hash of the
/// build's content), or 404 problem+json.
pub async fn asset(Path(name): Path<String>, request: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return secured(
            Error::coded(ConsoleCode::AssetNotFound, "no such console file").into_response(),
            "no-store",
        );
    };
    let etag = etag(asset.body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    secured(response, "no-cache")
}

/// A strong validator of `body` (FNV-1a, stable across builds of the same content).
fn etag(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_the_console_serves() {
        // every src/href of the page names an embedded asset: nothing from another origin
        for part in PAGE.split(['"', '\'']) {
            if let Some(name) = part.strip_prefix("/console/assets/") {
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{name} is not embedded"
                );
            }
            assert!(
                !part.starts_with("http"),
                "the page names another origin: {part}"
            );
        }
        assert!(!PAGE.contains("<script>"), "inline script in the page");
        assert!(!PAGE.contains("style="), "inline style in the page");
        for asset in ASSETS {
            assert!(
                !asset.body.contains("https://") || asset.name == "favicon.svg",
                "{} names another origin",
                asset.name
            );
        }
    }

    #[test]
    fn etags_differ_by_content_and_are_quoted() {
        assert_ne!(etag("a"), etag("b"));
        assert!(etag("a").starts_with('"') && etag("a").ends_with('"'));
    }
}
