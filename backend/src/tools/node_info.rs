//! `node_info`: who and what this node is, in one cheap call.
//!
//! Reads a handful of tiny files (hostname, kernel release, uptime, load,
//! memory, CPU lines, os-release) and nothing else: this tool is the one a
//! gateway fans out most and the one the throughput benchmark hammers. Each
//! field that cannot be read is `null` rather than failing the whole call;
//! only a procfs where nothing at all is readable (a wrong `HOST_PROC`) is
//! an error.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::procfs;
use super::{CallError, HostPaths, ToolContext, ToolOutput, human_bytes, output, round2};

/// The tool's name.
pub(super) const NAME: &str = "node_info";

/// The Tool object for `tools/list`.
pub(super) fn definition() -> Value {
    let nullable_string =
        |description: &str| json!({"type": ["string", "null"], "description": description});
    let nullable_integer = |description: &str| json!({"type": ["integer", "null"], "minimum": 0, "description": description});
    super::tool_definition(
        NAME,
        "Node information",
        "Identity and vital signs of this Kubernetes node: node name, hostname, kernel release, \
         operating system, uptime, number of online CPUs, load averages and memory. Cheap; use it \
         first to see which node answered and how busy it is.",
        json!({
            "type": "object",
            "properties": {},
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "node_name": {"type": "string", "description": "Kubernetes node name."},
                "hostname": nullable_string("Kernel hostname of the node."),
                "kernel_release": nullable_string("Kernel release (uname -r)."),
                "os_pretty_name": nullable_string("PRETTY_NAME from os-release; null if the node has no os-release."),
                "uptime_seconds": nullable_integer("Seconds since the node booted."),
                "cpu_count": nullable_integer("Number of online CPUs."),
                "load_average": {
                    "type": ["object", "null"],
                    "description": "Run-queue load averages (as in uptime(1)).",
                    "properties": {
                        "one_minute": {"type": "number", "minimum": 0},
                        "five_minutes": {"type": "number", "minimum": 0},
                        "fifteen_minutes": {"type": "number", "minimum": 0},
                    },
                    "required": ["one_minute", "five_minutes", "fifteen_minutes"],
                    "additionalProperties": false,
                },
                "memory": {
                    "type": "object",
                    "description": "Physical memory from /proc/meminfo.",
                    "properties": {
                        "total_bytes": nullable_integer("Total usable RAM in bytes."),
                        "available_bytes": nullable_integer("Memory available for new work without swapping (MemAvailable), in bytes."),
                    },
                    "required": ["total_bytes", "available_bytes"],
                    "additionalProperties": false,
                },
            },
            "required": [
                "node_name", "hostname", "kernel_release", "os_pretty_name",
                "uptime_seconds", "cpu_count", "load_average", "memory",
            ],
            "additionalProperties": false,
        }),
        true,
    )
}

/// The structured result; field order is the order in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct NodeInfo {
    /// Kubernetes node name, from the context.
    node_name: String,
    /// `sys/kernel/hostname`.
    hostname: Option<String>,
    /// `sys/kernel/osrelease`.
    kernel_release: Option<String>,
    /// PRETTY_NAME of os-release.
    os_pretty_name: Option<String>,
    /// First field of `uptime`, whole seconds.
    uptime_seconds: Option<u64>,
    /// `cpuN` lines of `stat` (or `processor` entries of `cpuinfo`).
    cpu_count: Option<u64>,
    /// First three fields of `loadavg`.
    load_average: Option<LoadAverage>,
    /// From `meminfo`.
    memory: Memory,
}

/// Load averages over 1, 5 and 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct LoadAverage {
    /// Over the last minute.
    one_minute: f64,
    /// Over the last five minutes.
    five_minutes: f64,
    /// Over the last fifteen minutes.
    fifteen_minutes: f64,
}

/// Memory totals in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Memory {
    /// MemTotal.
    total_bytes: Option<u64>,
    /// MemAvailable.
    available_bytes: Option<u64>,
}

/// How long the slow-changing fields ([`Identity`]) are reused. Short
/// enough that a renamed host or an added CPU shows up promptly, long enough
/// that a burst of calls reads only the three live files.
const IDENTITY_TTL: Duration = Duration::from_secs(5);

/// Runs the tool.
pub(super) fn call(
    ctx: &ToolContext,
    arguments: &Map<String, Value>,
) -> Result<ToolOutput, CallError> {
    call_with_ttl(ctx, arguments, IDENTITY_TTL)
}

/// [`call`] with a chosen [`Identity`] cache lifetime (tests use zero).
fn call_with_ttl(
    ctx: &ToolContext,
    arguments: &Map<String, Value>,
    ttl: Duration,
) -> Result<ToolOutput, CallError> {
    Args::new(NAME, arguments, &[])?;
    let info = read(ctx, ttl);
    let nothing_read = info.hostname.is_none()
        && info.kernel_release.is_none()
        && info.uptime_seconds.is_none()
        && info.cpu_count.is_none()
        && info.load_average.is_none()
        && info.memory.total_bytes.is_none();
    if nothing_read {
        return Err(CallError::Failed(format!(
            "could not read node information from {}: is HOST_PROC the host's procfs?",
            ctx.host.proc.display()
        )));
    }
    let text = render(&info);
    output(&info, text)
}

/// The fields that change rarely or never while the node runs. Reading
/// them costs five of the eight file reads, so they are cached for
/// [`IDENTITY_TTL`].
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    /// `sys/kernel/hostname`.
    hostname: Option<String>,
    /// `sys/kernel/osrelease`.
    kernel_release: Option<String>,
    /// PRETTY_NAME of os-release.
    os_pretty_name: Option<String>,
    /// Online CPUs.
    cpu_count: Option<u64>,
}

/// The [`Identity`] of `host`, from the cache when it is younger than `ttl`.
/// A process serves one host; the few entries beyond that are for tests.
fn identity(host: &HostPaths, ttl: Duration, buf: &mut String) -> Identity {
    /// Entries kept; the oldest goes first.
    const MAX_ENTRIES: usize = 16;
    static CACHE: Mutex<Vec<(HostPaths, Instant, Identity)>> = Mutex::new(Vec::new());
    {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, identity)) = cache
            .iter()
            .find(|(paths, at, _)| paths == host && at.elapsed() < ttl)
        {
            return identity.clone();
        }
    }
    let fresh = read_identity(host, buf);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|(paths, _, _)| paths != host);
    if cache.len() >= MAX_ENTRIES {
        cache.remove(0);
    }
    cache.push((host.clone(), Instant::now(), fresh.clone()));
    fresh
}

/// Reads the [`Identity`] fields.
fn read_identity(host: &HostPaths, buf: &mut String) -> Identity {
    let proc = &host.proc;
    let mut cpu_count = procfs::read_into(&proc.join("stat"), buf)
        .then(|| procfs::count_stat_cpus(buf))
        .filter(|n| *n > 0);
    if cpu_count.is_none() {
        cpu_count = procfs::read_into(&proc.join("cpuinfo"), buf)
            .then(|| procfs::count_cpuinfo_cpus(buf))
            .filter(|n| *n > 0);
    }
    Identity {
        hostname: procfs::read_line(&proc.join("sys/kernel/hostname")),
        kernel_release: procfs::read_line(&proc.join("sys/kernel/osrelease")),
        os_pretty_name: os_pretty_name(host, buf),
        cpu_count: cpu_count.map(|n| n as u64),
    }
}

/// Reads every field, leaving out what cannot be read.
fn read(ctx: &ToolContext, ttl: Duration) -> NodeInfo {
    let proc = &ctx.host.proc;
    let mut buf = String::with_capacity(2048);

    let uptime_seconds = procfs::read_into(&proc.join("uptime"), &mut buf)
        .then(|| buf.split_whitespace().next()?.parse::<f64>().ok())
        .flatten()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s as u64);

    let load_average = procfs::read_into(&proc.join("loadavg"), &mut buf)
        .then(|| parse_loadavg(&buf))
        .flatten();

    let memory = if procfs::read_into(&proc.join("meminfo"), &mut buf) {
        Memory {
            total_bytes: procfs::meminfo_bytes(&buf, "MemTotal"),
            available_bytes: procfs::meminfo_bytes(&buf, "MemAvailable"),
        }
    } else {
        Memory {
            total_bytes: None,
            available_bytes: None,
        }
    };

    let Identity {
        hostname,
        kernel_release,
        os_pretty_name,
        cpu_count,
    } = identity(&ctx.host, ttl, &mut buf);

    NodeInfo {
        node_name: ctx.node_name.clone(),
        hostname,
        kernel_release,
        os_pretty_name,
        uptime_seconds,
        cpu_count,
        load_average,
        memory,
    }
}

/// Parses the first three fields of `/proc/loadavg`.
fn parse_loadavg(text: &str) -> Option<LoadAverage> {
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0));
    Some(LoadAverage {
        one_minute: fields.next()??,
        five_minutes: fields.next()??,
        fifteen_minutes: fields.next()??,
    })
}

/// PRETTY_NAME from `etc/os-release`, else `usr/lib/os-release` (the
/// os-release(5) search order) under the host root.
fn os_pretty_name(host: &HostPaths, buf: &mut String) -> Option<String> {
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find(|rel| procfs::read_into(&host.root.join(rel), buf))
        .and_then(|_| pretty_name(buf))
}

/// PRETTY_NAME of an os-release file, falling back to NAME and VERSION.
fn pretty_name(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let raw = line.trim().strip_prefix(key)?.strip_prefix('=')?;
            let value = unquote(raw);
            (!value.is_empty()).then_some(value)
        })
    };
    value("PRETTY_NAME").or_else(|| match (value("NAME"), value("VERSION")) {
        (Some(name), Some(version)) => Some(format!("{name} {version}")),
        (name, _) => name,
    })
}

/// Removes shell-style quotes from an os-release value, undoing backslash
/// escapes inside double quotes.
fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    let quoted = |q: char| raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q);
    if quoted('\'') {
        return raw[1..raw.len() - 1].to_owned();
    }
    let inner = if quoted('"') {
        &raw[1..raw.len() - 1]
    } else {
        raw
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line for people and models.
fn render(info: &NodeInfo) -> String {
    let unknown = || "unknown".to_owned();
    let host = info.hostname.clone().unwrap_or_else(unknown);
    let os = info
        .os_pretty_name
        .clone()
        .unwrap_or_else(|| "unknown OS".to_owned());
    let kernel = info.kernel_release.clone().unwrap_or_else(unknown);
    let uptime = info.uptime_seconds.map_or_else(unknown, duration);
    let cpus = info.cpu_count.map_or_else(unknown, |n| n.to_string());
    let load = info.load_average.map_or_else(unknown, |l| {
        format!(
            "{:.2} {:.2} {:.2}",
            round2(l.one_minute),
            round2(l.five_minutes),
            round2(l.fifteen_minutes)
        )
    });
    let memory = match (info.memory.available_bytes, info.memory.total_bytes) {
        (Some(a), Some(t)) => format!("{} available of {}", human_bytes(a), human_bytes(t)),
        (None, Some(t)) => format!("{} total", human_bytes(t)),
        _ => unknown(),
    };
    format!(
        "node {} (hostname {host}): {os}, kernel {kernel}; up {uptime}; {cpus} CPUs, load {load}; memory {memory}",
        info.node_name
    )
}

/// "1d 2h 3m", "2h 3m", "3m 4s".
fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{FIXTURE_NODE, Fixture, real_ctx};

    /// Uncached, since these tests change the fixture between calls.
    fn run(ctx: &ToolContext) -> Result<ToolOutput, CallError> {
        call_with_ttl(ctx, &Map::new(), Duration::ZERO)
    }

    #[test]
    fn fixture_values_are_exact() {
        let fx = Fixture::standard();
        let out = run(&fx.ctx()).unwrap();
        assert_eq!(
            out.structured,
            json!({
                "node_name": FIXTURE_NODE,
                "hostname": "fixture-host",
                "kernel_release": "6.1.0-fixture",
                "os_pretty_name": "Fixture Linux 1.0 (\"test\")",
                "uptime_seconds": 93784,
                "cpu_count": 2,
                "load_average": {"one_minute": 0.5, "five_minutes": 0.25, "fifteen_minutes": 0.1},
                "memory": {"total_bytes": 2_097_152_000u64, "available_bytes": 1_048_576_000u64},
            })
        );
        assert_eq!(
            out.text,
            "node fixture-node (hostname fixture-host): Fixture Linux 1.0 (\"test\"), kernel 6.1.0-fixture; \
             up 1d 2h 3m; 2 CPUs, load 0.50 0.25 0.10; memory 1000.0 MiB available of 2.0 GiB"
        );
    }

    #[test]
    fn fallbacks_os_release_and_cpuinfo() {
        let fx = Fixture::standard();
        fx.remove("root/etc/os-release");
        fx.write("root/usr/lib/os-release", "NAME=Plain\nVERSION='2 LTS'\n");
        fx.write("proc/stat", "intr 1 2\n");
        let out = run(&fx.ctx()).unwrap();
        assert_eq!(out.structured["os_pretty_name"], "Plain 2 LTS");
        assert_eq!(out.structured["cpu_count"], 3);
        fx.remove("root/usr/lib/os-release");
        let out = run(&fx.ctx()).unwrap();
        assert_eq!(out.structured["os_pretty_name"], Value::Null);
        assert!(out.text.contains("unknown OS"), "{}", out.text);
    }

    #[test]
    fn malformed_files_give_nulls_not_panics() {
        let fx = Fixture::standard();
        fx.write("proc/uptime", "soon\n");
        fx.write("proc/loadavg", "0.1 NaN\n");
        fx.write("proc/meminfo", "MemTotal: lots kB\n\u{0}\u{1}");
        fx.write("proc/stat", "cpu0 x\n");
        fx.write("proc/cpuinfo", [0xff, 0xfe, 0x00]);
        fx.write("proc/sys/kernel/hostname", "\n");
        fx.write("root/etc/os-release", "PRETTY_NAME=\n");
        let out = run(&fx.ctx()).unwrap();
        assert_eq!(out.structured["hostname"], Value::Null);
        assert_eq!(out.structured["kernel_release"], "6.1.0-fixture");
        assert_eq!(out.structured["os_pretty_name"], Value::Null);
        assert_eq!(out.structured["uptime_seconds"], Value::Null);
        assert_eq!(out.structured["cpu_count"], 1); // "cpu0 x" still names a CPU
        assert_eq!(out.structured["load_average"], Value::Null);
        assert_eq!(
            out.structured["memory"],
            json!({"total_bytes": null, "available_bytes": null})
        );
        assert!(out.text.contains("load unknown"), "{}", out.text);
    }

    #[test]
    fn an_empty_procfs_is_an_error_naming_the_path() {
        let fx = Fixture::empty();
        match run(&fx.ctx()) {
            Err(CallError::Failed(msg)) => {
                assert!(msg.contains("HOST_PROC"), "{msg}");
                assert!(msg.contains(&fx.host().proc.display().to_string()), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn arguments_are_refused() {
        let fx = Fixture::standard();
        let mut args = Map::new();
        args.insert("verbose".into(), json!(true));
        assert!(matches!(
            call(&fx.ctx(), &args),
            Err(CallError::InvalidArguments(m)) if m.contains("node_info takes no arguments")
        ));
    }

    #[test]
    fn real_node_values_are_plausible() {
        let out = run(&real_ctx()).unwrap();
        let s = &out.structured;
        assert_eq!(s["node_name"], "test-node");
        assert!(s["cpu_count"].as_u64().unwrap() >= 1);
        let total = s["memory"]["total_bytes"].as_u64().unwrap();
        let available = s["memory"]["available_bytes"].as_u64().unwrap();
        assert!(total > 0 && available <= total);
        assert!(s["uptime_seconds"].as_u64().is_some());
        assert!(!s["kernel_release"].as_str().unwrap().is_empty());
        assert!(s["load_average"]["one_minute"].as_f64().unwrap() >= 0.0);
    }

    #[test]
    fn identity_fields_are_cached_and_live_fields_never() {
        let fx = Fixture::standard();
        let ctx = fx.ctx();
        let hour = Duration::from_secs(3600);
        let first = call_with_ttl(&ctx, &Map::new(), hour).unwrap();
        assert_eq!(first.structured["hostname"], "fixture-host");
        fx.write("proc/sys/kernel/hostname", "renamed\n");
        fx.write("proc/uptime", "100.0 1.0\n");
        let cached = call_with_ttl(&ctx, &Map::new(), hour).unwrap();
        assert_eq!(cached.structured["hostname"], "fixture-host");
        assert_eq!(cached.structured["uptime_seconds"], 100);
        // Expired: read again, and cached afresh.
        let fresh = run(&ctx).unwrap();
        assert_eq!(fresh.structured["hostname"], "renamed");
        let cached = call_with_ttl(&ctx, &Map::new(), hour).unwrap();
        assert_eq!(cached.structured["hostname"], "renamed");
        // Another host never sees this one's entry.
        let other = Fixture::standard();
        other.write("proc/sys/kernel/hostname", "other-host\n");
        let out = call_with_ttl(&other.ctx(), &Map::new(), hour).unwrap();
        assert_eq!(out.structured["hostname"], "other-host");
    }

    #[test]
    fn os_release_quoting() {
        assert_eq!(unquote("\"a \\\"b\\\" \\\\ c\""), "a \"b\" \\ c");
        assert_eq!(unquote("'x \\ y'"), "x \\ y");
        assert_eq!(unquote("bare"), "bare");
        assert_eq!(unquote("\""), "\"");
        assert_eq!(
            pretty_name("# comment\nNAME=OnlyName\n"),
            Some("OnlyName".into())
        );
        assert_eq!(pretty_name(""), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(59), "0m 59s");
        assert_eq!(duration(3600 + 120), "1h 2m");
        assert_eq!(duration(86_400 * 3 + 60), "3d 0h 1m");
    }
}
