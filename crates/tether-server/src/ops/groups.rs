//! User groups: create, rename, delete, membership and their association with AD domains.
//! Each change records the history of the objects it touches and feeds the AD domains the
//! group is bound to (the group's own entry, then its members' connections).

use serde_json::{json, Value};
use tether_core::actor::Actor;
use tether_core::group::{write_group, Group};
use tether_store::{Collection, Edge};

use crate::adi::feed_groups::Membership;
use crate::adi::{feed, feed_groups};
use crate::crypto::new_id;
use crate::error::{ApiError, ApiResult, Code};
use crate::history;
use crate::state::AppState;

pub async fn load(s: &AppState, id: &str) -> ApiResult<Group> {
    s.repo.get(Collection::Groups, id).await?.ok_or_else(|| ApiError::not_found("user group", id))
}

pub async fn create(s: &AppState, body: &Value, actor: Actor) -> ApiResult<Group> {
    let mut g = write_group(None, &new_id(), body)?;
    super::unix_ids::assign_group(s, &mut g, None).await?;
    s.repo.insert_group(&g).await?;
    let changes = history::diff_of(None, Some(&g));
    history::record(s, history::Of::Group(&g.id), actor, "create", changes, None).await?;
    Ok(g)
}

/// Writes a group; a new name reaches the bound domains.
pub async fn update(s: &AppState, id: &str, body: &Value, actor: Actor) -> ApiResult<Group> {
    let (cur, g) = super::retrying(|| async {
        let cur = load(s, id).await?;
        let mut g = write_group(Some(&cur), id, body)?;
        super::unix_ids::assign_group(s, &mut g, Some(&cur)).await?;
        s.repo.save_group(&g).await?;
        Ok((cur, g))
    })
    .await?;
    let changes = history::diff_of(Some(&cur), Some(&g));
    history::record(s, history::Of::Group(id), actor, "update", changes, None).await?;
    if g.name != cur.name {
        feed_groups::group_changed(s, &g, Membership::Other).await?;
    }
    Ok(g)
}

/// Deletes a group: its domains lose it, and members bound only through it lose the domain.
pub async fn delete(s: &AppState, id: &str, actor: Actor) -> ApiResult<()> {
    let group = load(s, id).await?;
    let members = s.repo.store().targets(Edge::Member, id).await?;
    let before = feed::snapshot(s, &members).await?;
    let domains = feed::domains_of_group(s, id).await?;
    if !s.repo.store().delete(Collection::Groups, id).await? {
        return Err(ApiError::not_found("user group", id));
    }
    let changes = history::diff_of(Some(&group), None);
    history::record(s, history::Of::Group(id), actor, "delete", changes, None).await?;
    feed::group_disconnected(s, &group, &domains).await?;
    feed::rebind(s, before).await?;
    Ok(())
}

/// Adds (`add`) or removes a user from a group.
pub async fn change_member(s: &AppState, id: &str, user_id: &str, add: bool, who: Actor) -> ApiResult<()> {
    let group = load(s, id).await?;
    let before = feed::snapshot(s, &[user_id.to_string()]).await?;
    let user = crate::ops::users::load(&s.repo, user_id).await;
    if add {
        let u = user?;
        if s.repo.store().link(Edge::Member, id, user_id).await? {
            let changes = json!({"memberOf": [null, group.name]});
            history::record(s, history::Of::User(user_id), who.clone(), "membership", changes, None).await?;
            let changes = json!({"members": [null, u.username]});
            history::record(s, history::Of::Group(id), who, "membership", changes, None).await?;
        }
        feed::rebind(s, before).await?;
        feed_groups::group_changed(s, &group, Membership::Joined(user_id)).await?;
    } else {
        if !s.repo.store().unlink(Edge::Member, id, user_id).await? {
            return Err(ApiError::new(Code::NotFound, format!("user `{user_id}` is not a member")));
        }
        let changes = json!({"memberOf": [group.name, null]});
        history::record(s, history::Of::User(user_id), who.clone(), "membership", changes, None).await?;
        let name = user.as_ref().map(|u| u.username.clone()).unwrap_or_else(|_| user_id.to_string());
        history::record(s, history::Of::Group(id), who, "membership", json!({"members": [name, null]}), None).await?;
        // The group's AD membership first, then the user's possible disconnection.
        feed_groups::group_changed(s, &group, Membership::Left(user.ok().as_slice())).await?;
        feed::rebind(s, before).await?;
    }
    Ok(())
}
