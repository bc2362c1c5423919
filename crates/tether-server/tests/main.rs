//! The crate's integration tests, one binary: each file of tests/ is a module here, so the
//! test build links one executable per crate instead of one per file (disk and link time).

mod ad_api;
mod console_http;
mod group_feed;
mod groups_api;
mod layers;
mod mail;
mod security;
mod users_api;
