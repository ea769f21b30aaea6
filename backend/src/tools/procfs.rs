//! Tolerant readers and parsers for the procfs files several tools share.
//!
//! procfs files are tiny and generated on read, so plain `std::fs` reads are
//! cheap enough even inside async code. Every parser here returns `None` (or
//! skips the line) on anything unexpected: the data comes from the kernel of
//! whatever node we run on, or from a test fixture, and is never trusted.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// Reads the whole file at `path` into `buf` (cleared first). Returns false
/// when the file cannot be opened or read, or is not UTF-8.
pub(super) fn read_into(path: &Path, buf: &mut String) -> bool {
    buf.clear();
    match File::open(path) {
        Ok(mut file) => file.read_to_string(buf).is_ok(),
        Err(_) => false,
    }
}

/// Reads at most `max` bytes of the file at `path` into `buf` (cleared
/// first), for files that may hold arbitrary bytes (process names and
/// command lines). Returns false when the file cannot be opened or read.
pub(super) fn read_bytes_into(path: &Path, buf: &mut Vec<u8>, max: u64) -> bool {
    buf.clear();
    match File::open(path) {
        Ok(file) => file.take(max).read_to_end(buf).is_ok(),
        Err(_) => false,
    }
}

/// The whole file at `path`, or `None` when it cannot be read.
pub(super) fn read_string(path: &Path) -> Option<String> {
    let mut buf = String::new();
    read_into(path, &mut buf).then_some(buf)
}

/// The first line of the file at `path`, trimmed; `None` when unreadable or
/// empty.
pub(super) fn read_line(path: &Path) -> Option<String> {
    let text = read_string(path)?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// A `/proc/meminfo` value (given in kB there) in bytes.
pub(super) fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// Cumulative CPU time of one `cpu` line of `/proc/stat`, in clock ticks.
/// `guest` and `guest_nice` are left out: the kernel already counts them in
/// `user` and `nice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct CpuTimes {
    /// Time in user mode.
    pub user: u64,
    /// Time in user mode at low priority.
    pub nice: u64,
    /// Time in kernel mode.
    pub system: u64,
    /// Idle time.
    pub idle: u64,
    /// Idle time while I/O was outstanding.
    pub iowait: u64,
    /// Time servicing hardware interrupts.
    pub irq: u64,
    /// Time servicing soft interrupts.
    pub softirq: u64,
    /// Time stolen by the hypervisor for other guests.
    pub steal: u64,
}

/// The CPU lines of one `/proc/stat` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct StatSample {
    /// The aggregate `cpu` line, if present.
    pub all: Option<CpuTimes>,
    /// The `cpuN` lines (online CPUs), in file order.
    pub per_cpu: Vec<(usize, CpuTimes)>,
}

/// Parses the `cpu` lines of `/proc/stat`; malformed lines are skipped.
pub(super) fn parse_stat(text: &str) -> StatSample {
    let mut sample = StatSample::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let label = if rest.starts_with(char::is_whitespace) {
            None
        } else {
            match fields.next().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => Some(n),
                None => continue,
            }
        };
        let Some(times) = parse_cpu_fields(fields) else {
            continue;
        };
        match label {
            None => sample.all = Some(times),
            Some(n) => sample.per_cpu.push((n, times)),
        }
    }
    sample
}

/// Parses the numbers after a `cpu` label. Needs at least user, nice,
/// system and idle (very old kernels stop there); later fields default to 0.
fn parse_cpu_fields<'a>(fields: impl Iterator<Item = &'a str>) -> Option<CpuTimes> {
    let mut values = [0u64; 8];
    let mut count = 0;
    for (slot, field) in values.iter_mut().zip(fields) {
        *slot = field.parse().ok()?;
        count += 1;
    }
    if count < 4 {
        return None;
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values;
    Some(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    })
}

/// Counts the `cpuN` lines of `/proc/stat` (the online CPUs) without parsing
/// their numbers; this is on the hot path of `node_info`.
pub(super) fn count_stat_cpus(text: &str) -> usize {
    text.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
}

/// Counts the `processor` entries of `/proc/cpuinfo`, the fallback when
/// `/proc/stat` is unreadable.
pub(super) fn count_cpuinfo_cpus(text: &str) -> usize {
    text.lines()
        .filter(|line| {
            line.strip_prefix("processor")
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .count()
}

/// Clock ticks per second (`USER_HZ`), the unit of procfs CPU times.
pub(super) fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    *TICKS.get_or_init(|| positive(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100))
}

/// The memory page size, the unit of the rss field in `/proc/<pid>/stat`.
pub(super) fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    *PAGE.get_or_init(|| positive(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096))
}

/// A sysconf answer if it is a usable positive number.
fn positive(value: libc::c_long) -> Option<u64> {
    u64::try_from(value).ok().filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values_are_bytes() {
        let text = "MemTotal:       16384 kB\nMemFree: 1 kB\nMemAvailable:    8192 kB\nHugePages_Total:       0\nBad: x kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(16384 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(8192 * 1024));
        assert_eq!(meminfo_bytes(text, "HugePages_Total"), Some(0));
        assert_eq!(meminfo_bytes(text, "Mem"), None);
        assert_eq!(meminfo_bytes(text, "Bad"), None);
        assert_eq!(meminfo_bytes(text, "Missing"), None);
        assert_eq!(
            meminfo_bytes("MemTotal: 99999999999999999999 kB", "MemTotal"),
            None
        );
    }

    #[test]
    fn stat_cpu_lines_are_parsed_and_odd_ones_skipped() {
        let text = "cpu  10 1 5 100 2 0 1 0 0 0\n\
                    cpu0 5 1 2 50 1 0 1 0 0 0\n\
                    cpu1 5 0 3 50 1 0 0 0\n\
                    cpu2 1 2\n\
                    cpux 1 2 3 4\n\
                    cpu3 1 2 3 four\n\
                    cpu4 1 2 3 4\n\
                    intr 123 4 5\n";
        let sample = parse_stat(text);
        let all = sample.all.unwrap();
        assert_eq!(all.user, 10);
        assert_eq!(all.idle, 100);
        assert_eq!((all.iowait, all.softirq, all.steal), (2, 1, 0));
        let ids: Vec<usize> = sample.per_cpu.iter().map(|(n, _)| *n).collect();
        assert_eq!(ids, [0, 1, 4]);
        assert_eq!(
            sample.per_cpu[2].1,
            CpuTimes {
                user: 1,
                nice: 2,
                system: 3,
                idle: 4,
                ..CpuTimes::default()
            }
        );
        assert_eq!(count_stat_cpus(text), 5);
        assert_eq!(parse_stat(""), StatSample::default());
    }

    #[test]
    fn cpuinfo_processors_are_counted() {
        let text = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nprocessors: 7\n";
        assert_eq!(count_cpuinfo_cpus(text), 2);
    }

    #[test]
    fn sysconf_units_are_sane() {
        assert!(clock_ticks() >= 1);
        assert!(page_size() >= 1024);
    }
}
