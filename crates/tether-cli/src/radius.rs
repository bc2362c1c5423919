//! `tether radius …`: RADIUS servers (the network devices that may ask the directory) and
//! who may get in through each. A shared secret is read from `TETHER_RADIUS_SECRET` (or
//! `--shared-secret`), never echoed; the API never answers it.

use anyhow::{anyhow, Result};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::{Output, USER_COLUMNS};

const COLUMNS: &[&str] = &["name", "networkSourceIp", "mfa", "userLockoutAction", "userPasswordExpirationAction", "id"];

#[derive(Subcommand)]
pub enum RadiusCmd {
    /// The RADIUS servers.
    List,
    /// A new RADIUS server for the device at `--source-ip`.
    Create {
        #[arg(long)]
        name: String,
        /// The address the device's requests come from.
        #[arg(long)]
        source_ip: String,
        /// The shared secret configured on the device.
        #[arg(long, env = "TETHER_RADIUS_SECRET", hide_env_values = true)]
        shared_secret: String,
        /// DISABLED, ENABLED (a code from users who enrolled TOTP) or REQUIRED.
        #[arg(long)]
        mfa: Option<String>,
    },
    /// Changes a server (name or id); only the options given.
    Set {
        server: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        source_ip: Option<String>,
        #[arg(long, env = "TETHER_RADIUS_SECRET", hide_env_values = true)]
        shared_secret: Option<String>,
        #[arg(long)]
        mfa: Option<String>,
        /// REMOVE (locked users refused) or MAINTAIN.
        #[arg(long)]
        lockout_action: Option<String>,
        /// REMOVE (users whose password expired refused) or MAINTAIN.
        #[arg(long)]
        expiration_action: Option<String>,
    },
    Delete {
        server: String,
    },
    /// The users who may get in through a server (directly or through a group).
    Users {
        server: String,
    },
    /// Lets a user (username or id) get in through a server.
    AddUser {
        server: String,
        user: String,
    },
    RemoveUser {
        server: String,
        user: String,
    },
    /// Lets a group's members (group name or id) get in through a server.
    AddGroup {
        server: String,
        group: String,
    },
    RemoveGroup {
        server: String,
        group: String,
    },
}

/// A server id from an id or a name.
async fn server_id(c: &Client, server: &str) -> Result<String> {
    let all = c.get("/api/radiusservers?limit=100").await?;
    all["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["id"].as_str() == Some(server) || r["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(server))
        })
        .and_then(|r| r["id"].as_str().map(str::to_string))
        .ok_or_else(|| anyhow!("no RADIUS server `{server}`"))
}

pub async fn run(c: &Client, out: &Output, cmd: RadiusCmd) -> Result<()> {
    let associate = |server: String, kind: &'static str, object: String, op: &'static str| async move {
        let path = format!("/api/v2/radiusservers/{server}/associations");
        c.post(&path, json!({"op": op, "type": kind, "id": object})).await.map(|_| ())
    };
    match cmd {
        RadiusCmd::List => out.many(&c.get("/api/radiusservers?limit=100").await?["results"], COLUMNS),
        RadiusCmd::Create { name, source_ip, shared_secret, mfa } => {
            let mut body = json!({"name": name, "networkSourceIp": source_ip, "sharedSecret": shared_secret});
            if let Some(m) = mfa {
                body["mfa"] = m.to_uppercase().into();
            }
            out.one(&c.post("/api/radiusservers", body).await?, COLUMNS)
        }
        RadiusCmd::Set { server, name, source_ip, shared_secret, mfa, lockout_action, expiration_action } => {
            let id = server_id(c, &server).await?;
            let mut m = Map::new();
            let fields = [
                ("name", name),
                ("networkSourceIp", source_ip),
                ("sharedSecret", shared_secret),
                ("mfa", mfa.map(|v| v.to_uppercase())),
                ("userLockoutAction", lockout_action.map(|v| v.to_uppercase())),
                ("userPasswordExpirationAction", expiration_action.map(|v| v.to_uppercase())),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    m.insert(k.into(), v.into());
                }
            }
            out.one(&c.put(&format!("/api/radiusservers/{id}"), Value::Object(m)).await?, COLUMNS)
        }
        RadiusCmd::Delete { server } => {
            let id = server_id(c, &server).await?;
            out.one(&c.delete(&format!("/api/radiusservers/{id}")).await?, COLUMNS)
        }
        RadiusCmd::Users { server } => {
            let id = server_id(c, &server).await?;
            out.many(&Value::Array(c.users_of(&format!("/api/v2/radiusservers/{id}/users")).await?), USER_COLUMNS)
        }
        RadiusCmd::AddUser { server, user } => {
            associate(server_id(c, &server).await?, "user", c.user_id(&user).await?, "add").await
        }
        RadiusCmd::RemoveUser { server, user } => {
            associate(server_id(c, &server).await?, "user", c.user_id(&user).await?, "remove").await
        }
        RadiusCmd::AddGroup { server, group } => {
            associate(server_id(c, &server).await?, "user_group", c.group_id(&group).await?, "add").await
        }
        RadiusCmd::RemoveGroup { server, group } => {
            associate(server_id(c, &server).await?, "user_group", c.group_id(&group).await?, "remove").await
        }
    }
}
