//! The LDAP side of Tether: encrypted connections to Active Directory and the reads and
//! writes the agents need.
//!
//! AD refuses simple binds over plain LDAP, and so does this crate: `ldaps://` uses TLS from
//! the first byte, `ldap://` is always upgraded with StartTLS before the bind. Certificates
//! are verified against `CaFile` (or the system roots) unless the admin explicitly opts out.

mod connect;
mod error;
pub mod read;
mod users;

pub use connect::{bind, connect, open, LdapTarget};
pub use error::{AdError, BindFailure};
pub use ldap3;
pub use ldap3::Ldap;
pub use users::{
    by_username, create_group, create_user, create_user_as, find_user, replace_attrs, set_member, set_password,
    unicode_pwd, AdUser, NewUser,
};
