//! The sync policies, row by row from the tables of the seeds' *Advanced Configurations for
//! Active Directory Integration (ADI)*: "User End States in AD Based on Disconnection
//! Settings", "Sync Unlock Status" and "Suspend Actions on the Sync Agent".

use tether_core::adi::sync::{decide_disconnect, decide_user, AdAction, AdAction::*, AdSide, SyncSettings, UserChange};
use tether_core::adi::{MembershipDisconnection as M, UserDisconnectionAction as U};

fn change() -> UserChange {
    UserChange {
        username: "jdoe".into(),
        firstname: "Jane".into(),
        lastname: "Doe".into(),
        email: "jane@example.com".into(),
        ..UserChange::default()
    }
}

fn ad() -> AdSide {
    AdSide {
        given_name: Some("Jane".into()),
        sn: Some("Doe".into()),
        mail: Some("jane@example.com".into()),
        ..AdSide::default()
    }
}

#[test]
fn disconnection_table() {
    #[rustfmt::skip]
    let rows: [(U, M, Vec<AdAction>); 6] = [
        // user_disconnection_action | membership_disconnection | AD operations   // the AD account; its memberships
        (U::Remove,                    M::Remove,                 vec![Delete]),                     // deleted; removal secondary
        (U::Remove,                    M::Retain,                 vec![Delete]),                     // deleted; memberships cease
        (U::Disable,                   M::Remove,                 vec![Disable, RemoveMemberships]), // disabled; removed from groups
        (U::Disable,                   M::Retain,                 vec![Disable]),                    // disabled; memberships kept
        (U::Retain,                    M::Remove,                 vec![RemoveMemberships]),          // active; removed from groups
        (U::Retain,                    M::Retain,                 vec![]),                           // active; memberships kept
    ];
    for (u, m, want) in rows {
        let s = SyncSettings { user_disconnection_action: u, membership_disconnection: m, ..SyncSettings::default() };
        assert_eq!(decide_disconnect(&s, Some(&ad())), want, "{u:?} {m:?}");
        assert_eq!(decide_disconnect(&s, None), vec![], "no AD account: nothing to do");
    }
    let s = SyncSettings::default();
    let privileged = AdSide { privileged: true, ..ad() };
    assert!(matches!(decide_disconnect(&s, Some(&privileged)).as_slice(), [Refuse(_)]));
}

#[test]
fn lock_table() {
    /// What is synced from Tether to the locked AD account.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Synced {
        ExplicitUnlock,
        ProfileUpdate,
    }
    /// The AD account afterwards.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum AdAccount {
        Unlocked,
        RemainsLocked,
    }
    use AdAccount::*;
    use Synced::*;
    let locked = AdSide { locked: true, ..ad() };
    #[rustfmt::skip]
    let rows = [
        // SyncAccountLockedOutStatus | synced from Tether | the locked AD account
        (true,                          ExplicitUnlock,      Unlocked),
        (true,                          ProfileUpdate,       RemainsLocked),
        (false,                         ExplicitUnlock,      Unlocked),
        (false,                         ProfileUpdate,       Unlocked),
    ];
    for (setting, synced, want) in rows {
        let s = SyncSettings { sync_account_locked_out_status: setting, ..SyncSettings::default() };
        let c = UserChange { explicit_unlock: synced == ExplicitUnlock, firstname: "Janet".into(), ..change() };
        let unlocks = decide_user(&s, &c, Some(&locked)).contains(&Unlock);
        assert_eq!(unlocks, want == Unlocked, "{setting} {synced:?}");
    }
}

#[test]
fn suspend_actions_on_the_sync_agent() {
    let s = SyncSettings::default();
    // An active user with an AD account, suspended in Tether: disabled in AD.
    let c = UserChange { suspended: true, ..change() };
    assert_eq!(decide_user(&s, &c, Some(&ad())), vec![Disable]);
    // Without an AD account: created, then disabled (created disabled).
    assert_eq!(decide_user(&s, &c, None)[0], Create { disabled: true, random_password: true });
    // Reactivated: enabled again.
    let disabled = AdSide { disabled: true, ..ad() };
    assert_eq!(decide_user(&s, &change(), Some(&disabled)), vec![Enable]);
}

#[test]
fn create_takeover_password_expire_and_refusals() {
    let s = SyncSettings::default();
    // No AD user: created with the Tether password, or a random one plus the seeds' warning.
    let with_pw = UserChange { password: Some("Pw-1234567".into()), ..change() };
    assert_eq!(decide_user(&s, &with_pw, None), vec![Create { disabled: false, random_password: false }]);
    let existing = UserChange { has_password: true, ..change() };
    let d = decide_user(&s, &existing, None);
    assert_eq!(d[0], Create { disabled: false, random_password: true });
    assert!(matches!(&d[1], Warn(w) if w.contains("system-generated password")));
    // An AD user of that name: taken over without a new password; attributes follow.
    assert_eq!(decide_user(&s, &change(), Some(&ad())), vec![]);
    let renamed = UserChange { lastname: "Smith".into(), ..change() };
    assert_eq!(decide_user(&s, &renamed, Some(&ad())), vec![SetAttributes]);
    assert_eq!(decide_user(&s, &with_pw, Some(&ad())), vec![SetPassword]);
    let expire = UserChange { expire: true, ..change() };
    assert_eq!(decide_user(&s, &expire, Some(&ad())), vec![ExpirePassword]);
    // Refused with the reason.
    for c in [
        UserChange { firstname: String::new(), ..change() },
        UserChange { lastname: " ".into(), ..change() },
        UserChange { username: "a-very-long-username-x".into(), ..change() },
    ] {
        assert!(matches!(decide_user(&s, &c, None).as_slice(), [Refuse(_)]), "{c:?}");
    }
    let privileged = AdSide { privileged: true, ..ad() };
    assert!(matches!(decide_user(&s, &with_pw, Some(&privileged)).as_slice(), [Refuse(r)] if r.contains("privileged")));
}
