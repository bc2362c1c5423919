//! The console's LDAP page: the one LDAP server, its policies, and who is in LDAP (the users
//! and groups associated with it), so an admin sees at a glance what Linux hosts and
//! applications can read and who can bind. Changes go through the API and `tether ldap`.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use tether_core::group::Group;
use tether_store::{Collection, Edge};

use super::admin_users::Row;
use super::page::{page, Chrome, Flash};
use super::session::ConsoleAdmin;
use crate::ops::domains::Target;
use crate::state::AppState;

struct GroupLine {
    id: String,
    name: String,
    members: usize,
}

#[derive(Template)]
#[template(path = "ldap.html")]
struct LdapPage {
    chrome: Chrome,
    id: String,
    base_dn: String,
    user_lockout_action: String,
    user_password_expiration_action: String,
    users: Vec<Row>,
    groups: Vec<GroupLine>,
}

pub async fn server(admin: ConsoleAdmin, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let chrome = |title: &str| Chrome::new(title, &admin.session.csrf, "ldap", &flash);
    let Ok(server) = crate::ops::ldap::server(&s).await else {
        let mut c = chrome("LDAP");
        c.err = Some("the directory cannot answer now".into());
        return page(LdapPage {
            chrome: c,
            id: String::new(),
            base_dn: s.config.ldap_base_dn.clone(),
            user_lockout_action: String::new(),
            user_password_expiration_action: String::new(),
            users: Vec::new(),
            groups: Vec::new(),
        });
    };
    let ids = crate::ops::ldap::associated(&s, &server.id, Target::User).await.unwrap_or_default();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut users: Vec<Row> = s.repo.users_by_ids(&ids).await.unwrap_or_default().iter().map(Row::of).collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let mut groups = Vec::new();
    for gid in crate::ops::ldap::associated(&s, &server.id, Target::UserGroup).await.unwrap_or_default() {
        if let Ok(Some(g)) = s.repo.get::<Group>(Collection::Groups, &gid).await {
            let members = s.repo.store().targets(Edge::Member, &gid).await.map(|m| m.len()).unwrap_or_default();
            groups.push(GroupLine { id: g.id, name: g.name, members });
        }
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let action =
        |a: &tether_core::ldap::UserAction| serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string));
    page(LdapPage {
        chrome: chrome(&server.name),
        id: server.id.clone(),
        base_dn: s.config.ldap_base_dn.clone(),
        user_lockout_action: action(&server.user_lockout_action).unwrap_or_default(),
        user_password_expiration_action: action(&server.user_password_expiration_action).unwrap_or_default(),
        users,
        groups,
    })
}
