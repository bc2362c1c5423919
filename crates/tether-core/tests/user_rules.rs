//! Table-driven tests of the user state machine and of the restricted-field rules.

use serde_json::{json, Value};
use tether_core::patch::{create_user, update_user};
use tether_core::policy::OrgSettings;
use tether_core::user::{next_state, StateWrite, User, UserState, UserState::*};
use tether_core::CoreError;

fn w(state: Option<UserState>, suspended: Option<bool>, activated: Option<bool>) -> StateWrite {
    StateWrite { state, suspended, activated }
}

#[test]
fn state_machine_table() {
    // (current, was_activated, write) -> Ok((state, suspended, activated)) or Err
    type Row = (UserState, bool, StateWrite, Option<(UserState, bool, bool)>);
    let rows: Vec<Row> = vec![
        // nothing written: unchanged
        (Staged, false, w(None, None, None), Some((Staged, false, false))),
        (Activated, true, w(None, None, None), Some((Activated, false, true))),
        (Suspended, true, w(None, None, None), Some((Suspended, true, true))),
        // explicit state
        (Staged, false, w(Some(Activated), None, None), Some((Activated, false, true))),
        (Staged, false, w(Some(Suspended), None, None), Some((Suspended, true, false))),
        (Activated, true, w(Some(Suspended), None, None), Some((Suspended, true, true))),
        (Suspended, true, w(Some(Activated), None, None), Some((Activated, false, true))),
        (Suspended, false, w(Some(Staged), None, None), Some((Staged, false, false))),
        (Activated, true, w(Some(Staged), None, None), None),
        (Suspended, true, w(Some(Staged), None, None), None),
        // the suspended flag
        (Activated, true, w(None, Some(true), None), Some((Suspended, true, true))),
        (Staged, false, w(None, Some(true), None), Some((Suspended, true, false))),
        (Suspended, true, w(None, Some(false), None), Some((Activated, false, true))),
        (Suspended, false, w(None, Some(false), None), Some((Staged, false, false))),
        (Suspended, false, w(None, Some(false), Some(true)), Some((Activated, false, true))),
        (Activated, true, w(None, Some(false), None), Some((Activated, false, true))),
        (Staged, false, w(None, Some(false), None), Some((Staged, false, false))),
        // the activated flag
        (Staged, false, w(None, None, Some(true)), Some((Activated, false, true))),
        (Activated, true, w(None, None, Some(false)), None),
        (Suspended, true, w(None, None, Some(true)), Some((Suspended, true, true))),
        // contradictions
        (Activated, true, w(Some(Suspended), Some(false), None), None),
        (Activated, true, w(Some(Activated), Some(true), None), None),
        (Staged, false, w(Some(Staged), None, Some(true)), None),
        (Staged, false, w(Some(Activated), None, Some(false)), None),
        // consistent duplicates are fine
        (Activated, true, w(Some(Suspended), Some(true), None), Some((Suspended, true, true))),
        (Suspended, true, w(Some(Activated), Some(false), Some(true)), Some((Activated, false, true))),
    ];
    for (i, (cur, was, write, want)) in rows.into_iter().enumerate() {
        let got = next_state(cur, was, write);
        match (got, want) {
            (Ok(g), Some(w)) => assert_eq!(g, w, "row {i}"),
            (Err(CoreError::InvalidState(_)), None) => {}
            (g, w) => panic!("row {i}: got {g:?}, want {w:?}"),
        }
    }
}

fn settings() -> OrgSettings {
    OrgSettings::default()
}

fn base_user() -> User {
    create_user(
        &json!({"username": "jdoe", "email": "jdoe@example.com", "firstname": "John", "lastname": "Doe",
                "department": "Eng", "password": "Passw0rd!"}),
        &settings(),
        "0123456789abcdef01234567",
        "2026-01-01T00:00:00Z",
    )
    .unwrap()
    .user
}

fn managed_user() -> User {
    update_user(&base_user(), &json!({"externally_managed": true}), &settings(), &|_| false).unwrap().user
}

#[test]
fn create_defaults_and_required_fields() {
    let u = base_user();
    assert_eq!((u.state, u.activated, u.suspended), (Activated, true, false));
    assert_eq!(u.displayname, "John Doe");
    assert!(u.has_password);
    let staged = OrgSettings { new_user_state: Staged, ..settings() };
    let u2 = create_user(&json!({"username": "a", "email": "a@b.c"}), &staged, "x", "t").unwrap().user;
    assert_eq!((u2.state, u2.activated), (Staged, false));
    assert_eq!(serde_json::to_value(&u2).unwrap()["passwordStatus"], "pending");
    let rows: &[(Value, &str)] = &[
        (json!({"email": "a@b.c"}), "username"),
        (json!({"username": "a"}), "email"),
        (json!({"username": "a b", "email": "a@b.c"}), "username"),
        (json!({"username": "a", "email": "nope"}), "email"),
        (json!({"username": "a", "email": "a@b.c", "firstname": 5}), "firstname"),
        (json!({"username": "a", "email": "a@b.c", "state": "WEIRD"}), "state"),
    ];
    for (body, field) in rows {
        match create_user(body, &settings(), "x", "t") {
            Err(CoreError::InvalidField { field: f, .. }) => assert_eq!(&f, field, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    let e = create_user(&json!({"username": "a", "email": "a@b.c", "password": "short"}), &settings(), "x", "t");
    assert!(matches!(e, Err(CoreError::PasswordPolicy(_))));
}

#[test]
fn restricted_fields_table() {
    // (body, same_password?, expected: Ok or the field refused)
    let rows: Vec<(Value, bool, Result<(), &str>)> = vec![
        (json!({"firstname": "Jim"}), false, Err("firstname")),
        (json!({"firstname": "John"}), false, Ok(())), // unchanged value: accepted
        (json!({"lastname": "X"}), false, Err("lastname")),
        (json!({"username": "other"}), false, Err("username")),
        (json!({"email": "x@example.com"}), false, Err("email")),
        (json!({"password": "N3w-Passw0rd"}), false, Err("password")),
        (json!({"password": "Passw0rd!"}), true, Ok(())), // same password: accepted
        (json!({"department": "Sales"}), false, Ok(())),  // not restricted by the API
        (json!({"externally_managed": false, "firstname": "Jim"}), false, Ok(())), // conversion first
        (json!({"id": "ignored", "created": "ignored", "firstname": "John"}), false, Ok(())),
    ];
    for (body, same, want) in rows {
        let got = update_user(&managed_user(), &body, &settings(), &|_| same);
        match (got, want) {
            (Ok(_), Ok(())) => {}
            (Err(CoreError::RestrictedField { field }), Err(f)) => assert_eq!(field, f, "{body}"),
            (g, w) => panic!("{body}: got {g:?}, want {w:?}"),
        }
    }
}

#[test]
fn externally_managed_round_trip() {
    let m = managed_user();
    assert!(m.externally_managed);
    let fields: Vec<_> = m.restricted_fields.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["firstname", "lastname", "username", "email", "password"]);
    assert!(m.restricted_fields.iter().all(|r| r.kind == "active_directory"));
    let plain = update_user(&m, &json!({"externally_managed": false}), &settings(), &|_| false).unwrap().user;
    assert!(!plain.externally_managed);
    assert!(plain.restricted_fields.is_empty());
    let renamed = update_user(&plain, &json!({"firstname": "Jim"}), &settings(), &|_| false).unwrap().user;
    assert_eq!(renamed.firstname, "Jim");
}

#[test]
fn password_authority_refuses_passwords() {
    let mut u = base_user();
    u.password_authority = Some(tether_core::user::Authority { id: "d".into(), name: "ActiveDirectory".into() });
    let e = update_user(&u, &json!({"password": "An0ther-Pass"}), &settings(), &|_| false).unwrap_err();
    assert_eq!(e, CoreError::PasswordAuthority);
}

#[test]
fn authorities_are_set_and_cleared_by_admins() {
    let ad = json!({"id": "d1", "name": "ActiveDirectory"});
    let u = base_user();
    let set = update_user(&u, &json!({"passwordAuthority": ad, "delegatedAuthority": ad}), &settings(), &|_| false)
        .unwrap()
        .user;
    assert_eq!(set.password_authority.as_ref().map(|a| a.id.as_str()), Some("d1"));
    assert_eq!(set.delegated_authority.as_ref().map(|a| a.id.as_str()), Some("d1"));
    assert_eq!(set.password_status, tether_core::user::PasswordStatus::Delegated);
    // A password sent with the authority in the same request is refused too.
    let e = update_user(&u, &json!({"passwordAuthority": ad, "password": "Fresh-Passw0rd"}), &settings(), &|_| false)
        .unwrap_err();
    assert_eq!(e, CoreError::PasswordAuthority);
    // Cleared: Tether holds the password again.
    let cleared = update_user(&set, &json!({"passwordAuthority": null}), &settings(), &|_| false).unwrap().user;
    assert!(cleared.password_authority.is_none());
    assert!(update_user(&cleared, &json!({"password": "Fresh-Passw0rd"}), &settings(), &|_| false).is_ok());
    // (body, key named in the error)
    let rows = [
        (json!({"passwordAuthority": "AD"}), "passwordAuthority"),
        (json!({"passwordAuthority": {"id": "d1", "name": "Okta"}}), "passwordAuthority"),
        (json!({"delegatedAuthority": {"id": "", "name": "ActiveDirectory"}}), "delegatedAuthority"),
    ];
    for (body, key) in rows {
        let e = update_user(&u, &body, &settings(), &|_| false).unwrap_err();
        assert!(e.to_string().contains(key), "{body}: {e}");
    }
    // Sending back the current value (GET, edit, PUT) changes nothing.
    let again = update_user(&set, &json!({"passwordAuthority": ad, "firstname": "Jo"}), &settings(), &|_| false);
    assert_eq!(again.unwrap().user.password_authority, set.password_authority);
}

#[test]
fn partial_update_keeps_other_fields() {
    let u = base_user();
    let u2 = update_user(&u, &json!({"department": "Ops", "manager": null}), &settings(), &|_| false).unwrap().user;
    assert_eq!((u2.department.as_str(), u2.firstname.as_str(), u2.email.as_str()), ("Ops", "John", "jdoe@example.com"));
    let u3 = update_user(&u2, &json!({"suspended": true}), &settings(), &|_| false).unwrap().user;
    assert_eq!((u3.state, u3.suspended), (Suspended, true));
}

#[test]
fn users_change_their_own_password_unless_ad_is_the_authority() {
    use tether_core::patch::change_own_password;
    let mut u = base_user();
    u.restrict("d1", &tether_core::user::AD_CORE_FIELDS);
    assert!(u.is_restricted("password"), "an imported user: admins cannot set it");
    let w = change_own_password(&u, "Own-Passw0rd!", &settings()).unwrap();
    assert_eq!(w.password.as_deref(), Some("Own-Passw0rd!"));
    assert!(w.user.has_password && !w.user.password_expired);
    assert!(matches!(change_own_password(&u, "short", &settings()), Err(CoreError::PasswordPolicy(_))));
    u.password_authority = Some(tether_core::user::Authority { id: "d1".into(), name: "ActiveDirectory".into() });
    assert_eq!(change_own_password(&u, "Own-Passw0rd!", &settings()).unwrap_err(), CoreError::PasswordAuthority);
}
