//! The `k8s-aggregator-mcp` binary: parse settings, start logging, run the gateway or
//! the demo. Everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use k8s_aggregator_mcp::cluster::{self, Discovery};
use k8s_aggregator_mcp::config::{Cli, Command};
use k8s_aggregator_mcp::{demo, server};

/// mimalloc rather than the system allocator: a relayed call allocates and frees
/// many small buffers, and glibc's malloc and free were a quarter of its instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs; a start-up failure is one line with its causes.
fn main() -> std::process::ExitCode {
    mcp_protocol::serve::run_to_exit(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = cli.settings;
    if matches!(cli.command, Some(Command::Demo)) && settings.bind_address.is_unspecified() {
        // The demo is open: it listens on loopback only unless told otherwise.
        settings.bind_address = std::net::Ipv4Addr::LOCALHOST.into();
    }
    let config = settings.validate()?;
    init_tracing(config.json_logs);
    if config.auth_modes.is_open() && !config.listen.ip().is_loopback() {
        tracing::warn!(
            addr = %config.listen,
            "AUTH_MODE=none: anyone who can reach this address can run every tool on every node; \
             set AUTH_MODE=oauth and/or kubernetes (see the README's Security section)"
        );
    }
    if let Some(Command::Demo) = cli.command {
        return demo::run(config).await;
    }
    let (discovery, kube) = match config.static_nodes.clone() {
        Some(nodes) => {
            tracing::info!(
                nodes = nodes.len(),
                "using the static node list (no Kubernetes)"
            );
            (Discovery::fixed(nodes), None)
        }
        None => {
            let client = cluster::infer_client().await?;
            tracing::info!(service = %config.service_name, namespace = %config.service_namespace, "watching EndpointSlices");
            (
                Discovery::watch(
                    client.clone(),
                    &config.service_namespace,
                    &config.service_name,
                ),
                Some(client),
            )
        }
    };
    // Kubernetes mode reuses discovery's client; with STATIC_NODES it infers its own.
    let app = server::start_with(&config, discovery, kube).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (BIND_ADDRESS / FRONTEND_PORT)",
                config.listen
            )
        })?;
    tracing::info!(addr = %config.listen, "gateway listening on /mcp");
    server::serve(app, listener, mcp_protocol::serve::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
