//! The standard `process_*` families (the names every Prometheus client library exports, so stock
//! dashboards work), read at scrape time from `/proc` and `getrusage`. They are written into the
//! `/metrics` text directly rather than through the `metrics` recorder, whose counters are whole
//! numbers: CPU time is counted in fractions of a second. Where a source is missing (not Linux),
//! its families are left out rather than reported as zero.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// Appends the process families to `out`.
pub(crate) fn render(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| status_field(&status, field).map(|kb| kb * 1024.0);
    let families = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time the process has used, in seconds",
            cpu_seconds(),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes",
            kib("VmRSS:"),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes",
            kib("VmSize:"),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors",
            open_fds(),
        ),
        (
            "process_max_fds",
            "gauge",
            "The limit of open file descriptors (soft limit)",
            max_fds(),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds",
            *START_TIME.get_or_init(start_time_seconds),
        ),
        (
            "process_threads",
            "gauge",
            "Threads of the process",
            status_field(&status, "Threads:"),
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            );
        }
    }
}

static START_TIME: OnceLock<Option<f64>> = OnceLock::new();

/// The number after `field` in `/proc/self/status` (e.g. `VmRSS:   1234 kB` -> 1234).
fn status_field(status: &str, field: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(seconds(usage.user_time()) + seconds(usage.system_time()))
}

fn open_fds() -> Option<f64> {
    // the listing includes the descriptor of the listing itself, as other clients' counts do
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as f64)
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Boot time (`btime` of `/proc/stat`) plus the process's start in clock ticks after boot (field
/// 22 of `/proc/self/stat`, counted after the command name, which may contain spaces).
fn start_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    // fields from the 3rd (state) on; starttime is the 22nd
    let start_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)? as f64;
    Some(btime + start_ticks / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_families_have_plausible_values() {
        let mut text = String::new();
        render(&mut text);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1.0)
        };
        assert!(value("process_cpu_seconds_total") > 0.0, "{text}");
        assert!(value("process_resident_memory_bytes") > 1e6, "{text}");
        assert!(value("process_open_fds") >= 3.0, "{text}");
        assert!(
            value("process_max_fds") >= value("process_open_fds"),
            "{text}"
        );
        assert!(value("process_threads") >= 1.0, "{text}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    }
}
