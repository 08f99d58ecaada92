//! Every service's `/openapi.json` is a valid OpenAPI document (openapi-spec-validator) and
//! documents, for every operation, the stable error codes it can answer, its servers, and
//! examples of its request and response bodies.

use crate::harness::Platform;

/// A stable error code: dotted lower-case words (`order.not_found`, `request.invalid_body`).
fn is_stable_code(code: &str) -> bool {
    !code.is_empty()
        && code.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
}

/// The source of every library and service (without the document's own list of platform codes),
/// where each real error code appears as a string literal, and the codes the services declare from
/// docs/errors.md (`error_codes!`'s `from` form), quoted alike.
fn sources() -> String {
    use longship_errors::ErrorCode;
    let declared = (order::domain::OrderCode::all().iter().map(|c| c.as_str()))
        .chain(
            inventory::domain::InventoryCode::all()
                .iter()
                .map(|c| c.as_str()),
        )
        .chain(
            payment::domain::PaymentCode::all()
                .iter()
                .map(|c| c.as_str()),
        );
    let mut text: String = declared.map(|code| format!("\"{code}\"\n")).collect();
    text.push_str(&source_files());
    text
}

/// The text of every `.rs` file of the libraries and services.
fn source_files() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut text = String::new();
    let mut dirs = Vec::new();
    for group in ["libs", "services"] {
        for entry in std::fs::read_dir(root.join(group))
            .into_iter()
            .flatten()
            .flatten()
        {
            dirs.push(entry.path().join("src"));
        }
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("runtime/src/openapi.rs")
            {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

/// Resolves a local `$ref` (`#/components/schemas/X`) against `doc`.
fn resolve<'a>(doc: &'a serde_json::Value, value: &'a serde_json::Value) -> &'a serde_json::Value {
    match value.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or(&serde_json::Value::Null),
        None => value,
    }
}

/// Whether `media` (a media type object) has an example: its own, or its schema's.
fn has_example(doc: &serde_json::Value, media: &serde_json::Value) -> bool {
    if media.get("example").is_some() || media.get("examples").is_some() {
        return true;
    }
    let schema = resolve(doc, &media["schema"]);
    schema.get("example").is_some() || schema.get("examples").is_some()
}

/// Every problem found in `doc`'s operations, as "METHOD path: what".
fn problems(doc: &serde_json::Value, sources: &str) -> Vec<String> {
    let mut found = Vec::new();
    let servers = doc["servers"].as_array().map(Vec::len).unwrap_or(0);
    if servers == 0 {
        found.push("no servers".to_owned());
    }
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in &paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let name = format!("{} {path}", method.to_uppercase());
            if let Some(body) = operation.get("requestBody") {
                let media = &resolve(doc, body)["content"]["application/json"];
                if !has_example(doc, media) {
                    found.push(format!("{name}: request body without an example"));
                }
            }
            let responses = operation["responses"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut answers_problems = false;
            for (status, response) in &responses {
                let response = resolve(doc, response);
                if response["description"].as_str().unwrap_or("").is_empty() {
                    found.push(format!("{name}: {status} has no description"));
                }
                let content = response["content"].as_object().cloned().unwrap_or_default();
                if let Some(problem) = content.get("application/problem+json") {
                    answers_problems = true;
                    let codes = response["x-error-codes"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if codes.is_empty() {
                        found.push(format!("{name}: {status} names no error codes"));
                    }
                    for code in &codes {
                        let code = code.as_str().unwrap_or("");
                        if !is_stable_code(code) {
                            found.push(format!("{name}: {status} lists {code:?}"));
                        }
                        if !sources.contains(&format!("\"{code}\"")) {
                            found.push(format!(
                                "{name}: {status} lists {code}, which no code answers"
                            ));
                        }
                        if !response["description"]
                            .as_str()
                            .unwrap_or("")
                            .contains(code)
                        {
                            found.push(format!("{name}: {status} description misses {code}"));
                        }
                    }
                    if !has_example(doc, problem) {
                        found.push(format!("{name}: {status} problem without an example"));
                    }
                } else if status.starts_with('2')
                    && let Some(media) = content.get("application/json")
                    && !has_example(doc, media)
                {
                    found.push(format!("{name}: {status} body without an example"));
                }
            }
            if !answers_problems {
                found.push(format!("{name}: documents no error answer"));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_service_openapi_document_is_valid_and_documents_codes_servers_and_examples() {
    let p = Platform::start().await;
    let sources = sources();
    for service in ["order", "inventory", "payment"] {
        let client = longship_testkit::HttpClient::new(format!("http://{}", p.http_of(service)));
        let r = client.get("/openapi.json").await.expect("openapi.json");
        assert_eq!(r.status, 200);
        let text = r.text();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/openapi");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{service}.json")), &text);
        if let Err(report) = longship_testkit::tools::validate_openapi(&text) {
            panic!("{service}'s /openapi.json is not valid OpenAPI:\n{report}");
        }
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        let found = problems(&doc, &sources);
        assert!(
            found.is_empty(),
            "{service}'s /openapi.json:\n{}",
            found.join("\n")
        );
    }
    p.stop().await;
}
