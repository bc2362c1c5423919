//! Who a front end's server object (the LDAP server, a RADIUS server) lets in: users and
//! groups linked to it, each kind through its own edge. The rules are the same for every
//! such server; each `ops` module names its edges and what to call itself in a refusal.

use tether_store::Edge;

use crate::error::{ApiError, ApiResult, Code};
use crate::ops::domains::Target;
use crate::state::AppState;

/// A server object's two edges: to users directly, and to user groups.
#[derive(Clone, Copy)]
pub struct Edges {
    pub users: Edge,
    pub groups: Edge,
    /// How a refusal names the server ("LDAP server").
    pub what: &'static str,
}

impl Edges {
    fn of(self, target: Target) -> Edge {
        match target {
            Target::User => self.users,
            Target::UserGroup => self.groups,
        }
    }
}

/// Links a user or group to server `id` (`add`), or unlinks it: the object must exist (404),
/// and unlinking what is not linked is a 404 that says so. The caller checked the server.
pub async fn set(s: &AppState, edges: Edges, id: &str, target: Target, object: &str, add: bool) -> ApiResult<()> {
    match target {
        Target::User => drop(crate::ops::users::load(&s.repo, object).await?),
        Target::UserGroup => drop(crate::ops::groups::load(s, object).await?),
    }
    if add {
        s.repo.store().link(edges.of(target), id, object).await?;
    } else if !s.repo.store().unlink(edges.of(target), id, object).await? {
        let (kind, what) = (target.as_str(), edges.what);
        return Err(ApiError::new(Code::NotFound, format!("{kind} `{object}` is not associated with this {what}")));
    }
    Ok(())
}

/// The ids of the users or groups linked to server `id` directly.
pub async fn list(s: &AppState, edges: Edges, id: &str, target: Target) -> ApiResult<Vec<String>> {
    Ok(s.repo.store().targets(edges.of(target), id).await?)
}
