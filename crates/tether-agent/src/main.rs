//! `tether-agent import|sync --config FILE`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tether_agent::config::{ImportConfig, SyncConfig};

#[derive(Parser)]
#[command(name = "tether-agent", version, about = "The Tether ADI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import agent: AD → Tether.
    Import {
        #[arg(long, default_value = "importagent.config.json")]
        config: PathBuf,
    },
    /// Sync agent: Tether → AD.
    Sync {
        #[arg(long, default_value = "syncagent.config.json")]
        config: PathBuf,
    },
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let result = match Cli::parse().command {
        Command::Import { config } => tether_agent::runner::run_import(ImportConfig::load(&config)?, shutdown()).await,
        Command::Sync { config } => tether_agent::runner::run_sync(SyncConfig::load(&config)?, shutdown()).await,
    };
    result.map_err(|e| anyhow::anyhow!(e))
}
