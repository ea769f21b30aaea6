//! The node tools this server exposes, independent of any transport.
//!
//! The MCP server code only needs two entry points: [`definitions`] for
//! `tools/list` and [`call`] for `tools/call`. Everything below them reads
//! the node from procfs (and a few files under the host root), so the same
//! code works on a laptop (`/proc`, `/`) and in a DaemonSet pod that mounts
//! the host's procfs and root filesystem elsewhere ([`HostPaths`]).
//!
//! Modules, one concern each:
//! - `args`: hand-written argument checking, so a model gets an actionable
//!   message without a JSON Schema engine at run time.
//! - `procfs`: tolerant readers and parsers for the small files several
//!   tools share (`/proc/stat`, `/proc/meminfo`, ...).
//! - `node_info`, `processes`, `disks`, `cpu`: one file per tool, each with
//!   its definition (schemas, annotations) next to the code that fills it.

mod args;
mod cpu;
mod disks;
mod node_info;
mod processes;
mod procfs;
pub mod redact;

#[cfg(test)]
mod testutil;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// Where the host's filesystems are visible from this process.
///
/// In a pod the host's procfs is typically mounted at `/host/proc` and its
/// root at `/host`; on a plain machine both are the usual paths. Every tool
/// reads through these two prefixes and never through hard-coded paths, which
/// is also what lets the tests point the tools at a fixture tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The host's procfs (`HOST_PROC`, default `/proc`).
    pub proc: PathBuf,
    /// The host's root filesystem (`HOST_ROOT`, default `/`), for files such
    /// as `etc/os-release` and as the prefix for `statvfs` of mount points.
    pub root: PathBuf,
}

impl Default for HostPaths {
    /// The paths of a process running directly on the host.
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            root: PathBuf::from("/"),
        }
    }
}

/// What a tool call needs to know about where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolContext {
    /// The Kubernetes node name (downward API), reported by `node_info` so a
    /// gateway's merged answers say which node they came from.
    pub node_name: String,
    /// Where to read the host's procfs and root filesystem.
    pub host: HostPaths,
    /// How `list_processes` shows command lines (`PROCESS_CMDLINE`: secrets redacted
    /// by default).
    pub cmdline: redact::CmdlineMode,
    /// Tools this server does not offer (`HIDE_TOOLS`): lets one binary play node
    /// servers of different builds (a rollout, node pools with other tool sets).
    pub hidden_tools: Vec<String>,
}

impl ToolContext {
    /// The definitions this server lists: [`definitions`] without the hidden tools.
    pub fn definitions(&self) -> Vec<Value> {
        definitions()
            .into_iter()
            .filter(|d| {
                !self
                    .hidden_tools
                    .iter()
                    .any(|h| d.get("name").and_then(Value::as_str) == Some(h.as_str()))
            })
            .collect()
    }
}

/// One progress report of a long-running tool (`cpu_usage`), which the
/// server turns into a `notifications/progress` message when the caller
/// supplied a progress token.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// Work done so far (for `cpu_usage`: seconds sampled); increases with
    /// every update, as MCP requires.
    pub progress: f64,
    /// Total work, when known (for `cpu_usage`: the requested seconds).
    pub total: Option<f64>,
    /// A short human-readable status line.
    pub message: Option<String>,
}

/// The result of a successful tool call, in the two forms an MCP tool
/// result carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// `structuredContent`: a JSON object that satisfies the tool's
    /// `outputSchema`.
    pub structured: Value,
    /// A compact rendering for the text content block, for clients and
    /// models that do not read structured content.
    pub text: String,
}

/// Why a tool call produced no [`ToolOutput`]. The server maps
/// `UnknownTool` to JSON-RPC -32602 and the others to tool results with
/// `isError: true` (or drops the answer, for `Cancelled`).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No tool of that name exists.
    #[error("unknown tool: {0}")]
    UnknownTool(String),
    /// The arguments do not fit the tool's `inputSchema`; the message names
    /// the argument, what was given and what is allowed.
    #[error("{0}")]
    InvalidArguments(String),
    /// The arguments were fine but the node could not be read.
    #[error("{0}")]
    Failed(String),
    /// The caller cancelled the call before it finished.
    #[error("cancelled")]
    Cancelled,
}

/// The `tools/list` entries: complete MCP Tool objects (name, title,
/// description, inputSchema, outputSchema, annotations), built once per
/// process and cloned for each caller.
pub fn definitions() -> Vec<Value> {
    static DEFINITIONS: OnceLock<Vec<Value>> = OnceLock::new();
    DEFINITIONS
        .get_or_init(|| {
            vec![
                node_info::definition(),
                processes::definition(),
                disks::definition(),
                cpu::definition(),
            ]
        })
        .clone()
}

/// Runs the tool `name` with `arguments` against the node described by
/// `ctx`.
///
/// `progress`, when given, receives [`ProgressUpdate`]s from tools that take
/// a while; `cancel` stops such a tool early with [`CallError::Cancelled`].
pub async fn call(
    ctx: &ToolContext,
    name: &str,
    arguments: &Map<String, Value>,
    progress: Option<UnboundedSender<ProgressUpdate>>,
    cancel: &CancellationToken,
) -> Result<ToolOutput, CallError> {
    if ctx.hidden_tools.iter().any(|h| h == name) {
        return Err(CallError::UnknownTool(name.to_owned()));
    }
    match name {
        node_info::NAME => node_info::call(ctx, arguments),
        processes::NAME => processes::call(ctx, arguments, cancel).await,
        disks::NAME => disks::call(ctx, arguments, cancel).await,
        cpu::NAME => cpu::call(ctx, arguments, progress, cancel).await,
        other => Err(CallError::UnknownTool(other.to_owned())),
    }
}

/// Assembles one Tool object with the annotations every tool here shares:
/// all of them only read the node (`readOnlyHint`, not destructive) and
/// see nothing beyond it (`openWorldHint: false`). `idempotent` is false for
/// tools whose answers change from call to call by nature.
fn tool_definition(
    name: &str,
    title: &str,
    description: &str,
    input_schema: Value,
    output_schema: Value,
    idempotent: bool,
) -> Value {
    json!({
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": input_schema,
        "outputSchema": output_schema,
        "annotations": {
            "readOnlyHint": true,
            "destructiveHint": false,
            "idempotentHint": idempotent,
            "openWorldHint": false,
        },
    })
}

/// Builds a [`ToolOutput`] from a serialisable report and its rendering.
fn output<T: Serialize>(report: &T, text: String) -> Result<ToolOutput, CallError> {
    let structured = serde_json::to_value(report)
        .map_err(|err| CallError::Failed(format!("could not encode the result: {err}")))?;
    Ok(ToolOutput { structured, text })
}

/// Runs blocking filesystem work (many procfs reads, `statvfs` that may hang
/// on a dead network mount) off the async workers, and gives up on it as
/// soon as the call is cancelled.
async fn run_blocking<T, F>(cancel: &CancellationToken, work: F) -> Result<T, CallError>
where
    T: Send + 'static,
    F: FnOnce(CancellationToken) -> Result<T, CallError> + Send + 'static,
{
    if cancel.is_cancelled() {
        return Err(CallError::Cancelled);
    }
    let token = cancel.clone();
    let task = tokio::task::spawn_blocking(move || work(token));
    tokio::select! {
        _ = cancel.cancelled() => Err(CallError::Cancelled),
        joined = task => joined
            .map_err(|err| CallError::Failed(format!("the tool stopped unexpectedly: {err}")))?,
    }
}

/// Renders a byte count with a binary unit and one decimal ("3.2 GiB").
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Rounds to one decimal place, which is all the precision a percentage
/// shown to a model needs; non-finite inputs become 0.
fn round1(value: f64) -> f64 {
    if value.is_finite() {
        (value * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Rounds to two decimal places (CPU seconds, load averages).
fn round2(value: f64) -> f64 {
    if value.is_finite() {
        (value * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{Fixture, args, real_ctx};
    use super::*;

    #[test]
    fn definitions_are_complete_tool_objects() {
        let defs = definitions();
        let names: Vec<&str> = defs.iter().filter_map(|d| d["name"].as_str()).collect();
        assert_eq!(
            names,
            ["node_info", "list_processes", "disk_usage", "cpu_usage"]
        );
        for def in &defs {
            let name = def["name"].as_str().unwrap_or_default();
            let keys: Vec<&str> = def
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "name",
                    "title",
                    "description",
                    "inputSchema",
                    "outputSchema",
                    "annotations"
                ],
                "{name}"
            );
            assert!(!def["title"].as_str().unwrap().is_empty(), "{name}");
            assert!(def["description"].as_str().unwrap().len() > 40, "{name}");
            for schema in ["inputSchema", "outputSchema"] {
                assert_eq!(def[schema]["type"], "object", "{name} {schema}");
            }
            assert_eq!(def["inputSchema"]["additionalProperties"], false, "{name}");
            let annotations = &def["annotations"];
            assert_eq!(annotations["readOnlyHint"], true, "{name}");
            assert_eq!(annotations["destructiveHint"], false, "{name}");
            assert_eq!(annotations["openWorldHint"], false, "{name}");
            let changing = name == "cpu_usage" || name == "list_processes";
            assert_eq!(annotations["idempotentHint"], !changing, "{name}");
            // Every input property tells a model what it is for.
            if let Some(props) = def["inputSchema"]["properties"].as_object() {
                for (prop, schema) in props {
                    assert!(schema["description"].is_string(), "{name}.{prop}");
                }
            }
        }
    }

    #[test]
    fn schemas_compile_and_are_valid_2020_12() {
        for def in definitions() {
            for schema in ["inputSchema", "outputSchema"] {
                let s = &def[schema];
                if let Err(err) = jsonschema::draft202012::meta::validate(s) {
                    panic!("{} {schema} is not a valid schema: {err}", def["name"]);
                }
                if let Err(err) = jsonschema::draft202012::new(s) {
                    panic!("{} {schema} does not compile: {err}", def["name"]);
                }
            }
        }
    }

    fn validator(tool: &str, which: &str) -> jsonschema::Validator {
        let def = definitions()
            .into_iter()
            .find(|d| d["name"] == tool)
            .expect("tool defined");
        jsonschema::draft202012::new(&def[which]).expect("schema compiles")
    }

    fn assert_valid_output(tool: &str, structured: &Value) {
        let validator = validator(tool, "outputSchema");
        let errors: Vec<String> = validator
            .iter_errors(structured)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{tool}: {errors:?}\n{structured:#}");
    }

    async fn run(ctx: &ToolContext, tool: &str, arguments: Value) -> Result<ToolOutput, CallError> {
        call(ctx, tool, &args(arguments), None, &CancellationToken::new()).await
    }

    #[tokio::test]
    async fn every_tool_output_validates_against_its_output_schema_on_this_machine() {
        let ctx = real_ctx();
        for (tool, arguments) in [
            ("node_info", json!({})),
            ("list_processes", json!({"limit": 500})),
            ("disk_usage", json!({})),
            ("disk_usage", json!({"include_pseudo": true})),
            ("cpu_usage", json!({"seconds": 1})),
        ] {
            let out = run(&ctx, tool, arguments).await.expect(tool);
            assert_valid_output(tool, &out.structured);
            assert!(!out.text.is_empty(), "{tool}");
        }
    }

    #[tokio::test]
    async fn every_tool_output_validates_against_its_output_schema_on_a_fixture() {
        let fx = Fixture::standard();
        let ctx = fx.ctx();
        for (tool, arguments) in [
            ("node_info", json!({})),
            ("list_processes", json!({})),
            ("disk_usage", json!({"include_pseudo": true})),
            ("cpu_usage", json!({"seconds": 1})),
        ] {
            let out = run(&ctx, tool, arguments).await.expect(tool);
            assert_valid_output(tool, &out.structured);
        }
    }

    #[tokio::test]
    async fn unknown_tool_is_reported_as_such() {
        let err = run(&real_ctx(), "rm_rf", json!({})).await.unwrap_err();
        assert!(matches!(err, CallError::UnknownTool(ref n) if n == "rm_rf"));
        assert_eq!(err.to_string(), "unknown tool: rm_rf");
    }

    /// The hand-written checks and the published inputSchema agree: what
    /// one rejects the other rejects, what one accepts the other accepts.
    #[tokio::test]
    async fn argument_checks_agree_with_the_input_schemas() {
        let fx = Fixture::standard();
        let ctx = fx.ctx();
        let cases = [
            ("node_info", json!({}), true),
            ("node_info", json!({"verbose": true}), false),
            ("list_processes", json!({}), true),
            ("list_processes", json!({"limit": 1}), true),
            ("list_processes", json!({"limit": 500}), true),
            ("list_processes", json!({"limit": 0}), false),
            ("list_processes", json!({"limit": 501}), false),
            ("list_processes", json!({"limit": 2.5}), false),
            ("list_processes", json!({"limit": "5"}), false),
            ("list_processes", json!({"sort_by": "cpu"}), true),
            ("list_processes", json!({"sort_by": "pid"}), true),
            ("list_processes", json!({"sort_by": "name"}), false),
            ("list_processes", json!({"name_filter": "ssh"}), true),
            ("list_processes", json!({"name_filter": ""}), false),
            ("list_processes", json!({"name_filter": 7}), false),
            (
                "list_processes",
                json!({"name_filter": "x".repeat(257)}),
                false,
            ),
            ("list_processes", json!({"pid": 1}), false),
            ("disk_usage", json!({"include_pseudo": false}), true),
            ("disk_usage", json!({"include_pseudo": "yes"}), false),
            ("disk_usage", json!({"path": "/"}), false),
            ("cpu_usage", json!({"seconds": 1}), true),
            ("cpu_usage", json!({"seconds": 0}), false),
            ("cpu_usage", json!({"seconds": 31}), false),
            ("cpu_usage", json!({"seconds": -1}), false),
        ];
        for (tool, arguments, ok) in cases {
            let schema_ok = validator(tool, "inputSchema").is_valid(&arguments);
            assert_eq!(schema_ok, ok, "schema on {tool} {arguments}");
            if tool == "cpu_usage" && ok {
                continue; // valid runs are covered elsewhere; skip the sampling time
            }
            let result = run(&ctx, tool, arguments.clone()).await;
            match (ok, result) {
                (true, Ok(_)) => {}
                (false, Err(CallError::InvalidArguments(msg))) => {
                    assert!(msg.contains(tool), "{msg}");
                }
                (_, other) => panic!("{tool} {arguments}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 * 1024 * 1024 * 1024), "16.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn rounding_never_yields_nan() {
        assert_eq!(round1(12.345), 12.3);
        assert_eq!(round1(f64::NAN), 0.0);
        assert_eq!(round2(1.005_1), 1.01);
        assert_eq!(round2(f64::INFINITY), 0.0);
    }
}
