//! RADIUS servers as the directory knows them (the JumpCloud `radiusservers` shape): which
//! network device (by source address) may ask, whether a second factor is asked for, and who
//! may get in. The shared secret is not a field here: it is kept sealed in the store's
//! secrets and never read back through the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ldap::UserAction;
use crate::user::User;

/// Whether a RADIUS server asks users for a TOTP code after their password.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Mfa {
    #[default]
    #[serde(rename = "DISABLED")]
    Disabled,
    /// A challenge for users who enrolled TOTP; others get in with their password.
    #[serde(rename = "ENABLED")]
    Enabled,
    /// A challenge for users who enrolled TOTP; others are refused.
    #[serde(rename = "REQUIRED")]
    Required,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RadiusServer {
    pub id: String,
    pub name: String,
    /// The address requests come from (one device, or a NAT in front of several).
    pub network_source_ip: String,
    pub mfa: Mfa,
    pub user_lockout_action: UserAction,
    pub user_password_expiration_action: UserAction,
}

impl RadiusServer {
    /// Whether `u` may get in, its password being right: suspended users never; locked users
    /// and users whose password expired as the server's actions say.
    pub fn admits(&self, u: &User) -> bool {
        u.state == crate::user::UserState::Activated
            && (!u.account_locked || self.user_lockout_action == UserAction::Maintain)
            && (!u.password_expired || self.user_password_expiration_action == UserAction::Maintain)
    }
}

/// A reply attribute a user group adds to its members' Access-Accept
/// (`attributes.radius.reply`), by the dictionary name of a standard attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplyAttribute {
    pub name: String,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserState;

    #[test]
    fn who_gets_in() {
        let user = |state: UserState, locked: bool, expired: bool| User {
            state,
            account_locked: locked,
            password_expired: expired,
            ..User::default()
        };
        let (rm, keep) = (UserAction::Remove, UserAction::Maintain);
        // (user state, locked, expired, lockout action, expiration action, admitted)
        let rows = [
            (UserState::Activated, false, false, rm, rm, true),
            (UserState::Suspended, false, false, keep, keep, false),
            (UserState::Staged, false, false, keep, keep, false),
            (UserState::Activated, true, false, rm, rm, false),
            (UserState::Activated, true, false, keep, rm, true),
            (UserState::Activated, false, true, rm, rm, false),
            (UserState::Activated, false, true, rm, keep, true),
            (UserState::Activated, true, true, keep, rm, false),
        ];
        for (state, locked, expired, lockout, expiration, want) in rows {
            let server = RadiusServer {
                user_lockout_action: lockout,
                user_password_expiration_action: expiration,
                ..RadiusServer::default()
            };
            assert_eq!(server.admits(&user(state, locked, expired)), want, "{state:?} {locked} {expired}");
        }
    }

    #[test]
    fn the_jumpcloud_shape() {
        let s: RadiusServer = serde_json::from_value(serde_json::json!({
            "name": "office wifi", "networkSourceIp": "10.0.0.2", "mfa": "REQUIRED",
            "userLockoutAction": "MAINTAIN"
        }))
        .unwrap();
        assert_eq!((s.mfa, s.user_lockout_action), (Mfa::Required, UserAction::Maintain));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["networkSourceIp"], "10.0.0.2");
        assert_eq!(back["userPasswordExpirationAction"], "REMOVE");
        assert!(back.get("sharedSecret").is_none());
    }
}
