//! The agent protocol's messages, one definition for both ends: the agents serialize them,
//! `tetherd` deserializes them (and the reverse for answers), and the fuzz targets feed them
//! hostile bytes. A field renamed here is renamed on both sides at once; closed sets are
//! enums. Only the documents' free-form parts (a dry run's decisions, a diff) stay JSON.
//!
//! | call (`/api/agent/v1/…`) | request            | answer               |
//! |--------------------------|--------------------|----------------------|
//! | `register`               | [`Register`]       | [`Registered`]       |
//! | `heartbeat`              | [`Heartbeat`]      | [`HeartbeatReply`]   |
//! | `import`                 | [`ImportReport`]   | [`ImportOutcome`]    |
//! | `passwords`              | [`CapturedPassword`]s | [`PasswordsStored`] |
//! | `auth/poll`              | [`Poll`]           | [`AuthRequest`]s     |
//! | `auth/result`            | [`AuthResult`]     | `{}`                 |
//! | `sync/poll`              | [`Poll`]           | [`FeedEntry`]s (read as [`FeedItem`]s) |
//! | `sync/ack`               | [`Ack`]            | [`Acked`]            |
//! | `sync/status`            | [`SyncStatus`]     | `{}`                 |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ad::{AdStatus, AgentType, Category, InstalledOn, UseCase};
use crate::adi::import::{AdUserObs, ImportSettings};
use crate::adi::sync::UserChange;

/// A secret on the wire, never in a log: `Debug` shows `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An agent's one-time registration: the connect key, and the token it made for itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Register {
    pub connect_key: Option<Secret>,
    pub token: Option<Secret>,
    pub hostname: Option<String>,
    pub version: Option<String>,
    pub installed_on: Option<InstalledOn>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub agent_id: String,
    pub agent_type: AgentType,
    pub domain_id: String,
    /// The domain's DN.
    pub domain: String,
    pub use_case: UseCase,
}

/// "I am alive", with the agent's view of its AD connection.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Heartbeat {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad: Option<AdStatus>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatReply {
    pub paused: bool,
    /// This import agent applies the domain's cycles.
    pub primary: bool,
    /// The primary's fencing token, sent with each report.
    pub fencing: u64,
    /// tetherd takes a first read's users in parts (`ImportReport::part`); an older one
    /// answers without it (false), and the agent then sends only the complete report.
    pub parts: bool,
}

/// A group nested in the ADI group, with the objectGUIDs of the users it contains
/// (flattened through its own nested groups).
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ObservedGroup {
    pub guid: String,
    pub dn: String,
    pub name: String,
    pub members: Members,
}

/// A mirrored group's members in a report: all of them, or (an incremental report) who
/// joined and who left since the agent's last applied report. A change is sent only under
/// the fencing token that report was applied with: no other agent's report can have come in
/// between, so the change is relative to what tetherd holds. At 10,000 members the whole
/// list is ~400 KB to send and 10,000 users for tetherd to map, for one user leaving.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Members {
    /// Everyone (a JSON array of objectGUIDs): a complete report, a group new to the scope,
    /// or an agent whose last applied report was made under another fencing token.
    All(Vec<String>),
    /// `{"joined": [...], "left": [...]}` (objectGUIDs).
    Changed { joined: Vec<String>, left: Vec<String> },
}

impl Default for Members {
    fn default() -> Self {
        Members::All(Vec::new())
    }
}

impl Members {
    /// Every objectGUID named (members, or those who joined or left).
    pub fn named(&self) -> impl Iterator<Item = &String> {
        let (a, b): (&[String], &[String]) = match self {
            Members::All(m) => (m, &[]),
            Members::Changed { joined, left } => (joined, left),
        };
        a.iter().chain(b)
    }
}

/// One import cycle's observations.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ImportReport {
    pub settings: ImportSettings,
    /// `users` and `groups` are the whole scope: what is linked and missing has left it.
    pub complete: bool,
    pub users: Vec<AdUserObs>,
    /// objectGUIDs known to have left the scope (for incremental reports).
    pub gone: Vec<String>,
    /// Mirrored groups (objectGUIDs) known to be deleted in AD or out of the scope (for
    /// incremental reports; a complete report's `groups` are all there are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone_groups: Vec<String>,
    pub groups: Vec<ObservedGroup>,
    /// For incremental reports, which carry only the groups that changed: the mirrored
    /// groups (objectGUIDs) each reported user is in, by the user's objectGUID.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user_groups: BTreeMap<String, Vec<String>>,
    /// The agent's fencing token (checked by the route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing: Option<u64>,
    /// For an incremental report: the `seq` of the agent's last applied report, which it is
    /// relative to. tetherd refuses it (412 `STALE_BASE`) if anything was applied since (an
    /// approved plan, another agent's report, a report whose answer the agent never got):
    /// the agent then reads everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// Decide only: nothing is applied, the decisions are answered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// A part of a first complete read, sent while the rest is read: users only (incremental,
    /// no groups, nobody gone, no `userGroups`), of which tetherd only creates the new ones;
    /// everything else waits for the complete report that follows. Taken only by a domain
    /// without users (the first part, without `base`) or relative to the previous part
    /// (`base`: nothing else applied since), so parts only ever fill a new domain.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub part: bool,
}

impl ImportReport {
    /// How many groups the report sends as who joined and who left (`Members::Changed`).
    pub fn groups_as_changes(&self) -> usize {
        self.groups.iter().filter(|g| matches!(g.members, Members::Changed { .. })).count()
    }
}

/// An AD object a cycle did not import, and why.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
pub struct Skipped {
    pub dn: String,
    #[serde(rename = "sAMAccountName", default, skip_serializing_if = "Option::is_none")]
    pub sam_account_name: Option<String>,
    pub reason: String,
}

/// What a cycle did.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ImportOutcome {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unbound: usize,
    pub unchanged: usize,
    /// Every AD object not imported.
    pub skipped: Vec<Skipped>,
    pub groups_created: usize,
    pub groups_updated: usize,
    pub groups_deleted: usize,
    /// The cycle exceeded a mass-change guard: nothing was applied (but the users a first
    /// read's parts created, counted in `created`); see the domain's plan.
    pub held: bool,
    pub held_reason: Option<String>,
    /// For a dry run: every decision (`{object, dn, action, reason, changes}`), none applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<Value>,
    /// The domain's import sequence number this report was applied as (0 when nothing was
    /// applied: held, or a dry run): the `base` of the agent's next incremental report.
    pub seq: u64,
}

/// A password hash captured on a domain controller (`{CRYPT}$6$…`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CapturedPassword {
    pub guid: String,
    pub hash: Secret,
    /// The account's `pwdLastSet` when the hash was read (tells a sync agent's own
    /// system-generated password apart).
    #[serde(rename = "pwdLastSet", skip_serializing_if = "Option::is_none")]
    pub pwd_last_set: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordsStored {
    pub stored: usize,
    /// Hashes of passwords a sync agent generated itself, not stored.
    pub ignored: usize,
    /// Hashes refused (too many rounds, malformed): `{guid, reason}`.
    pub refused: Vec<Refused>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Refused {
    pub guid: String,
    pub reason: String,
}

/// A long-poll: wait up to `wait_ms` for at most `limit` items.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Poll {
    pub wait_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The sync agent applies group entries of the changes alone (`GroupBody::delta`); an
    /// older one, which does not say so, is sent every group entry whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deltas: bool,
}

/// A delegated password check for an import agent: bind to AD as `dn` with `password`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthRequest {
    pub id: String,
    pub dn: String,
    pub password: Secret,
}

/// AD's answer to a delegated check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthResult {
    pub id: String,
    pub ok: bool,
    /// AD's reason for a refusal (from the bind's sub-code), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The sub-code's short name, for metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A user's state, fed to the domains it is bound to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UserBody {
    pub user_id: String,
    pub guid: Option<String>,
    pub dn: Option<String>,
    pub change: UserChange,
    /// The mass-change guard categories the entry counts in.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub guard: BTreeMap<Category, u64>,
}

/// A member of a group entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupMember {
    pub user_id: String,
    pub username: String,
    pub guid: Option<String>,
    /// The names of the domain's groups the member is in (for a removed member, the ones it
    /// is still in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// A group's state (or, disconnected, just its name and AD link).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupBody {
    pub group_id: String,
    pub name: String,
    pub guid: Option<String>,
    pub dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<GroupMember>>,
    /// Users that just left the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<GroupMember>>,
    /// The entry holds the change alone: `members` are the users who just joined, and the
    /// group's other members in AD are left as they are. Otherwise `members` is every member.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_case: Option<UseCase>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub guard: BTreeMap<Category, u64>,
}

/// One entry of a domain's change feed, in order (`seq`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum FeedEntry {
    /// The user's state; a new password rides along.
    User {
        seq: i64,
        object_id: String,
        body: UserBody,
        #[serde(default)]
        password: Option<Secret>,
    },
    /// The user lost its last connection to the domain (unbound, deleted, group gone).
    UserDisconnected {
        seq: i64,
        object_id: String,
        body: UserBody,
    },
    Group {
        seq: i64,
        object_id: String,
        body: GroupBody,
    },
    /// The group is no longer associated with the domain.
    GroupDisconnected {
        seq: i64,
        object_id: String,
        body: GroupBody,
    },
}

impl FeedEntry {
    pub fn seq(&self) -> i64 {
        match self {
            FeedEntry::User { seq, .. }
            | FeedEntry::UserDisconnected { seq, .. }
            | FeedEntry::Group { seq, .. }
            | FeedEntry::GroupDisconnected { seq, .. } => *seq,
        }
    }

    /// The wire name of the entry's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedEntry::User { .. } => "user",
            FeedEntry::UserDisconnected { .. } => "user_disconnected",
            FeedEntry::Group { .. } => "group",
            FeedEntry::GroupDisconnected { .. } => "group_disconnected",
        }
    }
}

/// A feed entry as a sync agent reads it: one it knows, or one of a kind a newer tetherd
/// added, which it skips (and acknowledges: skipping is that entry's outcome), so an
/// unknown entry never stalls the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeedItem {
    Known(Box<FeedEntry>),
    Unknown { seq: i64, kind: Option<String> },
}

impl FeedItem {
    pub fn seq(&self) -> i64 {
        match self {
            FeedItem::Known(e) => e.seq(),
            FeedItem::Unknown { seq, .. } => *seq,
        }
    }
}

/// Everything up to `seq` is applied in AD.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Ack {
    pub seq: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Acked {
    pub cursor: i64,
}

/// The outcome of writing a user (`userId`) or a group (`groupId`) to AD: its objectGUID and
/// DN once it exists there, and AD's refusal when there was one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub guid: Option<String>,
    pub dn: Option<String>,
    pub error: Option<String>,
    /// AD's result code of a refusal, for metrics.
    pub code: Option<String>,
    /// The account was created with a system-generated password, set at this `pwdLastSet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_password_set: Option<i64>,
    /// A group's change alone (`GroupBody::delta`) could not be applied as such (its AD
    /// group not found by its link, a joiner's account gone): send the group whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resend_whole: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_tetherds_heartbeat_reply_takes_no_parts() {
        // A tetherd from before `parts` answers without the field: the agent then sends a
        // first read as one complete report (import.rs sends parts only when it is true).
        let old: HeartbeatReply =
            serde_json::from_value(serde_json::json!({"paused": false, "primary": true, "fencing": 3})).unwrap();
        assert_eq!(old, HeartbeatReply { paused: false, primary: true, fencing: 3, parts: false });
        let new: HeartbeatReply = serde_json::from_value(serde_json::json!({"primary": true, "parts": true})).unwrap();
        assert!(new.parts);
    }

    #[test]
    fn feed_entries_are_tagged_by_kind() {
        let e: FeedEntry = serde_json::from_value(serde_json::json!({
            "seq": 3, "kind": "user_disconnected", "objectId": "u1",
            "body": {"userId": "u1", "change": {"username": "ann"}, "guard": {"unbinds": 1}}
        }))
        .unwrap();
        assert_eq!((e.seq(), e.kind()), (3, "user_disconnected"));
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!((back["kind"].as_str(), back["objectId"].as_str()), (Some("user_disconnected"), Some("u1")));
        assert_eq!(back["body"]["guard"]["unbinds"], 1);
        assert!(serde_json::from_value::<FeedEntry>(serde_json::json!({"seq": 1, "kind": "other"})).is_err());
        let item: FeedItem = serde_json::from_value(serde_json::json!({"seq": 1, "kind": "other"})).unwrap();
        assert_eq!(item, FeedItem::Unknown { seq: 1, kind: Some("other".into()) });
        assert!(matches!(serde_json::from_value(back).unwrap(), FeedItem::Known(_)));
    }

    #[test]
    fn a_groups_members_are_a_list_or_who_joined_and_left() {
        let all: ObservedGroup = serde_json::from_str(r#"{"guid": "g", "members": ["a", "b"]}"#).unwrap();
        assert_eq!(all.members, Members::All(vec!["a".into(), "b".into()]));
        let changed: ObservedGroup =
            serde_json::from_str(r#"{"guid": "g", "members": {"joined": ["a"], "left": ["b", "c"]}}"#).unwrap();
        assert_eq!(changed.members, Members::Changed { joined: vec!["a".into()], left: vec!["b".into(), "c".into()] });
        assert_eq!(changed.members.named().collect::<Vec<_>>(), ["a", "b", "c"]);
        let back = serde_json::to_value(&changed).unwrap();
        assert_eq!(back["members"], serde_json::json!({"joined": ["a"], "left": ["b", "c"]}));
        assert_eq!(serde_json::to_value(&all).unwrap()["members"], serde_json::json!(["a", "b"]));
        assert_eq!(ObservedGroup::default().members, Members::All(vec![]), "absent: nobody");
        let report = ImportReport { groups: vec![all.clone(), changed.clone(), all], ..ImportReport::default() };
        assert_eq!(report.groups_as_changes(), 1);
        assert!(serde_json::from_str::<ObservedGroup>(r#"{"members": "a"}"#).is_err());
        assert!(serde_json::from_str::<ObservedGroup>(r#"{"members": {"joined": ["a"]}}"#).is_err(), "both lists");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let r = AuthRequest { id: "1".into(), dn: "CN=a".into(), password: Secret("hunter2".into()) };
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(serde_json::to_value(&r).unwrap()["password"], "hunter2");
    }
}
