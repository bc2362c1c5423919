//! The agent protocol's messages, on both sides:
//! - the server's JSON body reader (`tether_server::extract::JsonBody`, every agent endpoint's
//!   extractor), fed the input as a request body; its size bound is checked once;
//! - what the server reads from agents' bodies: the import report (`ImportReport` with its
//!   `AdUserObs` and settings, then the import decisions of `tether_core::adi::import` on
//!   each observed user), the heartbeat's `ad` status and the registration's `installedOn`;
//! - what the sync agent reads from a feed entry: the `UserChange` of `body.change` (read
//!   as `tether-agent/src/sync.rs` reads it), then `decide_user` / `decide_disconnect`, and a
//!   group entry's `useCase`.
//!
//! Each is fed the input as JSON, and a realistic message edited by the input.
//!
//! Properties: nothing panics; the body reader accepts exactly what serde_json accepts (or a
//! blank body) and says why it refuses; reports and changes survive a serialization round
//! trip; the decisions keep their rules (a privileged AD user is never imported, a created
//! user is linked to its objectGUID and named by the username mapping, a refused change does
//! nothing else, an absent AD user creates, a password is written only when one was sent).

#![no_main]

use std::sync::Once;

use arbitrary::{Result, Unstructured};
use axum::body::Body;
use axum::extract::FromRequest;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tether_core::ad::{AdStatus, InstalledOn, UseCase};
use tether_core::adi::import::{decide_absent, decide_present, username_of, AdUserObs, ImportContext, UserDecision};
use tether_core::adi::sync::{decide_disconnect, decide_user, AdAction, AdSide, SyncSettings, UserChange};
use tether_core::adi::{GroupMembershipSyncType, MembershipDisconnection, UserDisconnectionAction};
use tether_core::user::{User, UserState};
use tether_core::wire::{self, ImportReport};
use tether_fuzz::{block_on, edit, Vocabulary};
use tether_server::error::Code;
use tether_server::extract::JsonBody;

fn read_body(bytes: Vec<u8>) -> std::result::Result<Value, tether_server::error::ApiError> {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/agent/v1/import")
        .body(Body::from(bytes))
        .expect("a request");
    block_on(JsonBody::from_request(req, &())).map(|JsonBody(v)| v)
}

/// The server reads bodies of up to axum's default limit (2 MiB), and refuses larger ones
/// with a 400 rather than reading them whole.
fn body_limit() {
    const LIMIT: usize = 2 * 1024 * 1024;
    let mut ok = vec![b' '; LIMIT];
    ok[..2].copy_from_slice(b"{}");
    assert_eq!(read_body(ok).expect("a body at the limit"), json!({}));
    let e = read_body(vec![b' '; LIMIT + 1]).expect_err("a body over the limit");
    assert_eq!(e.code, Code::InvalidJson);
    assert!(e.message.contains("cannot read the body"), "{}", e.message);
}

fn body(data: &[u8]) {
    let got = read_body(data.to_vec());
    if data.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(got.expect("a blank body is {}"), json!({}));
        return;
    }
    match (got, serde_json::from_slice::<Value>(data)) {
        (Ok(v), Ok(w)) => assert_eq!(v, w),
        (Err(e), Err(_)) => {
            assert_eq!(e.code, Code::InvalidJson);
            assert!(e.message.starts_with("invalid JSON body: ") && e.message.len() > 19, "{}", e.message);
        }
        (got, want) => panic!("the body reader says {got:?}, serde_json {want:?}"),
    }
}

const USE_CASES: [UseCase; 3] = [UseCase::AdAsAuthority, UseCase::TwoWaySync, UseCase::JcAsAuthority];

fn decide(report: &ImportReport, obs: &AdUserObs, existing: Option<&User>) {
    let s = &report.settings;
    for (use_case, new_user_state) in
        USE_CASES.into_iter().zip([UserState::Activated, UserState::Staged, UserState::Suspended])
    {
        let ctx = ImportContext { domain_id: "5f0c1d2e3a4b5c6d7e8f9a0b".into(), use_case, new_user_state };
        let d = decide_present(s, &ctx, obs, existing);
        if obs.privileged {
            assert!(matches!(d, UserDecision::Skip(_)), "a privileged AD user was not skipped: {d:?}");
        }
        match &d {
            UserDecision::Create(u) => {
                assert!(existing.is_none());
                assert_eq!(u.ad_guid.as_deref(), Some(obs.guid.as_str()));
                assert!(u.externally_managed);
                assert_eq!(Some(&u.username), username_of(obs, s.user_field_mapping).as_ref());
                assert!(!u.username.is_empty());
            }
            UserDecision::Update { user, .. } => {
                assert!(existing.is_some());
                assert_eq!(user.ad_guid.as_deref(), Some(obs.guid.as_str()));
            }
            UserDecision::Unbind(u) => assert!(u.ad_guid.is_none() && !u.externally_managed),
            UserDecision::Skip(reason) => assert!(!reason.trim().is_empty()),
            UserDecision::Delete | UserDecision::Nothing => {}
        }
    }
    if let Some(u) = existing {
        match decide_absent(s, u) {
            UserDecision::Delete => {}
            UserDecision::Unbind(u) => assert!(u.ad_guid.is_none() && !u.externally_managed),
            other => panic!("an absent AD user decided {other:?}"),
        }
    }
}

/// `POST /api/agent/v1/import`, `/heartbeat` and `/register` bodies.
fn to_server(body: &Value) {
    if let Ok(report) = serde_json::from_value::<ImportReport>(body.clone()) {
        let out = serde_json::to_value(&report).expect("serializes");
        let again: ImportReport = serde_json::from_value(out.clone()).expect("its own output parses");
        assert_eq!(serde_json::to_value(&again).expect("serializes"), out);
        let from_body: Option<User> = body.get("existing").and_then(|v| serde_json::from_value(v.clone()).ok());
        for obs in report.users.iter().take(8) {
            decide(&report, obs, None);
            let owned =
                User { ad_guid: Some(obs.guid.clone()), username: obs.sam_account_name.clone(), ..User::default() };
            decide(&report, obs, Some(&owned));
            let unlinked = User { username: obs.sam_account_name.clone(), has_password: true, ..User::default() };
            decide(&report, obs, Some(&unlinked));
            if let Some(u) = &from_body {
                decide(&report, obs, Some(u));
            }
        }
    }
    if let Some(ad) = body.get("ad") {
        if let Ok(s) = serde_json::from_value::<AdStatus>(ad.clone()) {
            let again: AdStatus =
                serde_json::from_value(serde_json::to_value(&s).expect("serializes")).expect("parses");
            assert_eq!(again, s);
        }
    }
    if let Some(v) = body.get("installedOn") {
        let _ = serde_json::from_value::<InstalledOn>(v.clone());
    }
}

/// Every other message of the agent protocol (`tether_core::wire`), both ways: what parses
/// serializes, and its own output parses to the same value.
fn wire_messages(body: &Value) {
    macro_rules! round {
        ($t:ty) => {
            if let Ok(m) = serde_json::from_value::<$t>(body.clone()) {
                let out = serde_json::to_value(&m).expect("serializes");
                let again: $t = serde_json::from_value(out.clone()).expect("its own output parses");
                assert_eq!(serde_json::to_value(&again).expect("serializes"), out);
            }
        };
    }
    round!(wire::Register);
    round!(wire::Heartbeat);
    round!(wire::Poll);
    round!(wire::Ack);
    round!(wire::SyncStatus);
    round!(wire::AuthResult);
    round!(wire::CapturedPassword);
    round!(wire::ImportOutcome);
    round!(wire::FeedEntry);
    round!(Vec<wire::FeedEntry>);
}

fn check_actions(c: &UserChange, ad: Option<&AdSide>, actions: &[AdAction]) {
    if let Some(AdAction::Refuse(r)) = actions.first() {
        assert_eq!(actions.len(), 1, "a refused change does more: {actions:?}");
        assert!(!r.trim().is_empty());
        return;
    }
    match ad {
        None => {
            let Some(AdAction::Create { disabled, random_password }) = actions.first() else {
                panic!("no AD user, yet no create: {actions:?}");
            };
            assert_eq!(*disabled, c.suspended);
            assert_eq!(*random_password, c.password.is_none());
        }
        Some(_) => {
            assert!(!actions.iter().any(|a| matches!(a, AdAction::Create { .. })));
            assert_eq!(actions.contains(&AdAction::SetPassword), c.password.is_some(), "{c:?}: {actions:?}");
        }
    }
}

/// A feed entry as `POST /api/agent/v1/sync/poll` hands it to the sync agent.
fn to_sync_agent(u: &mut Unstructured, entry: &Value) -> Result<()> {
    let body = &entry["body"];
    // As tether-agent/src/sync.rs reads it.
    let mut change: UserChange = serde_json::from_value(body["change"].clone()).unwrap_or_default();
    change.password = entry["password"].as_str().map(str::to_string);
    let again: UserChange = serde_json::from_value(serde_json::to_value(&change).expect("serializes")).expect("parses");
    assert_eq!(again, change);
    let s = SyncSettings {
        user_disconnection_action: *u.choose(&[
            UserDisconnectionAction::Remove,
            UserDisconnectionAction::Disable,
            UserDisconnectionAction::Retain,
        ])?,
        membership_disconnection: *u.choose(&[MembershipDisconnection::Remove, MembershipDisconnection::Retain])?,
        sync_account_locked_out_status: u.arbitrary()?,
    };
    let ad = if u.arbitrary()? {
        Some(AdSide {
            privileged: u.arbitrary()?,
            disabled: u.arbitrary()?,
            locked: u.arbitrary()?,
            given_name: u.arbitrary()?,
            sn: u.arbitrary()?,
            mail: u.arbitrary()?,
        })
    } else {
        None
    };
    let actions = decide_user(&s, &change, ad.as_ref());
    check_actions(&change, ad.as_ref(), &actions);
    if ad.as_ref().is_some_and(|a| a.privileged) {
        assert!(matches!(actions.as_slice(), [AdAction::Refuse(_)]), "{actions:?}");
    }
    let gone = decide_disconnect(&s, ad.as_ref());
    assert!(ad.is_some() || gone.is_empty());
    let use_case: UseCase = serde_json::from_value(body["useCase"].clone()).unwrap_or_default();
    let _ = GroupMembershipSyncType::default_for(use_case);
    Ok(())
}

const REPORT_SECTIONS: &[&str] = &["", "settings", "users.0", "users.1", "groups.0"];
const ENTRY_SECTIONS: &[&str] = &["", "body", "body.change", "ad"];
const KEYS: &[&str] = &[
    // ImportReport, ImportSettings, ObservedGroup
    "settings",
    "complete",
    "users",
    "gone",
    "groups",
    "dryRun",
    "fencing",
    "existing",
    "syncAdditionalAttributes",
    "userDissociationAction",
    "userFieldMapping",
    "userTakeoverAction",
    "userDisableAction",
    "userExpireAction",
    "syncAccountLockedOutStatus",
    "members",
    "name",
    // AdUserObs
    "guid",
    "dn",
    "samAccountName",
    "userPrincipalName",
    "givenName",
    "sn",
    "mail",
    "displayName",
    "description",
    "title",
    "department",
    "company",
    "office",
    "employeeType",
    "phoneNumbers",
    "addresses",
    "managerDn",
    "disabled",
    "locked",
    "lockedAt",
    "passwordExpired",
    "passwordExpiresAt",
    "privileged",
    "sudo",
    "type",
    "number",
    // heartbeat, register
    "ad",
    "reachable",
    "since",
    "error",
    "installedOn",
    "connectKey",
    "token",
    "hostname",
    "version",
    // feed entries, UserChange
    "seq",
    "kind",
    "objectId",
    "body",
    "password",
    "change",
    "userId",
    "useCase",
    "username",
    "firstname",
    "lastname",
    "email",
    "suspended",
    "hasPassword",
    "explicitUnlock",
    "expire",
];
const STRINGS: &[&str] = &[
    "",
    " ",
    "0123456789abcdef0123456789abcdef",
    "CN=Ann Lee,CN=Users,DC=corp,DC=example,DC=com",
    "alee",
    "alee@corp",
    "alee@corp.example.com",
    "@corp",
    "Ann",
    "Lee",
    "remove",
    "unbind",
    "suspend",
    "retain",
    "deactivate",
    "expire",
    "maintain",
    "sAMAccountName",
    "userPrincipalName",
    "dc",
    "member_server",
    "user",
    "user_disconnected",
    "group",
    "ADASAUTHORITY",
    "TWOWAYSYNC",
    "JCASAUTHORITY",
    "2026-01-01T00:00:00Z",
    "averyveryverylongusername",
];

fn report() -> Value {
    json!({
        "settings": {"syncAdditionalAttributes": true, "userDissociationAction": "remove",
                     "userFieldMapping": "sAMAccountName", "userTakeoverAction": "deactivate",
                     "userDisableAction": "suspend", "userExpireAction": "expire", "syncAccountLockedOutStatus": false},
        "complete": true,
        "users": [{"guid": "0123456789abcdef0123456789abcdef", "dn": "CN=Ann Lee,CN=Users,DC=corp,DC=example,DC=com",
                   "samAccountName": "alee", "userPrincipalName": "alee@corp.example.com", "givenName": "Ann",
                   "sn": "Lee", "mail": "alee@corp.example.com", "phoneNumbers": [{"type": "work", "number": "1"}],
                   "disabled": false, "locked": false, "privileged": false, "sudo": false}],
        "gone": [],
        "groups": [{"guid": "fedcba9876543210fedcba9876543210", "dn": "CN=Eng,CN=Users,DC=corp,DC=example,DC=com",
                    "name": "Eng", "members": ["0123456789abcdef0123456789abcdef"]}],
        "dryRun": false
    })
}

fn entry() -> Value {
    json!({
        "seq": 7, "kind": "user", "objectId": "5f0c1d2e3a4b5c6d7e8f9a0b", "password": null,
        "body": {"userId": "5f0c1d2e3a4b5c6d7e8f9a0b", "guid": null,
                 "change": {"username": "alee", "firstname": "Ann", "lastname": "Lee", "email": "alee@corp",
                            "suspended": false, "hasPassword": true, "explicitUnlock": false, "expire": false}},
        "ad": {"reachable": false, "since": "2026-01-01T00:00:00Z", "error": "connection refused"}
    })
}

static LIMIT: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    LIMIT.call_once(body_limit);
    body(data);
    let mut u = Unstructured::new(data);
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        to_server(&v);
        wire_messages(&v);
        let _ = to_sync_agent(&mut u, &v);
    }
    let voc = Vocabulary { keys: KEYS, strings: STRINGS };
    let mut r = report();
    if edit(&mut u, &mut r, REPORT_SECTIONS, &voc, 4).is_ok() {
        to_server(&r);
    }
    let mut e = entry();
    if edit(&mut u, &mut e, ENTRY_SECTIONS, &voc, 4).is_ok() {
        to_server(&e);
        wire_messages(&e);
        let _ = to_sync_agent(&mut u, &e);
    }
});
