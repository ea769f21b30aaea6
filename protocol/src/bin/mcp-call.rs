//! `mcp-call`: a tiny command-line MCP client on this crate, for people and for the
//! conformance suite's client scenarios (which append the server URL as the last argument).
//!
//! ```text
//! mcp-call [--mode auto|legacy|modern] [--list] [--call TOOL [--arg k=v]... [--args JSON]] [--progress] URL
//! ```
//! Connects (modern first unless told otherwise), optionally lists the tools, optionally
//! calls one, prints JSON on stdout and exits non-zero on any failure or tool error.

use mcp_protocol::client::{ClientMode, ClientOptions, McpClient, RequestOptions, http_client};
use serde_json::{Map, Value, json};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: mcp-call [--mode auto|legacy|modern] [--list] [--call TOOL [--arg k=v]... [--args JSON]] [--progress] URL";

struct Args {
    mode: ClientMode,
    list: bool,
    call: Option<String>,
    arguments: Map<String, Value>,
    progress: bool,
    url: String,
}

fn parse(argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args {
        mode: ClientMode::Auto,
        list: false,
        call: None,
        arguments: Map::new(),
        progress: false,
        url: String::new(),
    };
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--mode" => {
                args.mode = match value("--mode")?.as_str() {
                    "auto" => ClientMode::Auto,
                    "legacy" => ClientMode::Legacy,
                    "modern" => ClientMode::Modern,
                    other => return Err(format!("unknown mode {other:?}")),
                }
            }
            "--list" => args.list = true,
            "--progress" => args.progress = true,
            "--call" => args.call = Some(value("--call")?),
            "--arg" => {
                let kv = value("--arg")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("--arg {kv:?} is not k=v"))?;
                let v = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
                args.arguments.insert(k.to_string(), v);
            }
            "--args" => match serde_json::from_str(&value("--args")?) {
                Ok(Value::Object(m)) => args.arguments.extend(m),
                _ => return Err("--args must be a JSON object".into()),
            },
            "-h" | "--help" => return Err(USAGE.into()),
            url if !url.starts_with("--") => args.url = url.to_string(),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if args.url.is_empty() {
        return Err(USAGE.into());
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mcp-call: {e}");
            ExitCode::from(1)
        }
    }
}

/// Ok(false) when the tool answered with an error.
async fn run(args: Args) -> Result<bool, String> {
    let mut options = ClientOptions::new("mcp-call", env!("CARGO_PKG_VERSION"));
    options.mode = args.mode;
    options.request_timeout = Duration::from_secs(120);
    let client = McpClient::new(
        http_client(Duration::from_secs(10)),
        args.url.clone(),
        options,
    );
    let conn = client.connect().await.map_err(|e| e.to_string())?;
    eprintln!(
        "connected: protocol {} server {}",
        conn.version, conn.server_info
    );
    let mut out = Map::new();
    out.insert("protocolVersion".into(), conn.version.as_str().into());
    out.insert("serverInfo".into(), conn.server_info.clone());
    if args.list {
        let tools = client
            .list_tools()
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut ok = true;
    if let Some(tool) = &args.call {
        let mut params = Map::new();
        params.insert("name".into(), tool.clone().into());
        params.insert("arguments".into(), Value::Object(args.arguments.clone()));
        if args.progress {
            params.insert("_meta".into(), json!({ "progressToken": "mcp-call" }));
        }
        let mut on_note = |note: bytes::Bytes| eprintln!("{}", String::from_utf8_lossy(&note));
        let opts = RequestOptions {
            on_notification: Some(&mut on_note),
            ..Default::default()
        };
        match client
            .call_tool(params, opts)
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(raw) => {
                let result: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                ok = result["isError"] != json!(true);
                out.insert("result".into(), result);
            }
            Err(e) => {
                ok = false;
                out.insert("error".into(), serde_json::to_value(e).unwrap_or_default());
            }
        }
    }
    client.close().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default()
    );
    Ok(ok)
}
