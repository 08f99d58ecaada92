//! The summary printed at the end of a run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::nemesis::Injected;
use crate::plan::FaultKind;
use crate::procs::{ProcId, ProcStats};
use crate::verify::Tally;

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
}

impl Report {
    /// Writes the summary.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out)?;
        writeln!(out, "=== chaos summary (seed {}) ===", self.seed)?;
        writeln!(
            out,
            "run: {:.0?} of load and faults, 3 tenants, 2 replicas per service",
            self.duration
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
        for kind in FaultKind::ALL {
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

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
