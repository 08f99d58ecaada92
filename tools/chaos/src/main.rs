//! The chaos runner: breaks a real Longship deployment on purpose and checks that no money or
//! stock was lost (`just chaos --seed S --duration 120`; `chaos --help` for the options).
//!
//! It owns everything it breaks: its own Postgres (optionally a primary with a synchronous
//! standby) and NATS (optionally a three-node JetStream cluster) in a temporary directory, two or
//! more replicas of each service (the real binaries), fault proxies on every link. A
//! seeded nemesis kills, pauses and cuts while orders flow; then everything is healed, the system
//! must become quiet, and every invariant of ARCHITECTURE.md section 8 is checked. Exit status:
//! 0 no violation, 1 violations (the seed to reproduce is printed), 2 the harness failed, 130
//! interrupted.

mod cli;
mod cluster;
mod faults;
mod infra;
mod load;
mod natsc;
mod nemesis;
mod net;
mod pg;
mod plan;
mod procs;
mod report;
mod run;
mod topology;
mod verify;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(args)) => args,
        Ok(cli::Command::Help) => {
            let _ = write!(std::io::stdout(), "{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = write!(std::io::stderr(), "chaos: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHAOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("chaos=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    // a panic anywhere must not leave Postgres or NATS behind
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        procs::kill_all_groups();
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "chaos: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(main_async(args));
    // tasks still holding children are dropped here (kill_on_drop); groups are killed again
    drop(runtime);
    procs::kill_all_groups();
    code
}

async fn main_async(args: cli::Args) -> ExitCode {
    let run_dir = match infra::make_run_dir(&args.work_dir, args.seed) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let supervisor = match procs::Supervisor::new(&run_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = tokio::select! {
        result = run::run(&args, Arc::clone(&supervisor), &run_dir) => Some(result),
        () = interrupted() => None,
    };
    supervisor.shutdown().await;
    match outcome {
        None => {
            tracing::error!(
                seed = args.seed,
                dir = %run_dir.display(),
                "interrupted; every process stopped, run directory kept"
            );
            ExitCode::from(130)
        }
        Some(Err(e)) => {
            tracing::error!(
                seed = args.seed,
                dir = %run_dir.display(),
                "the harness failed: {e:#}"
            );
            ExitCode::from(2)
        }
        Some(Ok(report)) => {
            let mut out = std::io::stdout().lock();
            let _ = report.write(&mut out);
            let _ = out.flush();
            if report.violations.is_empty() {
                if args.keep {
                    tracing::info!(dir = %run_dir.display(), "run directory kept (--keep)");
                } else {
                    let _ = std::fs::remove_dir_all(&run_dir);
                }
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP.
async fn interrupted() {
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}
