//! `list_processes`: the host's processes, biggest first.
//!
//! One `/proc/<pid>/stat` read per process gives name, state, CPU time and
//! resident memory; `/proc/<pid>/cmdline` is read only when a filter needs
//! it or for the processes that make the cut. Processes come and go while
//! we read: one that vanishes (or whose stat is unreadable or malformed) is
//! simply not listed. The scan runs on the blocking pool, since a busy node
//! has thousands of processes.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::procfs;
use super::redact::{self, CmdlineMode};
use super::{CallError, ToolContext, ToolOutput, human_bytes, output, round2, run_blocking};

/// The tool's name.
pub(super) const NAME: &str = "list_processes";
/// Processes returned when `limit` is not given.
const DEFAULT_LIMIT: i64 = 20;
/// The hard maximum of `limit`.
const MAX_LIMIT: i64 = 500;
/// The longest `name_filter` accepted.
const MAX_FILTER_CHARS: usize = 256;
/// Command lines longer than this many characters are cut, ending in "…".
const MAX_COMMAND_CHARS: usize = 256;
/// How much of a command line is read (and searched by the filter).
const MAX_CMDLINE_BYTES: u64 = 64 * 1024;
/// The `sort_by` values; the first is the default.
const SORT_KEYS: [&str; 3] = ["memory", "cpu", "pid"];

/// The Tool object for `tools/list`.
pub(super) fn definition() -> Value {
    super::tool_definition(
        NAME,
        "List processes",
        "Processes running on this node (all containers and host daemons), with PID, name, state, \
         resident memory, total CPU time and command line. Sorted by memory (default), CPU time \
         or PID, optionally filtered by a case-insensitive substring of the process name or \
         command line. Returns at most `limit` processes plus the total counts. Likely secrets \
         in command lines are shown as *** (values of options and key=value arguments named \
         like password, token, secret, key, credential; passwords in URLs; Bearer/Basic \
         credentials; AWS, GitHub, GitLab, Slack keys and JWTs); the filter sees the same \
         redacted text.",
        json!({
            "type": "object",
            "properties": {
                "name_filter": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_FILTER_CHARS,
                    "description": "Only processes whose name or command line contains this text, ignoring case (e.g. \"kubelet\", \"java\"). Omit to list all.",
                },
                "sort_by": {
                    "type": "string",
                    "enum": SORT_KEYS,
                    "description": "Order: \"memory\" = largest resident memory first, \"cpu\" = most CPU time used since start first, \"pid\" = ascending PID.",
                    "default": SORT_KEYS[0],
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "description": "Maximum number of processes to return.",
                    "default": DEFAULT_LIMIT,
                },
            },
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "total_processes": {"type": "integer", "minimum": 0, "description": "Processes on the node that could be read."},
                "matched_processes": {"type": "integer", "minimum": 0, "description": "Processes that pass name_filter (equals total_processes without a filter)."},
                "returned": {"type": "integer", "minimum": 0, "description": "Length of processes (at most limit)."},
                "sort_by": {"type": "string", "enum": SORT_KEYS},
                "name_filter": {"type": ["string", "null"]},
                "processes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "pid": {"type": "integer", "minimum": 0},
                            "name": {"type": "string", "description": "Executable name as the kernel knows it (comm, at most 15 characters)."},
                            "state": {"type": "string", "description": "Kernel state code: R running, S sleeping, D uninterruptible (usually I/O), Z zombie, T stopped, t traced, I idle kernel thread, X dead."},
                            "rss_bytes": {"type": "integer", "minimum": 0, "description": "Resident memory in bytes."},
                            "cpu_time_seconds": {"type": "number", "minimum": 0, "description": "User plus system CPU time since the process started."},
                            "command_line": {"type": "string", "description": "Arguments joined with spaces, likely secrets replaced by ***, cut to 256 characters; \"[name]\" for kernel threads. Absent when the node server does not show command lines."},
                        },
                        "required": ["pid", "name", "state", "rss_bytes", "cpu_time_seconds"],
                        "additionalProperties": false,
                    },
                },
            },
            "required": ["total_processes", "matched_processes", "returned", "sort_by", "name_filter", "processes"],
            "additionalProperties": false,
        }),
        false,
    )
}

/// The structured result.
#[derive(Debug, Serialize)]
struct ProcessList {
    /// Processes read.
    total_processes: usize,
    /// Processes passing the filter.
    matched_processes: usize,
    /// `processes.len()`.
    returned: usize,
    /// The order applied.
    sort_by: &'static str,
    /// The filter applied, as given.
    name_filter: Option<String>,
    /// The first `limit` matching processes in `sort_by` order.
    processes: Vec<Process>,
}

/// One listed process.
#[derive(Debug, Serialize)]
struct Process {
    /// Process id (in the host's PID namespace under hostPID).
    pid: u32,
    /// `comm`.
    name: String,
    /// One-letter state code.
    state: String,
    /// Resident set size in bytes.
    rss_bytes: u64,
    /// utime + stime in seconds.
    cpu_time_seconds: f64,
    /// Rendered command line (None: PROCESS_CMDLINE=none).
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<String>,
}

/// What the scan keeps of a process before sorting.
struct Candidate {
    /// Process id.
    pid: u32,
    /// `comm`.
    name: String,
    /// State code.
    state: char,
    /// RSS in pages.
    rss_pages: u64,
    /// utime + stime in clock ticks.
    cpu_ticks: u64,
    /// The rendered command line, when the filter already needed it.
    command_line: Option<String>,
}

/// Checks the arguments and runs the scan on the blocking pool.
pub(super) async fn call(
    ctx: &ToolContext,
    arguments: &Map<String, Value>,
    cancel: &CancellationToken,
) -> Result<ToolOutput, CallError> {
    let args = Args::new(NAME, arguments, &["name_filter", "sort_by", "limit"])?;
    let name_filter = args
        .string("name_filter", MAX_FILTER_CHARS)?
        .map(str::to_owned);
    let sort_by = args.one_of("sort_by", &SORT_KEYS, SORT_KEYS[0])?;
    let limit = args.integer("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)? as usize;
    let proc = ctx.host.proc.clone();
    let mode = ctx.cmdline;
    let list = run_blocking(cancel, move |token| {
        list(&proc, mode, name_filter, sort_by, limit, &token)
    })
    .await?;
    let text = render(&list);
    output(&list, text)
}

/// Scans, filters, sorts and cuts.
fn list(
    proc: &Path,
    mode: CmdlineMode,
    name_filter: Option<String>,
    sort_by: &'static str,
    limit: usize,
    cancel: &CancellationToken,
) -> Result<ProcessList, CallError> {
    let needle = name_filter.as_deref().map(str::to_lowercase);
    let (total, mut candidates) = scan(proc, mode, needle.as_deref(), cancel)?;
    let matched = candidates.len();
    match sort_by {
        "cpu" => candidates.sort_unstable_by_key(|c| (Reverse(c.cpu_ticks), c.pid)),
        "pid" => candidates.sort_unstable_by_key(|c| c.pid),
        _ => candidates.sort_unstable_by_key(|c| (Reverse(c.rss_pages), c.pid)),
    }
    candidates.truncate(limit);

    let ticks = procfs::clock_ticks() as f64;
    let page = procfs::page_size();
    let mut buf = Vec::new();
    let processes = candidates
        .into_iter()
        .map(|c| {
            let command_line = match c.command_line {
                Some(line) => Some(line),
                None if mode == CmdlineMode::None => None,
                None => {
                    let path = proc.join(c.pid.to_string()).join("cmdline");
                    // Gone since the scan: show the name, as for kernel threads.
                    if !procfs::read_bytes_into(&path, &mut buf, MAX_CMDLINE_BYTES) {
                        buf.clear();
                    }
                    Some(render_command(&shown_command(&buf, mode), &c.name))
                }
            };
            Process {
                pid: c.pid,
                state: c.state.to_string(),
                rss_bytes: c.rss_pages.saturating_mul(page),
                cpu_time_seconds: round2(c.cpu_ticks as f64 / ticks),
                command_line,
                name: c.name,
            }
        })
        .collect::<Vec<_>>();
    Ok(ProcessList {
        total_processes: total,
        matched_processes: matched,
        returned: processes.len(),
        sort_by,
        name_filter,
        processes,
    })
}

/// Reads every process directory under `proc`. Returns the number of
/// readable processes and those matching `needle` (lowercase).
fn scan(
    proc: &Path,
    mode: CmdlineMode,
    needle: Option<&str>,
    cancel: &CancellationToken,
) -> Result<(usize, Vec<Candidate>), CallError> {
    let entries = std::fs::read_dir(proc).map_err(|err| {
        CallError::Failed(format!(
            "could not list processes in {}: {err}; is HOST_PROC the host's procfs?",
            proc.display()
        ))
    })?;
    let mut total = 0;
    let mut candidates = Vec::new();
    let mut path = proc.to_path_buf();
    let mut stat = Vec::with_capacity(512);
    let mut cmdline = Vec::new();
    for (i, entry) in entries.enumerate() {
        if i % 64 == 0 && cancel.is_cancelled() {
            return Err(CallError::Cancelled);
        }
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        path.push(&file_name);
        path.push("stat");
        let parsed = if procfs::read_bytes_into(&path, &mut stat, 4096) {
            parse_stat(&String::from_utf8_lossy(&stat))
        } else {
            None
        };
        path.pop();
        let Some(parsed) = parsed else {
            path.pop();
            continue; // vanished, unreadable or malformed
        };
        let mut command_line = None;
        let keep = match needle {
            None => true,
            Some(needle) if parsed.name.to_lowercase().contains(needle) => true,
            // Without command lines the filter sees only names.
            Some(_) if mode == CmdlineMode::None => false,
            Some(needle) => {
                path.push("cmdline");
                let read = procfs::read_bytes_into(&path, &mut cmdline, MAX_CMDLINE_BYTES);
                path.pop();
                // The filter searches what is shown: a hidden secret cannot be guessed
                // one filter at a time.
                let full = shown_command(&cmdline, mode);
                let hit = read && full.to_lowercase().contains(needle);
                if hit {
                    command_line = Some(render_command(&full, &parsed.name));
                }
                hit
            }
        };
        path.pop();
        total += 1;
        if keep {
            candidates.push(Candidate {
                pid,
                name: parsed.name,
                state: parsed.state,
                rss_pages: parsed.rss_pages,
                cpu_ticks: parsed.cpu_ticks,
                command_line,
            });
        }
    }
    Ok((total, candidates))
}

/// The fields of `/proc/<pid>/stat` this tool uses.
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    /// comm, between the first "(" and the last ")".
    name: String,
    /// Field 3.
    state: char,
    /// Fields 14 + 15 (utime + stime).
    cpu_ticks: u64,
    /// Field 24 (rss, pages; negative values count as 0).
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The name may contain spaces and parentheses,
/// so it is taken up to the last ")"; the numbered fields follow it.
fn parse_stat(text: &str) -> Option<StatFields> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?;
    let mut fields = text.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `fields` now starts at field 4 (ppid).
    let utime: u64 = fields.nth(10)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let rss: i64 = fields.nth(8)?.parse().ok()?;
    Some(StatFields {
        name: name.to_owned(),
        state,
        cpu_ticks: utime.saturating_add(stime),
        rss_pages: u64::try_from(rss).unwrap_or(0),
    })
}

/// The arguments of a raw `cmdline` joined with spaces (trailing NULs
/// dropped, invalid UTF-8 replaced).
fn full_command(raw: &[u8]) -> Cow<'_, str> {
    let end = raw.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let trimmed = &raw[..end];
    if trimmed.contains(&0) {
        let joined: Vec<u8> = trimmed
            .iter()
            .map(|b| if *b == 0 { b' ' } else { *b })
            .collect();
        Cow::Owned(String::from_utf8_lossy(&joined).into_owned())
    } else {
        String::from_utf8_lossy(trimmed)
    }
}

/// The command line for `mode` (not cut yet).
fn shown_command(raw: &[u8], mode: CmdlineMode) -> Cow<'_, str> {
    match mode {
        CmdlineMode::Full => full_command(raw),
        CmdlineMode::Redacted => Cow::Owned(redact::redact_cmdline(raw)),
        CmdlineMode::None => Cow::Borrowed(""),
    }
}

/// The command line as shown: `[name]` when empty (kernel threads,
/// zombies), cut to [`MAX_COMMAND_CHARS`] characters.
fn render_command(full: &str, name: &str) -> String {
    if full.trim().is_empty() {
        return format!("[{name}]");
    }
    match full.char_indices().nth(MAX_COMMAND_CHARS) {
        None => full.to_owned(),
        Some(_) => {
            let mut cut: String = full.chars().take(MAX_COMMAND_CHARS - 1).collect();
            cut.push('…');
            cut
        }
    }
}

/// A header line and one line per process.
fn render(list: &ProcessList) -> String {
    use std::fmt::Write;
    let mut text = match &list.name_filter {
        Some(filter) => format!(
            "{} of {} processes matching {:?} ({} on the node), by {}:",
            list.returned, list.matched_processes, filter, list.total_processes, list.sort_by
        ),
        None => format!(
            "{} of {} processes, by {}:",
            list.returned, list.total_processes, list.sort_by
        ),
    };
    for p in &list.processes {
        let _ = write!(
            text,
            "\npid {} {} [{}] rss {} cpu {:.2}s",
            p.pid,
            p.name,
            p.state,
            human_bytes(p.rss_bytes),
            p.cpu_time_seconds,
        );
        if let Some(line) = &p.command_line {
            let _ = write!(text, ": {line}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{Fixture, args, real_ctx};

    async fn run(ctx: &ToolContext, arguments: Value) -> Result<ToolOutput, CallError> {
        call(ctx, &args(arguments), &CancellationToken::new()).await
    }

    fn pids(out: &ToolOutput) -> Vec<u64> {
        out.structured["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn fixture_processes_are_exact() {
        let fx = Fixture::standard();
        let out = run(&fx.ctx(), json!({})).await.unwrap();
        let page = procfs::page_size();
        let ticks = procfs::clock_ticks() as f64;
        assert_eq!(
            out.structured,
            json!({
                "total_processes": 3,
                "matched_processes": 3,
                "returned": 3,
                "sort_by": "memory",
                "name_filter": null,
                "processes": [
                    {"pid": 1, "name": "systemd", "state": "S", "rss_bytes": 2000 * page,
                     "cpu_time_seconds": round2(200.0 / ticks), "command_line": "/sbin/init splash"},
                    {"pid": 100, "name": "my (odd) app", "state": "R", "rss_bytes": 100 * page,
                     "cpu_time_seconds": round2(1500.0 / ticks), "command_line": "python3 /opt/app/server.py --port 8080"},
                    {"pid": 42, "name": "kthreadd", "state": "S", "rss_bytes": 0,
                     "cpu_time_seconds": 0.0, "command_line": "[kthreadd]"},
                ],
            })
        );
        let first = out.text.lines().nth(1).unwrap();
        assert!(
            out.text.starts_with("3 of 3 processes, by memory:"),
            "{}",
            out.text
        );
        assert!(first.starts_with("pid 1 systemd [S] rss "), "{first}");
        assert!(first.ends_with(": /sbin/init splash"), "{first}");
    }

    #[tokio::test]
    async fn sorting_limit_and_filter_on_the_fixture() {
        let fx = Fixture::standard();
        let ctx = fx.ctx();
        let out = run(&ctx, json!({"sort_by": "cpu"})).await.unwrap();
        assert_eq!(pids(&out), [100, 1, 42]);
        let out = run(&ctx, json!({"sort_by": "pid", "limit": 2}))
            .await
            .unwrap();
        assert_eq!(pids(&out), [1, 42]);
        assert_eq!(out.structured["returned"], 2);
        assert_eq!(out.structured["matched_processes"], 3);
        // Name, case-insensitively.
        let out = run(&ctx, json!({"name_filter": "ODD"})).await.unwrap();
        assert_eq!(pids(&out), [100]);
        // Command line only.
        let out = run(&ctx, json!({"name_filter": "server.PY"}))
            .await
            .unwrap();
        assert_eq!(pids(&out), [100]);
        assert_eq!(
            out.structured["processes"][0]["command_line"],
            "python3 /opt/app/server.py --port 8080"
        );
        assert_eq!(out.structured["name_filter"], "server.PY");
        assert_eq!(out.structured["total_processes"], 3);
        assert_eq!(out.structured["matched_processes"], 1);
        assert!(
            out.text
                .starts_with("1 of 1 processes matching \"server.PY\" (3 on the node), by memory:")
        );
        let out = run(&ctx, json!({"name_filter": "nothing-like-this"}))
            .await
            .unwrap();
        assert_eq!(pids(&out), Vec::<u64>::new());
    }

    #[tokio::test]
    async fn secrets_in_command_lines_are_redacted_unless_asked_otherwise() {
        let fx = Fixture::standard();
        fx.write(
            "proc/100/cmdline",
            "python3\0/opt/app/server.py\0--password=hunter2\0--db\0postgres://app:s3cret@db:5432/x\0",
        );
        let mut ctx = fx.ctx();
        let out = run(&ctx, json!({"name_filter": "server.py"}))
            .await
            .unwrap();
        let shown = "python3 /opt/app/server.py --password=*** --db postgres://app:***@db:5432/x";
        assert_eq!(out.structured["processes"][0]["command_line"], shown);
        assert!(out.text.contains(shown) && !out.text.contains("hunter2"));
        // The filter sees the redacted text: a secret cannot be guessed with it.
        for probe in ["hunter2", "password=h", "s3cret"] {
            let out = run(&ctx, json!({"name_filter": probe})).await.unwrap();
            assert_eq!(pids(&out), Vec::<u64>::new(), "{probe}");
        }
        ctx.cmdline = CmdlineMode::Full;
        let out = run(&ctx, json!({"name_filter": "hunter2"})).await.unwrap();
        assert_eq!(pids(&out), [100]);
        assert!(
            out.structured["processes"][0]["command_line"]
                .as_str()
                .unwrap()
                .contains("--password=hunter2")
        );
        ctx.cmdline = CmdlineMode::None;
        let out = run(&ctx, json!({})).await.unwrap();
        for p in out.structured["processes"].as_array().unwrap() {
            assert!(p.get("command_line").is_none(), "{p}");
        }
        assert!(!out.text.contains("server.py") && !out.text.contains("/sbin/init"));
        let out = run(&ctx, json!({"name_filter": "server.py"}))
            .await
            .unwrap();
        assert_eq!(pids(&out), Vec::<u64>::new(), "names only");
        let out = run(&ctx, json!({"name_filter": "systemd"})).await.unwrap();
        assert_eq!(pids(&out), [1]);
    }

    #[tokio::test]
    async fn a_missing_procfs_is_an_error() {
        let fx = Fixture::empty();
        let mut ctx = fx.ctx();
        ctx.host.proc.push("absent");
        match run(&ctx, json!({})).await {
            Err(CallError::Failed(msg)) => assert!(msg.contains("HOST_PROC"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_cancelled_call_stops() {
        let fx = Fixture::standard();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result = call(&fx.ctx(), &Map::new(), &cancel).await;
        assert!(matches!(result, Err(CallError::Cancelled)));
    }

    #[tokio::test]
    async fn our_own_process_is_listed_on_this_machine() {
        let ctx = real_ctx();
        let me = std::process::id() as u64;
        let out = run(&ctx, json!({"sort_by": "pid", "limit": MAX_LIMIT}))
            .await
            .unwrap();
        let listed = pids(&out);
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "pid order");
        let total = out.structured["total_processes"].as_u64().unwrap();
        assert!(total >= 1);
        if total <= MAX_LIMIT as u64 {
            assert!(listed.contains(&me), "{me} not in {listed:?}");
        }
        // Our own name finds us whatever the node's size.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let name = parse_stat(&stat).unwrap().name;
        let out = run(
            &ctx,
            json!({"name_filter": name, "sort_by": "pid", "limit": MAX_LIMIT}),
        )
        .await
        .unwrap();
        let mine = out.structured["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == me)
            .expect("our pid is listed");
        assert!(mine["rss_bytes"].as_u64().unwrap() > 0);
        assert!(!mine["command_line"].as_str().unwrap().is_empty());

        let out = run(&ctx, json!({"limit": 3})).await.unwrap();
        assert!(out.structured["returned"].as_u64().unwrap() <= 3);
        let rss: Vec<u64> = out.structured["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["rss_bytes"].as_u64().unwrap())
            .collect();
        assert!(rss.windows(2).all(|w| w[0] >= w[1]), "memory order {rss:?}");
    }

    #[test]
    fn stat_lines_parse_or_are_refused() {
        let parsed =
            parse_stat("7 (a) b) c) Z 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 0 -5 0").unwrap();
        assert_eq!(
            parsed,
            StatFields {
                name: "a) b) c".into(),
                state: 'Z',
                cpu_ticks: 7,
                rss_pages: 0
            }
        );
        for bad in [
            "",
            "7",
            "7 (x",
            "7 x) (",
            "7 (x) S 1 2 3",
            "7 (x) S 1 7 7 0 -1 0 0 0 0 0 three 4 0 0 20 0 1 0 9 0 5",
            "7 (x) S 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 0",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn command_lines_are_joined_and_cut() {
        assert_eq!(full_command(b"a\0b c\0\0"), "a b c");
        assert_eq!(full_command(b"nginx: worker"), "nginx: worker");
        assert_eq!(full_command(b"\0\0"), "");
        assert_eq!(full_command(&[b'x', 0xff, 0]), "x\u{fffd}");
        assert_eq!(render_command("", "kworker/0:1"), "[kworker/0:1]");
        let long = "é".repeat(300);
        let cut = render_command(&long, "x");
        assert_eq!(cut.chars().count(), MAX_COMMAND_CHARS);
        assert!(cut.ends_with("é…"));
        let exact = "y".repeat(MAX_COMMAND_CHARS);
        assert_eq!(render_command(&exact, "x"), exact);
    }
}
