//! The Active Directory Integration engine, separate from any transport: applying the import
//! agent's reports (users, mirrored groups, held plans), the change feed to the sync agents
//! with its mass-change guard, and the broker of delegated authentication. The policy
//! decisions themselves are pure functions of `tether_core::adi`; this folder applies them
//! to the directory.

pub mod delegation;
pub mod feed;
pub mod feed_groups;
pub mod generated;
pub mod import;
pub mod import_groups;
pub mod import_plan;
pub mod import_seq;
pub mod sync_guard;
