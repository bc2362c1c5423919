//! `cargo run --release -p tether-bench -- adi --users 1000`: measures Tether against a real
//! Samba AD DC in one run — the raw read rate of AD (the physical limit), the initial import
//! and its ratio to that rate, the cost of idle cycles, propagation latency both ways, the
//! bulk provisioning rate into AD against raw adds, new hires added to a group one call
//! each and their offboarding against raw modifies ([`adi_hires`]), raw binds and
//! delegated authentication under concurrency and with one client ([`adi_auth`]), the CPU
//! each part spends in those steps, and the peak memory of tetherd and of each agent, each
//! run in a process of its own ([`parts`]). Prints a table, writes JSON and draws the
//! latency distributions (SVG). `… -- store --users 100000` measures tetherd alone at scale; `… -- ldap` the LDAP
//! front end against OpenLDAP's slapd ([`ldap`]). Figures are recorded
//! in docs/performance.md.
//!
//! The DC ([`sandbox`]) is seeded once per size (Samba creates only ~45 users/s on 2 cores).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use tether_ad::connect;
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_agent::session::Session;
use tether_testkit::TestServer;

mod adi;
mod adi_agent;
mod adi_auth;
mod adi_hires;
mod adi_latency;
mod adi_on_dc;
mod adi_tombstones;
mod ldap;
mod parts;
mod picture;
mod radius;
mod sandbox;
mod stats;
mod store;

use parts::peak_rss_mb;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The ADI benchmark.
    Adi {
        /// Users in the ADI group (seeded once per size, then reused).
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// Single changes measured in each direction.
        #[arg(long, default_value_t = 200)]
        changes: usize,
        /// Where the JSON results go (the picture goes beside it, as .svg).
        #[arg(long, default_value = "target/bench-results.json")]
        out: PathBuf,
        /// Stop after the initial import and the idle cycles (a quick look at the import).
        #[arg(long)]
        import_only: bool,
        /// Users provisioned into AD through one group (and added raw, side by side).
        #[arg(long, default_value_t = 100)]
        bulk: usize,
        /// Members of the Tether group whose membership changes are timed (filled one API
        /// call each, and added raw, side by side): how a group entry's cost grows with it.
        #[arg(long, default_value_t = 500)]
        group_members: usize,
    },
    /// tetherd alone: users seeded through the storage layer, then the API measured.
    Store {
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        #[arg(long, default_value = "target/bench-store.json")]
        out: PathBuf,
        /// On PostgreSQL (the test kit's private cluster) instead of the embedded store.
        #[arg(long)]
        postgres: bool,
    },
    /// Tether's LDAP front end side by side with OpenLDAP's slapd on the same data.
    Ldap {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 500)]
        groups: usize,
        /// Concurrent client connections (StartTLS, kept open).
        #[arg(long, default_value_t = 32)]
        conns: usize,
        /// Seconds each measure runs, per server.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value = "target/bench-ldap.json")]
        out: PathBuf,
    },
    /// Tether's RADIUS front end side by side with FreeRADIUS on the same users.
    Radius {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 500)]
        groups: usize,
        /// Requests kept in flight.
        #[arg(long, default_value_t = 64)]
        outstanding: usize,
        /// Seconds each measure runs, per server.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value = "target/bench-radius.json")]
        out: PathBuf,
    },
    /// (Internal) tetherd with RADIUS users seeded, in a process of its own; prints its address.
    ServeRadius {
        #[arg(long)]
        users: usize,
        #[arg(long)]
        groups: usize,
        #[arg(long)]
        hash_file: PathBuf,
    },
    /// (Internal) tetherd with LDAP users seeded, in a process of its own; prints its LDAP URL.
    ServeLdap {
        #[arg(long)]
        users: usize,
        #[arg(long)]
        groups: usize,
        #[arg(long)]
        hash_file: PathBuf,
    },
    /// (Internal) one complete import cycle in a process of its own; prints its peak RSS.
    ImportOnce {
        #[arg(long)]
        config: PathBuf,
    },
    /// (Internal) tetherd on an embedded store in a process of its own; prints its URL and
    /// admin key, then serves until killed.
    Serve,
    /// (Internal) an agent (`import` or `sync`) in a process of its own, until killed.
    Agent {
        #[arg(long)]
        kind: String,
        #[arg(long)]
        config: PathBuf,
    },
}

/// Prints a benchmark's results and writes them to `out`.
fn write_results(out: &std::path::Path, r: &serde_json::Value) -> Result<()> {
    std::fs::write(out, serde_json::to_string_pretty(r)?)?;
    println!("{}", serde_json::to_string_pretty(r)?);
    eprintln!("written to {}", out.display());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // Logs of the in-process tetherd and agents, on request (e.g. TETHER_LOG=tether_server=debug).
    if let Ok(filter) = std::env::var("TETHER_LOG") {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .init();
    }
    let (n, changes, out, import_only, bulk, group_members) = match Cli::parse().cmd {
        Cmd::Adi { users, changes, out, import_only, bulk, group_members } => {
            (users, changes, out, import_only, bulk, group_members)
        }
        Cmd::Store { users, out, postgres } => {
            return write_results(&out, &store::run(users, postgres).await?);
        }
        Cmd::Ldap { users, groups, conns, seconds, out } => {
            return write_results(&out, &ldap::run(users, groups, conns, seconds).await?);
        }
        Cmd::Radius { users, groups, outstanding, seconds, out } => {
            return write_results(&out, &radius::run(users, groups, outstanding, seconds).await?);
        }
        Cmd::ServeRadius { users, groups, hash_file } => {
            radius::serve(users, groups, std::fs::read_to_string(&hash_file)?.trim()).await?;
            return Ok(());
        }
        Cmd::ServeLdap { users, groups, hash_file } => {
            ldap::serve(users, groups, std::fs::read_to_string(&hash_file)?.trim()).await?;
            return Ok(());
        }
        Cmd::Serve => {
            tether_server::memory::return_large_blocks_to_the_system();
            let s = TestServer::start().await;
            println!("{} {}", s.url, s.api_key);
            std::future::pending::<()>().await;
            return Ok(());
        }
        Cmd::Agent { kind, config } => {
            match kind.as_str() {
                "import" => {
                    tether_agent::runner::run_import(ImportConfig::load(&config)?, std::future::pending()).await?
                }
                "sync" => tether_agent::runner::run_sync(SyncConfig::load(&config)?, std::future::pending()).await?,
                other => bail!("--kind {other}: import or sync"),
            }
            return Ok(());
        }
        Cmd::ImportOnce { config } => {
            let cfg = ImportConfig::load(&config)?;
            let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await?;
            let mut ldap = connect(&cfg.ldap_target()).await?;
            let st = tether_agent::import::cycle(&cfg, &mut ldap, &session, true).await?;
            println!(
                "{}",
                json!({"entries_read": st.entries_read, "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0})
            );
            return Ok(());
        }
    };
    adi::run(n, changes, &out, import_only, bulk, group_members).await
}
