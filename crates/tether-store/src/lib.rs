//! Storage behind a narrow trait.
//!
//! The trait stores JSON documents in collections, with up to two case-insensitive unique
//! keys per document, plus hashed secrets, edges (memberships, associations) and settings.
//! Everything the directory knows about users, groups, domains and agents is a document;
//! their rules live in `tether-core`, so a backend ([`sqlite`], embedded; [`postgres`], for
//! several `tetherd` processes on one database) only has to implement these few operations
//! and the filter translation, never domain logic. What the two SQL backends have in common
//! lives in one private module (`sql`). [`Repo`] adds the typed layer the server uses.

#[macro_use]
mod shared;
mod cursors;
mod flagged;
mod indexed;
mod marks;
mod moves;
#[cfg(test)]
mod plans;
pub mod postgres;
mod remembered;
mod repo;
mod sql;
pub mod sqlite;
mod tally;
mod unusual;

use async_trait::async_trait;
use serde_json::Value;
use tether_core::query::{Filter, ListQuery};

pub use cursors::PageStarts;
pub use repo::{group_doc, user_doc, AdLinked, MemberLink, Repo};

/// Document collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    Users,
    Groups,
    Domains,
    Agents,
    ApiKeys,
    Notifications,
    History,
    /// RADIUS servers (key1: the network source address they answer).
    RadiusServers,
}

impl Collection {
    /// Every collection (a table each; PostgreSQL keeps each one's row count by triggers,
    /// schema step 11: a new collection needs its triggers too).
    pub const ALL: [Collection; 8] = [
        Collection::Users,
        Collection::Groups,
        Collection::Domains,
        Collection::Agents,
        Collection::ApiKeys,
        Collection::Notifications,
        Collection::History,
        Collection::RadiusServers,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Collection::Users => "users",
            Collection::Groups => "groups",
            Collection::Domains => "domains",
            Collection::Agents => "agents",
            Collection::ApiKeys => "api_keys",
            Collection::Notifications => "notifications",
            Collection::History => "history",
            Collection::RadiusServers => "radius_servers",
        }
    }

    /// The client-facing names of the two unique keys, for conflict messages.
    pub fn key_names(self) -> [&'static str; 2] {
        match self {
            Collection::Users => ["username", "email"],
            Collection::Groups => ["name", "-"],
            Collection::Domains => ["domain", "-"],
            Collection::RadiusServers => ["networkSourceIp", "-"],
            Collection::Agents | Collection::ApiKeys | Collection::Notifications | Collection::History => ["-", "-"],
        }
    }
}

/// A document with its id and unique keys (stored lowercased).
#[derive(Clone, Debug)]
pub struct Doc {
    pub id: String,
    pub key1: Option<String>,
    pub key2: Option<String>,
    pub body: Value,
    /// The stored version this document was read at (users, groups, domains, agents): a
    /// replace succeeds only while it is still the stored one, else `StoreError::Stale`.
    /// `None` writes unconditionally.
    pub version: Option<i64>,
}

/// Kinds of hashed secrets, each owned by one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    /// A user's password hash (argon2id PHC string).
    Password,
    /// SHA-256 of an API key.
    ApiKey,
    /// SHA-256 of an agent's one-time connect key.
    ConnectKey,
    /// SHA-256 of an agent's token.
    AgentToken,
    /// SHA-256 of a user's activation (welcome) link token.
    Activation,
    /// A RADIUS server's shared secret, sealed with tetherd's key (it must be read back to
    /// sign answers: no hash would do).
    RadiusSecret,
    /// A user's TOTP secret, sealed with tetherd's key (codes are made from it).
    Totp,
    /// A TOTP secret shown for enrollment, sealed, until a code confirms it.
    TotpPending,
}

impl Secret {
    pub fn name(self) -> &'static str {
        match self {
            Secret::Password => "password",
            Secret::ApiKey => "api_key",
            Secret::ConnectKey => "connect_key",
            Secret::AgentToken => "agent_token",
            Secret::Activation => "activation",
            Secret::RadiusSecret => "radius_secret",
            Secret::Totp => "totp",
            Secret::TotpPending => "totp_pending",
        }
    }
}

/// Kinds of edges between documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// group → user
    Member,
    /// domain → user (bound directly)
    DomainUser,
    /// domain → group
    DomainGroup,
    /// LDAP server → user (in LDAP directly)
    LdapUser,
    /// LDAP server → group
    LdapGroup,
    /// RADIUS server → user (may authenticate through it directly)
    RadiusUser,
    /// RADIUS server → group
    RadiusGroup,
}

impl Edge {
    pub fn name(self) -> &'static str {
        match self {
            Edge::Member => "member",
            Edge::DomainUser => "domain_user",
            Edge::DomainGroup => "domain_group",
            Edge::LdapUser => "ldap_user",
            Edge::LdapGroup => "ldap_group",
            Edge::RadiusUser => "radius_user",
            Edge::RadiusGroup => "radius_group",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken; `field` is its client-facing name.
    #[error("a {collection} with this {field} already exists")]
    Conflict { collection: &'static str, field: &'static str },
    /// The document changed since it was read (optimistic concurrency): read it again.
    #[error("this {collection} was changed by someone else meanwhile; try again")]
    Stale { collection: &'static str },
    #[error("stored document is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot open the database: {0}")]
    Open(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One entry of a domain's change feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedEntry {
    pub seq: i64,
    pub kind: String,
    pub object_id: String,
    pub body: Value,
    /// A password to write, until the entry is acknowledged.
    pub secret: Option<String>,
    pub created: String,
}

/// The limits of one login attempt (Unix seconds): attempts since `window_start` count, at
/// most `max`, and a key that reaches the limit is locked until `lock_until`.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub now: i64,
    pub window_start: i64,
    pub max: i64,
    pub lock_until: i64,
}

/// How a lookup names a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserKey {
    Id,
    /// Compared case-insensitively.
    Username,
    /// Its `unix_uid`, in decimal (unique, indexed).
    UnixUid,
}

/// A user document, whether it is linked directly, and its linked groups' documents (see
/// `Store::users_with_groups`).
pub type UserWithGroups = (Value, bool, Vec<Value>);

/// A store's directory version (see `Store::directory_version`), and how many writes are
/// under way: a write committed but not yet counted has not moved the version yet.
#[derive(Default)]
pub(crate) struct Version {
    n: std::sync::atomic::AtomicU64,
    writing: std::sync::atomic::AtomicU64,
}

impl Version {
    pub(crate) fn get(&self) -> u64 {
        self.n.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The version, when no write is under way: what was read while it stays the answer is
    /// the store's state at that version (the embedded store's cached totals).
    pub(crate) fn quiet(&self) -> Option<u64> {
        let writing = self.writing.load(std::sync::atomic::Ordering::SeqCst);
        let n = self.get();
        (writing == 0).then_some(n)
    }

    /// A write has ended, committed or not: the version moves on, then it is no longer under way.
    fn ended(&self) {
        self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.writing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A write under way, run by `Writing::run`: it moves the store's directory version on when
/// the write has ended, whichever way it ends.
///
/// A write whose future is dropped mid-way (its client gone) has not ended: its statement
/// may still be running on the writer connection's worker thread and commit later. Dropped
/// before `run` returned, the guard keeps the write counted as under way until a no-op sent
/// to the writer pool returns: the writer is one connection, whose commands run in order and
/// which sqlx hands back to the pool only after a ping behind the cancelled statement (and
/// the rollback of a transaction left open), so the no-op returns after the write landed or
/// was rolled back. Only then does the version move. Without that, LDAP answers or totals read in
/// between would be filed at a version that misses the write.
pub(crate) struct Writing<'a> {
    version: Option<(&'a std::sync::Arc<Version>, &'a sqlx::SqlitePool)>,
    ended: bool,
}

impl<'a> Writing<'a> {
    /// `None`: a store without a version (PostgreSQL, written by other processes too).
    pub(crate) fn start(version: Option<(&'a std::sync::Arc<Version>, &'a sqlx::SqlitePool)>) -> Self {
        if let Some((v, _)) = version {
            v.writing.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Writing { version, ended: false }
    }

    /// Runs the write; when it returns, the write has ended.
    pub(crate) async fn run<T>(mut self, write: impl std::future::Future<Output = T>) -> T {
        let out = write.await;
        self.ended = true;
        out
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let Some((v, writer)) = self.version else { return };
        if self.ended {
            return v.ended();
        }
        // Cancelled. Without a runtime to wait in (shutting down), the write stays under way
        // for good: marks are then never used, which is slower but never wrong.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (v, writer) = (v.clone(), writer.clone());
            rt.spawn(async move {
                // Until the writer answers: a wait for it may time out (a statement running
                // longer than the pool's acquire timeout). A closed pool is a store shutting
                // down, with nobody left to read the version.
                loop {
                    match sqlx::query("SELECT 1").execute(&writer).await {
                        Ok(_) | Err(sqlx::Error::PoolClosed) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "the writer did not answer after a cancelled write; asking again");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
                v.ended();
            });
        }
    }
}

/// What counting a login attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Counted; the password may be checked.
    Counted,
    /// Counted past the limit: attempts in flight and failures fill the window.
    Full,
    /// The key is locked until then (Unix seconds); nothing was counted.
    Locked(i64),
}

/// One write of a batch.
#[derive(Clone, Debug)]
pub enum WriteOp {
    Insert(Collection, Doc),
    Replace(Collection, Doc),
    Link(Edge, String, String),
    Unlink(Edge, String, String),
}

/// The storage operations. Implementations must be safe to share between tasks.
/// A change-feed entry to append: `kind` of change to `object`, its `body`, and a sealed
/// `secret` (a password) that is erased once acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct NewFeedEntry<'a> {
    pub domain: &'a str,
    pub kind: &'a str,
    pub object: &'a str,
    pub body: &'a Value,
    pub secret: Option<&'a str>,
    pub created: &'a str,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn insert(&self, c: Collection, doc: &Doc) -> Result<()>;
    /// Replaces an existing document; `false` if it does not exist.
    async fn replace(&self, c: Collection, doc: &Doc) -> Result<bool>;
    async fn get(&self, c: Collection, id: &str) -> Result<Option<Value>>;
    /// Finds a document by its first unique key (compared lowercased).
    async fn get_by_key(&self, c: Collection, key1: &str) -> Result<Option<Value>>;
    /// The documents whose first key (or, with `key2`, second key) is any of `keys`,
    /// case-insensitively: one lookup for a whole batch instead of one per key.
    async fn get_by_keys(&self, c: Collection, key2: bool, keys: &[&str]) -> Result<Vec<Value>>;
    /// Deletes a document with its edges and secrets; `false` if it did not exist.
    async fn delete(&self, c: Collection, id: &str) -> Result<bool>;
    /// Filters, orders and windows a collection; returns the total before windowing.
    /// The documents as their stored JSON text (decoded one at a time by the caller, so a
    /// list of every user is never held twice as JSON trees).
    async fn list(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<String>)>;
    /// The text fields `fields` (`id` or document fields) of every document of `c` that
    /// `filter` matches, in insertion order, one `Vec` per document (`None` where a field is
    /// missing): a lookup that needs a few fields of many documents sends and decodes no
    /// document and counts nothing. At least one field; text fields, or objects as their
    /// JSON text (a number or a boolean reads differently on each backend, or fails).
    async fn project(&self, c: Collection, filter: &Filter, fields: &[&str]) -> Result<Vec<Vec<Option<String>>>>;

    /// Sets (or with `None` removes) the secret of `purpose` owned by `owner`.
    async fn put_secret(&self, owner: &str, purpose: Secret, hash: Option<&str>) -> Result<()>;
    async fn secret(&self, owner: &str, purpose: Secret) -> Result<Option<String>>;
    /// The owner of a secret, looked up by its hash (for keys and tokens).
    async fn secret_owner(&self, purpose: Secret, hash: &str) -> Result<Option<String>>;

    /// Adds an edge; `false` if it already existed.
    async fn link(&self, e: Edge, from: &str, to: &str) -> Result<bool>;
    /// Removes an edge; `false` if it did not exist.
    async fn unlink(&self, e: Edge, from: &str, to: &str) -> Result<bool>;
    async fn targets(&self, e: Edge, from: &str) -> Result<Vec<String>>;
    async fn sources(&self, e: Edge, to: &str) -> Result<Vec<String>>;
    /// Users (each named as its [`UserKey`] says), each with whether `from` links to
    /// it directly with `direct`, and the groups it is a member of that `from` links to with
    /// `via` (a user, whether it is in LDAP itself, and its groups in LDAP), as documents in
    /// membership order; one answer per key, in order (`None`: no such user). One query
    /// however many keys and groups.
    async fn users_with_groups(
        &self,
        keys: &[(&str, UserKey)],
        from: &str,
        direct: Edge,
        via: Edge,
    ) -> Result<Vec<Option<UserWithGroups>>>;

    /// A number that moves on after every write to the directory (documents, edges, secrets,
    /// settings) through this store, when this process is the store's only writer (the
    /// embedded SQLite): an answer read after taking version `n` is still the store's while
    /// the version is `n`, so it may be answered again from memory. `None` when other
    /// processes write the store too (PostgreSQL): nothing read may be reused.
    /// Login attempts, the feed and shared state are not the directory and do not move it.
    fn directory_version(&self) -> Option<u64> {
        None
    }

    /// How many list pages this store started at their offset, right after the page before
    /// them, or after a mark (`cursors.rs`, `marks.rs`), since it opened: for tests and
    /// benchmarks.
    fn page_starts(&self) -> PageStarts {
        PageStarts::default()
    }

    /// Several writes in one transaction: all of them, or none (the error says why). They
    /// are applied by kind, each kind in the batch's order: inserts, replaces, links, then
    /// unlinks (so a batch must not unlink an edge and then link it again).
    async fn write_batch(&self, ops: &[WriteOp]) -> Result<()>;

    /// Replaces a document and sets its owner's secret of `purpose` in one transaction:
    /// both, or neither (a unique-key conflict leaves the old secret). Answers whether the
    /// document existed (if not, nothing is written).
    async fn replace_with_secret(&self, c: Collection, doc: &Doc, purpose: Secret, hash: &str) -> Result<bool>;

    /// Appends to a domain's change feed; returns the entry's sequence number.
    async fn append_feed(&self, e: NewFeedEntry<'_>) -> Result<i64>;
    /// Entries of a domain after `after`, in order.
    async fn read_feed(&self, domain: &str, after: i64, limit: usize) -> Result<Vec<FeedEntry>>;
    /// Forgets the secrets of every entry created before `before` (RFC 3339); answers the
    /// object id and creation time of each entry whose secret it forgot.
    async fn expire_feed_secrets(&self, before: &str) -> Result<Vec<(String, String)>>;
    /// How many entries of a domain come after `after` (counted, not read).
    async fn count_feed(&self, domain: &str, after: i64) -> Result<u64>;
    /// Forgets the secrets of a domain's entries up to `upto` (acknowledged: applied).
    async fn clear_feed_secrets(&self, domain: &str, upto: i64) -> Result<()>;

    async fn setting(&self, key: &str) -> Result<Option<Value>>;
    async fn put_setting(&self, key: &str, value: &Value) -> Result<()>;
    /// Short-lived state every tetherd on this database shares (console sessions, bulk job
    /// results): one value per key until `expires` (Unix seconds).
    async fn put_shared(&self, key: &str, value: &Value, expires: i64) -> Result<()>;
    /// The value of `key`, unless it expired by `now` (Unix seconds).
    async fn shared(&self, key: &str, now: i64) -> Result<Option<Value>>;
    async fn delete_shared(&self, key: &str) -> Result<()>;
    /// Removes and answers every unexpired value whose key starts with `prefix` (letters,
    /// digits, `:` and `-`), each to exactly one caller however many tetherd ask at once.
    async fn take_shared(&self, prefix: &str, now: i64) -> Result<Vec<(String, Value)>>;
    /// Forgets every value expired by `now`.
    async fn expire_shared(&self, now: i64) -> Result<()>;
    /// Counts a login attempt for `key` before its password is checked (every tetherd counts
    /// in the same place). [`Counted::Full`]: the attempt made the count pass `a.max` (the
    /// caller gives it back with `attempt_succeeded(key, true)` before trying again).
    async fn count_attempt(&self, key: &str, a: Attempt) -> Result<Counted>;
    /// Takes `count` consecutive numbers of the counter `name`, none below `floor` (later
    /// takes continue above them); answers the first. Every tetherd takes from one counter.
    /// `count` 0 only raises the counter to `floor`.
    async fn take_numbers(&self, name: &str, count: i64, floor: i64) -> Result<i64>;
    /// Raises counter `name` to `to` when it is below (or absent); whether it did. Atomic:
    /// of two callers raising to the same value, one gets `true` (a TOTP step used once).
    async fn raise_counter(&self, name: &str, to: i64) -> Result<bool>;
    /// The attempt counted for `key` failed: at the limit, the key is locked until
    /// `a.lock_until`.
    async fn attempt_failed(&self, key: &str, a: Attempt) -> Result<()>;
    /// The attempt counted for `key` succeeded: its count starts again and a lock ends; for a
    /// key shared by many (`shared_key`, a source address) only that attempt is given back.
    async fn attempt_succeeded(&self, key: &str, shared_key: bool) -> Result<()>;
}

/// Makes sure `dir` exists and only its owner may enter it: created 0700, an empty one made
/// 0700; one with content that every user of the machine may read is refused (it holds the
/// database and the server's secret key). Answers why not, with the fix.
pub fn private_dir(dir: &std::path::Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        // A new, empty directory (made by `mkdir` with the usual umask): nothing has been
        // readable yet, so it is simply made private.
        Ok(meta)
            if meta.permissions().mode() & 0o077 != 0
                && std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none()) =>
        {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", dir.display()))
        }
        Ok(meta) if meta.permissions().mode() & 0o007 != 0 => Err(format!(
            "{} can be read by every user of this machine and holds the directory's data; run `chmod 700 {}`",
            dir.display(),
            dir.display()
        )),
        Ok(_) => Ok(()),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display())),
    }
}

/// Creates the database file 0600 before SQLite does (its journal files take the same mode),
/// and takes away what other users may do with existing ones.
fn private_file(path: &std::path::Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&p) {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
    }
    Ok(())
}
