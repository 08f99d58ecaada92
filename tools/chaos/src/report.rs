//! The summary printed at the end of a run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::nemesis::Injected;
use crate::plan::FaultKind;
use crate::procs::{ProcId, ProcStats};
use crate::topology::Topology;
use crate::verify::Tally;

/// What one order replica did (summed over its restarts; lower bounds, as scraped).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplicaWork {
    /// `saga_finished_total`: sagas it ran to their end.
    pub sagas_finished: f64,
    /// `saga_step_duration_seconds_count`: step attempts it made.
    pub step_attempts: f64,
}

/// Everything the summary shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Load/nemesis duration.
    pub duration: Duration,
    /// Orders in the plan.
    pub orders_planned: usize,
    /// Orders the API answered with an id.
    pub orders_answered: usize,
    /// POST attempts (retries included).
    pub post_attempts: u64,
    /// Orders by outcome, events, inbox rows.
    pub tally: Tally,
    /// Faults injected.
    pub faults: Vec<Injected>,
    /// Starts and unexpected exits per process.
    pub processes: BTreeMap<ProcId, ProcStats>,
    /// Time from healing to quiescence (None: not reached).
    pub quiesced_after: Option<Duration>,
    /// Counters scraped from the replicas' /metrics (lower bounds).
    pub counters: BTreeMap<String, f64>,
    /// Invariant violations (must be empty).
    pub violations: Vec<String>,
    /// Noteworthy, but not an invariant.
    pub warnings: Vec<String>,
    /// Where logs and data are.
    pub run_dir: PathBuf,
    /// The command that reproduces the run.
    pub reproduce: String,
    /// What was deployed.
    pub topology: Topology,
    /// Work per order replica.
    pub per_replica: BTreeMap<usize, ReplicaWork>,
    /// Replicas of each stream as JetStream reports them at the end.
    pub stream_replicas: BTreeMap<String, u64>,
}

impl Report {
    /// Writes the summary.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out)?;
        writeln!(out, "=== chaos summary (seed {}) ===", self.seed)?;
        writeln!(
            out,
            "run: {:.0?} of load and faults, 3 tenants, {}",
            self.duration, self.topology
        )?;
        let cancelled: usize = self.tally.cancelled.values().sum();
        writeln!(
            out,
            "orders: {} planned, {} placed (answered; {} POSTs incl. retries), {} in the database: {} CONFIRMED, {} CANCELLED",
            self.orders_planned,
            self.orders_answered,
            self.post_attempts,
            self.tally.orders,
            self.tally.confirmed,
            cancelled
        )?;
        let reasons: Vec<String> = self
            .tally
            .cancelled
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        writeln!(out, "cancelled by reason: {}", or_none(&reasons))?;
        let mut by_kind: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for f in &self.faults {
            *by_kind.entry(f.kind).or_default() += 1;
        }
        writeln!(out, "faults injected: {} in total", self.faults.len())?;
        for kind in FaultKind::for_topology(&self.topology) {
            writeln!(
                out,
                "  {:<32} {}",
                kind.name(),
                by_kind.get(&kind).copied().unwrap_or(0)
            )?;
        }
        writeln!(out, "fault timeline:")?;
        for f in &self.faults {
            writeln!(out, "  {:>6.1}s  {}", f.at.as_secs_f64(), f.what)?;
        }
        let restarts: Vec<String> = self
            .processes
            .iter()
            .map(|(id, s)| match s.unexpected_exits {
                0 => format!("{id} {}", s.starts),
                n => format!("{id} {} ({n} exits on its own)", s.starts),
            })
            .collect();
        writeln!(out, "process starts: {}", restarts.join(", "))?;
        let events: Vec<String> = self
            .tally
            .events
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        writeln!(
            out,
            "events in streams (each exactly once): {}",
            or_none(&events)
        )?;
        let handled: Vec<String> = self
            .tally
            .handled
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        writeln!(
            out,
            "order_confirmed handled (inbox rows): {}",
            or_none(&handled)
        )?;
        if !self.counters.is_empty() {
            let counters: Vec<String> = self
                .counters
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(
                out,
                "observed in /metrics (at least): {}",
                counters.join(", ")
            )?;
        }
        self.write_spread(out)?;
        match self.quiesced_after {
            Some(t) => writeln!(
                out,
                "time to quiesce after the nemesis stopped (healing included): {:.1}s",
                t.as_secs_f64()
            )?,
            None => writeln!(
                out,
                "time to quiesce after the nemesis stopped: not reached"
            )?,
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}")?;
        }
        writeln!(out, "violations: {}", self.violations.len())?;
        for v in self.violations.iter().take(50) {
            writeln!(out, "  VIOLATION: {v}")?;
        }
        if self.violations.len() > 50 {
            writeln!(out, "  ... and {} more", self.violations.len() - 50)?;
        }
        if self.violations.is_empty() {
            writeln!(out, "result: PASS")?;
        } else {
            writeln!(out, "result: FAIL (seed {})", self.seed)?;
            writeln!(out, "reproduce: {}", self.reproduce)?;
            writeln!(out, "logs and data kept in {}", self.run_dir.display())?;
        }
        Ok(())
    }
}

impl Report {
    /// Each stream's replicas, the sagas finished and step attempts per order replica, and how
    /// even the spread is.
    fn write_spread(&self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.stream_replicas.is_empty() {
            let replicas: Vec<String> = self
                .stream_replicas
                .iter()
                .map(|(s, n)| format!("{s} R{n}"))
                .collect();
            writeln!(out, "stream replicas (JetStream): {}", replicas.join(", "))?;
        }
        if self.per_replica.is_empty() {
            return writeln!(out, "work per order replica: not observed");
        }
        let cells: Vec<String> = self
            .per_replica
            .iter()
            .map(|(r, w)| {
                format!(
                    "order-{r} {:.0} sagas / {:.0} steps",
                    w.sagas_finished, w.step_attempts
                )
            })
            .collect();
        writeln!(
            out,
            "work per order replica (saga_finished_total, saga_step_duration_seconds_count): {}",
            cells.join(", ")
        )?;
        writeln!(
            out,
            "spread of sagas finished: {}",
            spread(&self.per_replica)
        )
    }
}

/// "min/max share": how far the busiest and idlest replicas are from an even split.
fn spread(per_replica: &BTreeMap<usize, ReplicaWork>) -> String {
    let sagas: Vec<f64> = per_replica.values().map(|w| w.sagas_finished).collect();
    let total: f64 = sagas.iter().sum();
    if total <= 0.0 {
        return "no saga finished".into();
    }
    let even = 100.0 / sagas.len() as f64;
    let min = sagas.iter().copied().fold(f64::INFINITY, f64::min) / total * 100.0;
    let max = sagas.iter().copied().fold(0.0, f64::max) / total * 100.0;
    format!("{min:.1}% to {max:.1}% of {total:.0} per replica (even: {even:.1}%)")
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_topology_and_the_spread_per_replica() {
        let mut report = Report {
            topology: Topology {
                replicas: 3,
                nats_nodes: 3,
                pg_standby: true,
            },
            ..Report::default()
        };
        for (r, sagas) in [(0, 100.0), (1, 300.0), (2, 600.0)] {
            report.per_replica.insert(
                r,
                ReplicaWork {
                    sagas_finished: sagas,
                    step_attempts: sagas * 4.0,
                },
            );
        }
        let mut out = Vec::new();
        report.write(&mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("3 replicas per service"), "{text}");
        assert!(
            text.contains("3-node JetStream cluster (NATS_STREAM_REPLICAS=3)"),
            "{text}"
        );
        assert!(text.contains("synchronous hot standby"), "{text}");
        assert!(text.contains("nats node partitioned"), "{text}");
        assert!(!text.contains("nats-server killed+restarted"), "{text}");
        assert!(text.contains("order-2 600 sagas / 2400 steps"), "{text}");
        assert!(
            text.contains("10.0% to 60.0% of 1000 per replica (even: 33.3%)"),
            "{text}"
        );
        assert!(text.contains("result: PASS"), "{text}");
    }
}
