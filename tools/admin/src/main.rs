//! `longship-admin` (`just admin ...`): the operators' CLI over the services' admin API. See
//! [`args::USAGE`] for the commands and exit codes.

#![allow(clippy::print_stdout)] // reason: a CLI's output is its stdout

mod args;
mod client;
mod table;

use std::process::ExitCode;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::args::{Args, Command};
use crate::client::{Answer, Api, SERVICES, encode};

/// Exit codes scripts can tell apart.
mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const AUTH: u8 = 5;
    pub const UNREACHABLE: u8 = 6;
}

/// How a command ended: the exit code and the message for stderr.
struct Failure(u8, String);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n\n{}", args::USAGE);
            return ExitCode::from(exit::USAGE);
        }
    };
    if args.command == Command::Help {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    let Some(token) = args
        .token
        .clone()
        .or_else(|| std::env::var("LONGSHIP_ADMIN_TOKEN").ok())
        .filter(|t| !t.trim().is_empty())
    else {
        eprintln!(
            "no token: set LONGSHIP_ADMIN_TOKEN or pass --token (`just token --operator` prints one)"
        );
        return ExitCode::from(exit::AUTH);
    };
    let api = Api::new(bases(&args), token);
    match run(&api, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// The base URL of each service: `--<service>-url`, `LONGSHIP_<SERVICE>_URL`, or the contract port
/// plus `LONGSHIP_PORT_OFFSET` on 127.0.0.1.
fn bases(args: &Args) -> Vec<(String, String)> {
    let offset: u16 = std::env::var("LONGSHIP_PORT_OFFSET")
        .ok()
        .and_then(|o| o.trim().parse().ok())
        .unwrap_or(0);
    SERVICES
        .iter()
        .map(|(name, port)| {
            let url = args
                .urls
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, u)| u.clone())
                .or_else(|| std::env::var(format!("LONGSHIP_{}_URL", name.to_uppercase())).ok())
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", port.saturating_add(offset)));
            ((*name).to_owned(), url)
        })
        .collect()
}

fn query_string(pairs: &[(String, String)]) -> String {
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if joined.is_empty() {
        String::new()
    } else {
        format!("?{}", joined.join("&"))
    }
}

/// The services a command addresses: `--service`, else all three.
fn services(args: &Args) -> Vec<String> {
    match &args.service {
        Some(s) => vec![s.clone()],
        None => SERVICES.iter().map(|(s, _)| (*s).to_owned()).collect(),
    }
}

async fn run(api: &Api, args: &Args) -> Result<(), Failure> {
    match &args.command {
        Command::Help => Ok(()),
        Command::SagasList { stuck, query } => {
            let mut query = query.clone();
            if *stuck {
                query.push(("stuck".into(), "true".into()));
            }
            let path = format!("/admin/v1/sagas{}", query_string(&query));
            let body = expect(api, "order", Method::GET, &path, None, StatusCode::OK).await?;
            print(args, &body, || table::sagas(&body));
            Ok(())
        }
        Command::SagaShow(id) => {
            let path = format!("/admin/v1/sagas/{}", encode(id));
            let body = expect(api, "order", Method::GET, &path, None, StatusCode::OK).await?;
            print(args, &body, || table::saga(&body));
            Ok(())
        }
        Command::SagaRetry(id) | Command::SagaCancel(id, _) => {
            let (verb, body) = match &args.command {
                Command::SagaCancel(_, reason) => {
                    ("cancel", Some(serde_json::json!({"reason": reason})))
                }
                _ => ("retry", None),
            };
            let path = format!("/admin/v1/sagas/{}/{verb}", encode(id));
            let answer = expect(
                api,
                "order",
                Method::POST,
                &path,
                body,
                StatusCode::ACCEPTED,
            )
            .await?;
            print(args, &answer, || {
                format!("{verb} accepted: saga {id} is {}", text(&answer["status"]))
            });
            Ok(())
        }
        Command::DeadLettersList(query) => {
            let path = format!("/admin/v1/dead-letters{}", query_string(query));
            let mut all = Vec::new();
            for service in services(args) {
                let body = expect(api, &service, Method::GET, &path, None, StatusCode::OK).await?;
                all.push((service, body));
            }
            let json = Value::Object(all.iter().cloned().collect());
            print(args, &json, || table::dead_letters(&all));
            Ok(())
        }
        Command::DeadLetterRedrive(id) | Command::DeadLetterDiscard(id, _) => {
            dead_letter_action(api, args, id).await
        }
        Command::Outbox => {
            let mut all = Vec::new();
            for service in services(args) {
                let body = expect(
                    api,
                    &service,
                    Method::GET,
                    "/admin/v1/outbox",
                    None,
                    StatusCode::OK,
                )
                .await?;
                all.push((service, body));
            }
            let json = Value::Object(all.iter().cloned().collect());
            print(args, &json, || table::outbox(&all));
            Ok(())
        }
        Command::Audit(query) => {
            let path = format!("/admin/v1/audit{}", query_string(query));
            let mut all = Vec::new();
            for service in services(args) {
                let body = expect(api, &service, Method::GET, &path, None, StatusCode::OK).await?;
                all.push((service, body));
            }
            let json = Value::Object(all.iter().cloned().collect());
            print(args, &json, || table::audit(&all));
            Ok(())
        }
    }
}

/// Redrives or discards dead letter `id` in the service that holds it.
async fn dead_letter_action(api: &Api, args: &Args, id: &str) -> Result<(), Failure> {
    let (method, path, body, ok, verb) = match &args.command {
        Command::DeadLetterDiscard(_, reason) => (
            Method::DELETE,
            format!("/admin/v1/dead-letters/{}", encode(id)),
            Some(serde_json::json!({"reason": reason})),
            StatusCode::NO_CONTENT,
            "discarded",
        ),
        _ => (
            Method::POST,
            format!("/admin/v1/dead-letters/{}/redrive", encode(id)),
            None,
            StatusCode::ACCEPTED,
            "redriven",
        ),
    };
    // a dead letter lives in the database of the service whose consumer gave up on it:
    // without --service, the first service that knows the id acts on it
    let mut last = Failure(
        exit::NOT_FOUND,
        format!("no dead letter {id} in any service"),
    );
    for service in services(args) {
        match expect(api, &service, method.clone(), &path, body.clone(), ok).await {
            Ok(_) => {
                let done = serde_json::json!({"id": id, "service": service, "result": verb});
                print(args, &done, || {
                    format!("dead letter {id} {verb} ({service})")
                });
                return Ok(());
            }
            Err(f) if f.0 == exit::NOT_FOUND => last = f,
            Err(f) => return Err(f),
        }
    }
    Err(last)
}

fn print(args: &Args, json: &Value, table: impl FnOnce() -> String) {
    if args.json {
        println!("{json}");
    } else {
        println!("{}", table());
    }
}

/// A JSON value as table text (strings without quotes, null as `-`).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Calls the API and maps an unexpected answer to its exit code.
async fn expect(
    api: &Api,
    service: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    ok: StatusCode,
) -> Result<Value, Failure> {
    let Answer { status, body } = api
        .call(service, method, path, body)
        .await
        .map_err(|e| Failure(exit::UNREACHABLE, format!("{service} unreachable: {}", e.0)))?;
    if status == ok {
        return Ok(body);
    }
    let code = match status {
        StatusCode::NOT_FOUND => exit::NOT_FOUND,
        StatusCode::CONFLICT => exit::CONFLICT,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => exit::AUTH,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
            exit::UNREACHABLE
        }
        _ => exit::FAILED,
    };
    Err(Failure(
        code,
        format!(
            "{service}: {} {} ({})",
            status.as_u16(),
            text(&body["detail"]),
            text(&body["code"])
        ),
    ))
}
