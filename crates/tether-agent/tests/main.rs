//! The crate's integration tests, one binary: each file of tests/ is a module here, so the
//! test build links one executable per crate instead of one per file (disk and link time).

mod agent_session;
mod config;
mod console_e2e;
mod faults;
mod first_read_parts;
mod group_changes;
mod group_feed;
mod hostile_input;
mod import_samba;
mod ldap_clients;
mod membership_changes;
mod notifications;
mod notified_changes;
mod outage;
mod radius_ad;
mod sync_samba;
mod transport;
mod two_domains;
mod two_way;
mod watermark;
