//! `tether`: the admin command line, a thin client of the REST API.
//! Human tables by default, `--json` for scripts.

mod client;
mod decommission;
mod radius;
mod table;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

use client::Client;

#[derive(Parser)]
#[command(name = "tether", version, about = "Administer a Tether directory")]
struct Cli {
    /// Base URL of tetherd.
    #[arg(long, env = "TETHER_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// PEM of a private CA that signed tetherd's certificate (trusted besides the system's roots).
    #[arg(long, env = "TETHER_CA_FILE", global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// Administrator API key.
    #[arg(long, env = "TETHER_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Directory users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// User groups and their members.
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Active Directory domains and their agents.
    #[command(subcommand)]
    Ad(AdCmd),
    /// The LDAP server: its policy and who is in LDAP.
    #[command(subcommand)]
    Ldap(LdapCmd),
    /// RADIUS servers and who gets in through them.
    #[command(subcommand)]
    Radius(radius::RadiusCmd),
    /// API keys.
    #[command(subcommand)]
    Apikeys(ApiKeysCmd),
}

#[derive(Subcommand)]
enum LdapCmd {
    /// Show the LDAP server.
    Show,
    /// Change what happens to locked users and users whose password expired (REMOVE:
    /// refused, MAINTAIN: let through).
    Set {
        #[arg(long)]
        lockout_action: Option<String>,
        #[arg(long)]
        expiration_action: Option<String>,
    },
    /// The users in LDAP (directly or through a group).
    Users,
    /// Put a user in LDAP (username or id).
    AddUser {
        user: String,
    },
    RemoveUser {
        user: String,
    },
    /// Put a group's members in LDAP, and the group (name or id).
    AddGroup {
        group: String,
    },
    RemoveGroup {
        group: String,
    },
}

#[derive(Subcommand)]
enum UsersCmd {
    /// List users (all pages).
    List {
        #[arg(long)]
        externally_managed: Option<bool>,
        /// A v1 filter `field:$op:value`, repeatable.
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Show one user (username or id).
    Get {
        user: String,
    },
    /// Create a user.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Change fields of one user, or of every user with --all.
    Set {
        /// Username or id (omit with --all).
        user: Option<String>,
        /// Apply to every user (with --externally-managed false: every externally managed user).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        externally_managed: Option<bool>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Delete a user.
    /// Removes a user's TOTP second factor (the user enrolls again in the portal).
    ResetMfa {
        user: String,
    },
    Delete {
        user: String,
    },
    /// Bind a user to an AD domain (id or DN, `DC=corp,DC=example,DC=com`): its sync agent
    /// creates or takes over the account there.
    Bind {
        user: String,
        domain: String,
    },
    /// Unbind a user from an AD domain: the domain's `user_disconnection_action` applies in
    /// that AD only.
    Unbind {
        user: String,
        domain: String,
    },
    /// What changed on a user, when, by whom and why (oldest first).
    History {
        user: String,
    },
}

#[derive(Args)]
struct UserFields {
    #[arg(long)]
    firstname: Option<String>,
    #[arg(long)]
    lastname: Option<String>,
    #[arg(long)]
    password: Option<String>,
    #[arg(long)]
    suspended: Option<bool>,
    /// STAGED, ACTIVATED or SUSPENDED.
    #[arg(long)]
    state: Option<String>,
}

impl UserFields {
    fn into_map(self, m: &mut Map<String, Value>) {
        for (k, v) in [
            ("firstname", self.firstname),
            ("lastname", self.lastname),
            ("password", self.password),
            ("state", self.state),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v));
            }
        }
        if let Some(s) = self.suspended {
            m.insert("suspended".into(), Value::Bool(s));
        }
    }
}

#[derive(Subcommand)]
enum GroupsCmd {
    List,
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        group: String,
    },
    /// What changed on a group (renames, members, AD association), when, by whom and why.
    History {
        group: String,
    },
    /// List the members of a group.
    Members {
        group: String,
    },
    AddMember {
        group: String,
        user: String,
    },
    RemoveMember {
        group: String,
        user: String,
    },
}

#[derive(Subcommand)]
enum AdCmd {
    /// List AD domains.
    List,
    /// Add a domain: `DC=corp,DC=example,DC=com`.
    Create {
        domain: String,
        #[arg(long, default_value = "TWOWAYSYNC")]
        use_case: String,
    },
    /// Delete a domain (its agents must be deleted first).
    Delete {
        domain_id: String,
    },
    /// List the agents of a domain.
    Agents {
        domain_id: String,
    },
    /// Add an agent; prints its one-time connect key.
    AddAgent {
        domain_id: String,
        #[arg(long = "type", default_value = "IMPORT")]
        agent_type: String,
    },
    Pause {
        domain_id: String,
        agent_id: String,
    },
    Resume {
        domain_id: String,
        agent_id: String,
    },
    DeleteAgent {
        domain_id: String,
        agent_id: String,
    },
    /// Show the cycle held by a mass-change guard, if any; `--approve` applies exactly it,
    /// `--reject` drops it.
    Plan {
        domain_id: String,
        #[arg(long, conflicts_with = "reject")]
        approve: bool,
        #[arg(long)]
        reject: bool,
    },
    /// Retire AD: `--plan` shows what happens and who is at risk; `--apply` does it.
    Decommission {
        domain_id: String,
        #[arg(long, conflicts_with = "apply")]
        plan: bool,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeysCmd {
    Create {
        name: String,
        #[arg(long, default_value = "admin")]
        role: String,
    },
    List,
}

pub(crate) const USER_COLUMNS: &[&str] = &["username", "email", "state", "externally_managed", "passwordStatus", "id"];

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let c = Client::new(&cli.url, cli.api_key.as_deref(), cli.ca_file.as_deref())?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Users(cmd) => users(&c, &out, cmd).await,
        Command::Groups(cmd) => groups(&c, &out, cmd).await,
        Command::Ad(cmd) => ad(&c, &out, cmd).await,
        Command::Ldap(cmd) => ldap(&c, &out, cmd).await,
        Command::Radius(cmd) => radius::run(&c, &out, cmd).await,
        Command::Apikeys(ApiKeysCmd::Create { name, role }) => out.one(
            &c.post("/api/v2/apikeys", json!({"name": name, "role": role})).await?,
            &["id", "name", "role", "key"],
        ),
        Command::Apikeys(ApiKeysCmd::List) => {
            out.many(&c.get("/api/v2/apikeys").await?, &["id", "name", "role", "created"])
        }
    }
}

pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn one(&self, v: &Value, cols: &[&str]) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
            return Ok(());
        }
        self.many(&Value::Array(vec![v.clone()]), cols)
    }

    pub(crate) fn many(&self, v: &Value, cols: &[&str]) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            print!("{}", table::render(v.as_array().map(Vec::as_slice).unwrap_or_default(), cols));
        }
        Ok(())
    }
}

async fn users(c: &Client, out: &Output, cmd: UsersCmd) -> Result<()> {
    match cmd {
        UsersCmd::List { externally_managed, mut filter } => {
            if let Some(b) = externally_managed {
                filter.push(format!("externally_managed:$eq:{b}"));
            }
            out.many(&Value::Array(c.all_users(&filter).await?), USER_COLUMNS)
        }
        UsersCmd::Get { user } => {
            out.one(&c.get(&format!("/api/systemusers/{}", c.user_id(&user).await?)).await?, USER_COLUMNS)
        }
        UsersCmd::Create { username, email, fields } => {
            let mut m = Map::new();
            m.insert("username".into(), username.into());
            m.insert("email".into(), email.into());
            fields.into_map(&mut m);
            out.one(&c.post("/api/systemusers", Value::Object(m)).await?, USER_COLUMNS)
        }
        UsersCmd::Set { user, all, externally_managed, username, email, fields } => {
            let mut m = Map::new();
            fields.into_map(&mut m);
            for (k, v) in [("username", username), ("email", email)] {
                if let Some(v) = v {
                    m.insert(k.into(), v.into());
                }
            }
            if let Some(b) = externally_managed {
                m.insert("externally_managed".into(), b.into());
            }
            if m.is_empty() {
                bail!("nothing to set: give at least one field flag");
            }
            let ids = match (user, all) {
                (Some(u), false) => vec![c.user_id(&u).await?],
                (None, true) => {
                    // `--all --externally-managed false` means every externally managed user.
                    let filter = match externally_managed {
                        Some(false) => vec!["externally_managed:$eq:true".to_string()],
                        _ => vec![],
                    };
                    c.all_users(&filter).await?.iter().filter_map(|u| u["id"].as_str().map(str::to_string)).collect()
                }
                _ => bail!("give either a USER or --all"),
            };
            let body = Value::Object(m);
            let (mut done, mut results, mut failed) = (0, Vec::new(), 0);
            for id in &ids {
                match c.put(&format!("/api/systemusers/{id}"), body.clone()).await {
                    Ok(v) => {
                        done += 1;
                        results.push(v);
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: user {id}: {e:#}");
                    }
                }
            }
            out.many(&Value::Array(results), USER_COLUMNS)?;
            if !out.json {
                eprintln!("{done} user(s) updated, {failed} failed");
            }
            if failed > 0 {
                bail!("{failed} of {} update(s) failed", ids.len());
            }
            Ok(())
        }
        UsersCmd::History { user } => {
            let id = c.user_id(&user).await?;
            history(c, out, &format!("/api/v2/users/{id}/history")).await
        }
        UsersCmd::ResetMfa { user } => {
            let id = c.user_id(&user).await?;
            out.one(&c.post(&format!("/api/systemusers/{id}/resetmfa"), json!({})).await?, USER_COLUMNS)
        }
        UsersCmd::Delete { user } => {
            let id = c.user_id(&user).await?;
            out.one(&c.delete(&format!("/api/systemusers/{id}")).await?, USER_COLUMNS)
        }
        UsersCmd::Bind { user, domain } => bind(c, &user, &domain, "add").await,
        UsersCmd::Unbind { user, domain } => bind(c, &user, &domain, "remove").await,
    }
}

async fn ldap(c: &Client, out: &Output, cmd: LdapCmd) -> Result<()> {
    const SERVER: &[&str] = &["id", "name", "userLockoutAction", "userPasswordExpirationAction"];
    let server = c.get("/api/v2/ldapservers").await?;
    let id = server[0]["id"].as_str().context("no LDAP server in the answer")?.to_string();
    let associate = |kind: &'static str, object: String, op: &'static str| {
        let path = format!("/api/v2/ldapservers/{id}/associations");
        async move { c.post(&path, json!({"op": op, "type": kind, "id": object})).await.map(|_| ()) }
    };
    match cmd {
        LdapCmd::Show => out.one(&server[0], SERVER),
        LdapCmd::Set { lockout_action, expiration_action } => {
            let mut m = Map::new();
            if let Some(a) = lockout_action {
                m.insert("userLockoutAction".into(), a.to_uppercase().into());
            }
            if let Some(a) = expiration_action {
                m.insert("userPasswordExpirationAction".into(), a.to_uppercase().into());
            }
            out.one(&c.patch(&format!("/api/v2/ldapservers/{id}"), Value::Object(m)).await?, SERVER)
        }
        LdapCmd::Users => {
            out.many(&Value::Array(c.users_of(&format!("/api/v2/ldapservers/{id}/users")).await?), USER_COLUMNS)
        }
        LdapCmd::AddUser { user } => associate("user", c.user_id(&user).await?, "add").await,
        LdapCmd::RemoveUser { user } => associate("user", c.user_id(&user).await?, "remove").await,
        LdapCmd::AddGroup { group } => associate("user_group", c.group_id(&group).await?, "add").await,
        LdapCmd::RemoveGroup { group } => associate("user_group", c.group_id(&group).await?, "remove").await,
    }
}

/// Binds (`add`) a user to a domain or unbinds it (`remove`).
async fn bind(c: &Client, user: &str, domain: &str, op: &str) -> Result<()> {
    let (id, domain) = (c.user_id(user).await?, c.domain_id(domain).await?);
    let path = format!("/api/v2/activedirectories/{domain}/associations");
    c.post(&path, json!({"op": op, "type": "user", "id": id})).await.map(|_| ())
}

async fn groups(c: &Client, out: &Output, cmd: GroupsCmd) -> Result<()> {
    const COLS: &[&str] = &["name", "description", "id"];
    match cmd {
        GroupsCmd::List => out.many(&Value::Array(c.all_v2("/api/v2/usergroups").await?), COLS),
        GroupsCmd::Create { name, description } => out.one(
            &c.post("/api/v2/usergroups", json!({"name": name, "description": description.unwrap_or_default()}))
                .await?,
            COLS,
        ),
        GroupsCmd::Delete { group } => {
            c.delete(&format!("/api/v2/usergroups/{}", c.group_id(&group).await?)).await?;
            Ok(())
        }
        GroupsCmd::Members { group } => {
            let gid = c.group_id(&group).await?;
            let mut users = Vec::new();
            for m in c.all_v2(&format!("/api/v2/usergroups/{gid}/members")).await? {
                if let Some(id) = m["to"]["id"].as_str() {
                    users.push(c.get(&format!("/api/systemusers/{id}")).await?);
                }
            }
            out.many(&Value::Array(users), USER_COLUMNS)
        }
        GroupsCmd::History { group } => {
            history(c, out, &format!("/api/v2/usergroups/{}/history", c.group_id(&group).await?)).await
        }
        GroupsCmd::AddMember { group, user } => member(c, &group, &user, "add").await,
        GroupsCmd::RemoveMember { group, user } => member(c, &group, &user, "remove").await,
    }
}

/// Prints an object's history: when, what, by whom and why.
async fn history(c: &Client, out: &Output, path: &str) -> Result<()> {
    let mut entries = c.all_v2(path).await?;
    for e in entries.iter_mut() {
        let by = serde_json::from_value::<tether_core::actor::Actor>(e["actor"].clone()).map(|a| a.to_string());
        e["by"] = json!(by.unwrap_or_default());
        let fields: Vec<String> = e["changes"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| match v {
                        Value::Array(pair) if pair.len() == 2 => format!("{k}: {} → {}", pair[0], pair[1]),
                        other => format!("{k}: {other}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        e["what"] = json!(fields.join("; "));
    }
    out.many(&Value::Array(entries), &["at", "action", "by", "reason", "what"])
}

async fn member(c: &Client, group: &str, user: &str, op: &str) -> Result<()> {
    let (gid, uid) = (c.group_id(group).await?, c.user_id(user).await?);
    c.post(&format!("/api/v2/usergroups/{gid}/members"), json!({"op": op, "type": "user", "id": uid})).await?;
    Ok(())
}

async fn ad(c: &Client, out: &Output, cmd: AdCmd) -> Result<()> {
    const DOMAIN: &[&str] = &["domain", "useCase", "delegationState", "id"];
    const AGENT: &[&str] =
        &["id", "agentType", "state", "paused", "adStatus.reachable", "hostname", "contactAt", "deletableAt"];
    let base = |d: &str| format!("/api/v2/activedirectories/{d}");
    match cmd {
        AdCmd::List => out.many(&Value::Array(c.all_v2("/api/v2/activedirectories").await?), DOMAIN),
        AdCmd::Create { domain, use_case } => {
            out.one(&c.post("/api/v2/activedirectories", json!({"domain": domain, "useCase": use_case})).await?, DOMAIN)
        }
        AdCmd::Delete { domain_id } => c.delete(&base(&domain_id)).await.map(|_| ()),
        AdCmd::Agents { domain_id } => {
            out.many(&Value::Array(c.all_v2(&format!("{}/agents", base(&domain_id))).await?), AGENT)
        }
        AdCmd::AddAgent { domain_id, agent_type } => {
            let v = c.post(&format!("{}/agents", base(&domain_id)), json!({"agentType": agent_type})).await?;
            out.one(&v, &["id", "agentType", "connectKey"])
        }
        AdCmd::Pause { domain_id, agent_id } => {
            out.one(&c.post(&format!("{}/agents/{agent_id}/pause", base(&domain_id)), json!({})).await?, AGENT)
        }
        AdCmd::Resume { domain_id, agent_id } => {
            out.one(&c.post(&format!("{}/agents/{agent_id}/resume", base(&domain_id)), json!({})).await?, AGENT)
        }
        AdCmd::DeleteAgent { domain_id, agent_id } => {
            c.delete(&format!("{}/agents/{agent_id}", base(&domain_id))).await.map(|_| ())
        }
        AdCmd::Decommission { domain_id, plan, apply } => match (plan, apply) {
            (_, true) => decommission::apply(c, &domain_id).await,
            _ => decommission::plan(c, &domain_id, out.json).await,
        },
        AdCmd::Plan { domain_id, approve, reject } => {
            if approve || reject {
                let verb = if approve { "approve" } else { "reject" };
                let v = c.post(&format!("{}/plan/{verb}", base(&domain_id)), json!({})).await?;
                return out.one(&v, &["created", "updated", "deleted", "unbound", "status"]);
            }
            let v = c.get(&format!("{}/plan", base(&domain_id))).await?;
            if out.json {
                return out.many(&v, &[]);
            }
            println!("status: {}", v["status"].as_str().unwrap_or("?"));
            if let Some(r) = v["reason"].as_str() {
                println!("reason: {r}");
            }
            out.many(&v["changes"], &["category", "object", "action", "reason"])
        }
    }
}
