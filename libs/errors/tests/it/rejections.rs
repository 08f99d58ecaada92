use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use http_body_util::BodyExt;
use longship_errors::Json;
use tower::ServiceExt;

#[derive(serde::Deserialize)]
#[allow(dead_code)] // reason: the fields exist to be deserialised
struct Body {
    name: String,
    count: u32,
}

fn app() -> Router {
    Router::new()
        .route("/things", post(|Json(b): Json<Body>| async move { b.name }))
        .layer(DefaultBodyLimit::max(64 * 1024))
}

async fn call(content_type: Option<&str>, body: Vec<u8>) -> (u16, serde_json::Value, String) {
    let mut request = http::Request::post("/things");
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = app()
        .oneshot(request.body(axum::body::Body::from(body)).expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ct,
    )
}

#[tokio::test]
async fn malformed_json_is_400_problem() {
    let (status, json, ct) = call(Some("application/json"), b"{\"name\": ".to_vec()).await;
    assert_eq!((status, ct.as_str()), (400, "application/problem+json"));
    assert_eq!(json["code"], "request.malformed_json");
}

#[tokio::test]
async fn wrong_content_type_is_415_problem() {
    let (status, json, ct) = call(Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!((status, ct.as_str()), (415, "application/problem+json"));
    assert_eq!(json["code"], "request.unsupported_media_type");
    let (status, _, _) = call(None, b"{}".to_vec()).await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn oversized_body_is_413_problem() {
    let big = format!("{{\"name\":\"{}\",\"count\":1}}", "x".repeat(70 * 1024));
    let (status, json, ct) = call(Some("application/json"), big.into_bytes()).await;
    assert_eq!((status, ct.as_str()), (413, "application/problem+json"));
    assert_eq!(json["code"], "request.body_too_large");
}

#[tokio::test]
async fn wrong_shape_is_422_problem() {
    let (status, json, _) = call(
        Some("application/json"),
        br#"{"name":"a","count":-1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(json["code"], "request.invalid_body");
    assert!(
        json["detail"].as_str().unwrap_or("").contains("count"),
        "{json}"
    );
}

#[tokio::test]
async fn valid_body_passes() {
    let (status, _, _) = call(
        Some("application/json"),
        br#"{"name":"a","count":1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200);
}
