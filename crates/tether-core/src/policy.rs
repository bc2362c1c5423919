//! Organisation settings: the password policy and the state given to new users.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::user::UserState;
use crate::CoreError;

/// Password complexity policy. The default (8 characters, three of four classes) mirrors
/// AD's default complexity rule, so a password Tether accepts is one AD will accept too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    pub min_length: usize,
    /// How many of the four classes (lowercase, uppercase, digit, symbol) must appear.
    pub min_character_classes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 8, min_character_classes: 3 }
    }
}

impl PasswordPolicy {
    /// Checks a password; the error names the rule that failed.
    pub fn check(&self, password: &str) -> Result<(), CoreError> {
        let len = password.chars().count();
        if len < self.min_length {
            return Err(CoreError::PasswordPolicy(format!(
                "must be at least {} characters long (got {len})",
                self.min_length
            )));
        }
        let classes = [
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if classes < self.min_character_classes {
            return Err(CoreError::PasswordPolicy(format!(
                "must contain at least {} of: lowercase letter, uppercase letter, digit, symbol (got {classes})",
                self.min_character_classes
            )));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        if self.min_character_classes > 4 {
            return Err(CoreError::invalid("minCharacterClasses", "at most 4 classes exist"));
        }
        if self.min_length > 256 {
            return Err(CoreError::invalid("minLength", "at most 256"));
        }
        Ok(())
    }
}

/// Settings of the organisation (one per server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgSettings {
    pub password_policy: PasswordPolicy,
    /// State of users created through the API or by the import: `ACTIVATED` or `STAGED`.
    pub new_user_state: UserState,
    /// Where administrator notifications go (e.g. the last agent of a domain deactivated).
    pub admin_email: Option<String>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self { password_policy: PasswordPolicy::default(), new_user_state: UserState::Activated, admin_email: None }
    }
}

impl OrgSettings {
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.new_user_state == UserState::Suspended {
            return Err(CoreError::invalid("newUserState", "must be ACTIVATED or STAGED"));
        }
        self.password_policy.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_table() {
        // (password, accepted) — default: 8 chars, 3 of 4 classes.
        let rows: &[(&str, bool)] = &[
            ("", false),
            ("Ab1!", false),     // too short, 4 classes
            ("abcdefgh", false), // 1 class
            ("abcdEFGH", false), // 2 classes
            ("abcdEF12", true),  // 3 classes
            ("abcd12!!", true),  // lower, digit, symbol
            ("ABCD12!!", true),  // upper, digit, symbol
            ("Äbcdéfg1", true),  // non-ASCII letters count as cases
            ("12345678", false), // 1 class
            ("Abc1!", false),    // 5 chars
            ("Password1", true),
        ];
        let p = PasswordPolicy::default();
        for (pw, ok) in rows {
            assert_eq!(p.check(pw).is_ok(), *ok, "password {pw:?}");
        }
    }

    #[test]
    fn error_names_the_rule() {
        let p = PasswordPolicy::default();
        let e = p.check("short").unwrap_err().to_string();
        assert!(e.contains("at least 8 characters"), "{e}");
        let e = p.check("longenough").unwrap_err().to_string();
        assert!(e.contains("at least 3 of"), "{e}");
    }

    #[test]
    fn custom_policy() {
        let p = PasswordPolicy { min_length: 12, min_character_classes: 4 };
        assert!(p.check("Abcdefgh1!").is_err());
        assert!(p.check("Abcdefghij1!").is_ok());
        assert!(p.check("abcdefghij1!").is_err());
    }
}
