//! The `node-mcp-server` binary: parse settings, start logging, serve.

use anyhow::Context;
use clap::Parser;
use node_mcp_server::auth::{AuthSettings, ClientAuth};
use node_mcp_server::tools::redact::CmdlineMode;
use node_mcp_server::tools::{HostPaths, ToolContext};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Example per-node MCP server: read-only node tools over MCP Streamable HTTP (both eras).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Settings {
    /// Kubernetes node name (downward API spec.nodeName); defaults to the hostname.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// TCP port of the MCP endpoint.
    #[arg(long = "port", env = "BACKEND_PORT", default_value_t = 9028)]
    port: u16,
    /// Address to bind.
    #[arg(long = "bind", env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    bind: IpAddr,
    /// procfs of the host (/host/proc when the host's procfs is mounted there).
    #[arg(long, env = "HOST_PROC", default_value = "/proc")]
    host_proc: PathBuf,
    /// Root of the host's files (os-release, mount points for statvfs).
    #[arg(long, env = "HOST_ROOT", default_value = "/")]
    host_root: PathBuf,
    /// Log format: text (terminal) or json (cluster).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Who may call (CLIENT_AUTH and its settings).
    #[command(flatten)]
    auth: AuthSettings,
    /// How list_processes shows command lines: `redacted` (likely secrets such as
    /// --password=..., tokens, URL passwords replaced by ***), `full`, or `none`.
    #[arg(long, env = "PROCESS_CMDLINE", default_value = "redacted", value_parser = CmdlineMode::parse)]
    process_cmdline: CmdlineMode,
    /// Also serve `confirm_cpu_usage`, a tool that logs and asks the client to
    /// confirm mid-call (elicitation): for testing MCP clients and relays.
    #[arg(long, env = "INTERACTIVE_TOOLS", default_value_t = false)]
    interactive_tools: bool,
    /// Tools not to offer, comma-separated (e.g. `cpu_usage`): one binary can then
    /// play node servers of different builds.
    #[arg(long, env = "HIDE_TOOLS", default_value = "")]
    hide_tools: String,
    /// Test knob: `b` serves `list_processes` with another schema (one more optional
    /// parameter), as a second build of the same tool would.
    #[arg(long, env = "TOOL_VARIANT")]
    tool_variant: Option<String>,
    /// Test knob: a file of tool names not to offer (comma-separated), read again
    /// every 100 ms; a change is announced with `notifications/tools/list_changed`.
    #[arg(long, env = "HIDE_TOOLS_FILE")]
    hide_tools_file: Option<PathBuf>,
    /// OpenTelemetry traces (off unless an OTLP endpoint is set).
    #[command(flatten)]
    traces: mcp_protocol::telemetry::TraceSettings,
}

/// Runs; a start-up failure is one line with its causes.
fn main() -> std::process::ExitCode {
    mcp_protocol::serve::run_to_exit(run())
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::parse();
    init_tracing(&settings.log_format);
    let host = HostPaths {
        proc: settings.host_proc.clone(),
        root: settings.host_root.clone(),
    };
    let node_name = match settings.node_name.clone().filter(|n| !n.trim().is_empty()) {
        Some(n) => n,
        None => hostname(&host).context("NODE_NAME is not set and the hostname cannot be read")?,
    };
    let auth = ClientAuth::from_settings(&settings.auth)?;
    let telemetry = settings
        .traces
        .start("node-mcp-server")?
        .map(std::sync::Arc::new);
    let addr = SocketAddr::new(settings.bind, settings.port);
    if auth.is_open() && !settings.bind.is_loopback() {
        tracing::warn!(
            %addr,
            "CLIENT_AUTH=none: anyone who can reach this address can read this node's processes, disks and CPU; \
             set CLIENT_AUTH=serviceaccount so only the gateway may call"
        );
    } else {
        tracing::info!(mode = %settings.auth.client_auth, "client authentication on /mcp");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (BIND_ADDRESS / BACKEND_PORT)"))?;
    tracing::info!(%addr, node = %node_name, proc = %settings.host_proc.display(), "node-mcp-server listening on /mcp");
    let ctx = ToolContext {
        node_name,
        host,
        cmdline: settings.process_cmdline,
        hidden_tools: settings
            .hide_tools
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let knobs = node_mcp_server::server::Knobs {
        interactive: settings.interactive_tools,
        variant: settings.tool_variant.clone(),
        hide_tools_file: settings.hide_tools_file.clone(),
        telemetry,
    };
    node_mcp_server::server::run_with_knobs(
        listener,
        ctx,
        std::sync::Arc::new(auth),
        knobs,
        mcp_protocol::serve::shutdown_signal(),
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

fn hostname(host: &HostPaths) -> Option<String> {
    std::fs::read_to_string(host.proc.join("sys/kernel/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
