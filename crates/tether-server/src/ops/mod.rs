//! The operations layer: what the directory does, whichever front end asks. REST routes, the
//! console and the portal (and the coming LDAP and RADIUS front ends) call these functions
//! with typed inputs and get typed outputs or an [`crate::error::ApiError`], which each
//! transport maps to its own answer once (HTTP: the public error table). No operation knows
//! HTTP; no front end writes to the store or the feed directly.

pub use crate::error::retrying;

pub mod associations;
pub mod auth;
pub mod decommission;
pub mod domains;
pub mod groups;
pub mod ldap;
pub mod ldap_memory;
pub mod mfa;
pub mod plans;
pub mod radius;
pub mod radius_clients;
pub mod unix_ids;
pub mod users;
