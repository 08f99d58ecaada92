//! The processes the runner owns (Postgres, nats-server, the service replicas): started in their
//! own process groups so a signal reaches the whole tree, restarted when they die on their own,
//! and always killed when the runner ends — normally, on error, on panic, on Ctrl-C, and (through
//! a watchdog shell) even when the runner itself is SIGKILLed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::plan::Svc;

/// A process the runner manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcId {
    /// A Postgres postmaster (and its backends): node 0 is the first primary; with a standby,
    /// every standby built gets the next number.
    Postgres(usize),
    /// nats-server: node `.0` of the cluster (0 when there is one server).
    Nats(usize),
    /// Replica `.1` of a service.
    Replica(Svc, usize),
}

impl fmt::Display for ProcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcId::Postgres(n) => write!(f, "postgres-{n}"),
            ProcId::Nats(n) => write!(f, "nats-{n}"),
            ProcId::Replica(svc, r) => write!(f, "{svc}-{r}"),
        }
    }
}

/// How to start a process.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment (nothing is inherited but `PATH`).
    pub env: Vec<(String, String)>,
    /// Run as this user (through `setpriv`), e.g. `postgres` when the runner is root.
    pub as_user: Option<String>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
}

#[derive(Debug)]
struct Proc {
    spec: ProcSpec,
    child: Option<Child>,
    pid: Option<i32>,
    paused: bool,
    /// Stopped on purpose (the nemesis restarts it); not an unexpected exit.
    held_down: bool,
    /// Killed for good (a failed Postgres primary): never started again.
    retired: bool,
    starts: u32,
    unexpected_exits: u32,
    last_start: Option<Instant>,
}

/// Process groups alive now, for the last-resort kill from the panic hook and signal handlers.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// SIGCONT + SIGKILL to every process group the runner started and that is still alive.
pub fn kill_all_groups() {
    let groups: Vec<i32> = match LIVE_GROUPS.lock() {
        Ok(mut g) => std::mem::take(&mut *g).into_iter().collect(),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner())
            .into_iter()
            .collect(),
    };
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGCONT);
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// What the supervisor reports about a replica's life.
#[derive(Debug, Clone, Default)]
pub struct ProcStats {
    /// Times started.
    pub starts: u32,
    /// Exits nobody asked for.
    pub unexpected_exits: u32,
}

/// Owns the processes.
#[derive(Debug)]
pub struct Supervisor {
    procs: Mutex<BTreeMap<ProcId, Proc>>,
    groups_file: PathBuf,
    watchdog: Mutex<Option<Child>>,
}

impl Supervisor {
    /// A supervisor recording live process groups in `groups_file` for its watchdog.
    pub fn new(run_dir: &Path) -> anyhow::Result<Supervisor> {
        let groups_file = run_dir.join("process-groups");
        std::fs::write(&groups_file, "")?;
        // the watchdog outlives a SIGKILLed runner and then kills every group listed in the file
        let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
for g in $(cat "$2" 2>/dev/null); do kill -CONT -- "-$g" 2>/dev/null; kill -KILL -- "-$g" 2>/dev/null; done"#;
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("chaos-watchdog")
            .arg(std::process::id().to_string())
            .arg(&groups_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the watchdog shell")?;
        Ok(Supervisor {
            procs: Mutex::new(BTreeMap::new()),
            groups_file,
            watchdog: Mutex::new(Some(watchdog)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ProcId, Proc>> {
        match self.procs.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers a process (not started).
    pub fn add(&self, id: ProcId, spec: ProcSpec) {
        self.lock().insert(
            id,
            Proc {
                spec,
                child: None,
                pid: None,
                paused: false,
                held_down: false,
                retired: false,
                starts: 0,
                unexpected_exits: 0,
                last_start: None,
            },
        );
    }

    /// Starts `id` (no-op when it runs).
    pub fn start(&self, id: ProcId) -> anyhow::Result<()> {
        let mut procs = self.lock();
        let proc = procs
            .get_mut(&id)
            .with_context(|| format!("unknown process {id}"))?;
        if proc.child.is_some() {
            return Ok(());
        }
        if proc.retired {
            anyhow::bail!("{id} is retired");
        }
        let child = spawn(&proc.spec).with_context(|| format!("starting {id}"))?;
        let pid = child.id().map(|p| p as i32);
        proc.child = Some(child);
        proc.pid = pid;
        proc.paused = false;
        proc.held_down = false;
        proc.starts += 1;
        proc.last_start = Some(Instant::now());
        if let Some(pid) = pid {
            lock_groups().insert(pid);
        }
        drop(procs);
        self.write_groups();
        tracing::debug!(process = %id, ?pid, "started");
        Ok(())
    }

    /// The pid (= process group id) of `id` while it runs.
    pub fn pid(&self, id: ProcId) -> Option<i32> {
        self.lock().get(&id).and_then(|p| p.pid)
    }

    /// Whether `id` runs (not necessarily ready) and is not paused.
    pub fn is_up(&self, id: ProcId) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|p| p.child.is_some() && !p.paused)
    }

    /// SIGSTOP to the whole group of `id`. Returns false when it is not running.
    pub fn pause(&self, id: ProcId) -> bool {
        let mut procs = self.lock();
        let Some(proc) = procs.get_mut(&id) else {
            return false;
        };
        match proc.pid {
            Some(pid) if proc.child.is_some() => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGSTOP);
                proc.paused = true;
                true
            }
            _ => false,
        }
    }

    /// SIGCONT to the whole group of `id`.
    pub fn resume(&self, id: ProcId) {
        let mut procs = self.lock();
        if let Some(proc) = procs.get_mut(&id) {
            if let Some(pid) = proc.pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGCONT);
            }
            proc.paused = false;
        }
    }

    /// SIGKILLs the group of `id` and waits for it; it stays down until [`Supervisor::release`].
    pub async fn kill_and_hold(&self, id: ProcId) {
        let child = {
            let mut procs = self.lock();
            let Some(proc) = procs.get_mut(&id) else {
                return;
            };
            proc.held_down = true;
            proc.paused = false;
            if let Some(pid) = proc.pid.take() {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = killpg(Pid::from_raw(pid), Signal::SIGCONT);
                lock_groups().remove(&pid);
            }
            proc.child.take()
        };
        self.write_groups();
        if let Some(mut child) = child {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    /// SIGKILLs the group of `id` and waits for it; it is never started again (a failed-over
    /// Postgres primary must not come back as a second primary).
    pub async fn retire(&self, id: ProcId) {
        if let Some(proc) = self.lock().get_mut(&id) {
            proc.retired = true;
        }
        self.kill_and_hold(id).await;
    }

    /// Immediate stop of Postgres node `id`: SIGQUIT to the postmaster (its children quit at
    /// once, no checkpoint; the restart runs crash recovery), escalating to SIGKILL; held down
    /// afterwards.
    pub async fn postgres_immediate_stop(&self, id: ProcId) {
        let (pid, child) = {
            let mut procs = self.lock();
            let Some(proc) = procs.get_mut(&id) else {
                return;
            };
            proc.held_down = true;
            (proc.pid.take(), proc.child.take())
        };
        let (Some(pid), Some(mut child)) = (pid, child) else {
            return;
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
        if tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .is_err()
        {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        // backends notice the postmaster's death on their own; make sure of it
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        lock_groups().remove(&pid);
        self.write_groups();
    }

    /// Ends the hold on `id` and starts it.
    pub fn release(&self, id: ProcId) -> anyhow::Result<()> {
        if let Some(proc) = self.lock().get_mut(&id) {
            proc.held_down = false;
        }
        self.start(id)
    }

    /// Notices processes that exited on their own, counts them, and restarts them (at most once
    /// a second each). Returns the ones that had exited.
    pub fn reap(&self) -> Vec<(ProcId, String)> {
        let mut exited = Vec::new();
        let mut restart = Vec::new();
        {
            let mut procs = self.lock();
            for (id, proc) in procs.iter_mut() {
                if let Some(child) = proc.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    proc.child = None;
                    if let Some(pid) = proc.pid.take() {
                        lock_groups().remove(&pid);
                    }
                    if !proc.held_down {
                        proc.unexpected_exits += 1;
                        exited.push((*id, status.to_string()));
                    }
                }
                let cooled = proc
                    .last_start
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if proc.child.is_none()
                    && !proc.held_down
                    && !proc.retired
                    && proc.starts > 0
                    && cooled
                {
                    restart.push(*id);
                }
            }
        }
        if !exited.is_empty() {
            self.write_groups();
        }
        for id in restart {
            if let Err(e) = self.start(id) {
                tracing::warn!(process = %id, error = %e, "restart failed");
            }
        }
        exited
    }

    /// Heals every process: SIGCONT to the paused, start the stopped. Returns what it changed.
    pub fn heal_all(&self) -> Vec<String> {
        let ids: Vec<(ProcId, bool, bool)> = self
            .lock()
            .iter()
            .filter(|(_, p)| !p.retired)
            .map(|(id, p)| (*id, p.paused, p.child.is_none()))
            .collect();
        let mut healed = Vec::new();
        for (id, paused, down) in ids {
            if paused {
                self.resume(id);
                healed.push(format!("resumed {id}"));
            }
            if down {
                match self.release(id) {
                    Ok(()) => healed.push(format!("restarted {id}")),
                    Err(e) => healed.push(format!("could not restart {id}: {e}")),
                }
            }
        }
        healed
    }

    /// Starts and exits of every process.
    pub fn stats(&self) -> BTreeMap<ProcId, ProcStats> {
        self.lock()
            .iter()
            .map(|(id, p)| {
                (
                    *id,
                    ProcStats {
                        starts: p.starts,
                        unexpected_exits: p.unexpected_exits,
                    },
                )
            })
            .collect()
    }

    /// Kills everything (services first, then NATS, then Postgres) and the watchdog.
    pub async fn shutdown(&self) {
        let order: Vec<ProcId> = {
            let procs = self.lock();
            let mut ids: Vec<ProcId> = procs.keys().copied().collect();
            ids.sort_by_key(|id| match id {
                ProcId::Replica(..) => 0,
                ProcId::Nats(_) => 1,
                ProcId::Postgres(_) => 2,
            });
            ids
        };
        for id in order {
            self.kill_and_hold(id).await;
        }
        self.stop_watchdog();
    }

    fn stop_watchdog(&self) {
        kill_all_groups();
        let _ = std::fs::write(&self.groups_file, "");
        let watchdog = match self.watchdog.lock() {
            Ok(mut w) => w.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(mut w) = watchdog {
            let _ = w.start_kill();
        }
    }

    fn write_groups(&self) {
        let groups: Vec<String> = lock_groups().iter().map(|g| g.to_string()).collect();
        let tmp = self.groups_file.with_extension("tmp");
        if std::fs::write(&tmp, groups.join("\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &self.groups_file);
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // the last line of defence (errors, panics): nothing the runner started may outlive it
        self.stop_watchdog();
    }
}

fn lock_groups() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    match LIVE_GROUPS.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn spawn(spec: &ProcSpec) -> anyhow::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("opening {}", spec.log.display()))?;
    let mut header = log.try_clone()?;
    let _ = writeln!(
        header,
        "=== chaos: starting {} {}",
        spec.program.display(),
        spec.args.join(" ")
    );
    let mut command = match &spec.as_user {
        Some(user) => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                .arg(&spec.program);
            c
        }
        None => Command::new(&spec.program),
    };
    command
        .args(&spec.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true);
    Ok(command.spawn()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Running (a zombie waiting for its reaper does not count).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            })
            .is_some_and(|state| state != "Z")
    }

    fn spec(dir: &Path, script: &str) -> ProcSpec {
        ProcSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            as_user: None,
            log: dir.join("test.log"),
        }
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chaos-procs-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// The pids of `sh`'s background children, written to `file` by the script.
    async fn children(file: &Path) -> Vec<i32> {
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(file)
                && text.ends_with('\n')
            {
                return text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the script did not write its children's pids");
    }

    #[tokio::test]
    async fn shutdown_kills_the_whole_process_group_even_when_paused() {
        let dir = scratch();
        let pids = dir.join("pids");
        let supervisor = Supervisor::new(&dir).expect("supervisor");
        let id = ProcId::Replica(Svc::Order, 0);
        supervisor.add(
            id,
            spec(&dir, &format!("sleep 300 & echo $! > {p}.tmp; sleep 300 & echo $! >> {p}.tmp; mv {p}.tmp {p}; wait", p = pids.display())),
        );
        supervisor.start(id).expect("start");
        let kids = children(&pids).await;
        assert_eq!(kids.len(), 2);
        assert!(supervisor.pause(id));
        supervisor.shutdown().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for pid in kids {
            assert!(!alive(pid), "grandchild {pid} survived the shutdown");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_process_that_dies_on_its_own_is_counted_and_restarted_but_a_held_one_is_not() {
        let dir = scratch();
        let supervisor = Supervisor::new(&dir).expect("supervisor");
        let id = ProcId::Replica(Svc::Payment, 1);
        supervisor.add(id, spec(&dir, "sleep 0.1; exit 3"));
        supervisor.start(id).expect("start");
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let exited = supervisor.reap();
        assert_eq!(exited.len(), 1, "{exited:?}");
        assert_eq!(
            supervisor.stats()[&id].starts,
            2,
            "restarted after a second"
        );

        let held = ProcId::Replica(Svc::Inventory, 0);
        supervisor.add(held, spec(&dir, "sleep 300"));
        supervisor.start(held).expect("start");
        supervisor.kill_and_hold(held).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        supervisor.reap();
        assert!(!supervisor.is_up(held), "a held process stays down");
        assert_eq!(supervisor.stats()[&held].unexpected_exits, 0);
        supervisor.release(held).expect("release");
        assert!(supervisor.is_up(held));

        // a retired process (a failed-over primary) is never started again, by nobody
        let retired = ProcId::Postgres(0);
        supervisor.add(retired, spec(&dir, "sleep 300"));
        supervisor.start(retired).expect("start");
        supervisor.retire(retired).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(!supervisor.reap().iter().any(|(id, _)| *id == retired));
        assert!(
            !supervisor
                .heal_all()
                .iter()
                .any(|h| h.contains("postgres-0")),
            "heal leaves it down"
        );
        assert!(supervisor.release(retired).is_err());
        assert!(!supervisor.is_up(retired));
        supervisor.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
