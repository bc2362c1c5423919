//! Writes to a user through the API: create and partial update (PUT/PATCH).
//!
//! Both work on the JSON body as the client sent it, because the rules are about which keys
//! were sent: a field left out is unchanged, read-only fields are ignored (scripts commonly
//! GET, edit and PUT back the whole object), a restricted field is refused only when the
//! value would change, and the lifecycle words go through the state machine.

use serde_json::{Map, Value};

use crate::policy::OrgSettings;
use crate::user::{next_state, Authority, StateWrite, User, UserState, AD_CORE_FIELDS, READ_ONLY_FIELDS};
use crate::CoreError;

/// The outcome of a write: the new user and, when one was sent, the new plaintext password
/// (already checked against the policy) for the caller to hash and store.
#[derive(Debug)]
pub struct UserWrite {
    pub user: User,
    pub password: Option<String>,
}

/// Keys handled by the state machine or the password path rather than by merging.
const SPECIAL: [&str; 7] =
    ["password", "state", "suspended", "activated", "externally_managed", "passwordAuthority", "delegatedAuthority"];

/// Characters that `sAMAccountName` forbids; Tether forbids them too so every user can
/// be written to AD later.
const USERNAME_FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>@";

fn body_object(body: &Value) -> Result<&Map<String, Value>, CoreError> {
    body.as_object().ok_or_else(|| CoreError::invalid("body", "expected a JSON object"))
}

fn state_write(body: &Map<String, Value>) -> Result<StateWrite, CoreError> {
    let state = match body.get("state") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            UserState::parse(s).ok_or_else(|| CoreError::invalid("state", "must be STAGED, ACTIVATED or SUSPENDED"))?,
        ),
        Some(_) => return Err(CoreError::invalid("state", "must be a string")),
    };
    let flag = |k: &str| match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(CoreError::invalid(k, "must be true or false")),
    };
    Ok(StateWrite { state, suspended: flag("suspended")?, activated: flag("activated")? })
}

/// `passwordAuthority` / `delegatedAuthority` as sent: absent (`None`), cleared
/// (`Some(None)`), or an AD domain (`Some(Some(_))`; the caller checks the domain exists).
fn authority_of(body: &Map<String, Value>, key: &str) -> Result<Option<Option<Authority>>, CoreError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => {
            let a: Authority = serde_json::from_value(v.clone()).map_err(|_| {
                CoreError::invalid(key, "must be null or {\"id\": <AD domain id>, \"name\": \"ActiveDirectory\"}")
            })?;
            if a.name != "ActiveDirectory" || a.id.is_empty() {
                return Err(CoreError::invalid(key, "the only authority is an Active Directory domain: {\"id\": <AD domain id>, \"name\": \"ActiveDirectory\"}"));
            }
            Ok(Some(Some(a)))
        }
    }
}

fn password_of(body: &Map<String, Value>) -> Result<Option<String>, CoreError> {
    match body.get("password") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CoreError::invalid("password", "must be a string")),
    }
}

/// Merges the plain (non-special, writable) keys of `body` into `user`, validating each
/// key on its own so a type error names its field.
fn merge(user: &User, body: &Map<String, Value>) -> Result<User, CoreError> {
    let mut doc = serde_json::to_value(user).expect("a user serializes");
    let obj = doc.as_object_mut().expect("a user is an object");
    for (k, v) in body {
        if READ_ONLY_FIELDS.contains(&k.as_str()) || SPECIAL.contains(&k.as_str()) {
            continue;
        }
        let Some(cur) = obj.get(k) else { continue }; // unknown keys are ignored
                                                      // `null` clears: an empty string for text fields, an empty list for lists.
        let v = match (v, cur) {
            (Value::Null, Value::String(_)) => Value::String(String::new()),
            (Value::Null, Value::Array(_)) => Value::Array(vec![]),
            (Value::Null, Value::Bool(_)) => Value::Bool(false),
            _ => v.clone(),
        };
        let mut one = Map::new();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<User>(Value::Object(one)) {
            return Err(CoreError::invalid(k, e.to_string()));
        }
        obj.insert(k.clone(), v);
    }
    let mut out: User = serde_json::from_value(doc).map_err(|e| CoreError::invalid("body", e.to_string()))?;
    // What the API does not carry: the stored-only fields, and the revision read.
    out.has_password = user.has_password;
    out.ad_guid = user.ad_guid.clone();
    out.ad_links = user.ad_links.clone();
    out.revision = user.revision.clone();
    Ok(out)
}

fn validate(user: &User) -> Result<(), CoreError> {
    let u = &user.username;
    if u.is_empty() {
        return Err(CoreError::invalid("username", "is required"));
    }
    if u.chars().count() > 256 {
        return Err(CoreError::invalid("username", "at most 256 characters"));
    }
    if let Some(c) = u.chars().find(|c| c.is_whitespace() || c.is_control() || USERNAME_FORBIDDEN.contains(*c)) {
        return Err(CoreError::invalid("username", format!("must not contain {c:?}")));
    }
    let e = &user.email;
    if e.is_empty() {
        return Err(CoreError::invalid("email", "is required"));
    }
    let valid_email = match e.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !valid_email || e.len() > 512 {
        return Err(CoreError::invalid("email", "must be an address like name@example.com"));
    }
    if let Some(m) = &user.manager {
        if !m.is_empty() && !crate::is_object_id(m) {
            return Err(CoreError::invalid("manager", "must be the id of a user"));
        }
        if *m == user.id {
            return Err(CoreError::invalid("manager", "a user cannot be its own manager"));
        }
    }
    Ok(())
}

/// Creates a user from a POST body.
pub fn create_user(body: &Value, settings: &OrgSettings, id: &str, now: &str) -> Result<UserWrite, CoreError> {
    let body = body_object(body)?;
    for required in ["username", "email"] {
        match body.get(required) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(CoreError::invalid(required, "is required")),
        }
    }
    let base = User { id: id.to_string(), created: now.to_string(), ..User::default() };
    let mut user = merge(&base, body)?;
    let (state, suspended, activated) = next_state(settings.new_user_state, false, state_write(body)?)?;
    (user.state, user.suspended, user.activated) = (state, suspended, activated);
    if body.get("externally_managed") == Some(&Value::Bool(true)) {
        user.restrict("", &AD_CORE_FIELDS);
    }
    let password = password_of(body)?;
    if let Some(p) = &password {
        settings.password_policy.check(p)?;
        user.has_password = true;
    }
    validate(&user)?;
    user.refresh_derived();
    Ok(UserWrite { user, password })
}

/// A user changing their own password (the user portal). The password is restricted for
/// administrators while AD imports the user, but the user may change it unless AD is the
/// password authority: in a two-way domain the new password is then written to AD (the
/// seeds: "will sync from that point forward").
pub fn change_own_password(current: &User, password: &str, settings: &OrgSettings) -> Result<UserWrite, CoreError> {
    if current.password_authority.is_some() {
        return Err(CoreError::PasswordAuthority);
    }
    settings.password_policy.check(password)?;
    let mut user = current.clone();
    user.has_password = true;
    user.password_expired = false;
    user.refresh_derived();
    Ok(UserWrite { user, password: Some(password.to_string()) })
}

/// Applies a PUT/PATCH body to `current`. `same_password` tells whether a sent password
/// equals the stored one (a restricted password may be "written" unchanged).
pub fn update_user(
    current: &User,
    body: &Value,
    settings: &OrgSettings,
    same_password: &dyn Fn(&str) -> bool,
) -> Result<UserWrite, CoreError> {
    let body = body_object(body)?;
    let managed_flag = match body.get("externally_managed") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(CoreError::invalid("externally_managed", "must be true or false")),
    };
    let password = password_of(body)?;
    let password_authority = authority_of(body, "passwordAuthority")?;
    let delegated_authority = authority_of(body, "delegatedAuthority")?;

    // Restrictions hold unless this very request converts the user to a directory user.
    if current.externally_managed && managed_flag != Some(false) {
        let cur = serde_json::to_value(current).expect("a user serializes");
        for (k, v) in body {
            if !current.is_restricted(k) || READ_ONLY_FIELDS.contains(&k.as_str()) {
                continue;
            }
            let changes = if k == "password" {
                password.as_deref().is_some_and(|p| !same_password(p))
            } else {
                cur.get(k).is_some_and(|c| c != v)
            };
            if changes {
                return Err(CoreError::RestrictedField { field: k.clone() });
            }
        }
    }
    // The authority in force for this write: the one sent with it, else the current one.
    let authority = password_authority.clone().unwrap_or_else(|| current.password_authority.clone());
    let password = match password {
        Some(p) if authority.is_some() => {
            if same_password(&p) {
                None
            } else {
                return Err(CoreError::PasswordAuthority);
            }
        }
        Some(p) if same_password(&p) && current.has_password => None,
        other => other,
    };

    let mut user = merge(current, body)?;
    let (state, suspended, activated) = next_state(current.state, current.activated, state_write(body)?)?;
    (user.state, user.suspended, user.activated) = (state, suspended, activated);
    if let Some(a) = password_authority {
        user.password_authority = a;
    }
    if let Some(a) = delegated_authority {
        user.delegated_authority = a;
    }
    match managed_flag {
        Some(false) => user.release_from_ad(),
        Some(true) if !current.externally_managed => {
            let domain = current.restricted_fields.first().map(|r| r.id.clone()).unwrap_or_default();
            user.restrict(&domain, &AD_CORE_FIELDS);
        }
        _ => {}
    }
    if let Some(p) = &password {
        settings.password_policy.check(p)?;
        user.has_password = true;
        user.password_expired = false;
    }
    validate(&user)?;
    user.refresh_derived();
    Ok(UserWrite { user, password })
}
