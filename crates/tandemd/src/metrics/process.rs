//! Process metrics from /proc/self (Linux): open and maximum file descriptors, memory,
//! threads and CPU time, plus the node's start time and uptime.

use std::time::UNIX_EPOCH;

use super::{Out, Snapshot};

/// What /proc says about this process; None where it could not be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSample {
    pub open_fds: Option<u64>,
    /// The soft limit on open files.
    pub max_fds: Option<u64>,
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub threads: Option<u64>,
    /// User plus system CPU time.
    pub cpu_seconds: Option<f64>,
}

/// Clock ticks per second in /proc/<pid>/stat: USER_HZ, 100 on every Linux architecture
/// tandem runs on (Prometheus' own procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

impl ProcessSample {
    pub fn read() -> ProcessSample {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        ProcessSample {
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|t| max_open_files(&t)),
            resident_memory_bytes: status_field(&status, "VmRSS").map(|kb| kb * 1024),
            virtual_memory_bytes: status_field(&status, "VmSize").map(|kb| kb * 1024),
            threads: status_field(&status, "Threads"),
            cpu_seconds: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|t| cpu_ticks(&t))
                .map(|ticks| ticks as f64 / USER_HZ),
        }
    }
}

/// The number in a `/proc/self/status` line such as `VmRSS:     1234 kB`.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The soft limit of the `Max open files` line of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`; the command name before them
/// is in parentheses and may hold spaces, so fields are counted after the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(super) fn encode(out: &mut Out, s: &Snapshot) {
    let start = s
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    out.single_float_gauge(
        "process_start_time_seconds",
        "Unix time the node started (the daemon runs one node per process)",
        start,
    );
    out.standard_gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        start,
    );
    out.single_float_gauge(
        "process_uptime_seconds",
        "Seconds since the node started",
        s.uptime.as_secs_f64(),
    );
    let p = &s.process;
    let gauges = [
        ("process_open_fds", "Open file descriptors", p.open_fds),
        (
            "process_max_fds",
            "Soft limit on open file descriptors",
            p.max_fds,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory (VmRSS)",
            p.resident_memory_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory (VmSize)",
            p.virtual_memory_bytes,
        ),
        ("process_threads", "OS threads of the process", p.threads),
    ];
    // Each twice: the standard `process_*` name and, for one release, the old
    // `tandem_process_*` one (docs/metrics.md says so).
    for (name, help, value) in gauges {
        if let Some(v) = value {
            out.single_gauge(name, help, i64::try_from(v).unwrap_or(i64::MAX));
            out.standard_gauge(name, help, v as f64);
        }
    }
    if let Some(cpu) = p.cpu_seconds {
        let help = "User and system CPU time of the process";
        out.single_float_counter("process_cpu_seconds", help, cpu);
        out.standard_counter("process_cpu_seconds", help, cpu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let status = "Name:\ttandemd\nVmSize:\t  20480 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(status_field(status, "VmRSS"), Some(1234));
        assert_eq!(status_field(status, "VmSize"), Some(20480));
        assert_eq!(status_field(status, "Threads"), Some(3));
        assert_eq!(status_field(status, "VmSwap"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let stat = "42 (tandem (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(320));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let p = ProcessSample::read();
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(
            p.resident_memory_bytes.is_some_and(|b| b > 1 << 20),
            "{p:?}"
        );
        assert!(p.max_fds >= p.open_fds, "{p:?}");
        assert!(p.cpu_seconds.is_some_and(|c| c >= 0.0), "{p:?}");
    }
}
