//! The import policies, row by row from the tables of the seeds' *Advanced Configurations for
//! Active Directory Integration (ADI)*: "UserDisableAction" (existing and new users),
//! "UserDissociationAction", "UserTakeoverAction", "UserExpireAction" and
//! "SyncAccountLockedOutStatus".

use tether_core::ad::UseCase;
use tether_core::adi::import::*;
use tether_core::adi::*;
use tether_core::user::{PasswordStatus, User, UserState};

fn ctx(use_case: UseCase) -> ImportContext {
    ImportContext { domain_id: "dom1".into(), use_case, new_user_state: UserState::Activated }
}

fn settings() -> ImportSettings {
    ImportSettings { sync_additional_attributes: true, ..ImportSettings::default() }
}

fn obs(disabled: bool) -> AdUserObs {
    AdUserObs {
        guid: "00112233445566778899aabbccddeeff".into(),
        dn: "CN=Jane Doe,CN=Users,DC=corp".into(),
        sam_account_name: "jdoe".into(),
        user_principal_name: Some("jane.doe@corp.example.com".into()),
        given_name: Some("Jane".into()),
        sn: Some("Doe".into()),
        mail: Some("jane@corp.example.com".into()),
        title: Some("Engineer".into()),
        disabled,
        ..AdUserObs::default()
    }
}

/// A Tether user already imported from (linked to) the AD user.
fn owned() -> User {
    let UserDecision::Create(mut u) = decide_present(&settings(), &ctx(UseCase::TwoWaySync), &obs(false), None) else {
        panic!()
    };
    u.id = "u1".into();
    u
}

/// A Tether-only user with the same username.
fn tether_only() -> User {
    User {
        id: "u2".into(),
        username: "jdoe".into(),
        email: "jdoe@old.example.com".into(),
        firstname: "J".into(),
        lastname: "D".into(),
        state: UserState::Activated,
        activated: true,
        has_password: true,
        ..User::default()
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Created(UserState),
    Updated(UserState),
    Deleted,
    Unbound,
    Nothing,
}

/// Whether the AD account is disabled.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InAd {
    Disabled,
    Enabled,
}

fn outcome(d: &UserDecision) -> Outcome {
    match d {
        UserDecision::Create(u) => Outcome::Created(u.state),
        UserDecision::Update { user, .. } => Outcome::Updated(user.state),
        UserDecision::Delete => Outcome::Deleted,
        UserDecision::Unbind(_) => Outcome::Unbound,
        UserDecision::Nothing => Outcome::Nothing,
        UserDecision::Skip(r) => panic!("skipped: {r}"),
    }
}

#[test]
fn user_disable_action_existing_users_table() {
    use InAd::*;
    use Outcome::*;
    use UserDisableAction as A;
    #[rustfmt::skip]
    let rows = [
        // UserDisableAction | in AD    | the existing Tether user       // the seeds' "Action in JumpCloud"
        (A::Suspend,           Disabled,  Updated(UserState::Suspended)), // Suspend
        (A::Suspend,           Enabled,   Nothing),                       // Not suspended / active
        (A::Remove,            Disabled,  Deleted),                       // Deleted from JumpCloud
        (A::Remove,            Enabled,   Nothing),                       // N/A
        (A::Unbind,            Disabled,  Unbound),                       // fields cleared, removed from groups
        (A::Unbind,            Enabled,   Nothing),                       // N/A
    ];
    for (action, in_ad, want) in rows {
        let disabled = in_ad == Disabled;
        let s = ImportSettings { user_disable_action: action, ..settings() };
        let d = decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(disabled), Some(&owned()));
        assert_eq!(outcome(&d), want, "{action:?} disabled={disabled}");
    }
    // A suspended user whose AD account is enabled again is reactivated.
    let mut suspended = owned();
    suspended.state = UserState::Suspended;
    suspended.suspended = true;
    let d = decide_present(&settings(), &ctx(UseCase::TwoWaySync), &obs(false), Some(&suspended));
    assert_eq!(outcome(&d), Outcome::Updated(UserState::Activated));
    // Unbind clears the externally managed fields.
    let s = ImportSettings { user_disable_action: A::Unbind, ..settings() };
    let UserDecision::Unbind(u) = decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(true), Some(&owned())) else {
        panic!()
    };
    assert!(!u.externally_managed && u.restricted_fields.is_empty() && u.ad_guid.is_none() && u.external_dn.is_none());
}

#[test]
fn user_disable_action_new_users_table() {
    use InAd::*;
    use Outcome::*;
    use UserDisableAction as A;
    #[rustfmt::skip]
    let rows = [
        // UserDisableAction | in AD    | a user new to Tether           // the seeds' "Action in JumpCloud"
        (A::Suspend,           Disabled,  Created(UserState::Suspended)), // Suspended
        (A::Suspend,           Enabled,   Created(UserState::Activated)), // Not suspended / active
        (A::Remove,            Disabled,  Nothing),                       // N/A
        (A::Remove,            Enabled,   Created(UserState::Activated)), // User is created
        (A::Unbind,            Disabled,  Nothing),                       // N/A
        (A::Unbind,            Enabled,   Created(UserState::Activated)), // User is created
    ];
    for (action, in_ad, want) in rows {
        let disabled = in_ad == Disabled;
        let s = ImportSettings { user_disable_action: action, ..settings() };
        let d = decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(disabled), None);
        assert_eq!(outcome(&d), want, "{action:?} disabled={disabled}");
    }
    // remove/unbind never touch a user this import does not own.
    for action in [A::Remove, A::Unbind] {
        let s = ImportSettings { user_disable_action: action, ..settings() };
        let d = decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(true), Some(&tether_only()));
        assert_eq!(outcome(&d), Nothing, "{action:?}");
    }
}

#[test]
fn user_dissociation_action_table() {
    #[rustfmt::skip]
    let rows = [
        // UserDissociationAction        | the Tether user
        (UserDissociationAction::Remove,   Outcome::Deleted), // deleted
        (UserDissociationAction::Unbind,   Outcome::Unbound), // stays, disconnected from the domain
    ];
    for (action, want) in rows {
        let s = ImportSettings { user_dissociation_action: action, ..settings() };
        assert_eq!(outcome(&decide_absent(&s, &owned())), want, "{action:?}");
    }
}

#[test]
fn user_takeover_action_table() {
    #[rustfmt::skip]
    let rows = [
        // UserTakeoverAction            | password cleared | password status
        (UserTakeoverAction::Deactivate,   true,              PasswordStatus::Pending),
        (UserTakeoverAction::Retain,       false,             PasswordStatus::Active),
    ];
    for (action, cleared, status) in rows {
        let s = ImportSettings { user_takeover_action: action, ..settings() };
        let UserDecision::Update { user, clear_password } =
            decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(false), Some(&tether_only()))
        else {
            panic!("{action:?}")
        };
        assert_eq!((clear_password, user.password_status), (cleared, status), "{action:?}");
        // On takeover AD's values win and the user is linked and restricted.
        assert_eq!(
            (user.id.as_str(), user.email.as_str(), user.firstname.as_str()),
            ("u2", "jane@corp.example.com", "Jane")
        );
        assert!(user.externally_managed && user.is_restricted("email"));
        assert_eq!(user.ad_guid.as_deref(), Some("00112233445566778899aabbccddeeff"));
    }
}

#[test]
fn user_expire_action_table() {
    let mut expired = obs(false);
    expired.password_expired = true;
    expired.password_expires_at = Some("2026-01-01T00:00:00Z".into());
    /// The Tether side of the AD user whose password expired.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Tether {
        Existing,
        New,
    }
    use Tether::*;
    #[rustfmt::skip]
    let rows = [
        // UserExpireAction          | Tether user | password expired | external_password_expiration_date
        (UserExpireAction::Expire,     Existing,     true,              Some("2026-01-01T00:00:00Z")),
        (UserExpireAction::Expire,     New,          true,              Some("2026-01-01T00:00:00Z")), // created, then expires
        (UserExpireAction::Maintain,   Existing,     false,             None),
        (UserExpireAction::Maintain,   New,          false,             None),
    ];
    for (action, tether, want_expired, want_date) in rows {
        let exists = tether == Existing;
        let s = ImportSettings { user_expire_action: action, ..settings() };
        let cur = owned();
        let d = decide_present(&s, &ctx(UseCase::TwoWaySync), &expired, exists.then_some(&cur));
        let u = match d {
            UserDecision::Create(u) | UserDecision::Update { user: u, .. } => u,
            UserDecision::Nothing if exists => cur.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (u.password_expired, u.external_password_expiration_date.as_deref()),
            (want_expired, want_date),
            "{action:?} {exists}"
        );
    }
}

#[test]
fn sync_account_locked_out_status_table() {
    let mut locked = obs(false);
    locked.locked = true;
    locked.locked_at = Some("2026-02-02T00:00:00Z".into());
    /// An account's lock state.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Lock {
        Locked,
        Unlocked,
    }
    use Lock::*;
    #[rustfmt::skip]
    let rows = [
        // SyncAccountLockedOutStatus | AD account | Tether user before | Tether user after
        (true,                          Locked,      Unlocked,            Locked),
        (true,                          Unlocked,    Locked,              Unlocked),
        (false,                         Locked,      Unlocked,            Unlocked),
        (false,                         Unlocked,    Locked,              Locked),
    ];
    for (sync, ad, before, after) in rows {
        let (ad_locked, before, after) = (ad == Locked, before == Locked, after == Locked);
        let s = ImportSettings { sync_account_locked_out_status: sync, ..settings() };
        let mut cur = owned();
        cur.account_locked = before;
        let o = if ad_locked { locked.clone() } else { obs(false) };
        let u = match decide_present(&s, &ctx(UseCase::TwoWaySync), &o, Some(&cur)) {
            UserDecision::Update { user, .. } => user,
            UserDecision::Nothing => cur.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(u.account_locked, after, "sync={sync} ad={ad_locked} before={before}");
    }
}

#[test]
fn password_state_of_new_imports_by_use_case() {
    let UserDecision::Create(u) = decide_present(&settings(), &ctx(UseCase::AdAsAuthority), &obs(false), None) else {
        panic!()
    };
    assert_eq!(u.password_status, PasswordStatus::Delegated);
    assert_eq!(u.password_authority.as_ref().map(|a| a.name.as_str()), Some("ActiveDirectory"));
    assert!(u.delegated_authority.is_some());
    let UserDecision::Create(u) = decide_present(&settings(), &ctx(UseCase::TwoWaySync), &obs(false), None) else {
        panic!()
    };
    assert_eq!(u.password_status, PasswordStatus::Pending);
    assert!(u.password_authority.is_none() && u.delegated_authority.is_none());
}

#[test]
fn attributes_mapping_and_skips() {
    // Both username mappings.
    let s = ImportSettings { user_field_mapping: UserFieldMapping::UserPrincipalName, ..settings() };
    let UserDecision::Create(u) = decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(false), None) else { panic!() };
    assert_eq!(u.username, "jane.doe");
    let UserDecision::Create(u) = decide_present(&settings(), &ctx(UseCase::TwoWaySync), &obs(false), None) else {
        panic!()
    };
    assert_eq!((u.username.as_str(), u.job_title.as_str()), ("jdoe", "Engineer"));
    assert!(u.is_restricted("jobTitle"));
    // Additional attributes off: only the core ones, and only those restricted.
    let s = ImportSettings { sync_additional_attributes: false, ..settings() };
    let UserDecision::Create(u) = decide_present(&s, &ctx(UseCase::TwoWaySync), &obs(false), None) else { panic!() };
    assert_eq!(u.job_title, "");
    assert!(!u.is_restricted("jobTitle") && u.is_restricted("firstname"));
    // Missing required data and privileged accounts are skipped with the reason.
    for (mutate, want) in [
        (Box::new(|o: &mut AdUserObs| o.given_name = None) as Box<dyn Fn(&mut AdUserObs)>, "givenName"),
        (Box::new(|o: &mut AdUserObs| o.sn = Some(" ".into())), "sn"),
        (Box::new(|o: &mut AdUserObs| o.mail = None), "mail"),
        (Box::new(|o: &mut AdUserObs| o.privileged = true), "privileged"),
    ] {
        let mut o = obs(false);
        mutate(&mut o);
        match decide_present(&settings(), &ctx(UseCase::TwoWaySync), &o, Some(&owned())) {
            UserDecision::Skip(r) => assert!(r.contains(want), "{r}"),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn only_hex_object_guids_are_accepted() {
    use tether_core::adi::is_guid_hex;
    assert!(is_guid_hex("0123456789abcdefABCDEF0123456789"));
    for bad in [
        "",
        "0123",
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef0123456789abcd)(",
        "*)(cn=*)0123456789abcdef01234567",
    ] {
        assert!(!is_guid_hex(bad), "{bad}");
    }
}
