//! What an LDAP client sends to the LDAP front end (`tether_server::ldap`), reached the way a
//! connection reaches it: the bytes through the codec the server frames its sockets with
//! (bounded size and depth), then every decoded request through the front end's own
//! handling that needs no directory: the DN of a bind or a search base named in the tree,
//! the search filter matched against a user entry and its `(uid=x)`/`(uidNumber=n)` shortcut, the attributes
//! asked for picked from that entry, the paged results control's cookie, and a Password
//! Modify request's value.
//!
//! Properties: nothing panics; the shortcut never names a user the filter could not match;
//! an entry matched by `(uid=x)` alone is one of the shortcut's users.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_core::ldap::{Named, Tree};
use tether_core::user::User;
use tether_server::ldap::ldap3_proto::control::LdapControl;
use tether_server::ldap::ldap3_proto::proto::{LdapOp, LdapPasswordModifyRequest};
use tether_server::ldap::ldap3_proto::LdapCodec;
use tether_server::ldap::{entries, filter, BytesMut, Decoder};
use tether_store::UserKey;

fuzz_target!(|data: &[u8]| {
    let tree = Tree::new("o=tether");
    let user = User {
        id: "0123456789abcdef01234567".into(),
        username: "ann".into(),
        firstname: "Ann".into(),
        lastname: "Lee".into(),
        email: "ann@example.test".into(),
        created: "2026-11-26T21:35:01Z".into(),
        unix_uid: Some(5000),
        unix_guid: Some(5000),
        ..User::default()
    };
    let entry = entries::user(&tree, &user, &["ops"]);
    let mut codec = LdapCodec::default();
    let mut buf = BytesMut::from(data);
    // A connection reads until the codec wants more or refuses; so does this.
    for _ in 0..16 {
        let msg = match codec.decode(&mut buf) {
            Ok(Some(m)) => m,
            _ => break,
        };
        for c in &msg.ctrl {
            if let LdapControl::SimplePagedResults { size, cookie } = c {
                let _ = (*size <= 0, cookie.len());
            }
        }
        match &msg.op {
            LdapOp::BindRequest(b) => {
                let _ = tree.name(&b.dn);
            }
            LdapOp::SearchRequest(r) => {
                let _ = tree.name(&r.base);
                let matched = filter::matches(&r.filter, &entry);
                if let Some(users) = filter::only_users(&r.filter) {
                    // The shortcut reads only these users: a match outside them would be lost.
                    let names_ann = |(k, by): &(String, UserKey)| match by {
                        UserKey::Username => k.eq_ignore_ascii_case("ann"),
                        UserKey::UnixUid => k == "5000",
                        UserKey::Id => false,
                    };
                    assert!(!matched || users.iter().any(names_ann), "{:?}", r.filter);
                }
                let _ = entry.to_result(&r.attrs, r.typesonly);
            }
            LdapOp::ExtendedRequest(e) => {
                if let Ok(p) = LdapPasswordModifyRequest::try_from(e) {
                    if let Some(id) = p.user_identity {
                        let _ = matches!(tree.name(&id), Named::User(_));
                    }
                }
            }
            _ => {}
        }
    }
});
