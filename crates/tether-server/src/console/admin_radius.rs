//! The console's RADIUS page: every RADIUS server (the network device it answers, whether it
//! asks for a second factor, its policies) with the groups and users that may get in through
//! it. Changes go through the API and `tether radius`.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use tether_core::group::Group;
use tether_core::query::ListQuery;
use tether_store::{Collection, Edge};

use super::page::{page, Chrome, Flash};
use super::session::ConsoleAdmin;
use crate::ops::domains::Target;
use crate::state::AppState;

struct Named {
    id: String,
    name: String,
}

struct ServerView {
    id: String,
    name: String,
    source: String,
    mfa: String,
    lockout: String,
    expiration: String,
    groups: Vec<(Named, usize)>,
    users: Vec<Named>,
}

#[derive(Template)]
#[template(path = "radius.html")]
struct RadiusPage {
    chrome: Chrome,
    servers: Vec<ServerView>,
}

fn label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

pub async fn servers(admin: ConsoleAdmin, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let mut chrome = Chrome::new("RADIUS", &admin.session.csrf, "radius", &flash);
    let all = ListQuery { filter: None, sort: None, limit: 1000, skip: 0 };
    let servers = match crate::ops::radius::list(&s, &all).await {
        Ok((_, servers)) => servers,
        Err(_) => {
            chrome.err = Some("the directory cannot answer now".into());
            Vec::new()
        }
    };
    let mut views = Vec::new();
    for r in servers {
        let mut groups = Vec::new();
        for gid in crate::ops::radius::associated(&s, &r.id, Target::UserGroup).await.unwrap_or_default() {
            if let Ok(Some(g)) = s.repo.get::<Group>(Collection::Groups, &gid).await {
                let members = s.repo.store().targets(Edge::Member, &gid).await.map(|m| m.len()).unwrap_or_default();
                groups.push((Named { id: g.id, name: g.name }, members));
            }
        }
        let ids = crate::ops::radius::associated(&s, &r.id, Target::User).await.unwrap_or_default();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut users: Vec<Named> = s
            .repo
            .users_by_ids(&ids)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|u| Named { id: u.id, name: u.username })
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        groups.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        views.push(ServerView {
            mfa: label(&r.mfa),
            lockout: label(&r.user_lockout_action),
            expiration: label(&r.user_password_expiration_action),
            id: r.id,
            name: r.name,
            source: r.network_source_ip,
            groups,
            users,
        });
    }
    views.sort_by(|a, b| a.name.cmp(&b.name));
    page(RadiusPage { chrome, servers: views })
}
