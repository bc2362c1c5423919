//! Tether's domain: the objects a directory holds and the rules that keep them consistent.
//!
//! This crate has no sockets, files or clocks: every rule is a pure function so that the
//! HTTP server, the agents and the tests all share one definition of what a valid user,
//! group or domain is, and the tests can exercise the rules row by row without a server.
//! Time enters as a parameter (`now`) wherever a rule needs it.

pub mod actor;
pub mod ad;
pub mod adi;
pub mod error;
pub mod group;
pub mod ldap;
pub mod patch;
pub mod policy;
pub mod query;
pub mod radius;
pub mod revision;
pub mod totp;
pub mod transport;
pub mod user;
pub mod wire;

pub use error::CoreError;

/// Timestamps travel as RFC 3339 strings (as in the JumpCloud API); this formats one.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The wire name of an enum value (e.g. `TWOWAYSYNC`, `import_agent`), as the API spells it.
pub fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Object ids are 24 lowercase hex digits, the shape JumpCloud clients expect.
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
