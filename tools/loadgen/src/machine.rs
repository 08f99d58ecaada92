//! Which machine, which commit and which build a report describes.

use std::collections::BTreeMap;

/// The machine the run was on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// OS (os-release PRETTY_NAME).
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Postgres server version.
    pub postgres: String,
    /// NATS server version.
    pub nats: String,
}

/// The code that ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Build {
    /// `git rev-parse HEAD` (short).
    pub commit: String,
    /// Whether the work tree had uncommitted changes.
    pub dirty: bool,
    /// `release` or `debug` per service, from the running executable's path.
    pub profiles: BTreeMap<String, String>,
    /// The executables.
    pub executables: BTreeMap<String, String>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Describes this machine.
pub fn machine(postgres: String, nats: String) -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let os = read("/etc/os-release")
        .lines()
        .find(|l| l.starts_with("PRETTY_NAME="))
        .map(|l| {
            l.trim_start_matches("PRETTY_NAME=")
                .trim_matches('"')
                .to_owned()
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        os,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        postgres,
        nats,
    }
}

/// Describes the commit and the services' executables.
pub fn build(services: &BTreeMap<String, i32>) -> Build {
    let commit =
        run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let mut profiles = BTreeMap::new();
    let mut executables = BTreeMap::new();
    for (name, pid) in services {
        if let Some(exe) = crate::cost::exe_of(*pid) {
            let profile = if exe.contains("/release/") {
                "release"
            } else if exe.contains("/debug/") {
                "debug"
            } else {
                "unknown"
            };
            profiles.insert(name.clone(), profile.to_owned());
            executables.insert(name.clone(), exe);
        }
    }
    Build {
        commit,
        dirty,
        profiles,
        executables,
    }
}
