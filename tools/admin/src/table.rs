//! Plain-text tables of the admin API's answers.

use serde_json::Value;

use crate::text;

/// Left-aligned columns, two spaces apart, with a header row.
fn render(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn short(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

fn next(body: &Value) -> String {
    match &body["next_cursor"] {
        Value::String(c) => format!("\nmore: --cursor {c}"),
        _ => String::new(),
    }
}

/// `sagas list`.
pub fn sagas(body: &Value) -> String {
    let rows = items(body)
        .iter()
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["tenant_id"]),
                text(&s["status"]),
                text(&s["current_step"]),
                text(&s["attempts"]),
                text(&s["failure_reason"]),
                short(text(&s["last_error"]), 60),
                text(&s["updated_at"]),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TENANT",
        "STATUS",
        "STEP",
        "ATTEMPTS",
        "REASON",
        "LAST ERROR",
        "UPDATED",
    ];
    format!("{}{}", render(&header, rows), next(body))
}

/// `saga show`.
pub fn saga(s: &Value) -> String {
    let mut out = String::new();
    for key in [
        "id",
        "saga_type",
        "version",
        "tenant_id",
        "status",
        "current_step",
        "attempts",
        "failure_reason",
        "last_error",
        "deadline",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ] {
        out.push_str(&format!("{key:<16} {}\n", text(&s[key])));
    }
    out.push_str(&format!("{:<16} {}\n\n", "data", s["data"]));
    let steps = items(&serde_json::json!({"items": s["steps"]}))
        .iter()
        .map(|st| {
            vec![
                text(&st["name"]),
                text(&st["status"]),
                text(&st["attempts"]),
                short(text(&st["last_error"]), 70),
            ]
        })
        .collect();
    out.push_str(&render(
        &["STEP", "STATUS", "ATTEMPTS", "LAST ERROR"],
        steps,
    ));
    out.push_str("\n\n");
    let history = items(&serde_json::json!({"items": s["history"]}))
        .iter()
        .map(|h| {
            vec![
                text(&h["at"]),
                text(&h["state"]),
                text(&h["step"]),
                text(&h["attempt"]),
                text(&h["actor"]),
                short(text(&h["error"]), 60),
            ]
        })
        .collect();
    out.push_str(&render(
        &["AT", "STATE", "STEP", "ATTEMPT", "ACTOR", "ERROR"],
        history,
    ));
    out
}

/// `dead-letters list`.
pub fn dead_letters(all: &[(String, Value)]) -> String {
    let mut rows = Vec::new();
    let mut more = String::new();
    for (service, body) in all {
        for d in items(body) {
            rows.push(vec![
                text(&d["id"]),
                service.clone(),
                text(&d["consumer"]),
                text(&d["event_type"]),
                text(&d["tenant_id"]),
                text(&d["deliveries"]),
                short(text(&d["error"]), 60),
                text(&d["dead_lettered_at"]),
            ]);
        }
        if let Value::String(c) = &body["next_cursor"] {
            more.push_str(&format!(
                "\nmore in {service}: --service {service} --cursor {c}"
            ));
        }
    }
    let header = [
        "ID",
        "SERVICE",
        "CONSUMER",
        "EVENT",
        "TENANT",
        "DELIVERIES",
        "ERROR",
        "AT",
    ];
    format!("{}{more}", render(&header, rows))
}

/// `outbox`.
pub fn outbox(all: &[(String, Value)]) -> String {
    let mut rows = Vec::new();
    for (service, body) in all {
        rows.push(vec![
            service.clone(),
            "(outbox)".to_owned(),
            text(&body["pending"]),
            format!(
                "{:.1}s",
                body["oldest_pending_age_seconds"].as_f64().unwrap_or(0.0)
            ),
            "-".to_owned(),
            "-".to_owned(),
        ]);
        for c in body["consumers"].as_array().cloned().unwrap_or_default() {
            rows.push(vec![
                service.clone(),
                text(&c["name"]),
                text(&c["pending"]),
                "-".to_owned(),
                text(&c["ack_pending"]),
                text(&c["dead_letters"]),
            ]);
        }
    }
    render(
        &[
            "SERVICE",
            "NAME",
            "PENDING",
            "OLDEST",
            "ACK PENDING",
            "DEAD LETTERS",
        ],
        rows,
    )
}

/// `audit`.
pub fn audit(all: &[(String, Value)]) -> String {
    let mut rows = Vec::new();
    for (service, body) in all {
        for r in items(body) {
            rows.push(vec![
                text(&r["at"]),
                service.clone(),
                text(&r["actor"]),
                text(&r["tenant_id"]),
                text(&r["action"]),
                text(&r["target"]),
                short(text(&r["reason"]), 60),
            ]);
        }
    }
    rows.sort_by(|a, b| b[0].cmp(&a[0]));
    render(
        &[
            "AT", "SERVICE", "ACTOR", "TENANT", "ACTION", "TARGET", "REASON",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_show_null_as_a_dash() {
        let body = serde_json::json!({"items": [
            {"id": "a", "tenant_id": "acme", "status": "RUNNING", "current_step": "AuthorizePayment",
             "attempts": 5, "failure_reason": null, "last_error": "unavailable", "updated_at": "t"}
        ], "next_cursor": "a"});
        let out = sagas(&body);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("ID  TENANT  STATUS"), "{out}");
        assert!(lines[1].contains("AuthorizePayment  5         -"), "{out}");
        assert!(out.ends_with("more: --cursor a"), "{out}");
    }
}
