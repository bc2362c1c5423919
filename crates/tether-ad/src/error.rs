//! AD's errors, with the bind sub-codes (`data 52e` and friends) decoded into reasons an
//! admin recognises.

/// Why AD refused a simple bind, from the sub-code in its diagnostic message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindFailure {
    /// 52e: unknown user or wrong password.
    InvalidCredentials,
    /// 775: the account is locked out.
    AccountLocked,
    /// 533: the account is disabled.
    AccountDisabled,
    /// 773: the user must change the password at next logon.
    MustChangePassword,
    /// 532: the password has expired.
    PasswordExpired,
    /// 701: the account has expired.
    AccountExpired,
    /// 530 / 531: not permitted at this time or from this workstation.
    Restricted,
    /// Any other code.
    Other,
}

impl BindFailure {
    /// Decodes AD's diagnostic text, e.g. `80090308: LdapErr: DSID-0C09041C, comment:
    /// AcceptSecurityContext error, data 52e, v4563`.
    pub fn from_diagnostic(text: &str) -> Self {
        let code = text
            .split("data ")
            .nth(1)
            .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect::<String>())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match code.as_str() {
            "52e" | "525" => BindFailure::InvalidCredentials,
            "775" => BindFailure::AccountLocked,
            "533" => BindFailure::AccountDisabled,
            "773" => BindFailure::MustChangePassword,
            "532" => BindFailure::PasswordExpired,
            "701" => BindFailure::AccountExpired,
            "530" | "531" => BindFailure::Restricted,
            _ => BindFailure::Other,
        }
    }

    /// AD's sub-code (`52e`, `775`, …; `other` for the rest), for metrics.
    pub fn code(self) -> &'static str {
        match self {
            BindFailure::InvalidCredentials => "52e",
            BindFailure::AccountLocked => "775",
            BindFailure::AccountDisabled => "533",
            BindFailure::MustChangePassword => "773",
            BindFailure::PasswordExpired => "532",
            BindFailure::AccountExpired => "701",
            BindFailure::Restricted => "530",
            BindFailure::Other => "other",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            BindFailure::InvalidCredentials => "invalid credentials",
            BindFailure::AccountLocked => "account locked out",
            BindFailure::AccountDisabled => "account disabled",
            BindFailure::MustChangePassword => "password must be changed",
            BindFailure::PasswordExpired => "password expired",
            BindFailure::AccountExpired => "account expired",
            BindFailure::Restricted => "logon not permitted at this time or from this host",
            BindFailure::Other => "bind refused",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdError {
    #[error("refusing `{0}`: only ldaps:// or ldap:// (upgraded with StartTLS) URLs are allowed")]
    BadUrl(String),
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: Box<ldap3::LdapError> },
    #[error("bind as `{who}` refused: {} ({diagnostic})", .failure.reason())]
    Bind { who: String, failure: BindFailure, diagnostic: String },
    #[error("AD refused the operation on `{dn}`: {message}")]
    Refused { dn: String, rc: u32, message: String },
    #[error("LDAP error: {0}")]
    Ldap(Box<ldap3::LdapError>),
}

impl AdError {
    /// A short code for metrics: the bind sub-code, `rc<N>` for a refused operation, or the
    /// kind of failure.
    pub fn code(&self) -> String {
        match self {
            AdError::BadUrl(_) => "bad_url".into(),
            AdError::CaFile { .. } => "ca_file".into(),
            AdError::Connect { .. } => "connect".into(),
            AdError::Bind { failure, .. } => failure.code().into(),
            AdError::Refused { rc, .. } => format!("rc{rc}"),
            AdError::Ldap(_) => "ldap".into(),
        }
    }
}

impl From<ldap3::LdapError> for AdError {
    fn from(e: ldap3::LdapError) -> Self {
        AdError::Ldap(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_codes() {
        let rows = [
            (
                "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563",
                BindFailure::InvalidCredentials,
            ),
            ("... data 775, v1db1", BindFailure::AccountLocked),
            ("... data 533, v1db1", BindFailure::AccountDisabled),
            ("... data 773, v1db1", BindFailure::MustChangePassword),
            ("... data 532, v1db1", BindFailure::PasswordExpired),
            ("... data 701, v1db1", BindFailure::AccountExpired),
            ("... data 530, v1db1", BindFailure::Restricted),
            ("no code here", BindFailure::Other),
        ];
        for (text, want) in rows {
            assert_eq!(BindFailure::from_diagnostic(text), want, "{text}");
        }
    }
}
