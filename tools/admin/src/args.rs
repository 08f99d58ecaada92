//! The command line: what to do, on which services, with which token and output.

/// What the CLI is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `sagas list [--stuck] [--tenant T] [--status S] [--type T] [--limit N] [--cursor C]`
    SagasList {
        /// Only stuck sagas.
        stuck: bool,
        /// Query pairs.
        query: Vec<(String, String)>,
    },
    /// `saga show ID`
    SagaShow(String),
    /// `saga retry ID`
    SagaRetry(String),
    /// `saga cancel ID --reason R`
    SagaCancel(String, String),
    /// `dead-letters list [--service S] [--consumer C] [--tenant T]`
    DeadLettersList(Vec<(String, String)>),
    /// `dead-letters redrive ID`
    DeadLetterRedrive(String),
    /// `dead-letters discard ID --reason R`
    DeadLetterDiscard(String, String),
    /// `outbox`
    Outbox,
    /// `audit [--tenant T] [--limit N]`
    Audit(Vec<(String, String)>),
    /// `help`
    Help,
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// What to do.
    pub command: Command,
    /// `--json`: print the API's JSON instead of tables.
    pub json: bool,
    /// `--service S`: only this service (dead letters, outbox, audit).
    pub service: Option<String>,
    /// `--token T` (else `LONGSHIP_ADMIN_TOKEN`).
    pub token: Option<String>,
    /// `--order-url`, `--inventory-url`, `--payment-url`.
    pub urls: Vec<(String, String)>,
}

/// The usage text.
pub const USAGE: &str = "\
longship-admin: operate Longship's sagas, dead letters and outboxes over the admin API

usage: longship-admin [--json] [--token JWT] [--order-url URL] [--inventory-url URL] [--payment-url URL] COMMAND

commands:
  sagas list [--stuck] [--tenant T] [--status S] [--type T] [--limit N] [--cursor C]
  saga show ID
  saga retry ID
  saga cancel ID --reason TEXT
  dead-letters list [--service S] [--consumer C] [--tenant T] [--limit N]
  dead-letters redrive ID [--service S]
  dead-letters discard ID --reason TEXT [--service S]
  outbox [--service S]
  audit [--service S] [--tenant T] [--limit N]

The token comes from --token or LONGSHIP_ADMIN_TOKEN (`just token --operator` prints one).
Service URLs default to http://127.0.0.1:8080/8081/8082 plus LONGSHIP_PORT_OFFSET, or
LONGSHIP_ORDER_URL, LONGSHIP_INVENTORY_URL, LONGSHIP_PAYMENT_URL.

exit codes: 0 done, 1 other failure, 2 usage, 3 not found, 4 conflict (finished saga,
failed redrive), 5 authentication or authorization refused, 6 a service unreachable";

/// Parses `argv` (without the program name); the error is the message to print with the usage.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut json = false;
    let mut stuck = false;
    let mut service = None;
    let mut token = None;
    let mut reason = None;
    let mut urls = Vec::new();
    let mut query = Vec::new();
    let mut words = Vec::new();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--json" => json = true,
            "--stuck" => stuck = true,
            "-h" | "--help" => words.push("help".to_owned()),
            "--service" => service = Some(value(arg)?),
            "--token" => token = Some(value(arg)?),
            "--reason" => reason = Some(value(arg)?),
            "--order-url" | "--inventory-url" | "--payment-url" => {
                let name = arg
                    .trim_start_matches("--")
                    .trim_end_matches("-url")
                    .to_owned();
                urls.push((name, value(arg)?));
            }
            "--tenant" | "--status" | "--consumer" | "--limit" | "--cursor" => {
                query.push((arg.trim_start_matches("--").to_owned(), value(arg)?));
            }
            "--type" => query.push(("saga_type".to_owned(), value(arg)?)),
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => words.push(other.to_owned()),
        }
    }
    if let Some(s) = &service
        && !crate::client::SERVICES.iter().any(|(name, _)| name == s)
    {
        return Err(format!("unknown service {s}: order, inventory or payment"));
    }
    let need_reason = || {
        reason
            .clone()
            .ok_or_else(|| "--reason is required".to_owned())
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match words.as_slice() {
        [] | ["help"] => Command::Help,
        ["sagas", "list"] => Command::SagasList { stuck, query },
        ["saga", "show", id] => Command::SagaShow((*id).to_owned()),
        ["saga", "retry", id] => Command::SagaRetry((*id).to_owned()),
        ["saga", "cancel", id] => Command::SagaCancel((*id).to_owned(), need_reason()?),
        ["dead-letters", "list"] => Command::DeadLettersList(query),
        ["dead-letters", "redrive", id] => Command::DeadLetterRedrive((*id).to_owned()),
        ["dead-letters", "discard", id] => {
            Command::DeadLetterDiscard((*id).to_owned(), need_reason()?)
        }
        ["outbox"] => Command::Outbox,
        ["audit"] => Command::Audit(query),
        other => return Err(format!("unknown command: {}", other.join(" "))),
    };
    Ok(Args {
        command,
        json,
        service,
        token,
        urls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse() {
        let a = parse(&argv("--json sagas list --stuck --tenant acme"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.json);
        assert_eq!(
            a.command,
            Command::SagasList {
                stuck: true,
                query: vec![("tenant".into(), "acme".into())]
            }
        );
        let a = parse(&argv("saga cancel abc --reason stuck")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.command, Command::SagaCancel("abc".into(), "stuck".into()));
        let a = parse(&argv("dead-letters redrive x --service payment"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.service.as_deref(), Some("payment"));
        assert!(
            parse(&argv("saga cancel abc")).is_err(),
            "a cancel needs a reason"
        );
        assert!(parse(&argv("dead-letters list --service billing")).is_err());
        assert!(parse(&argv("sagas frobnicate")).is_err());
        assert!(parse(&argv("outbox --token")).is_err());
    }
}
