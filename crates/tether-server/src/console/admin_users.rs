//! Console pages for logging in, users and user groups: the users list with its AD
//! Integration badge, password status and bulk actions (including "Set External Password
//! Authority" and converting AD-managed users), a user's details with the fields AD owns
//! shown read-only, the Directories tab, and the history of users and groups.

use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};
use tether_core::ad::AdDomain;
use tether_core::group::Group;
use tether_core::query::{Filter, ListQuery, Op, Scalar};
use tether_core::user::{PasswordStatus, User};
use tether_store::{Collection, Edge, Secret};

use super::page::{back, csrf, page, reason, Chrome, Fields, Flash, LoginQuery, Notice};
use super::session::{cookie, ConsoleAdmin, Who, ADMIN_COOKIE};
use crate::crypto::sha256_hex;
use crate::keys::{ApiKey, Role};
use crate::ops::users::apply_update;
use crate::state::AppState;

/// One user as the lists show it.
pub struct Row {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub state: String,
    pub password_status: &'static str,
    /// Bound to or imported from AD: the AD Integration badge.
    pub ad: bool,
    pub managed: bool,
    pub locked: bool,
    /// Enrolled a TOTP second factor.
    pub mfa: bool,
}

pub fn password_status(u: &User) -> &'static str {
    match u.password_status {
        PasswordStatus::Active => "Active",
        PasswordStatus::Pending => "Password Pending",
        PasswordStatus::Expired => "Expired",
        PasswordStatus::Delegated if u.password_authority.is_some() => "Managed by AD",
        PasswordStatus::Delegated => "Delegated",
    }
}

impl Row {
    pub fn of(u: &User) -> Row {
        Row {
            id: u.id.clone(),
            username: u.username.clone(),
            name: format!("{} {}", u.firstname, u.lastname).trim().to_string(),
            email: u.email.clone(),
            state: format!("{:?}", u.state).to_uppercase(),
            password_status: password_status(u),
            ad: u.ad_guid.is_some() || u.external_source_type.as_deref() == Some("active_directory"),
            managed: u.externally_managed,
            locked: u.account_locked,
            mfa: u.totp_enabled,
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    err: Option<String>,
}

pub async fn login_page(Query(f): Query<LoginQuery>) -> Response {
    page(LoginPage { err: f.err() })
}

/// Logging in takes an administrator API key (as the CLI does); read-only keys are refused.
/// Attempts are counted per source address: a key has no username to count against.
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    f: Fields,
) -> Response {
    let source = crate::throttle::source_of(s.config.behind_proxy, Some(peer.ip()));
    if let Some(src) = &source {
        match s.throttle.sources.attempt(src, s.now()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Notice::Throttled.refusal("/console/login"),
            Err(_) => return Notice::Unavailable.refusal("/console/login"),
        }
    }
    let key = f.get("apikey").unwrap_or_default().trim().to_string();
    let owner = match s.repo.store().secret_owner(Secret::ApiKey, &sha256_hex(&key)).await {
        Ok(o) if !key.is_empty() => o,
        _ => None,
    };
    let rec = match owner {
        Some(id) => s.repo.get::<ApiKey>(Collection::ApiKeys, &id).await.ok().flatten(),
        None => None,
    };
    match rec {
        Some(k) if k.role == Role::Admin => {
            if let Some(src) = &source {
                if s.throttle.sources.succeeded(src).await.is_err() {
                    return Notice::Unavailable.refusal("/console/login");
                }
            }
            let Ok(token) = s.sessions.open(Who::Admin(k.id), s.now()).await else {
                return Notice::Unavailable.refusal("/console/login");
            };
            let mut r = Redirect::to("/console/users").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, cookie(&s, ADMIN_COOKIE, &token, "/console").parse().expect("ascii"));
            r
        }
        Some(_) => Notice::ReadOnlyKey.refusal("/console/login"),
        None => {
            if let Some(src) = &source {
                if s.throttle.sources.failed(src, s.now()).await.is_err() {
                    return Notice::Unavailable.refusal("/console/login");
                }
            }
            Notice::UnknownKey.refusal("/console/login")
        }
    }
}

/// A logout is a form like any other (CSRF checked): a page elsewhere cannot end the session.
pub async fn logout(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    headers: axum::http::HeaderMap,
    f: Fields,
) -> Response {
    super::session::logout(&s, &admin.session, &headers, &f, ADMIN_COOKIE, "/console").await
}

#[derive(serde::Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    q: String,
    /// `ad`, `tether` or empty.
    #[serde(default)]
    source: String,
    #[serde(default)]
    state: String,
    msg: Option<String>,
    err: Option<String>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    q: String,
    source: String,
    state: String,
    total: u64,
    rows: Vec<Row>,
    domains: Vec<AdDomain>,
}

async fn domains(s: &AppState) -> Vec<AdDomain> {
    let q = ListQuery { limit: 1000, ..Default::default() };
    s.repo.list::<AdDomain>(Collection::Domains, &q).await.map(|(_, d)| d).unwrap_or_default()
}

pub async fn list(admin: ConsoleAdmin, State(s): State<AppState>, Query(p): Query<UsersQuery>) -> Response {
    let mut all = Vec::new();
    if !p.q.trim().is_empty() {
        let text = |field| Filter::Cmp { field, op: Op::Search, value: Scalar::Text(p.q.trim().to_string()) };
        all.push(Filter::Or(vec![text("username"), text("email"), text("firstname"), text("lastname")]));
    }
    match p.source.as_str() {
        "ad" => all.push(Filter::Cmp { field: "externally_managed", op: Op::Eq, value: Scalar::Bool(true) }),
        "tether" => all.push(Filter::Cmp { field: "externally_managed", op: Op::Eq, value: Scalar::Bool(false) }),
        _ => {}
    }
    if matches!(p.state.as_str(), "STAGED" | "ACTIVATED" | "SUSPENDED") {
        all.push(Filter::Cmp { field: "state", op: Op::Eq, value: Scalar::Text(p.state.clone()) });
    }
    let q = ListQuery {
        filter: (!all.is_empty()).then_some(Filter::And(all)),
        sort: Some(("username", false)),
        limit: 200,
        skip: 0,
    };
    let flash = Flash { msg: p.msg.clone(), err: p.err.clone() };
    let (total, users) = match s.repo.list_users(&q).await {
        Ok(r) => r,
        Err(e) => return back("/console/ad", Err(e.to_string())),
    };
    page(UsersPage {
        chrome: Chrome::new("Users", &admin.session.csrf, "users", &flash),
        q: p.q,
        source: p.source,
        state: p.state,
        total,
        rows: users.iter().map(Row::of).collect(),
        domains: domains(&s).await,
    })
}

/// The body of one bulk action for one user.
fn bulk_body(action: &str, domain: Option<&str>) -> Result<Value, String> {
    let authority = |id: &str| json!({"id": id, "name": "ActiveDirectory"});
    Ok(match action {
        "authority_ad" => match domain.filter(|d| !d.is_empty()) {
            Some(d) => json!({"passwordAuthority": authority(d), "delegatedAuthority": authority(d)}),
            None => return Err("choose the Active Directory domain that becomes the password authority".into()),
        },
        "authority_none" => json!({"passwordAuthority": null, "delegatedAuthority": null}),
        "convert" => json!({"externally_managed": false}),
        "suspend" => json!({"state": "SUSPENDED"}),
        "activate" => json!({"state": "ACTIVATED"}),
        other => return Err(format!("unknown action `{other}`")),
    })
}

/// Applies one action to the selected users; each user succeeds or fails on its own.
pub async fn bulk(admin: ConsoleAdmin, State(s): State<AppState>, f: Fields) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let ids = f.all("ids");
    if ids.is_empty() {
        return back("/console/users", Err("select at least one user".into()));
    }
    let action = f.get("action").unwrap_or_default();
    let body = match bulk_body(action, f.get("domain")) {
        Ok(b) => b,
        Err(e) => return back("/console/users", Err(e)),
    };
    let actor = crate::history::admin(&admin.key);
    let (mut done, mut failed) = (0, Vec::new());
    for id in &ids {
        match apply_update(&s, id, &body, &actor).await {
            Ok(_) => done += 1,
            Err(e) => failed.push(format!("{id}: {}", e.message)),
        }
    }
    if failed.is_empty() {
        back("/console/users", Ok(format!("{done} user(s) updated")))
    } else {
        back("/console/users", Err(format!("{done} updated; {} failed: {}", failed.len(), failed.join("; "))))
    }
}

/// A field of the details form: its value and, when AD owns it, why it is read-only.
pub struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub restricted: bool,
}

pub struct Entry {
    pub at: String,
    pub action: String,
    pub by: String,
    pub what: String,
    pub reason: String,
}

/// History entries as lines for people.
pub fn entries(items: Vec<Value>) -> Vec<Entry> {
    items
        .into_iter()
        .map(|e| {
            let by = serde_json::from_value::<tether_core::actor::Actor>(e["actor"].clone())
                .map(|a| a.to_string())
                .unwrap_or_default();
            let what = e["changes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| match v {
                            Value::Array(p) if p.len() == 2 => format!("{k}: {} → {}", p[0], p[1]),
                            other => format!("{k}: {other}"),
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            Entry {
                at: e["at"].as_str().unwrap_or_default().to_string(),
                action: e["action"].as_str().unwrap_or_default().to_string(),
                by,
                what,
                reason: e["reason"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

pub async fn history_of(s: &AppState, id: &str) -> Vec<Entry> {
    let q = ListQuery {
        filter: Some(Filter::Cmp { field: "objectId", op: Op::Eq, value: Scalar::Text(id.to_string()) }),
        sort: Some(("at", false)),
        limit: 500,
        skip: 0,
    };
    entries(s.repo.list::<Value>(Collection::History, &q).await.map(|(_, v)| v).unwrap_or_default())
}

pub struct DirectoryView {
    pub id: String,
    pub domain: String,
    pub bound: bool,
    /// Bound through a group (cannot be unbound here).
    pub via_group: bool,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    user: Row,
    fields: Vec<FieldView>,
    authority: String,
    ad_error: String,
    directories: Vec<DirectoryView>,
    ldap: LdapView,
    history: Vec<Entry>,
}

/// A user as Linux hosts and applications see it over LDAP.
struct LdapView {
    /// `directly`, `through GROUPS`, or empty when the user is not in LDAP.
    how: String,
    bind_dn: String,
    uid_number: String,
    gid_number: String,
    binding_user: bool,
}

async fn ldap_view(s: &AppState, user: &User) -> LdapView {
    let (direct, groups) = crate::ops::ldap::standing(s, &user.id).await.unwrap_or_default();
    let how = match (direct, groups.is_empty()) {
        (true, true) => "directly".to_string(),
        (true, false) => format!("directly, and through {}", groups.join(", ")),
        (false, false) => format!("through {}", groups.join(", ")),
        (false, true) => String::new(),
    };
    let number = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    LdapView {
        how,
        bind_dn: crate::ldap::Tree::new(&s.config.ldap_base_dn).user_dn(&user.username),
        uid_number: number(user.unix_uid),
        gid_number: number(user.unix_guid),
        binding_user: user.ldap_binding_user,
    }
}

const EDITABLE: [(&str, &str); 6] = [
    ("firstname", "First name"),
    ("lastname", "Last name"),
    ("email", "Email"),
    ("jobTitle", "Job title"),
    ("department", "Department"),
    ("company", "Company"),
];

pub async fn detail(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let user = match s.repo.user(&id).await {
        Ok(Some(u)) => u,
        _ => return back("/console/users", Err(format!("no user `{id}`"))),
    };
    let v = serde_json::to_value(&user).expect("serializes");
    let fields = EDITABLE
        .iter()
        .map(|(name, label)| FieldView {
            name,
            label,
            value: v[*name].as_str().unwrap_or_default().to_string(),
            restricted: user.is_restricted(name),
        })
        .collect();
    let store = s.repo.store();
    let direct: Vec<String> = store.sources(Edge::DomainUser, &id).await.unwrap_or_default();
    let via = crate::adi::feed::bound_domains(&s, &id).await.unwrap_or_default();
    let directories = domains(&s)
        .await
        .into_iter()
        .map(|d| DirectoryView {
            bound: direct.contains(&d.id) || via.contains(&d.id),
            via_group: !direct.contains(&d.id) && via.contains(&d.id),
            id: d.id,
            domain: d.domain,
        })
        .collect();
    let authority = match &user.password_authority {
        Some(a) => format!("Active Directory ({})", a.id),
        None => "None (Tether)".into(),
    };
    page(UserPage {
        chrome: Chrome::new(user.username.clone(), &admin.session.csrf, "users", &flash),
        user: Row::of(&user),
        fields,
        authority,
        ad_error: user.ad_sync_error.clone().unwrap_or_default(),
        directories,
        ldap: ldap_view(&s, &user).await,
        history: history_of(&s, &id).await,
    })
}

/// Saves the details form (only the fields that changed are sent, so a restricted field
/// shown read-only never trips the restriction).
pub async fn edit(admin: ConsoleAdmin, State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let here = format!("/console/users/{id}");
    let Ok(Some(user)) = s.repo.user(&id).await else { return back("/console/users", Err(format!("no user `{id}`"))) };
    let v = serde_json::to_value(&user).expect("serializes");
    let mut body = serde_json::Map::new();
    for (name, _) in EDITABLE {
        if let Some(new) = f.get(name) {
            if v[name].as_str().unwrap_or_default() != new {
                body.insert(name.to_string(), json!(new));
            }
        }
    }
    if body.is_empty() {
        return back(&here, Ok("nothing changed".into()));
    }
    back(
        &here,
        apply_update(&s, &id, &Value::Object(body), &crate::history::admin(&admin.key))
            .await
            .map(|_| "saved".into())
            .map_err(reason),
    )
}

/// The buttons of a user's page: unlock, reset MFA, suspend, activate, convert, password authority.
pub async fn action(admin: ConsoleAdmin, State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let here = format!("/console/users/{id}");
    let verb = f.get("verb").unwrap_or_default();
    let r = if verb == "unlock" {
        crate::ops::users::unlock(&s, &id, crate::history::admin(&admin.key)).await.map(|_| ())
    } else if verb == "resetmfa" {
        crate::ops::mfa::reset(&s, &id, crate::history::admin(&admin.key)).await.map(|_| ())
    } else {
        let body = match bulk_body(verb, f.get("domain")) {
            Ok(b) => b,
            Err(e) => return back(&here, Err(e)),
        };
        apply_update(&s, &id, &body, &crate::history::admin(&admin.key)).await.map(|_| ())
    };
    back(&here, r.map(|_| "done".into()).map_err(reason))
}

/// The Directories tab: binds the user to (or unbinds it from) AD domains.
pub async fn directories(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Fields,
) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let here = format!("/console/users/{id}");
    let (Some(domain), Some(op)) = (f.get("domain"), f.get("op")) else {
        return back(&here, Err("choose a domain".into()));
    };
    back(
        &here,
        crate::ops::domains::set_association(&s, domain, crate::ops::domains::Target::User, &id, op == "add")
            .await
            .map(|_| if op == "add" { "bound to the domain" } else { "unbound from the domain" }.into())
            .map_err(reason),
    )
}

pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub ad: bool,
    pub members: usize,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    chrome: Chrome,
    rows: Vec<GroupRow>,
}

pub async fn groups(admin: ConsoleAdmin, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let q = ListQuery { sort: Some(("name", false)), limit: 1000, ..Default::default() };
    let groups = s.repo.list::<Group>(Collection::Groups, &q).await.map(|(_, g)| g).unwrap_or_default();
    let mut rows = Vec::new();
    for g in groups {
        let members = s.repo.store().targets(Edge::Member, &g.id).await.map(|m| m.len()).unwrap_or(0);
        let ad = !s.repo.store().sources(Edge::DomainGroup, &g.id).await.unwrap_or_default().is_empty()
            || g.attributes.get("activeDirectory").is_some_and(|a| !a.is_null());
        rows.push(GroupRow { id: g.id, name: g.name, description: g.description, ad, members });
    }
    page(GroupsPage { chrome: Chrome::new("User Groups", &admin.session.csrf, "groups", &flash), rows })
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    group: GroupRow,
    ad_dn: String,
    domains: Vec<String>,
    members: Vec<Row>,
    history: Vec<Entry>,
}

pub async fn group(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let Ok(Some(g)) = s.repo.get::<Group>(Collection::Groups, &id).await else {
        return back("/console/groups", Err(format!("no group `{id}`")));
    };
    let store = s.repo.store();
    let mut members = Vec::new();
    for uid in store.targets(Edge::Member, &id).await.unwrap_or_default() {
        if let Ok(Some(u)) = s.repo.user(&uid).await {
            members.push(Row::of(&u));
        }
    }
    members.sort_by(|a, b| a.username.cmp(&b.username));
    let mut names = Vec::new();
    for d in store.sources(Edge::DomainGroup, &id).await.unwrap_or_default() {
        if let Ok(Some(dom)) = s.repo.get::<AdDomain>(Collection::Domains, &d).await {
            names.push(dom.domain);
        }
    }
    let ad_dn = g.attributes["activeDirectory"]["dn"].as_str().unwrap_or_default().to_string();
    let row = GroupRow {
        id: g.id.clone(),
        name: g.name.clone(),
        description: g.description.clone(),
        ad: !ad_dn.is_empty() || !names.is_empty(),
        members: members.len(),
    };
    page(GroupPage {
        chrome: Chrome::new(g.name.clone(), &admin.session.csrf, "groups", &flash),
        group: row,
        ad_dn,
        domains: names,
        members,
        history: history_of(&s, &id).await,
    })
}
