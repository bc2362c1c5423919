//! Unix ids: each user's `unix_uid` and `unix_guid` and each group's gid, as Linux hosts see
//! them over LDAP (`uidNumber`, `gidNumber`). All are taken from one counter in the store, so
//! a group's id never meets a user's private group, every tetherd hands out distinct numbers,
//! and numbers given by hand raise the counter past them.

use serde_json::json;
use tether_core::group::Group;
use tether_core::user::User;
use tether_store::Collection;

use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// The counter the unix ids of users (and groups) are taken from, and its first number.
const UNIX_IDS: &str = "unix";
const FIRST_UNIX_ID: i64 = 5000;

/// Takes `count` unix ids in a row; answers the first.
pub async fn take(s: &AppState, count: usize) -> ApiResult<u32> {
    let first = s.repo.store().take_numbers(UNIX_IDS, count as i64, FIRST_UNIX_ID).await?;
    u32::try_from(first).map_err(|_| ApiError::new(Code::Internal, "the unix ids are used up"))
}

/// Raises the counter past `n` (a number given elsewhere, e.g. AD's `uidNumber`), so the
/// numbers handed out later never meet it.
pub async fn raise_past(s: &AppState, n: u32) -> ApiResult<()> {
    s.repo.store().take_numbers(UNIX_IDS, 0, i64::from(n) + 1).await?;
    Ok(())
}

/// Gives `u` its unix ids: those it was given raise the counter past them (so ids handed out
/// later never meet them); a missing `unix_uid` is taken from the counter, a missing
/// `unix_guid` is the same number (a private group per user).
pub async fn assign_user(s: &AppState, u: &mut User) -> ApiResult<()> {
    for given in [u.unix_uid, u.unix_guid].into_iter().flatten() {
        raise_past(s, given).await?;
    }
    if u.unix_uid.is_none() {
        u.unix_uid = Some(take(s, 1).await?);
    }
    if u.unix_guid.is_none() {
        u.unix_guid = u.unix_uid;
    }
    Ok(())
}

/// Gives unix ids to the users and groups stored before they had them (once: a setting marks
/// it done).
pub async fn backfill(s: &AppState) -> ApiResult<()> {
    const DONE: &str = "unixIdsBackfilled";
    if s.repo.store().setting(DONE).await?.is_some_and(|v| v == json!(true)) {
        return Ok(());
    }
    let mut skip = 0;
    loop {
        let q = tether_core::query::ListQuery { limit: 500, skip, ..Default::default() };
        let (_, page) = s.repo.list_users(&q).await?;
        if page.is_empty() {
            break;
        }
        skip += page.len();
        for u in page.into_iter().filter(|u| u.unix_uid.is_none() || u.unix_guid.is_none()) {
            super::retrying(|| async {
                let Some(mut current) = s.repo.user(&u.id).await? else { return Ok(()) };
                if current.unix_uid.is_some() && current.unix_guid.is_some() {
                    return Ok(());
                }
                assign_user(s, &mut current).await?;
                s.repo.save_user(&current, None).await?;
                Ok(())
            })
            .await?;
        }
    }
    let q = tether_core::query::ListQuery { limit: usize::MAX >> 1, ..Default::default() };
    let (_, groups) = s.repo.list::<Group>(Collection::Groups, &q).await?;
    for g in groups.into_iter().filter(|g| unix_gid(g).is_none()) {
        super::retrying(|| async {
            let Some(mut current) = s.repo.get::<Group>(Collection::Groups, &g.id).await? else {
                return Ok(());
            };
            if unix_gid(&current).is_none() {
                assign_group(s, &mut current, None).await?;
                s.repo.save_group(&current).await?;
            }
            Ok(())
        })
        .await?;
    }
    s.repo.store().put_setting(DONE, &json!(true)).await?;
    Ok(())
}

/// The group's unix id (`gidNumber` over LDAP), in JumpCloud's place for it:
/// `attributes.posixGroups[0].id`.
pub fn unix_gid(g: &Group) -> Option<u32> {
    g.attributes["posixGroups"][0]["id"].as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Gives a group without one its unix id (from the users' counter, so a group's id never
/// meets a user's private group); a group that had one keeps it through an update.
pub async fn assign_group(s: &AppState, g: &mut Group, current: Option<&Group>) -> ApiResult<()> {
    if unix_gid(g).is_some() {
        return Ok(());
    }
    let gid = match current.and_then(unix_gid) {
        Some(kept) => kept,
        None => take(s, 1).await?,
    };
    if let Some(a) = g.attributes.as_object_mut() {
        a.insert("posixGroups".into(), serde_json::json!([{"id": gid, "name": g.name}]));
    }
    Ok(())
}
