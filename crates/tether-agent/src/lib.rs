//! The two ADI agents. Both run next to AD, make only outbound connections (to AD over
//! TLS and to `tetherd` over HTTP), and keep their identity and progress in `StateDir`, so
//! an agent killed at any moment resumes where it was with the same config.

pub mod ad_users;
mod changes;
pub mod config;
pub mod dc_watch;
pub mod delegation;
pub mod generated;
pub mod import;
pub mod metrics;
pub mod notify;
mod observe;
pub mod passwords;
mod report;
pub mod retry;
pub mod runner;
pub mod session;
pub mod smb_conf;
pub mod sync;
pub mod sync_groups;
pub mod sync_tree;
pub mod watched;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("state directory {path}: {reason}")]
    State { path: String, reason: String },
    #[error("tetherd at {url} answered {status}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
        /// The error's machine-readable reason (the body's `status`, e.g. `FORBIDDEN`), when
        /// tetherd sent one: a proxy's 403 is not tetherd's verdict.
        reason: Option<String>,
    },
    #[error("cannot reach tetherd at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("this agent was deleted in Tether (its token is revoked); add a new agent to get a new connect key")]
    Revoked,
    #[error(transparent)]
    Ad(#[from] tether_ad::AdError),
}
