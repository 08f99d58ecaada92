//! `check-invariants`: waits until a platform is quiet and checks the invariants of ARCHITECTURE.md
//! section 8 in its three databases ([`longship_testkit::invariants`]), for scripts that run the
//! services as processes (e.g. scripts/tests/test_saga_extension.sh).
//!
//! Usage: check-invariants --orders URL --inventory URL --payments URL [--tenant T]...
//!        [--stock TENANT/SKU=N]... [--balance TENANT/CUSTOMER=N]... [--within SECS]
//! URLs connect as an owner or superuser (the checks read across tenants). `--tenant` limits the
//! checks to those tenants' rows; `--stock`/`--balance` give the starting values. Prints each
//! violation and exits 1 if any remains after `--within` seconds (default 60), else prints
//! `every invariant holds` and exits 0; 2 on bad arguments.

#![allow(clippy::print_stdout, clippy::print_stderr)] // reason: a command-line tool reports on stdout

use std::process::ExitCode;
use std::time::Duration;

use longship_testkit::invariants::{Databases, Initial, wait_quiet_scoped};
use sqlx::postgres::PgPoolOptions;

#[derive(Default)]
struct Args {
    urls: [Option<String>; 3],
    tenants: Vec<String>,
    initial: Initial,
    within: u64,
}

fn pair(value: &str) -> Result<((String, String), i64), String> {
    let (key, n) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` is not TENANT/NAME=N"))?;
    let (tenant, name) = key
        .split_once('/')
        .ok_or_else(|| format!("`{key}` is not TENANT/NAME"))?;
    let n = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
    Ok(((tenant.to_owned(), name.to_owned()), n))
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        within: 60,
        ..Args::default()
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--orders" => args.urls[0] = Some(value),
            "--inventory" => args.urls[1] = Some(value),
            "--payments" => args.urls[2] = Some(value),
            "--tenant" => args.tenants.push(value),
            "--stock" => {
                let (key, n) = pair(&value)?;
                args.initial.stock.insert(key, n);
            }
            "--balance" => {
                let (key, n) = pair(&value)?;
                args.initial.balances.insert(key, n);
            }
            "--within" => {
                args.within = value
                    .parse()
                    .map_err(|_| format!("--within: `{value}` is not seconds"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.urls.iter().any(Option::is_none) {
        return Err("--orders, --inventory and --payments are required".into());
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("check-invariants: {e}");
            return ExitCode::from(2);
        }
    };
    let mut pools = Vec::new();
    for url in args.urls.iter().flatten() {
        match PgPoolOptions::new().max_connections(2).connect(url).await {
            Ok(pool) => pools.push(pool),
            Err(e) => {
                eprintln!("check-invariants: cannot connect to {url}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let dbs = Databases {
        orders: &pools[0],
        inventory: &pools[1],
        payments: &pools[2],
    };
    let tenants = (!args.tenants.is_empty()).then_some(args.tenants.as_slice());
    let within = Duration::from_secs(args.within);
    let violations = wait_quiet_scoped(&dbs, &args.initial, tenants, within).await;
    if violations.is_empty() {
        println!("every invariant holds");
        return ExitCode::SUCCESS;
    }
    for v in &violations {
        println!("violation: {v}");
    }
    ExitCode::FAILURE
}
