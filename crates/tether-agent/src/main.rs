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
        /// Print what one cycle would do, per object and policy row; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sync agent: Tether → AD.
    Sync {
        #[arg(long, default_value = "syncagent.config.json")]
        config: PathBuf,
        /// Print what the queued changes would do in AD; change nothing.
        #[arg(long)]
        dry_run: bool,
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
    // Logs go to stderr: human-readable, or one JSON object per line with TETHER_LOG_FORMAT=json.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match std::env::var("TETHER_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(_) => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        Ok(other) => anyhow::bail!("TETHER_LOG_FORMAT: `{other}` is not a log format (json or text)"),
    }
    let result = match Cli::parse().command {
        Command::Import { config, dry_run: true } => dry_import(ImportConfig::load(&config)?).await,
        Command::Sync { config, dry_run: true } => dry_sync(SyncConfig::load(&config)?).await,
        Command::Import { config, .. } => {
            tether_agent::runner::run_import(ImportConfig::load(&config)?, shutdown()).await
        }
        Command::Sync { config, .. } => tether_agent::runner::run_sync(SyncConfig::load(&config)?, shutdown()).await,
    };
    result.map_err(|e| anyhow::anyhow!(e))
}

async fn dry_import(cfg: ImportConfig) -> Result<(), tether_agent::AgentError> {
    let session = tether_agent::session::Session::resume(&cfg.server, &cfg.state_dir())?;
    let mut ldap = tether_ad::connect(&cfg.ldap_target()).await?;
    let out = tether_agent::import::dry_run(&cfg, &mut ldap, &session).await?;
    for d in &out.dry_run {
        println!("{d}");
    }
    eprintln!(
        "dry run: {} change(s) decided, nothing applied; skipped: {}",
        out.dry_run.len(),
        serde_json::to_string(&out.skipped).unwrap_or_default()
    );
    Ok(())
}

async fn dry_sync(cfg: SyncConfig) -> Result<(), tether_agent::AgentError> {
    let session = tether_agent::session::Session::resume(&cfg.server, &cfg.state_dir())?;
    let mut ldap = tether_ad::connect(&cfg.ldap_target()).await?;
    let d = tether_agent::sync::domain(&mut ldap, &cfg).await?;
    let entries = session.sync_poll(0).await?;
    for p in tether_agent::sync::preview(&cfg, &mut ldap, &d, &entries).await? {
        println!("{p}");
    }
    eprintln!("dry run: {} queued change(s) previewed, nothing written or acknowledged", entries.len());
    Ok(())
}
