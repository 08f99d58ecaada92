//! Command-line options (`loadgen --help`). Flags take their value as the next argument; defaults
//! follow the `just up` environment (`LONGSHIP_PORT_OFFSET`, `LONGSHIP_DB_SUFFIX`, `NATS_PREFIX`, ...),
//! so loadgen finds the platform that the same environment started.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// What to run.
#[derive(Debug, Clone)]
pub enum Command {
    /// Seed, load, measure, check invariants and write the report.
    Bench(Box<Options>),
    /// Delete the JetStream streams under a prefix and drop the databases of a suffix.
    Cleanup(Box<Options>),
    /// A Postgres wire-protocol proxy that counts statements and round trips per database.
    PgProxy(ProxyOptions),
    /// Print the usage.
    Help,
}

/// Options of `loadgen pg-proxy`.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Where to listen, e.g. 127.0.0.1:25432.
    pub listen: String,
    /// The real server, e.g. 127.0.0.1:5432.
    pub upstream: String,
    /// Where the counters are written (JSON, rewritten every 200 ms).
    pub stats_file: PathBuf,
}

/// Options of `loadgen bench` (and `cleanup`, which uses the naming ones).
#[derive(Debug, Clone)]
pub struct Options {
    /// Order service base URL.
    pub order_url: String,
    /// Inventory service base URL.
    pub inventory_url: String,
    /// Payment service base URL.
    pub payment_url: String,
    /// Postgres admin URL (any database; the three service databases are derived from it).
    pub pg_url: String,
    /// Suffix of the databases `orders`, `inventory`, `payments`.
    pub db_suffix: String,
    /// NATS server.
    pub nats_url: String,
    /// Subject and stream prefix of the platform.
    pub nats_prefix: String,
    /// `just up` state directory (pid files in `run/`).
    pub state_dir: PathBuf,
    /// Send HS256 JWTs signed with this secret instead of `X-Tenant-Id`.
    pub token_secret: Option<String>,
    /// Tenants created for this run.
    pub tenants: usize,
    /// Products per tenant.
    pub skus: usize,
    /// Customers per tenant.
    pub customers: usize,
    /// Share of orders meant to fail (half declined payments, half out of stock).
    pub mix: f64,
    /// Warm-up (closed loop, not reported as a result).
    pub warmup: Duration,
    /// Closed-loop phase length (zero skips it).
    pub closed: Duration,
    /// Concurrent clients of the closed loop.
    pub clients: usize,
    /// Closed-loop clients wait for each order's terminal event (a fixed number of sagas in
    /// flight) instead of only its 202.
    pub wait_terminal: bool,
    /// The first tenant places this many times as many orders as each other tenant (1: even).
    pub tenant_skew: f64,
    /// Open-loop phase length per rate (zero skips them).
    pub open: Duration,
    /// Fixed open-loop rates (orders/s); empty = one phase at `rate_share` of the closed-loop rate.
    pub rates: Vec<f64>,
    /// Share of the closed-loop accepted rate for the open loop when no rate is given.
    pub rate_share: f64,
    /// Length of the commit-ceiling benchmark (zero skips it).
    pub ceiling: Duration,
    /// Connections of the commit-ceiling benchmark (default: the backends the platform held).
    pub ceiling_connections: Option<usize>,
    /// Longest wait for accepted orders to finish after a phase.
    pub drain_timeout: Duration,
    /// Skip the invariant check.
    pub no_invariants: bool,
    /// Exit non-zero on any error, unfinished saga or invariant violation.
    pub fail_on_errors: bool,
    /// Where `<timestamp>/report.{json,md}` and `chart.svg` go.
    pub out_dir: PathBuf,
    /// A counting proxy's stats file (`loadgen pg-proxy`) the services connect through.
    pub census_file: Option<PathBuf>,
    /// The profile name shown in the report (`default`, `quick` or `custom`).
    pub profile: String,
    /// The argument list, for the report.
    pub argv: Vec<String>,
}

impl Options {
    fn defaults() -> Options {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let offset: u16 = env("LONGSHIP_PORT_OFFSET")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let url = |port: u16| format!("http://127.0.0.1:{}", port + offset);
        Options {
            order_url: url(8080),
            inventory_url: url(8081),
            payment_url: url(8082),
            pg_url: env("LONGSHIP_PG_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            db_suffix: env("LONGSHIP_DB_SUFFIX").unwrap_or_default(),
            nats_url: env("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            nats_prefix: env("NATS_PREFIX").unwrap_or_default(),
            state_dir: env("LONGSHIP_STATE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".longship")),
            token_secret: None,
            tenants: 8,
            skus: 50,
            customers: 100,
            mix: 0.0,
            warmup: Duration::from_secs(5),
            closed: Duration::from_secs(25),
            clients: 32,
            wait_terminal: false,
            tenant_skew: 1.0,
            open: Duration::from_secs(20),
            rates: Vec::new(),
            rate_share: 0.5,
            ceiling: Duration::from_secs(3),
            ceiling_connections: None,
            drain_timeout: Duration::from_secs(30),
            no_invariants: false,
            fail_on_errors: false,
            out_dir: PathBuf::from("target/bench"),
            census_file: None,
            profile: "default".into(),
            argv: Vec::new(),
        }
    }

    fn quick(&mut self) {
        self.profile = "quick".into();
        self.tenants = 3;
        self.skus = 10;
        self.customers = 10;
        self.mix = 0.2;
        self.warmup = Duration::from_secs(1);
        self.closed = Duration::from_secs(3);
        self.clients = 8;
        self.open = Duration::from_secs(3);
        self.rates = vec![50.0];
        self.ceiling = Duration::from_secs(1);
        self.drain_timeout = Duration::from_secs(20);
    }

    /// The three databases, by service.
    pub fn databases(&self) -> [(&'static str, String); 3] {
        [
            ("order", format!("orders{}", self.db_suffix)),
            ("inventory", format!("inventory{}", self.db_suffix)),
            ("payment", format!("payments{}", self.db_suffix)),
        ]
    }
}

pub const USAGE: &str = "\
loadgen: load generator and benchmark of the Longship platform (a real client of its HTTP API)

USAGE:
  loadgen [bench] [OPTIONS]     seed tenants, run the phases, check invariants, write the report
  loadgen cleanup [OPTIONS]     delete the run's JetStream streams (--nats-prefix) and drop its
                                databases (--db-suffix, must be non-empty)
  loadgen pg-proxy --listen ADDR --upstream ADDR --stats-file FILE
                                a counting Postgres proxy (statements and round trips per database)

Where the platform is (defaults follow the `just up` environment):
  --port-offset N         LONGSHIP_PORT_OFFSET: services on 8080+N, 8081+N, 8082+N
  --order-url URL  --inventory-url URL  --payment-url URL
  --pg-url URL            LONGSHIP_PG_URL, admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
  --db-suffix S           LONGSHIP_DB_SUFFIX (databases orders<S>, inventory<S>, payments<S>)
  --nats-url URL          NATS_URL (default nats://127.0.0.1:4222)
  --nats-prefix P         NATS_PREFIX of the platform
  --state-dir DIR         LONGSHIP_STATE_DIR (pid files in DIR/run; default .longship)
  --token-secret SECRET   authenticate with HS256 JWTs (AUTH_JWT_SECRET) instead of X-Tenant-Id

Workload:
  --tenants N (8)  --skus N (50 per tenant)  --customers N (100 per tenant)
  --mix F                 share of orders that fail: half declined payments, half out of stock (0)
  --warmup SECS (5)       closed-loop warm-up, not reported
  --closed SECS (25)      closed-loop phase (0 skips)     --clients N (32)
  --wait-terminal         closed-loop clients wait for each order's terminal event before the
                          next (exactly N sagas in flight) instead of only for its 202
  --tenant-skew K         the first tenant places K times as many orders as each other tenant;
                          the report gives both sides' accept->terminal latencies (needs 2+ tenants)
  --open SECS (20)        each open-loop phase (0 skips)
  --rate R[,R...]         open-loop rates in orders/s (default: --rate-share of the closed-loop rate)
  --rate-share F (0.5)
  --quick                 ~10 s smoke: 3 tenants, mix 0.2, 1 s warm-up, 3 s closed (8 clients),
                          3 s open at 50/s, 1 s ceiling

Measurement and report:
  --ceiling SECS (3)      single-row INSERT commit benchmark on the same Postgres (0 skips)
  --ceiling-connections N (default: the backends the platform held during the closed loop)
  --drain-timeout SECS (30)
  --census-file FILE      stats file of a `loadgen pg-proxy` the services connect through
  --no-invariants         skip the invariant check
  --fail-on-errors        exit 1 on any error, unfinished saga or invariant violation
  --out DIR               report directory root (default target/bench)
";

/// Parses the process arguments.
pub fn parse(args: Vec<String>) -> anyhow::Result<Command> {
    let mut it = args.iter().skip(1).peekable();
    let sub = match it.peek().map(|s| s.as_str()) {
        Some("bench") => {
            it.next();
            "bench"
        }
        Some("cleanup") => {
            it.next();
            "cleanup"
        }
        Some("pg-proxy") => {
            it.next();
            "pg-proxy"
        }
        Some("help" | "--help" | "-h") => return Ok(Command::Help),
        _ => "bench",
    };
    let rest: Vec<String> = it.cloned().collect();
    if sub == "pg-proxy" {
        return parse_proxy(&rest).map(Command::PgProxy);
    }
    let mut o = Options::defaults();
    o.argv = args.clone();
    // --quick first, so explicit flags override its values wherever they stand
    if rest.iter().any(|a| a == "--quick") {
        o.quick();
    }
    let mut custom = false;
    let mut i = 0;
    while i < rest.len() {
        let flag = rest[i].as_str();
        let mut value = || -> anyhow::Result<&String> {
            i += 1;
            rest.get(i)
                .with_context(|| format!("{flag} needs a value (loadgen --help)"))
        };
        match flag {
            "--quick" => {}
            "--help" | "-h" => return Ok(Command::Help),
            "--port-offset" => {
                let n: u16 = value()?.parse().context("--port-offset")?;
                o.order_url = format!("http://127.0.0.1:{}", 8080 + n);
                o.inventory_url = format!("http://127.0.0.1:{}", 8081 + n);
                o.payment_url = format!("http://127.0.0.1:{}", 8082 + n);
            }
            "--order-url" => o.order_url = value()?.clone(),
            "--inventory-url" => o.inventory_url = value()?.clone(),
            "--payment-url" => o.payment_url = value()?.clone(),
            "--pg-url" => o.pg_url = value()?.clone(),
            "--db-suffix" => o.db_suffix = value()?.clone(),
            "--nats-url" => o.nats_url = value()?.clone(),
            "--nats-prefix" => o.nats_prefix = value()?.clone(),
            "--state-dir" => o.state_dir = PathBuf::from(value()?),
            "--token-secret" => o.token_secret = Some(value()?.clone()),
            "--tenants" => o.tenants = value()?.parse().context("--tenants")?,
            "--skus" => o.skus = value()?.parse().context("--skus")?,
            "--customers" => o.customers = value()?.parse().context("--customers")?,
            "--mix" => o.mix = value()?.parse().context("--mix")?,
            "--warmup" => o.warmup = secs(value()?, "--warmup")?,
            "--closed" => o.closed = secs(value()?, "--closed")?,
            "--clients" => o.clients = value()?.parse().context("--clients")?,
            "--wait-terminal" => o.wait_terminal = true,
            "--tenant-skew" => o.tenant_skew = value()?.parse().context("--tenant-skew")?,
            "--open" => o.open = secs(value()?, "--open")?,
            "--rate" => {
                o.rates = value()?
                    .split(',')
                    .map(|r| r.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .context("--rate")?;
            }
            "--rate-share" => o.rate_share = value()?.parse().context("--rate-share")?,
            "--ceiling" => o.ceiling = secs(value()?, "--ceiling")?,
            "--ceiling-connections" => {
                o.ceiling_connections = Some(value()?.parse().context("--ceiling-connections")?)
            }
            "--drain-timeout" => o.drain_timeout = secs(value()?, "--drain-timeout")?,
            "--census-file" => o.census_file = Some(PathBuf::from(value()?)),
            "--no-invariants" => o.no_invariants = true,
            "--fail-on-errors" => o.fail_on_errors = true,
            "--out" => o.out_dir = PathBuf::from(value()?),
            other => bail!("unknown option {other:?} (loadgen --help)"),
        }
        if customises_the_profile(flag) {
            custom = true;
        }
        i += 1;
    }
    if custom {
        o.profile = format!("{} (customised)", o.profile);
    }
    validate(&o)?;
    Ok(match sub {
        "cleanup" => Command::Cleanup(Box::new(o)),
        _ => Command::Bench(Box::new(o)),
    })
}

/// Whether a flag changes what is measured (so the report calls the profile customised), rather
/// than where the platform is or where the report goes.
fn customises_the_profile(flag: &str) -> bool {
    !matches!(
        flag,
        "--quick"
            | "--port-offset"
            | "--order-url"
            | "--inventory-url"
            | "--payment-url"
            | "--pg-url"
            | "--db-suffix"
            | "--nats-url"
            | "--nats-prefix"
            | "--state-dir"
            | "--token-secret"
            | "--fail-on-errors"
            | "--out"
            | "--census-file"
    )
}

/// Refuses options that cannot make a run.
fn validate(o: &Options) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&o.mix) {
        bail!("--mix must be between 0 and 1");
    }
    if !(o.tenant_skew.is_finite() && o.tenant_skew >= 1.0) {
        bail!("--tenant-skew must be at least 1");
    }
    if o.tenant_skew > 1.0 && o.tenants < 2 {
        bail!("--tenant-skew needs at least 2 tenants");
    }
    if o.tenants == 0 || o.skus == 0 || o.customers == 0 || o.clients == 0 {
        bail!("--tenants, --skus, --customers and --clients must be at least 1");
    }
    if o.rates.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
        bail!("--rate values must be positive");
    }
    if !o
        .db_suffix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("--db-suffix may contain only [a-z0-9_]");
    }
    Ok(())
}

fn parse_proxy(rest: &[String]) -> anyhow::Result<ProxyOptions> {
    let (mut listen, mut upstream, mut stats) = (None, None, None);
    let mut i = 0;
    while i < rest.len() {
        let v = rest.get(i + 1).cloned();
        match rest[i].as_str() {
            "--listen" => listen = v,
            "--upstream" => upstream = v,
            "--stats-file" => stats = v,
            other => bail!("unknown pg-proxy option {other:?} (loadgen --help)"),
        }
        i += 2;
    }
    Ok(ProxyOptions {
        listen: listen.context("pg-proxy needs --listen")?,
        upstream: upstream.context("pg-proxy needs --upstream")?,
        stats_file: PathBuf::from(stats.context("pg-proxy needs --stats-file")?),
    })
}

fn secs(raw: &str, flag: &str) -> anyhow::Result<Duration> {
    let s: f64 = raw
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("{flag} takes seconds"))?;
    if !(s >= 0.0 && s.is_finite()) {
        bail!("{flag} must be zero or more seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        std::iter::once("loadgen")
            .chain(s.split_whitespace())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn quick_then_overrides() {
        let Ok(Command::Bench(o)) = parse(args("--clients 3 --quick --rate 10,20")) else {
            panic!("not a bench");
        };
        assert_eq!(o.clients, 3);
        assert_eq!(o.rates, vec![10.0, 20.0]);
        assert_eq!(o.closed, Duration::from_secs(3));
        assert!(o.profile.starts_with("quick"));
    }

    #[test]
    fn port_offset_moves_every_url() {
        let Ok(Command::Bench(o)) = parse(args("bench --port-offset 100")) else {
            panic!("not a bench");
        };
        assert_eq!(o.order_url, "http://127.0.0.1:8180");
        assert_eq!(o.payment_url, "http://127.0.0.1:8182");
        assert_eq!(o.profile, "default");
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        assert!(parse(args("--nope")).is_err());
        assert!(parse(args("--mix 2")).is_err());
        assert!(parse(args("--db-suffix A-B")).is_err());
        assert!(parse(args("--clients")).is_err());
        assert!(parse(args("--tenant-skew 0.5")).is_err());
        assert!(parse(args("--tenant-skew 10 --tenants 1")).is_err());
        let Ok(Command::Bench(o)) = parse(args("--tenant-skew 10 --tenants 2 --wait-terminal"))
        else {
            panic!("a skewed closed loop that waits for terminal events parses");
        };
        assert_eq!((o.tenant_skew, o.tenants, o.wait_terminal), (10.0, 2, true));
        assert!(o.profile.ends_with("(customised)"));
    }
}
