//! Snapshots: a generated or served JSON document compared with its committed copy. A change is
//! deliberate: `LONGSHIP_UPDATE_SNAPSHOTS=1` (or `just snapshots`) rewrites the files, and the diff
//! is reviewed like code; `just check-compat` then says whether it breaks the previous release.

use std::path::{Path, PathBuf};

/// Set to `1` to rewrite snapshots instead of comparing them.
pub const UPDATE_ENV: &str = "LONGSHIP_UPDATE_SNAPSHOTS";

/// The repository root (the workspace's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether this run rewrites snapshots.
pub fn updating() -> bool {
    std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1")
}

/// The canonical text of a snapshot: pretty JSON (keys as serde_json orders them) and a newline.
pub fn render(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Compares `value` with the file at `path` (relative to the repository root); with
/// `LONGSHIP_UPDATE_SNAPSHOTS=1` writes it instead. `Err` says what differs and how to accept it.
pub fn check(path: &str, value: &serde_json::Value) -> Result<(), String> {
    let file = repo_root().join(path);
    let wanted = render(value);
    if updating() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{path}: {e}"))?;
        }
        return std::fs::write(&file, wanted).map_err(|e| format!("{path}: {e}"));
    }
    let committed = std::fs::read_to_string(&file).map_err(|e| {
        format!("{path}: {e} (a new snapshot: run `just snapshots` and commit the file)")
    })?;
    if committed == wanted {
        return Ok(());
    }
    let old: serde_json::Value = serde_json::from_str(&committed).unwrap_or_default();
    let mut differences = Vec::new();
    diff("", &old, value, &mut differences);
    Err(format!(
        "{path} differs from what the code produces:\n  {}\nIf the change is deliberate, run `just snapshots`, review and commit the diff, and run \
         `just check-compat` to see whether it breaks the previous release.",
        if differences.is_empty() {
            "formatting only".to_owned()
        } else {
            differences.join("\n  ")
        }
    ))
}

/// Panics with [`check`]'s message when the snapshot differs.
#[allow(clippy::panic)] // reason: a test assertion
pub fn assert_snapshot(path: &str, value: &serde_json::Value) {
    if let Err(message) = check(path, value) {
        panic!("{message}");
    }
}

/// The service's served `GET /openapi.json` answers 200 and matches the committed `file`
/// (`openapi/<service>.json`).
#[allow(clippy::expect_used)] // reason: a test assertion
pub async fn assert_served_openapi(http: &crate::HttpClient, file: &str) {
    let response = http.get("/openapi.json").await.expect("GET /openapi.json");
    assert_eq!(response.status, 200);
    assert_snapshot(file, &response.json());
}

/// Every JSON pointer where `old` (committed) and `new` (produced) differ, at most 40.
fn diff(at: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    if out.len() >= 40 {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match b.get(key) {
                    Some(other) => diff(&here, value, other, out),
                    None => out.push(format!("{here}: in the committed file, no longer produced")),
                }
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!(
                    "{at}/{}: new",
                    key.replace('~', "~0").replace('/', "~1")
                ));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{at}/{i}"), x, y, out);
            }
        }
        _ if old != new => out.push(format!(
            "{}: {old} -> {new}",
            if at.is_empty() { "/" } else { at }
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_every_changed_pointer() {
        let old = serde_json::json!({"a": 1, "b": {"c": [1, 2]}, "gone": true});
        let new = serde_json::json!({"a": 2, "b": {"c": [1, 3]}, "added": null});
        let mut out = Vec::new();
        diff("", &old, &new, &mut out);
        assert_eq!(
            out,
            vec![
                "/a: 1 -> 2",
                "/b/c/1: 2 -> 3",
                "/gone: in the committed file, no longer produced",
                "/added: new"
            ]
        );
    }

    #[test]
    fn a_missing_snapshot_says_how_to_create_it() {
        if updating() {
            return;
        }
        let error = check("target/no-such-snapshot.json", &serde_json::json!({}))
            .err()
            .unwrap_or_default();
        assert!(error.contains("just snapshots"), "{error}");
    }
}
