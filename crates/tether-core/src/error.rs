//! The domain's errors. Each variant is a rule a caller broke; the server maps each to one
//! public error code, so the wording here is what an admin reads.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CoreError {
    /// A value of the wrong shape (bad type, missing required field, malformed DN...).
    #[error("invalid value for `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
    /// A field that Active Directory owns was written while the user is externally managed.
    #[error("field `{field}` is restricted: it is managed by Active Directory while the user is externally managed (set externally_managed to false to take it over)")]
    RestrictedField { field: String },
    /// The password authority is Active Directory, so Tether does not accept passwords.
    #[error("the password of this user is managed by Active Directory (password authority); change it in AD")]
    PasswordAuthority,
    /// The password does not meet the organisation's policy.
    #[error("password does not meet the policy: {0}")]
    PasswordPolicy(String),
    /// A state change that the user state machine does not allow.
    #[error("invalid state change: {0}")]
    InvalidState(String),
    /// A filter, sort or search names a field that cannot be queried.
    #[error("unknown field `{0}` in filter, search or sort")]
    UnknownField(String),
    /// A filter or search that cannot be parsed.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// A rule of the directory forbids the operation (e.g. an agent type the use case does not allow).
    #[error("{0}")]
    NotAllowed(String),
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidField { field: field.into(), reason: reason.into() }
    }
}
