//! The typed layer over a [`Store`]: users, groups, domains and agents in and out of
//! their stored JSON documents, with their unique keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tether_core::ad::{AdDomain, Agent};
use tether_core::group::Group;
use tether_core::policy::OrgSettings;
use tether_core::query::ListQuery;
use tether_core::user::{AdLink, User};

use crate::{Collection, Doc, Result, Secret, Store, StoreError};

/// A document field that is stored but never part of the API object.
const HAS_PASSWORD: &str = "_hasPassword";
/// The objectGUID an imported user or mirrored group is linked to (stored, not in the API).
pub const AD_GUID: &str = "_adGuid";
/// The AD domain a linked user belongs to.
pub const AD_DOMAIN: &str = "_adDomain";
/// A user's account in each AD domain (domain id → objectGUID and DN; stored, not in the API).
const AD_LINKS: &str = "_adLinks";
const ORG_SETTINGS: &str = "org";

#[derive(Clone)]
pub struct Repo {
    store: Arc<dyn Store>,
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("model types serialize")
}

fn user_from(v: Value) -> Result<User> {
    let has = v.get(HAS_PASSWORD).and_then(Value::as_bool).unwrap_or(false);
    let guid = v.get(AD_GUID).and_then(Value::as_str).map(str::to_string);
    let links = match v.get(AD_LINKS) {
        Some(l) if !l.is_null() => decode(l.clone())?,
        _ => Default::default(),
    };
    let mut u: User = decode(v)?;
    u.has_password = has;
    u.ad_guid = guid;
    u.ad_links = links;
    Ok(u)
}

/// A user linked to AD, as the import's group mirroring needs it (see [`Repo::ad_linked`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdLinked {
    /// The objectGUID the user is linked to.
    pub guid: String,
    pub id: String,
    pub username: String,
    /// The AD domain (id) the user belongs to.
    pub domain: Option<String>,
}

/// A member of a group as the sync agent is told of it (see [`Repo::member_links`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberLink {
    pub id: String,
    pub username: String,
    /// The objectGUID of its account in the domain ([`User::link_in`]).
    pub guid: Option<String>,
}

/// The stored document of a user (for batch writes).
pub fn user_doc(u: &User) -> Doc {
    let mut body = encode(u);
    body[HAS_PASSWORD] = Value::Bool(u.has_password);
    if let Some(g) = &u.ad_guid {
        body[AD_GUID] = Value::String(g.clone());
        let domain = u.restricted_fields.iter().find(|r| r.kind == "active_directory").map(|r| r.id.clone());
        body[AD_DOMAIN] = domain.map(Value::String).unwrap_or(Value::Null);
    }
    if !u.ad_links.is_empty() {
        body[AD_LINKS] = encode(&u.ad_links);
    }
    Doc {
        id: u.id.clone(),
        key1: Some(u.username.clone()),
        key2: Some(u.email.clone()),
        body,
        version: u.revision.get(),
    }
}

impl Repo {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Repo { store }
    }

    /// The untyped store, for secrets, edges and collections without a typed helper.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub async fn settings(&self) -> Result<OrgSettings> {
        match self.store.setting(ORG_SETTINGS).await? {
            Some(v) => decode(v),
            None => Ok(OrgSettings::default()),
        }
    }

    pub async fn put_settings(&self, s: &OrgSettings) -> Result<()> {
        self.store.put_setting(ORG_SETTINGS, &encode(s)).await
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        self.store.get(Collection::Users, id).await?.map(user_from).transpose()
    }

    /// Users (each named as its [`crate::UserKey`] says), each with whether `server` links to
    /// it with `direct`, and its groups `server` links to with `via`, in one query (see
    /// `Store::users_with_groups`).
    pub async fn users_with_groups(
        &self,
        keys: &[(&str, crate::UserKey)],
        server: &str,
        direct: crate::Edge,
        via: crate::Edge,
    ) -> Result<Vec<Option<(User, bool, Vec<Group>)>>> {
        let found = self.store.users_with_groups(keys, server, direct, via).await?;
        found
            .into_iter()
            .map(|f| {
                f.map(|(u, linked, groups)| {
                    let groups = groups.into_iter().map(decode).collect::<Result<Vec<Group>>>()?;
                    Ok((user_from(u)?, linked, groups))
                })
                .transpose()
            })
            .collect()
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.store.get_by_key(Collection::Users, username).await?.map(user_from).transpose()
    }

    /// The users with any of these usernames (or, with `emails`, email addresses),
    /// case-insensitively.
    pub async fn users_by_keys(&self, emails: bool, keys: &[&str]) -> Result<Vec<User>> {
        self.store.get_by_keys(Collection::Users, emails, keys).await?.into_iter().map(user_from).collect()
    }

    /// Inserts a user; with `password_hash` its password is stored too.
    pub async fn insert_user(&self, u: &User, password_hash: Option<&str>) -> Result<()> {
        if let Some(h) = password_hash {
            self.store.put_secret(&u.id, Secret::Password, Some(h)).await?;
        }
        let r = self.store.insert(Collection::Users, &user_doc(u)).await;
        if r.is_err() && password_hash.is_some() {
            self.store.put_secret(&u.id, Secret::Password, None).await?;
        }
        if r.is_ok() {
            u.revision.set(0);
        }
        r
    }

    /// Saves a user, and with `password_hash` its new password in the same transaction.
    /// `StoreError::Stale` when the user changed since `u` was read.
    pub async fn save_user(&self, u: &User, password_hash: Option<&str>) -> Result<bool> {
        let found = match password_hash {
            Some(h) => self.store.replace_with_secret(Collection::Users, &user_doc(u), Secret::Password, h).await?,
            None => self.store.replace(Collection::Users, &user_doc(u)).await?,
        };
        u.revision.advance();
        Ok(found)
    }

    pub async fn password_hash(&self, user_id: &str) -> Result<Option<String>> {
        self.store.secret(user_id, Secret::Password).await
    }

    pub async fn list_users(&self, q: &ListQuery) -> Result<(u64, Vec<User>)> {
        let (n, docs) = self.store.list(Collection::Users, q).await?;
        Ok((n, docs.into_iter().map(|d| crate::sql::parse(&d).and_then(user_from)).collect::<Result<_>>()?))
    }

    pub async fn get<T: DeserializeOwned>(&self, c: Collection, id: &str) -> Result<Option<T>> {
        self.store.get(c, id).await?.map(decode).transpose()
    }

    pub async fn list<T: DeserializeOwned>(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<T>)> {
        let (n, docs) = self.store.list(c, q).await?;
        Ok((n, docs.into_iter().map(|d| crate::sql::parse(&d).and_then(decode)).collect::<Result<_>>()?))
    }

    pub async fn insert_group(&self, g: &Group) -> Result<()> {
        self.store.insert(Collection::Groups, &group_doc(g)).await?;
        g.revision.set(0);
        Ok(())
    }

    /// Saves a group (`StoreError::Stale` when it changed since `g` was read).
    pub async fn save_group(&self, g: &Group) -> Result<bool> {
        let found = self.store.replace(Collection::Groups, &group_doc(g)).await?;
        g.revision.advance();
        Ok(found)
    }

    pub async fn insert_domain(&self, d: &AdDomain) -> Result<()> {
        self.store.insert(Collection::Domains, &domain_doc(d)).await?;
        d.revision.set(0);
        Ok(())
    }

    /// Saves a domain (`StoreError::Stale` when it changed since `d` was read).
    pub async fn save_domain(&self, d: &AdDomain) -> Result<bool> {
        let found = self.store.replace(Collection::Domains, &domain_doc(d)).await?;
        d.revision.advance();
        Ok(found)
    }

    pub async fn insert_agent(&self, a: &Agent) -> Result<()> {
        self.store.insert(Collection::Agents, &agent_doc(a)).await?;
        a.revision.set(0);
        Ok(())
    }

    /// Saves an agent (`StoreError::Stale` when it changed since `a` was read).
    pub async fn save_agent(&self, a: &Agent) -> Result<bool> {
        let found = self.store.replace(Collection::Agents, &agent_doc(a)).await?;
        a.revision.advance();
        Ok(found)
    }

    /// The user linked to an AD objectGUID.
    pub async fn user_by_ad_guid(&self, guid: &str) -> Result<Option<User>> {
        Ok(self.list_users(&eq(AD_GUID, guid, 1)).await?.1.pop())
    }

    /// The users linked to any of these objectGUIDs, by objectGUID (a few queries for a
    /// whole import report instead of one per user).
    pub async fn users_by_ad_guids(&self, guids: &[&str]) -> Result<std::collections::HashMap<String, User>> {
        let mut out = std::collections::HashMap::new();
        for chunk in guids.chunks(500) {
            let q = ListQuery { filter: Some(any_of(AD_GUID, chunk)), sort: None, limit: chunk.len(), skip: 0 };
            for u in self.list_users(&q).await?.1 {
                if let Some(g) = u.ad_guid.clone() {
                    out.insert(g, u);
                }
            }
        }
        Ok(out)
    }

    /// The users linked to any of these objectGUIDs, as [`AdLinked`] (objectGUID, id,
    /// username, domain) without reading their documents: the members of an AD group of
    /// 10,000 users are looked up on each change to the group (an import cycle reporting
    /// it), and reading each whole user made that 0.6 s.
    pub async fn ad_linked(&self, guids: &[&str]) -> Result<Vec<AdLinked>> {
        let mut out = Vec::new();
        for chunk in guids.chunks(500) {
            out.extend(self.linked_rows(&any_of(AD_GUID, chunk)).await?);
        }
        Ok(out)
    }

    /// Those of the users `ids` linked to the AD domain `domain_id`, as [`AdLinked`].
    pub async fn ad_linked_among(&self, domain_id: &str, ids: &[&str]) -> Result<Vec<AdLinked>> {
        use tether_core::query::{Filter, Op, Scalar};
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let among = Filter::And(vec![
                any_of("id", chunk),
                Filter::Cmp { field: AD_DOMAIN, op: Op::Eq, value: Scalar::Text(domain_id.into()) },
            ]);
            out.extend(self.linked_rows(&among).await?);
        }
        Ok(out)
    }

    async fn linked_rows(&self, f: &tether_core::query::Filter) -> Result<Vec<AdLinked>> {
        let rows = self.store.project(Collection::Users, f, &[AD_GUID, "id", "username", AD_DOMAIN]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match <[Option<String>; 4]>::try_from(r).ok()? {
                [Some(guid), Some(id), Some(username), domain] => Some(AdLinked { guid, id, username, domain }),
                _ => None,
            })
            .collect())
    }

    /// Every user linked to the AD domain `domain_id`.
    pub async fn users_of_domain(&self, domain_id: &str) -> Result<Vec<User>> {
        Ok(self.list_users(&eq(AD_DOMAIN, domain_id, usize::MAX >> 1)).await?.1)
    }

    /// How many users are linked to the AD domain `domain_id` (none loaded).
    pub async fn count_users_of_domain(&self, domain_id: &str) -> Result<u64> {
        Ok(self.store.list(Collection::Users, &eq(AD_DOMAIN, domain_id, 0)).await?.0)
    }

    /// The users `ids` (those that exist) as a group's entry in `domain`'s change feed names
    /// them, in the order they were created: a few fields each, no document decoded (a group
    /// may hold thousands of members; decoding each whole user took ~35 µs, most of a
    /// 5,000-member group's delivery).
    pub async fn member_links(&self, domain: &str, ids: &[&str]) -> Result<Vec<MemberLink>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let fields = ["id", "username", AD_GUID, AD_DOMAIN, AD_LINKS];
            for row in self.store.project(Collection::Users, &any_of("id", chunk), &fields).await? {
                let Ok([Some(id), Some(username), own, import, links]) = <[Option<String>; 5]>::try_from(row) else {
                    continue;
                };
                let links: BTreeMap<String, AdLink> = match links {
                    Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    None => BTreeMap::new(),
                };
                let guid = match links.get(domain) {
                    Some(l) => Some(l.guid.clone()),
                    None => own.filter(|_| User::own_link_in(import.as_deref(), !links.is_empty(), domain)),
                };
                out.push(MemberLink { id, username, guid });
            }
        }
        Ok(out)
    }

    /// The users `ids` (those that exist), in the order they were created.
    pub async fn users_by_ids(&self, ids: &[&str]) -> Result<Vec<User>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let q = ListQuery { filter: Some(any_of("id", chunk)), sort: None, limit: chunk.len(), skip: 0 };
            out.extend(self.list_users(&q).await?.1);
        }
        Ok(out)
    }

    /// The groups `ids` (those that exist), in the order they were created.
    pub async fn groups_by_ids(&self, ids: &[&str]) -> Result<Vec<Group>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let q = ListQuery { filter: Some(any_of("id", chunk)), sort: None, limit: chunk.len(), skip: 0 };
            out.extend(self.list::<Group>(Collection::Groups, &q).await?.1);
        }
        Ok(out)
    }

    /// The group mirrored from an AD group.
    pub async fn group_by_ad_guid(&self, guid: &str) -> Result<Option<Group>> {
        Ok(self.list::<Group>(Collection::Groups, &eq(AD_GUID, guid, 1)).await?.1.pop())
    }

    /// Every group mirrored from the AD domain `domain_id`.
    pub async fn groups_of_domain(&self, domain_id: &str) -> Result<Vec<Group>> {
        Ok(self.list::<Group>(Collection::Groups, &eq(AD_DOMAIN, domain_id, usize::MAX >> 1)).await?.1)
    }

    pub async fn remove_password(&self, user_id: &str) -> Result<()> {
        self.store.put_secret(user_id, Secret::Password, None).await
    }

    /// The agents of a domain, oldest first.
    pub async fn agents_of(&self, domain_id: &str) -> Result<Vec<Agent>> {
        // `domainId` is internal to agents and not in a public catalogue; the filter is built here.
        Ok(self.list(Collection::Agents, &eq("domainId", domain_id, 10_000)).await?.1)
    }
}

/// The stored document of a group.
pub fn group_doc(g: &Group) -> Doc {
    let mut body = encode(g);
    // Groups mirrored from AD carry attributes.activeDirectory {id, dn, domain}; indexable copies:
    if let Some(ad) = g.attributes.get("activeDirectory") {
        body[AD_GUID] = ad.get("id").cloned().unwrap_or(Value::Null);
        body[AD_DOMAIN] = ad.get("domain").cloned().unwrap_or(Value::Null);
    }
    Doc { id: g.id.clone(), key1: Some(g.name.clone()), key2: None, body, version: g.revision.get() }
}

/// An equality filter on an internal (non-catalogue) document field.
/// `field` is any of `values`.
fn any_of(field: &'static str, values: &[&str]) -> tether_core::query::Filter {
    use tether_core::query::{Filter, Scalar};
    Filter::In { field, values: values.iter().map(|v| Scalar::Text(v.to_string())).collect() }
}

fn eq(field: &'static str, value: &str, limit: usize) -> ListQuery {
    use tether_core::query::{Filter, Op, Scalar};
    ListQuery {
        filter: Some(Filter::Cmp { field, op: Op::Eq, value: Scalar::Text(value.into()) }),
        sort: None,
        limit,
        skip: 0,
    }
}

fn domain_doc(d: &AdDomain) -> Doc {
    Doc { id: d.id.clone(), key1: Some(d.domain.clone()), key2: None, body: encode(d), version: d.revision.get() }
}

fn agent_doc(a: &Agent) -> Doc {
    Doc { id: a.id.clone(), key1: None, key2: None, body: encode(a), version: a.revision.get() }
}
