//! Command-line options (hand-parsed: a handful of flags does not need a parser crate).

use std::path::PathBuf;
use std::time::Duration;

use crate::topology::{NATS_CLUSTER_NODES, Topology};

/// Usage text for `--help` and errors.
pub const USAGE: &str = "\
Usage: chaos [--seed N] [--duration SECS] [--orders N] [--bin-dir DIR] [options]

Starts its own Postgres cluster and NATS server, two (--replicas) replicas of order, inventory
and payment behind fault-injecting proxies, places orders for three tenants while a seeded nemesis kills,
pauses and cuts things, heals everything, waits for quiescence and checks the invariants of
ARCHITECTURE.md section 8. Exits 1 on any violation (printing the seed to reproduce it),
2 when the harness itself fails.

Options:
  --seed N               seed of the fault schedule and the orders (default: random, printed)
  --duration SECS        how long load and nemesis run (default 120)
  --orders N             orders placed during the run, evenly paced (default 5 per second)
  --bin-dir DIR          where the order/inventory/payment binaries are
                         (default: the directory of this chaos binary)
  --quiesce-timeout SECS bound on waiting for quiescence after healing (default 150)
  --saga-deadline SECS   SAGA_DEADLINE_SECS of the order replicas (default 5)
  --replicas N           replicas of every service (default 2, 2 to 5)
  --nats-cluster         three nats-server processes clustered on loopback, streams R3; the
                         nemesis kills, pauses and partitions single nodes (the stream leader
                         included), never more than one at a time
  --pg-failover          Postgres primary with a synchronous hot standby; the nemesis kills the
                         primary, promotes the standby, re-points the services' address and
                         rebuilds a standby from the new primary
  --work-dir DIR         parent of the run directory (default: the system temp dir)
  --keep                 keep the run directory (logs, data) even when the run passes
  -h, --help             this text
";

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Args {
    /// Seed of everything random in the run.
    pub seed: u64,
    /// How long the load and the nemesis run.
    pub duration: Duration,
    /// Orders to place during the run.
    pub orders: u64,
    /// Directory of the service binaries.
    pub bin_dir: PathBuf,
    /// Whether `--bin-dir` was given (then a reproduction needs it too).
    pub bin_dir_given: bool,
    /// Bound on waiting for quiescence.
    pub quiesce_timeout: Duration,
    /// The order replicas' saga deadline.
    pub saga_deadline: Duration,
    /// Parent of the run directory.
    pub work_dir: PathBuf,
    /// Keep the run directory on success too.
    pub keep: bool,
    /// Replicas, NATS cluster, Postgres standby.
    pub topology: Topology,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run with these options.
    Run(Args),
    /// Print the usage.
    Help,
}

/// Parses `args` (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut seed = None;
    let mut duration = 120u64;
    let mut orders = None;
    let mut bin_dir = None;
    let mut quiesce = 150u64;
    let mut deadline = 5u64;
    let mut work_dir = None;
    let mut keep = false;
    let mut topology = Topology::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--seed" => seed = Some(number(&flag, &value(&flag)?)?),
            "--duration" => duration = number(&flag, &value(&flag)?)?,
            "--orders" => orders = Some(number(&flag, &value(&flag)?)?),
            "--bin-dir" => bin_dir = Some(PathBuf::from(value(&flag)?)),
            "--quiesce-timeout" => quiesce = number(&flag, &value(&flag)?)?,
            "--saga-deadline" => deadline = number(&flag, &value(&flag)?)?,
            "--work-dir" => work_dir = Some(PathBuf::from(value(&flag)?)),
            "--keep" => keep = true,
            "--replicas" => topology.replicas = number(&flag, &value(&flag)?)? as usize,
            "--nats-cluster" => topology.nats_nodes = NATS_CLUSTER_NODES,
            "--pg-failover" => topology.pg_standby = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !(20..=86_400).contains(&duration) {
        return Err("--duration must be between 20 and 86400 seconds".into());
    }
    if !(2..=60).contains(&deadline) {
        return Err("--saga-deadline must be between 2 and 60 seconds".into());
    }
    if !(2..=5).contains(&topology.replicas) {
        return Err("--replicas must be between 2 and 5".into());
    }
    let orders = orders.unwrap_or(duration * 5);
    if orders < 10 {
        return Err("--orders must be at least 10".into());
    }
    let bin_dir_given = bin_dir.is_some();
    let bin_dir = match bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .ok_or("cannot locate the chaos binary's directory; pass --bin-dir")?,
    };
    Ok(Command::Run(Args {
        seed: seed.unwrap_or_else(random_seed),
        duration: Duration::from_secs(duration),
        orders,
        bin_dir,
        bin_dir_given,
        quiesce_timeout: Duration::from_secs(quiesce.max(10)),
        saga_deadline: Duration::from_secs(deadline),
        work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
        keep,
        topology,
    }))
}

impl Args {
    /// The command that runs this run's plan again.
    pub fn reproduce(&self) -> String {
        let mut command = format!(
            "just chaos --seed {} --duration {} --orders {}",
            self.seed,
            self.duration.as_secs(),
            self.orders
        );
        command.push_str(&self.topology.flags());
        if self.saga_deadline != Duration::from_secs(5) {
            command.push_str(&format!(
                " --saga-deadline {}",
                self.saga_deadline.as_secs()
            ));
        }
        if self.bin_dir_given {
            command.push_str(&format!(" --bin-dir {}", self.bin_dir.display()));
        }
        command
    }
}

fn number(flag: &str, raw: &str) -> Result<u64, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{flag} expects a whole number, got {raw:?}"))
}

fn random_seed() -> u64 {
    // six digits are easy to copy into a reproduction command
    rand::random::<u64>() % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Args {
        match parse(args.iter().map(|s| s.to_string())).expect("parse") {
            Command::Run(a) => a,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn flags_with_and_without_equals() {
        let a = run(&["--seed", "7", "--duration=60", "--orders", "100", "--keep"]);
        assert_eq!(a.seed, 7);
        assert_eq!(a.duration, Duration::from_secs(60));
        assert_eq!(a.orders, 100);
        assert!(a.keep);
        assert_eq!(
            a.reproduce(),
            "just chaos --seed 7 --duration 60 --orders 100"
        );
        let b = run(&["--duration", "40", "--bin-dir", "/tmp/x"]);
        assert_eq!(b.orders, 200, "five orders per second by default");
        assert!(b.reproduce().ends_with("--orders 200 --bin-dir /tmp/x"));
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in [
            vec!["--seed"],
            vec!["--seed", "x"],
            vec!["--duration", "5"],
            vec!["--frobnicate"],
        ] {
            assert!(parse(bad.iter().map(|s| s.to_string())).is_err(), "{bad:?}");
        }
        assert!(matches!(parse(["--help".to_string()]), Ok(Command::Help)));
        for bad in [
            vec!["--replicas", "1"],
            vec!["--replicas", "9"],
            vec!["--replicas"],
        ] {
            assert!(parse(bad.iter().map(|s| s.to_string())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topology_flags_are_parsed_and_reproduced() {
        let plain = run(&["--seed", "1"]);
        assert_eq!(plain.topology, Topology::default());
        assert!(!plain.topology.nats_cluster());
        assert_eq!(plain.topology.stream_replicas(), 1);
        let a = run(&[
            "--seed",
            "3",
            "--duration",
            "30",
            "--nats-cluster",
            "--pg-failover",
            "--replicas=3",
        ]);
        assert_eq!(a.topology.replicas, 3);
        assert_eq!(a.topology.nats_nodes, 3);
        assert_eq!(a.topology.stream_replicas(), 3);
        assert!(a.topology.pg_standby);
        assert_eq!(
            a.reproduce(),
            "just chaos --seed 3 --duration 30 --orders 150 --replicas 3 --nats-cluster --pg-failover"
        );
        let again = run(&a.reproduce().split(' ').skip(2).collect::<Vec<_>>());
        assert_eq!(
            again.topology, a.topology,
            "the reproduction selects the same topology"
        );
    }
}
