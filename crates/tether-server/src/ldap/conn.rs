//! One LDAP connection: requests in order, answered from the operations layer.
//!
//! Binds and everything after them need TLS (LDAPS, or StartTLS on the plain port): a simple
//! bind in the clear answers `confidentialityRequired` before the password is looked at. The
//! bound user is read again at every search, so a suspension or a removal from LDAP takes
//! effect on open connections at once.

use std::collections::{HashMap, HashSet};

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedRequest, LdapExtendedResponse, LdapMsg, LdapOp,
    LdapPasswordModifyRequest, LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchResultEntry, LdapSearchScope,
    OID_PASSWORD_MODIFY, OID_WHOAMI,
};
use ldap3_proto::LdapCodec;
use tether_core::ldap::{normalize_dn, Named, Tree};
use tether_store::UserKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use super::entries::{self, Entry};
use super::filter;
use crate::state::AppState;

pub const OID_STARTTLS: &str = "1.3.6.1.4.1.1466.20037";
const OID_PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
/// Entries a search answers without paging (like AD's MaxPageSize); paged searches go on.
pub const SIZE_LIMIT: usize = 1000;
/// Paged searches a connection may hold open at once.
const OPEN_PAGED_SEARCHES: usize = 16;

/// Who the connection is bound as.
#[derive(Clone, Debug, Default)]
enum Bound {
    #[default]
    Anonymous,
    User {
        id: String,
        dn: String,
    },
}

/// A connection's state across requests.
pub struct Session {
    pub state: AppState,
    pub tree: Tree,
    pub peer: std::net::SocketAddr,
    pub tls: bool,
    bound: Bound,
    /// Paged searches in progress: cookie → the entries still to send.
    pages: HashMap<Vec<u8>, Vec<LdapSearchResultEntry>>,
}

/// What the connection does after a request.
enum Next {
    Continue,
    /// StartTLS was accepted: the TLS handshake follows on the same socket.
    StartTls,
    Close,
}

/// How a connection ended.
pub enum Ended<S> {
    Closed,
    /// The client asked for StartTLS and was told yes: hand the socket to TLS.
    StartTls(S),
}

impl Session {
    pub fn new(state: AppState, tree: Tree, peer: std::net::SocketAddr, tls: bool) -> Self {
        Session { state, tree, peer, tls, bound: Bound::Anonymous, pages: HashMap::new() }
    }

    /// Serves requests on `io` until the client leaves or asks for StartTLS.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: S) -> Ended<S> {
        let mut framed = Framed::new(io, LdapCodec::default());
        while let Some(msg) = framed.next().await {
            let Ok(msg) = msg else {
                // Not LDAP, or over the size bound: nothing sensible can be answered.
                tracing::debug!(peer = %self.peer, "malformed LDAP message; connection closed");
                return Ended::Closed;
            };
            let started = std::time::Instant::now();
            let op = match &msg.op {
                LdapOp::BindRequest(_) => Some("bind"),
                LdapOp::SearchRequest(_) => Some("search"),
                LdapOp::ExtendedRequest(_) => Some("extended"),
                _ => None,
            };
            let (replies, next) = self.handle(msg).await;
            if let (Some(op), Some(code)) = (op, replies.last().and_then(result_code)) {
                let outcome = format!("{code:?}");
                self.state.metrics.ldap_operation(op, &outcome, started.elapsed().as_secs_f64());
            }
            // The whole answer in one write (one TLS record run, one system call), not one
            // per message.
            for r in replies {
                if framed.feed(r).await.is_err() {
                    return Ended::Closed;
                }
            }
            if framed.flush().await.is_err() {
                return Ended::Closed;
            }
            match next {
                Next::Continue => {}
                Next::Close => return Ended::Closed,
                Next::StartTls => {
                    let parts = framed.into_parts();
                    if !parts.read_buf.is_empty() {
                        // Bytes sent after the StartTLS request, before TLS: a client (or an
                        // attacker) injecting plaintext into the coming session.
                        return Ended::Closed;
                    }
                    return Ended::StartTls(parts.io);
                }
            }
        }
        Ended::Closed
    }

    async fn handle(&mut self, msg: LdapMsg) -> (Vec<LdapMsg>, Next) {
        let id = msg.msgid;
        match msg.op {
            LdapOp::BindRequest(req) => (vec![self.bind(id, req.dn, req.cred).await], Next::Continue),
            LdapOp::UnbindRequest => (Vec::new(), Next::Close),
            LdapOp::SearchRequest(req) => (self.search(id, req, msg.ctrl).await, Next::Continue),
            LdapOp::ExtendedRequest(req) => match req.name.as_str() {
                OID_STARTTLS if self.tls => {
                    (vec![extended(id, LdapResultCode::OperationsError, "TLS is already on", None)], Next::Continue)
                }
                OID_STARTTLS => {
                    (vec![extended(id, LdapResultCode::Success, "", Some(OID_STARTTLS.to_string()))], Next::StartTls)
                }
                OID_WHOAMI => {
                    let authzid = match &self.bound {
                        Bound::Anonymous => String::new(),
                        Bound::User { dn, .. } => format!("dn:{dn}"),
                    };
                    let mut r = extended(id, LdapResultCode::Success, "", None);
                    if let LdapOp::ExtendedResponse(e) = &mut r.op {
                        e.value = Some(authzid.into_bytes());
                    }
                    (vec![r], Next::Continue)
                }
                OID_PASSWORD_MODIFY => (vec![self.password_modify(id, &req).await], Next::Continue),
                other => (
                    vec![extended(
                        id,
                        LdapResultCode::ProtocolError,
                        &format!("unsupported extended operation {other}"),
                        None,
                    )],
                    Next::Continue,
                ),
            },
            LdapOp::AbandonRequest(_) => (Vec::new(), Next::Continue),
            LdapOp::AddRequest(_) => (vec![refuse(id, LdapOp::AddResponse)], Next::Continue),
            LdapOp::ModifyRequest(_) => (vec![refuse(id, LdapOp::ModifyResponse)], Next::Continue),
            LdapOp::DelRequest(_) => (vec![refuse(id, LdapOp::DelResponse)], Next::Continue),
            LdapOp::ModifyDNRequest(_) => (vec![refuse(id, LdapOp::ModifyDNResponse)], Next::Continue),
            LdapOp::CompareRequest(_) => (vec![refuse(id, LdapOp::CompareResult)], Next::Continue),
            // A response or anything else a client never sends.
            _ => (Vec::new(), Next::Close),
        }
    }

    async fn bind(&mut self, id: i32, dn: String, cred: LdapBindCred) -> LdapMsg {
        self.bound = Bound::Anonymous;
        let pw = match cred {
            LdapBindCred::Simple(pw) => pw,
            _ => return bind_result(id, LdapResultCode::AuthMethodNotSupported, "only simple binds are served"),
        };
        if dn.is_empty() && pw.is_empty() {
            return bind_result(id, LdapResultCode::Success, "");
        }
        if !self.tls {
            return bind_result(id, LdapResultCode::ConfidentialityRequired, "binds need TLS: use StartTLS or LDAPS");
        }
        let invalid = || bind_result(id, LdapResultCode::InvalidCredentials, "");
        let Named::User(username) = self.tree.name(&dn) else {
            // Counted like any failed login, and as costly.
            crate::crypto::check_no_password(pw).await;
            return invalid();
        };
        match crate::ops::ldap::bind(&self.state, &username, pw, Some(self.peer.ip())).await {
            Ok(Some(u)) => {
                self.bound = Bound::User { dn: self.tree.user_dn(&u.username), id: u.id };
                bind_result(id, LdapResultCode::Success, "")
            }
            Ok(None) => invalid(),
            Err(e) => {
                tracing::warn!(error = %e.message, "LDAP bind");
                bind_result(id, LdapResultCode::Unavailable, "the directory cannot answer now")
            }
        }
    }

    /// RFC 3062: a bound user changes its own password, under the directory's policy; it
    /// reaches AD like a change in the portal. Without `oldPasswd` the bind stands for it.
    async fn password_modify(&mut self, id: i32, req: &LdapExtendedRequest) -> LdapMsg {
        let answer = |code, message: &str| extended(id, code, message, None);
        let Bound::User { id: user_id, dn } = self.bound.clone() else {
            return answer(LdapResultCode::InsufficentAccessRights, "bind first");
        };
        let Ok(r) = LdapPasswordModifyRequest::try_from(req) else {
            return answer(LdapResultCode::ProtocolError, "malformed password modify request");
        };
        if r.user_identity.as_deref().is_some_and(|u| normalize_dn(u) != normalize_dn(&dn)) {
            return answer(LdapResultCode::InsufficentAccessRights, "users change their own password only");
        }
        let Some(new) = r.new_password.filter(|p| !p.is_empty()) else {
            return answer(LdapResultCode::UnwillingToPerform, "give the new password: none is generated");
        };
        match crate::ops::ldap::change_password(&self.state, &user_id, r.old_password, &new, Some(self.peer.ip())).await
        {
            Ok(Ok(())) => answer(LdapResultCode::Success, ""),
            Ok(Err(why)) => answer(LdapResultCode::ConstraintViolation, &why),
            Err(e) => {
                tracing::warn!(error = %e.message, "LDAP password modify");
                answer(LdapResultCode::Unavailable, "the directory cannot answer now")
            }
        }
    }

    async fn search(&mut self, id: i32, req: LdapSearchRequest, ctrl: Vec<LdapControl>) -> Vec<LdapMsg> {
        let paged = ctrl.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
            _ => None,
        });
        if let Some(oid) = ctrl.iter().find_map(|c| match c {
            LdapControl::Unknown { oid, criticality: true, .. } => Some(oid.clone()),
            _ => None,
        }) {
            return vec![done(id, LdapResultCode::UnavailableCriticalExtension, &format!("control {oid}"), Vec::new())];
        }
        // The root DSE: for anyone.
        if req.base.is_empty() && req.scope == LdapSearchScope::Base {
            let e = self.root_dse();
            let mut out = Vec::new();
            if filter::matches(&req.filter, &e) {
                out.push(entry_msg(id, e.to_result(&req.attrs, req.typesonly)));
            }
            out.push(done(id, LdapResultCode::Success, "", Vec::new()));
            return out;
        }
        // A page of a search already under way.
        if let Some((size, cookie)) = paged.as_ref().filter(|(_, c)| !c.is_empty()) {
            let Some(mut rest) = self.pages.remove(cookie) else {
                return vec![done(id, LdapResultCode::UnwillingToPerform, "unknown paged results cookie", Vec::new())];
            };
            if *size <= 0 {
                // The client abandons the paged search.
                return vec![done(id, LdapResultCode::Success, "", vec![page_control(Vec::new())])];
            }
            return self.page(id, &mut rest, *size as usize);
        }
        let entries = match self.visible(&req).await {
            Ok(Ok(e)) => e,
            Ok(Err(refusal)) => return vec![refusal.answer(id)],
            Err(e) => {
                tracing::warn!(error = %e.message, "LDAP search");
                return vec![done(id, LdapResultCode::Unavailable, "the directory cannot answer now", Vec::new())];
            }
        };
        let mut results: Vec<LdapSearchResultEntry> = entries
            .iter()
            .filter(|e| in_scope(&e.dn, &req.base, &req.scope))
            .filter(|e| filter::matches(&req.filter, e))
            .map(|e| e.to_result(&req.attrs, req.typesonly))
            .collect();
        if let Some((size, _)) = paged {
            let size = if size <= 0 { SIZE_LIMIT } else { size as usize };
            return self.page(id, &mut results, size);
        }
        let limit = if req.sizelimit > 0 { (req.sizelimit as usize).min(SIZE_LIMIT) } else { SIZE_LIMIT };
        let exceeded = results.len() > limit;
        results.truncate(limit);
        let mut out: Vec<LdapMsg> = results.into_iter().map(|e| entry_msg(id, e)).collect();
        out.push(if exceeded {
            done(id, LdapResultCode::SizeLimitExceeded, "more entries match: page the search", Vec::new())
        } else {
            done(id, LdapResultCode::Success, "", Vec::new())
        });
        out
    }

    /// Sends up to `size` of `rest`, keeping the others under a new cookie.
    fn page(&mut self, id: i32, rest: &mut Vec<LdapSearchResultEntry>, size: usize) -> Vec<LdapMsg> {
        let later = if rest.len() > size { rest.split_off(size) } else { Vec::new() };
        let mut out: Vec<LdapMsg> = rest.drain(..).map(|e| entry_msg(id, e)).collect();
        let cookie = if later.is_empty() {
            Vec::new()
        } else {
            if self.pages.len() >= OPEN_PAGED_SEARCHES {
                // The oldest is not known; dropping any one keeps the bound.
                if let Some(k) = self.pages.keys().next().cloned() {
                    self.pages.remove(&k);
                }
            }
            let mut c = vec![0u8; 16];
            getrandom::fill(&mut c).expect("the system's random source");
            self.pages.insert(c.clone(), later);
            c
        };
        out.push(done(id, LdapResultCode::Success, "", vec![page_control(cookie)]));
        out
    }

    fn root_dse(&self) -> Entry {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Entry {
            dn: String::new(),
            attrs: vec![
                ("objectClass", s(&["top"])),
                ("namingContexts", vec![self.tree.base.clone()]),
                ("supportedLDAPVersion", s(&["3"])),
                ("supportedControl", s(&[OID_PAGED_RESULTS])),
                ("supportedExtension", s(&[OID_STARTTLS, OID_WHOAMI, OID_PASSWORD_MODIFY])),
                ("vendorName", s(&["Tether"])),
            ],
            operational: Vec::new(),
        }
    }

    /// The entries this connection may read for `req`, or why none.
    async fn visible(&mut self, req: &LdapSearchRequest) -> crate::error::ApiResult<Result<Vec<Entry>, Refusal>> {
        let Bound::User { id: user_id, .. } = self.bound.clone() else {
            return Ok(Err(Refusal::rights("bind first: anonymous binds read the root DSE only")));
        };
        let s = &self.state;
        let server = crate::ops::ldap::server(s).await?;
        // The bound user as it is now: suspended or taken out of LDAP since the bind, it
        // reads nothing more.
        let gone = |bound: &mut Bound| {
            *bound = Bound::Anonymous;
            Ok(Err(Refusal::rights("bind again")))
        };
        let tree = &self.tree;
        let base = tree.name(&req.base);
        // Only some users can be in the answer (a user's own DN as the base, or a filter
        // pinned to usernames or uid numbers): those are looked up, nobody else is read, in
        // the same query as the bound user.
        let pinned = match &base {
            Named::User(name) => Some(vec![(name.clone(), UserKey::Username)]),
            Named::Group(_) | Named::Outside => None,
            _ => filter::only_users(&req.filter),
        };
        let names = pinned.map(|names| {
            let mut names: Vec<(String, UserKey)> = names.into_iter().map(|(n, by)| (n.to_lowercase(), by)).collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            names.dedup();
            names
        });
        let mut keys = vec![(user_id.as_str(), UserKey::Id)];
        keys.extend(names.iter().flatten().map(|(n, by)| (n.as_str(), *by)));
        let mut found = crate::ops::ldap::users_in_ldap(s, &server.id, &keys).await?.into_iter();
        let me = found.next().flatten();
        let Some((me, my_groups)) = me.filter(|(u, _)| server.admits(u)) else { return gone(&mut self.bound) };
        if !me.ldap_binding_user {
            // Any other user reads its own entry only.
            return Ok(Ok(vec![entries::user(tree, &me, &my_groups)]));
        }
        if base == Named::Outside {
            return Ok(Err(Refusal::no_such_object(tree)));
        }
        if names.is_some() {
            let mut out = entries::containers(tree);
            // One entry per user, however many of the keys name it.
            let mut seen = HashSet::new();
            for user in found {
                match user {
                    Some((u, groups)) if seen.insert(u.id.clone()) => out.push(entries::user(tree, &u, &groups)),
                    Some(_) => {}
                    None if matches!(&base, Named::User(_)) => return Ok(Err(Refusal::no_such_object(tree))),
                    None => {}
                }
            }
            return Ok(Ok(out));
        }
        // Only some groups can be in the answer (SSSD's and nslcd's group lookups): those
        // are read with their members, nobody else.
        // (A user's DN as the base was answered above; a group's reads everything below.)
        if !matches!(base, Named::Group(_)) {
            if let Some(pin) = filter::only_groups(&req.filter, tree) {
                let mut out = entries::containers(tree);
                for (g, members) in crate::ops::ldap::groups_pinned(s, &server.id, &pin).await? {
                    let members: Vec<&tether_core::user::User> = members.iter().collect();
                    out.push(entries::group(tree, &g, &members));
                }
                return Ok(Ok(out));
            }
        }
        let view = crate::ops::ldap::in_ldap(s).await?;
        let mut out = entries::containers(tree);
        let by_id: HashMap<&str, &tether_core::user::User> = view.users.iter().map(|u| (u.id.as_str(), u)).collect();
        for u in &view.users {
            out.push(entries::user(tree, u, view.groups_of(&u.id)));
        }
        for (g, members) in &view.groups {
            let members: Vec<&tether_core::user::User> =
                members.iter().filter_map(|m| by_id.get(m.as_str()).copied()).collect();
            out.push(entries::group(tree, g, &members));
        }
        // (A user's DN as the base was answered above, from its own lookup.)
        let exists = match &base {
            Named::Group(name) => view.groups.iter().any(|(g, _)| g.name.eq_ignore_ascii_case(name)),
            _ => true,
        };
        if !exists {
            return Ok(Err(Refusal::no_such_object(tree)));
        }
        Ok(Ok(out))
    }
}

/// Why a search reads nothing.
struct Refusal {
    code: LdapResultCode,
    message: &'static str,
    matched: String,
}

impl Refusal {
    fn rights(message: &'static str) -> Refusal {
        Refusal { code: LdapResultCode::InsufficentAccessRights, message, matched: String::new() }
    }

    fn no_such_object(tree: &Tree) -> Refusal {
        Refusal { code: LdapResultCode::NoSuchObject, message: "no such entry", matched: tree.base.clone() }
    }

    fn answer(&self, id: i32) -> LdapMsg {
        let mut m = done(id, self.code.clone(), self.message, Vec::new());
        if let LdapOp::SearchResultDone(r) = &mut m.op {
            r.matcheddn = self.matched.clone();
        }
        m
    }
}

/// Whether `dn` is within `scope` of `base`.
fn in_scope(dn: &str, base: &str, scope: &LdapSearchScope) -> bool {
    let (dn, base) = (normalize_dn(dn), normalize_dn(base));
    let below = base.is_empty() || dn.ends_with(&format!(",{base}"));
    match scope {
        LdapSearchScope::Base => dn == base,
        LdapSearchScope::OneLevel => below && dn.split_once(',').is_some_and(|(_, parent)| parent == base),
        LdapSearchScope::Subtree => dn == base || below,
        LdapSearchScope::Children => below,
    }
}

/// The result code of a final response.
fn result_code(m: &LdapMsg) -> Option<&LdapResultCode> {
    match &m.op {
        LdapOp::BindResponse(r) => Some(&r.res.code),
        LdapOp::SearchResultDone(r) => Some(&r.code),
        LdapOp::ExtendedResponse(r) => Some(&r.res.code),
        _ => None,
    }
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult { code, matcheddn: String::new(), message: message.to_string(), referral: Vec::new() }
}

fn bind_result(id: i32, code: LdapResultCode, message: &str) -> LdapMsg {
    LdapMsg::new(id, LdapOp::BindResponse(LdapBindResponse { res: result(code, message), saslcreds: None }))
}

fn done(id: i32, code: LdapResultCode, message: &str, ctrl: Vec<LdapControl>) -> LdapMsg {
    LdapMsg::new_with_ctrls(id, LdapOp::SearchResultDone(result(code, message)), ctrl)
}

fn entry_msg(id: i32, e: LdapSearchResultEntry) -> LdapMsg {
    LdapMsg::new(id, LdapOp::SearchResultEntry(e))
}

fn page_control(cookie: Vec<u8>) -> LdapControl {
    LdapControl::SimplePagedResults { size: 0, cookie }
}

fn extended(id: i32, code: LdapResultCode, message: &str, name: Option<String>) -> LdapMsg {
    LdapMsg::new(id, LdapOp::ExtendedResponse(LdapExtendedResponse { res: result(code, message), name, value: None }))
}

fn refuse(id: i32, op: fn(LdapResult) -> LdapOp) -> LdapMsg {
    LdapMsg::new(id, op(result(LdapResultCode::UnwillingToPerform, "the directory is read-only over LDAP")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let b = "o=tether";
        let rows = [
            ("o=tether", LdapSearchScope::Base, true),
            ("ou=Users,o=tether", LdapSearchScope::Base, false),
            ("ou=Users,o=tether", LdapSearchScope::OneLevel, true),
            ("uid=a,ou=Users,o=tether", LdapSearchScope::OneLevel, false),
            ("uid=a,ou=Users,o=tether", LdapSearchScope::Subtree, true),
            ("o=tether", LdapSearchScope::Subtree, true),
            ("o=tether", LdapSearchScope::Children, false),
            ("uid=a,ou=Users,o=other", LdapSearchScope::Subtree, false),
        ];
        for (dn, scope, want) in rows {
            assert_eq!(in_scope(dn, b, &scope), want, "{dn} {scope:?}");
        }
    }
}
