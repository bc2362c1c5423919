//! The crate's integration tests, one binary: each file of tests/ is a module here, so the
//! test build links one executable per crate instead of one per file (disk and link time).

mod import_policy;
mod sync_policy;
mod user_rules;
